// Command vigil-agent is the Vigil agent: it enrols with a server, pulls
// scan assignments over mutual TLS, scans its own host and, as a jump box,
// nearby hosts over SSH, and streams results back through an on-disk
// spool; `scan` is the air-gapped offline mode. See internal/cli.
package main

import (
	"context"
	"os"

	"github.com/vigilfleet/vigil/agent/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
