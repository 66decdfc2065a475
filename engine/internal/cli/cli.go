// Package cli is the vigil command: it parses the command line, builds the
// engine's configuration, runs the command and maps the outcome to an exit
// status. cmd/vigil only calls Main, so every command is testable in
// process.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/vigilfleet/vigil/shared/version"
)

// Exit statuses.
const (
	exitOK    = 0 // every evaluated rule passed
	exitFail  = 1 // a rule failed or errored, or a host could not be scanned
	exitUsage = 2 // usage, configuration or rule corpus error
)

const mainUsage = `Usage: vigil <command> [arguments]

Vigil checks Linux hosts against compliance rules (CIS, STIG, NIST 800-53,
...) and reports a verdict with evidence for every rule.

Commands:
  check            scan the local host, SSH hosts or a mounted root filesystem
  detect           show a host's platform and capabilities
  rules validate   check a rule corpus and report every problem
  rules list       list the rules of a corpus
  bundle           build, sign and verify signed rule bundles for agents
  version          print the version
  help [command]   show help for a command

Run 'vigil <command> -h' for a command's flags.
`

// Main runs the vigil command line args (without the program name) and
// returns the exit status. ctx ends the run early (SIGINT, SIGTERM).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, osEnvironment())
}

// run is Main with the process environment passed in.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env environment) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "check":
		return runCheck(ctx, rest, stdout, stderr, env)
	case "detect":
		return runDetect(ctx, rest, stdout, stderr, env)
	case "rules":
		return runRules(ctx, rest, stdout, stderr)
	case "bundle":
		return runBundle(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "vigil %s\n", version.String())
		return exitOK
	case "help", "-h", "-help", "--help":
		return runHelp(ctx, rest, stdout, stderr, env)
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", cmd, mainUsage)
		return exitUsage
	}
}

// runHelp prints the usage of vigil or of one command.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer, env environment) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	case args[0] == "rules" && len(args) > 1:
		return runRules(ctx, []string{args[1], "-h"}, stdout, stderr)
	case args[0] == "bundle" && len(args) > 1:
		return runBundle(ctx, []string{args[1], "-h"}, stdout, stderr)
	case args[0] == "version":
		fmt.Fprintln(stdout, "Usage: vigil version\n\nPrints the version of this build.")
		return exitOK
	case args[0] == "help":
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	}
	return run(ctx, []string{args[0], "-h"}, stdout, stderr, env)
}

// plural renders "1 rule", "3 rules".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
