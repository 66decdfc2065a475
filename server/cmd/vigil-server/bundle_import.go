package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/app"
)

// fileList is a repeatable flag of file paths.
type fileList []string

func (l *fileList) String() string     { return strings.Join(*l, ",") }
func (l *fileList) Set(v string) error { *l = append(*l, v); return nil }

// bundlePublish stores a bundle built and signed elsewhere ("bundle
// publish FILE"; "bundle import FILE" is the same for air-gapped sites,
// where the file arrives on removable media).
func bundlePublish(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	f := newFlags(name, stderr)
	var trusted fileList
	f.fs.Var(&trusted, "trusted-key", "PEM public key file of another trusted bundle signer (repeatable); the server's own key is always trusted")
	file, rest, err := positional(name, "FILE", args)
	if err != nil {
		return err
	}
	cfg, err := f.load(rest)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := app.PublishBundle(ctx, cfg, st, file, append(cfg.BundleTrustedKeys, trusted...), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published bundle version %s (%s), expires %s\n", b.Version, b.Digest, b.Expires.Format(time.RFC3339))
	return nil
}

// importResults ingests an offline results archive ("import RESULTS").
func importResults(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("import", stderr)
	f.fs.StringVar(&f.cfg.RulesDir, "rules-dir", "", "rule corpus directory (for scoring)")
	file, rest, err := positional("import", "RESULTS", args)
	if err != nil {
		return err
	}
	cfg, err := f.load(rest)
	if err != nil {
		return err
	}
	if err := cfg.CheckRulesDir(); err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := app.ImportResults(ctx, cfg, st, file, time.Now())
	if err != nil {
		return err
	}
	if rep.Already {
		fmt.Fprintf(stdout, "already imported: archive %s is scan %d of host %s; nothing changed\n", rep.Digest, rep.ScanID, rep.HostName)
		return nil
	}
	fmt.Fprintf(stdout, "imported %d results from agent %s (id %d) as scan %d of host %s (id %d): %s",
		rep.Results, rep.AgentName, rep.AgentID, rep.ScanID, rep.HostName, rep.HostID, rep.Status)
	if rep.Band != "" {
		fmt.Fprintf(stdout, ", score %.1f (%s)", rep.Score, rep.Band)
	}
	fmt.Fprintf(stdout, ", %d inventory changes\n", rep.FactChanges)
	return nil
}

// positional takes the one positional argument of a command, which may
// come before or after the flags.
func positional(cmd, what string, args []string) (string, []string, error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:], nil
	}
	if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") && (n < 2 || !needsValue(args[n-2])) {
		return args[n-1], args[:n-1], nil
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return "", args, nil // let the flag set print its usage
		}
	}
	return "", nil, errors.New(cmd + ": " + what + " is required (usage: vigil-server " + cmd + " " + what + " [flags])")
}

// needsValue tells whether a flag given without "=value" takes the next
// argument as its value (every flag of these commands does but -h).
func needsValue(arg string) bool {
	return strings.HasPrefix(arg, "-") && !strings.Contains(arg, "=") && arg != "-h" && arg != "--help"
}
