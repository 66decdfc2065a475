package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/rule"
)

// listFlag is a repeatable flag. With split set, each value is also split
// on commas, so `--severity high,critical` equals two --severity flags.
type listFlag struct {
	values []string
	split  bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(v string) error {
	if !l.split {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("empty value")
		}
		l.values = append(l.values, strings.TrimSpace(v))
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.values = append(l.values, s)
		}
	}
	return nil
}

// varFlag collects --var NAME=VALUE.
type varFlag map[string]string

func (f varFlag) String() string { return "" }

// Set implements flag.Value.
func (f varFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q is not NAME=VALUE", v)
	}
	f[strings.TrimSpace(k)] = val
	return nil
}

// capFlag collects --cap NAME=true|false, rejecting capability names the
// engine does not know (a typo would otherwise force nothing, silently).
type capFlag map[string]bool

func (f capFlag) String() string { return "" }

// Set implements flag.Value.
func (f capFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q is not NAME=true|false", v)
	}
	k = strings.TrimSpace(k)
	if !rule.Capabilities[k] {
		return fmt.Errorf("unknown capability %q (known: %s)", k, strings.Join(rule.CapabilityNames(), ", "))
	}
	b, err := strconv.ParseBool(strings.TrimSpace(val))
	if err != nil {
		return fmt.Errorf("capability %s: %q is not true or false", k, val)
	}
	f[k] = b
	return nil
}

// filterFlags select rules: values within one flag are alternatives.
type filterFlags struct {
	severity, category, framework, ruleID listFlag
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	f.severity.split, f.category.split, f.framework.split, f.ruleID.split = true, true, true, true
	fs.Var(&f.severity, "severity", "select rules of these `severities` (critical, high, medium, low; repeatable or comma-separated)")
	fs.Var(&f.category, "category", "select rules in these `categories` ("+strings.Join(rule.Categories, ", ")+")")
	fs.Var(&f.framework, "framework", "select rules mapped to these `frameworks` (cis, cis_debian12, stig, nist_800_53, ...)")
	fs.Var(&f.ruleID, "rule", "select rules by `id`")
}

// filter validates the values and builds the engine's filter.
func (f *filterFlags) filter() (engine.Filter, error) {
	for _, s := range f.severity.values {
		if rule.Severity(strings.ToLower(s)).Rank() == 0 {
			return engine.Filter{}, fmt.Errorf("--severity %q is not one of critical, high, medium, low", s)
		}
	}
	for _, c := range f.category.values {
		if !slices.Contains(rule.Categories, strings.ToLower(c)) {
			return engine.Filter{}, fmt.Errorf("--category %q is not one of %s", c, strings.Join(rule.Categories, ", "))
		}
	}
	return engine.Filter{
		Severities: f.severity.values,
		Categories: f.category.values,
		Frameworks: f.framework.values,
		RuleIDs:    f.ruleID.values,
	}, nil
}

// targetFlags say which hosts to scan and how to reach them; check and
// detect share them.
type targetFlags struct {
	hosts           listFlag
	inventory       string
	root            string
	workers         int
	keys            listFlag
	passwordEnv     string
	sudo            bool
	sudoPasswordEnv string
	knownHosts      string
	acceptNew       bool
	agent           bool
	connectTimeout  time.Duration
	// set records the flags given on the command line, which override the
	// inventory's defaults (but not a host's own entry).
	set map[string]bool
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.Var(&t.hosts, "host", "scan the SSH host `user@addr[:port]` (repeatable; IPv6 as [addr]:port; default user yours, port 22)")
	fs.StringVar(&t.inventory, "inventory", "", "scan the hosts listed in this YAML `file`")
	fs.StringVar(&t.root, "root", "", "scan the root filesystem mounted at `dir` instead of a live host")
	fs.IntVar(&t.workers, "workers", 8, "scan at most `n` hosts at once")
	fs.Var(&t.keys, "key", "SSH private key `file` (repeatable)")
	fs.StringVar(&t.passwordEnv, "password-env", "", "read the SSH password from environment variable `var`")
	fs.BoolVar(&t.sudo, "sudo", false, "run probes through sudo on SSH hosts")
	fs.StringVar(&t.sudoPasswordEnv, "sudo-password-env", "", "read the sudo password from environment variable `var`")
	fs.StringVar(&t.knownHosts, "known-hosts", "", "verify host keys against this known_hosts `file`")
	fs.BoolVar(&t.acceptNew, "accept-new-host-keys", false, "trust and record the key of a host not yet in known_hosts (a changed key is still refused)")
	fs.BoolVar(&t.agent, "agent", false, "authenticate with the ssh-agent at $SSH_AUTH_SOCK")
	fs.DurationVar(&t.connectTimeout, "connect-timeout", 5*time.Second, "give up connecting to a host after `duration`")
}

