// Command vigil-server is the Vigil server: the REST API and web UI over
// HTTPS, the store of every finding, the adaptive scheduler and, for hosts
// without an agent, scans over SSH.
//
// Configuration comes from defaults, then --config FILE, then
// VIGIL_SERVER_* environment variables, then flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/server/internal/app"
	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/shared/version"
)

const usage = `usage: vigil-server COMMAND [flags]

commands:
  serve          run the server (HTTPS API, scheduler, agentless scans)
  migrate        apply database migrations and exit
  admin create   create an admin user (password read from stdin)
  audit verify   check the audit log's hash chain
  bundle publish FILE  verify a signed rule bundle and make it the latest
  bundle import FILE   the same, for a bundle carried into an air-gapped site
  import RESULTS       verify and ingest an offline agent's results archive
  verify FILE          check an export's signature (--public-key PEM, default the server's key)
  token create         make an agent join token (--ttl 1h --uses 1 --labels k=v,...)
  agent revoke ID      revoke an agent: its next call is refused
  check-config   validate the configuration and print it, secrets masked
  version        print the version

common flags: --config FILE --data-dir DIR --database-url URL
serve answers, besides the API: GET /healthz (alive), GET /readyz (store,
migrations, CA, bundle key; 503 names the failing check) and GET /metrics
(Prometheus; bearer token from --metrics-token-env VAR, else loopback only).
SIGTERM stops gracefully; SIGHUP reloads the --tls-cert/--tls-key files.
run "vigil-server COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	if cmd == "admin" || cmd == "audit" || cmd == "bundle" || cmd == "token" || cmd == "agent" {
		if len(rest) == 0 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "vigil-server", version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		err = serve(ctx, rest, stderr)
	case "migrate":
		err = migrate(ctx, rest, stdout, stderr)
	case "admin create":
		err = adminCreate(ctx, rest, stdin, stdout, stderr)
	case "audit verify":
		err = auditVerify(ctx, rest, stdout, stderr)
	case "bundle publish", "bundle import":
		err = bundlePublish(ctx, cmd, rest, stdout, stderr)
	case "import":
		err = importResults(ctx, rest, stdout, stderr)
	case "verify":
		err = verifyExport(rest, stdout, stderr)
	case "token create":
		err = tokenCreate(ctx, rest, stdout, stderr)
	case "agent revoke":
		err = agentRevoke(ctx, rest, stdout, stderr)
	case "check-config":
		err = checkConfig(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "vigil-server: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil-server:", err)
		return 1
	}
	return 0
}

// flags holds the flag values that override configuration; only flags
// the operator actually set are applied.
type flags struct {
	fs         *flag.FlagSet
	configFile string
	cfg        config.Config
}

func newFlags(name string, stderr io.Writer) *flags {
	f := &flags{fs: flag.NewFlagSet("vigil-server "+name, flag.ContinueOnError), cfg: config.Default()}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.configFile, "config", "", "YAML configuration file")
	f.fs.StringVar(&f.cfg.DataDir, "data-dir", f.cfg.DataDir, "data directory (SQLite store, TLS files, keys)")
	f.fs.StringVar(&f.cfg.DatabaseURL, "database-url", "", "PostgreSQL URL; empty uses SQLite in the data directory")
	return f
}

// load parses args and builds the configuration in order: defaults, file,
// environment, flags; then validates it.
func (f *flags) load(args []string) (config.Config, error) {
	if err := f.fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if f.fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg := config.Default()
	if f.configFile != "" {
		if err := cfg.LoadFile(f.configFile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	// Flags last: copy each flag the operator set from f.cfg.
	f.fs.VisitAll(func(fl *flag.Flag) {
		if set[fl.Name] {
			_ = cfg.SetFlag(fl.Name, fl.Value.String())
		}
	})
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("serve", stderr)
	f.fs.StringVar(&f.cfg.HTTPAddr, "http-addr", f.cfg.HTTPAddr, "HTTPS listen address")
	f.fs.StringVar(&f.cfg.GRPCAddr, "grpc-addr", f.cfg.GRPCAddr, "gRPC (agents, mutual TLS) listen address")
	f.fs.StringVar(&f.cfg.TLSCert, "tls-cert", "", "HTTPS certificate (PEM); empty generates a self-signed one")
	f.fs.StringVar(&f.cfg.TLSKey, "tls-key", "", "HTTPS private key (PEM)")
	f.fs.StringVar(&f.cfg.RulesDir, "rules-dir", "", "rule corpus directory")
	f.fs.StringVar(&f.cfg.Log.Format, "log-format", f.cfg.Log.Format, "auto, text or json")
	f.fs.StringVar(&f.cfg.Log.Level, "log-level", f.cfg.Log.Level, "debug, info, warn or error")
	f.fs.StringVar(&f.cfg.MetricsTokenEnv, "metrics-token-env", "",
		"environment variable holding the bearer token /metrics requires (unset: /metrics answers loopback clients only)")
	cfg, err := f.load(args)
	if err != nil {
		return err
	}
	if err := cfg.CheckRulesDir(); err != nil {
		return err
	}
	return app.Serve(ctx, cfg, app.NewLogger(cfg.Log, os.Stderr))
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := newFlags("migrate", stderr).load(args)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return st.Close()
}

func adminCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newFlags("admin create", stderr)
	username := f.fs.String("username", "", "the new admin's username")
	fromStdin := f.fs.Bool("password-stdin", false, "read the password from standard input (required)")
	cfg, err := f.load(args)
	if err != nil {
		return err
	}
	if !*fromStdin {
		return errors.New("admin create: --password-stdin is required (passwords are never taken as arguments)")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := app.CreateAdmin(ctx, st, *username, stdin, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created admin %q (id %d)\n", u.Username, u.ID)
	return nil
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := newFlags("audit verify", stderr).load(args)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := app.VerifyAudit(ctx, st)
	if err != nil {
		return fmt.Errorf("audit log broken after checking %d entries: %w", n, err)
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries\n", n)
	return nil
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	f := newFlags("check-config", stderr)
	cfg, err := f.load(args)
	if err != nil {
		return err
	}
	if err := cfg.CheckRulesDir(); err != nil {
		return err
	}
	out, err := yaml.Marshal(cfg.Masked())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# configuration is valid; effective values:\n%s", out)
	return nil
}
