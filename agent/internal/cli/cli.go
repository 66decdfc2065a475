// Package cli is vigil-agent's command line: it parses flags, builds the
// configuration (defaults, file, VIGIL_AGENT_* environment, flags) and
// calls the package that does the work.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundlecache"
	"github.com/vigilfleet/vigil/agent/internal/config"
	"github.com/vigilfleet/vigil/agent/internal/daemon"
	"github.com/vigilfleet/vigil/agent/internal/enroll"
	"github.com/vigilfleet/vigil/agent/internal/offline"
	"github.com/vigilfleet/vigil/agent/internal/spool"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/shared/version"
)

const usage = `usage: vigil-agent COMMAND [flags]

commands:
  enroll        join a server: --server HOST:PORT --token T --ca-pin sha256:... [--state-dir DIR]
  run           run the agent daemon [--config FILE] [--state-dir DIR]
  status        show the agent's identity, certificate, spool and bundle [--state-dir DIR]
  scan          offline scan: --bundle FILE --out RESULTS [--trusted-key PUB] [--state-dir DIR]
  check-config  validate and print the effective configuration [--config FILE]
  --version     print the version
`

// Run executes the command line and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, "vigil-agent", version.String())
		return 0
	case "enroll":
		err = cmdEnroll(ctx, args[1:], stdout, stderr, getenv)
	case "run":
		err = cmdRun(ctx, args[1:], stderr, getenv)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr, getenv)
	case "scan":
		err = cmdScan(ctx, args[1:], stdout, stderr, getenv)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil-agent: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil-agent:", err)
		return 1
	}
	return 0
}

// common holds the flags every command shares.
type common struct {
	configFile string
	stateDir   string
	server     string
	logLevel   string
}

func newFlags(name string, stderr io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.configFile, "config", "", "configuration file (default "+config.DefaultFile+" when present)")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory")
	fs.StringVar(&c.server, "server", "", "server gRPC address HOST:PORT")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error")
	return fs
}

// load builds the configuration and applies the flags that were set.
func load(fs *flag.FlagSet, c *common, getenv func(string) string) (*config.Config, error) {
	cfg, err := config.Load(c.configFile, getenv)
	if err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "state-dir":
			cfg.StateDir = c.stateDir
		case "server":
			cfg.Server = c.server
		case "log-level":
			cfg.LogLevel = c.logLevel
		}
	})
	return cfg, nil
}

func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func cmdEnroll(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("enroll", stderr, &c)
	token := fs.String("token", "", "join token from vigil-server token create")
	pin := fs.String("ca-pin", "", "CA pin sha256:... from vigil-server token create")
	hostname := fs.String("hostname", "", "host name to enrol as (default: this host's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = getenv(config.EnvPrefix + "TOKEN")
	}
	id, err := enroll.Enroll(ctx, enroll.Options{Server: cfg.Server, Token: *token, CAPin: *pin,
		StateDir: cfg.StateDir, Hostname: *hostname, OS: localOS()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled as %s (agent %d) with %s; state in %s\n", id.AgentName, id.AgentID, id.Server, cfg.StateDir)
	return nil
}

// localOS reads PRETTY_NAME for the enrolment request.
func localOS() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("run", stderr, &c)
	grace := fs.Duration("shutdown-grace", 30*time.Second, "how long a running scan may finish after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(false); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: logger(stderr, cfg.LogLevel), ShutdownGrace: *grace})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

func cmdStatus(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("status", stderr, &c)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	return PrintStatus(stdout, cfg.StateDir, time.Now())
}

// PrintStatus reports the agent's state from its state directory; it works
// whether or not the daemon runs.
func PrintStatus(w io.Writer, stateDir string, now time.Time) error {
	dir := &state.Dir{Path: stateDir}
	id, err := dir.Identity()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "agent:        %s (id %d)\n", id.AgentName, id.AgentID)
	fmt.Fprintf(w, "server:       %s\n", id.Server)
	if cert, err := dir.Certificate(); err != nil {
		fmt.Fprintf(w, "certificate:  unreadable: %v\n", err)
	} else {
		left := cert.NotAfter.Sub(now).Round(time.Minute)
		note := "valid for " + left.String()
		if left <= 0 {
			note = "EXPIRED"
		}
		fmt.Fprintf(w, "certificate:  expires %s (%s)\n", cert.NotAfter.UTC().Format(time.RFC3339), note)
	}
	st, err := dir.Status()
	if err != nil {
		return err
	}
	if st.UpdatedAt.IsZero() {
		fmt.Fprintln(w, "daemon:       has not run")
	} else {
		conn := "disconnected"
		if st.Connected {
			conn = "connected"
		}
		fmt.Fprintf(w, "daemon:       %s (as of %s)\n", conn, st.UpdatedAt.Format(time.RFC3339))
		if st.LastError != "" {
			fmt.Fprintf(w, "last error:   %s\n", st.LastError)
		}
	}
	if a := st.LastAssignment; a != nil {
		fmt.Fprintf(w, "last scan:    %d on %s at %s: %s", a.ScanID, a.Target, a.Received.Format(time.RFC3339), a.Status)
		if a.Message != "" {
			fmt.Fprintf(w, " (%s)", a.Message)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "last scan:    none")
	}
	if sp, err := spool.Open(dir.File(state.SpoolDir), 1<<62); err == nil {
		n, b := sp.Stats()
		fmt.Fprintf(w, "spool:        %d batches, %d bytes\n", n, b)
	}
	if cache, err := bundlecache.Open(dir.File(state.BundlesDir), nil, nil); err == nil {
		if acc, err := cache.Accepted(); err == nil && acc.Version != "" {
			fmt.Fprintf(w, "bundle:       %s (%s)\n", acc.Version, acc.Digest)
		} else {
			fmt.Fprintln(w, "bundle:       none accepted yet")
		}
	}
	return nil
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("scan", stderr, &c)
	bundleFile := fs.String("bundle", "", "signed rule bundle file")
	out := fs.String("out", "", "results archive to write")
	var keys multi
	fs.Var(&keys, "trusted-key", "trusted bundle public key file (repeatable; default: trusted_bundle_keys)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundleFile == "" || *out == "" {
		return errors.New("scan: --bundle and --out are required")
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		cfg.TrustedBundleKeys = keys
	}
	trusted, err := bundlecache.LoadTrustedKeys(cfg.TrustedBundleKeys)
	if err != nil {
		return err
	}
	a, err := offline.Scan(ctx, offline.Options{BundleFile: *bundleFile, Out: *out, StateDir: cfg.StateDir, Trusted: trusted})
	if err != nil {
		return err
	}
	e := a.GetEnd()
	fmt.Fprintf(stdout, "wrote %s: %d results (%d pass, %d fail, %d skipped, %d error) with bundle %s\n",
		*out, e.GetTotal(), e.GetPass(), e.GetFail(), e.GetSkipped(), e.GetError(), a.GetBundleVersion())
	return nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("check-config", stderr, &c)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	fmt.Fprint(stdout, cfg.String())
	return nil
}