// validate checks the flags that do not depend on the environment.
func (t *targetFlags) validate() error {
	switch {
	case t.workers < 1:
		return fmt.Errorf("--workers must be at least 1, got %d", t.workers)
	case t.connectTimeout <= 0:
		return fmt.Errorf("--connect-timeout must be positive, got %s", t.connectTimeout)
	case t.root != "" && (len(t.hosts.values) > 0 || t.inventory != ""):
		return fmt.Errorf("--root scans a directory; it cannot be combined with --host or --inventory")
	}
	return nil
}

// ruleFlags locate the rule corpus and the site configuration.
type ruleFlags struct {
	rulesDir  string
	configDir string
	vars      varFlag
	caps      capFlag
}

func (r *ruleFlags) register(fs *flag.FlagSet) {
	r.vars, r.caps = varFlag{}, capFlag{}
	fs.StringVar(&r.rulesDir, "rules", "", "rule corpus `dir` (default ./rules, then ../share/vigil/rules next to the executable, then "+systemRulesDir+")")
	fs.StringVar(&r.configDir, "config", "", "configuration `dir` with defaults.yml, conf.d/, groups/, hosts/ (default "+systemConfigDir+" if it exists)")
	fs.Var(r.vars, "var", "set rule variable `name=value`, over every configuration file (repeatable)")
	fs.Var(r.caps, "cap", "force capability `name=true|false` after detection (repeatable)")
}

// flagGroup titles a set of flags in usage text, in the order listed.
type flagGroup struct {
	title string
	names []string
}

// The flag groups of check and detect.
var (
	targetGroup = flagGroup{"Targets", []string{"host", "inventory", "root", "workers", "key", "password-env", "agent",
		"sudo", "sudo-password-env", "known-hosts", "accept-new-host-keys", "connect-timeout"}}
	ruleGroup   = flagGroup{"Rules", []string{"rules", "config", "severity", "category", "framework", "rule", "var", "cap"}}
	outputGroup = flagGroup{"Output", []string{"format", "output"}}
)

// parseFlags parses args with fs. It returns done=true with the exit code
// when parsing ends the command: -h prints usage to stdout and exits 0, a
// bad flag prints the problem to stderr and exits 2.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer, groups ...flagGroup) (done bool, code int) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // usage goes to stdout for -h, and is not repeated after an error
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs, usage, groups)
		return true, exitOK
	case err != nil:
		fmt.Fprintf(stderr, "Run 'vigil %s -h' for usage.\n", fs.Name())
		return true, exitUsage
	}
	return false, 0
}

// printUsage writes a command's usage text and its flags, GNU style: the
// grouped flags first, then any others under "Flags".
func printUsage(w io.Writer, fs *flag.FlagSet, usage string, groups []flagGroup) {
	fmt.Fprint(w, usage)
	listed := map[string]bool{}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			if f := fs.Lookup(name); f != nil {
				printFlag(w, f)
				listed[name] = true
			}
		}
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if listed[f.Name] {
			return
		}
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		printFlag(w, f)
	})
}

func printFlag(w io.Writer, f *flag.Flag) {
	arg, text := flag.UnquoteUsage(f)
	head := "  --" + f.Name
	if arg != "" {
		head += " " + arg
	}
	fmt.Fprintf(w, "%s\n      %s", head, text)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && arg != "" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}

// expandHome turns a leading "~/" into the user's home directory, for paths
// read from files (the shell does it on the command line).
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}
