// Command vigil is Vigil's engine command line: scan hosts against the rule
// corpus, validate and list rules, show what a host looks like. The work is
// in internal/cli; see `vigil help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilfleet/vigil/engine/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal ends the scan gracefully; restoring the default
	// handling then lets a second one kill the process at once.
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
