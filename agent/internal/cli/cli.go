// Package cli is vigil-agent's command line: it parses flags, builds the
// configuration (defaults, file, VIGIL_AGENT_* environment, flags) and
// calls the package that does the work.
package cli

import (
	"context"
	"encoding/json"
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

	"golang.org/x/sys/unix"

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
  run           run the agent daemon [--config FILE] [--state-dir DIR] [--health-addr ADDR]
  status        show the agent's connection, certificate, last assignment, spool and bundle [--state-dir DIR] [--json]
  scan          offline scan: --bundle FILE --out RESULTS [--trusted-key PUB] [--state-dir DIR]
  check-config  validate and print the effective configuration [--config FILE]
  --version     print the version

Every command reads its configuration from the built-in defaults, then the
file, then VIGIL_AGENT_* environment variables, then flags; a later source
wins. Common flags: --config --state-dir --server --log-level --log-format
--health-addr.
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
	logFormat  string
	healthAddr string
}

func newFlags(name string, stderr io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.configFile, "config", "", "configuration file (default "+config.DefaultFile+" when present)")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory")
	fs.StringVar(&c.server, "server", "", "server gRPC address HOST:PORT")
	fs.StringVar(&c.logLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "", "auto (text on a terminal, JSON otherwise), text or json")
	fs.StringVar(&c.healthAddr, "health-addr", "", "serve /healthz, /readyz, /metrics on a loopback HOST:PORT or unix:/path")
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
		case "log-format":
			cfg.LogFormat = c.logFormat
		case "health-addr":
			cfg.HealthAddr = c.healthAddr
		}
	})
	return cfg, nil
}

// Logger builds the daemon's logger: text when format is "text", or
// "auto" and w is a terminal; JSON otherwise (under systemd, journald or
// a log shipper reads structured lines).
func Logger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" || (format == "auto" && isTerminal(w)) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
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
	flushTO := fs.Duration("shutdown-flush-timeout", 10*time.Second, "how long the last spool flush after SIGTERM may take")
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
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: Logger(stderr, cfg.LogLevel, cfg.LogFormat),
		ShutdownGrace: *grace, FlushTimeout: *flushTO})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

func cmdStatus(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c common
	fs := newFlags("status", stderr, &c)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load(fs, &c, getenv)
	if err != nil {
		return err
	}
	st, err := ReadStatus(cfg.StateDir, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	st.Print(stdout)
	return nil
}

// Status is what `vigil-agent status` reports, read from the state
// directory; it works whether or not the daemon runs. The daemon's fields
// are as of its last write (UpdatedAt).
type Status struct {
	Agent       string            `json:"agent"`
	AgentID     int64             `json:"agent_id"`
	Server      string            `json:"server"`
	Certificate CertificateStatus `json:"certificate"`
	// DaemonHasRun is false until a daemon first wrote its status.
	DaemonHasRun   bool                  `json:"daemon_has_run"`
	Connected      bool                  `json:"connected"`
	UpdatedAt      *time.Time            `json:"updated_at,omitempty"`
	LastContact    *time.Time            `json:"last_contact,omitempty"`
	LastError      string                `json:"last_error,omitempty"`
	LastAssignment *state.LastAssignment `json:"last_assignment"`
	Spool          SpoolStatus           `json:"spool"`
	Bundle         BundleStatus          `json:"bundle"`
}

// CertificateStatus is the agent certificate's expiry.
type CertificateStatus struct {
	NotAfter *time.Time `json:"not_after,omitempty"`
	Expired  bool       `json:"expired"`
	Error    string     `json:"error,omitempty"`
	left     time.Duration
}

// SpoolStatus is the spool's depth.
type SpoolStatus struct {
	Batches int64  `json:"batches"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

// BundleStatus is the accepted rule bundle; empty before the first.
type BundleStatus struct {
	Version string `json:"version,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// ReadStatus gathers the status from stateDir.
func ReadStatus(stateDir string, now time.Time) (*Status, error) {
	dir := &state.Dir{Path: stateDir}
	id, err := dir.Identity()
	if err != nil {
		return nil, err
	}
	out := &Status{Agent: id.AgentName, AgentID: id.AgentID, Server: id.Server}
	if cert, err := dir.Certificate(); err != nil {
		out.Certificate.Error = err.Error()
	} else {
		na := cert.NotAfter.UTC()
		out.Certificate.NotAfter = &na
		out.Certificate.left = cert.NotAfter.Sub(now).Round(time.Minute)
		out.Certificate.Expired = !now.Before(cert.NotAfter)
	}
	st, err := dir.Status()
	if err != nil {
		return nil, err
	}
	if !st.UpdatedAt.IsZero() {
		out.DaemonHasRun, out.Connected, out.LastError = true, st.Connected, st.LastError
		out.UpdatedAt = &st.UpdatedAt
		if !st.LastContact.IsZero() {
			out.LastContact = &st.LastContact
		}
	}
	out.LastAssignment = st.LastAssignment
	if sp, err := spool.Open(dir.File(state.SpoolDir), 1<<62); err == nil {
		out.Spool.Batches, out.Spool.Bytes = sp.Stats()
	} else {
		out.Spool.Error = err.Error()
	}
	if cache, err := bundlecache.Open(dir.File(state.BundlesDir), nil, nil); err == nil {
		if acc, err := cache.Accepted(); err == nil {
			out.Bundle = BundleStatus{Version: acc.Version, Digest: acc.Digest}
		}
	}
	return out, nil
}

// Print writes the status for a person.
func (s *Status) Print(w io.Writer) {
	fmt.Fprintf(w, "agent:        %s (id %d)\n", s.Agent, s.AgentID)
	fmt.Fprintf(w, "server:       %s\n", s.Server)
	switch c := s.Certificate; {
	case c.Error != "":
		fmt.Fprintf(w, "certificate:  unreadable: %s\n", c.Error)
	case c.Expired:
		fmt.Fprintf(w, "certificate:  expires %s (EXPIRED)\n", c.NotAfter.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "certificate:  expires %s (valid for %s)\n", c.NotAfter.Format(time.RFC3339), c.left)
	}
	if !s.DaemonHasRun {
		fmt.Fprintln(w, "daemon:       has not run")
	} else {
		conn := "disconnected"
		if s.Connected {
			conn = "connected"
		}
		fmt.Fprintf(w, "daemon:       %s (as of %s)\n", conn, s.UpdatedAt.Format(time.RFC3339))
		if s.LastContact != nil {
			fmt.Fprintf(w, "last contact: %s\n", s.LastContact.Format(time.RFC3339))
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "last error:   %s\n", s.LastError)
		}
	}
	if a := s.LastAssignment; a != nil {
		fmt.Fprintf(w, "last scan:    %d on %s at %s: %s", a.ScanID, a.Target, a.Received.Format(time.RFC3339), a.Status)
		if a.Message != "" {
			fmt.Fprintf(w, " (%s)", a.Message)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "last scan:    none")
	}
	if s.Spool.Error != "" {
		fmt.Fprintf(w, "spool:        unreadable: %s\n", s.Spool.Error)
	} else {
		fmt.Fprintf(w, "spool:        %d batches, %d bytes\n", s.Spool.Batches, s.Spool.Bytes)
	}
	if s.Bundle.Version != "" {
		fmt.Fprintf(w, "bundle:       %s (%s)\n", s.Bundle.Version, s.Bundle.Digest)
	} else {
		fmt.Fprintln(w, "bundle:       none accepted yet")
	}
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
