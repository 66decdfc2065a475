package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vigilfleet/vigil/engine"
)

// defaultSSHPort is used when neither the host nor the defaults name one.
const defaultSSHPort = 22

// hostEntry is one SSH host and its connection settings as written, in an
// inventory (its hosts or its defaults) or by --host. Empty fields are
// unset and fall back to the next source; see resolve.
type hostEntry struct {
	Name            string
	Address         string
	Port            int
	User            string
	Keys            []string
	PasswordEnv     string
	Sudo            *bool
	SudoPasswordEnv string
	KnownHosts      string
	Groups          []string
	// Line locates the entry in its inventory file for error messages.
	Line int
}

// parseHostSpec parses --host's user@addr[:port]. An IPv6 address is
// written [addr] or [addr]:port; a bare IPv6 address without a port is also
// accepted.
func parseHostSpec(spec string) (hostEntry, error) {
	var h hostEntry
	rest := strings.TrimSpace(spec)
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		h.User, rest = rest[:i], rest[i+1:]
		if h.User == "" {
			return h, fmt.Errorf("--host %q: empty user before @", spec)
		}
	}
	addr, port, err := splitAddr(rest)
	if err != nil {
		return h, fmt.Errorf("--host %q: %w", spec, err)
	}
	h.Address, h.Port = addr, port
	h.Name = addr
	if port != 0 && port != defaultSSHPort {
		h.Name = net.JoinHostPort(addr, strconv.Itoa(port))
	}
	return h, nil
}

// splitAddr splits addr[:port]; port is 0 when not given.
func splitAddr(s string) (string, int, error) {
	var host, portStr string
	switch {
	case s == "":
		return "", 0, fmt.Errorf("no address")
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		host = s[1 : len(s)-1]
	case strings.HasPrefix(s, "["):
		var err error
		if host, portStr, err = net.SplitHostPort(s); err != nil {
			return "", 0, err
		}
	case strings.Count(s, ":") == 1:
		host, portStr, _ = strings.Cut(s, ":")
	case strings.Count(s, ":") > 1:
		if net.ParseIP(s) == nil {
			return "", 0, fmt.Errorf("%q is not an IPv6 address; write [addr]:port", s)
		}
		host = s
	default:
		host = s
	}
	if host == "" || strings.ContainsAny(host, " \t/[]@") {
		return "", 0, fmt.Errorf("invalid address %q", host)
	}
	if portStr == "" {
		return host, 0, nil
	}
	port, err := parsePort(portStr)
	return host, port, err
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// job is one host to scan: the local host, a root directory or an SSH host.
type job struct {
	Name   string
	Groups []string
	// Address is what configuration files may also be keyed by.
	Address string
	Root    string             // --root
	SSH     *engine.SSHOptions // nil for the local host and a root directory
}

// open connects to the job's host.
func (j job) open(ctx context.Context) (*engine.Session, error) {
	switch {
	case j.SSH != nil:
		return engine.NewSSHSession(ctx, *j.SSH)
	case j.Root != "":
		return engine.NewRootDirSession(j.Root)
	}
	return engine.NewLocalSession(), nil
}

// configKey is the name the host's configuration file (hosts/<name>.yml)
// is looked up by: its name, or its address when only that has a file.
func (j job) configKey(cfg *engine.Config) string {
	if _, ok := cfg.Hosts[j.Name]; !ok && j.Address != "" {
		if _, ok := cfg.Hosts[j.Address]; ok {
			return j.Address
		}
	}
	return j.Name
}

// environment is what planning reads from the process, passed in so tests
// can choose it.
type environment struct {
	getenv   func(string) string
	lookup   func(string) (string, bool)
	username func() string
	home     func() string
}

// osEnvironment reads the real process environment.
func osEnvironment() environment {
	return environment{
		getenv: os.Getenv,
		lookup: os.LookupEnv,
		username: func() string {
			if u, err := user.Current(); err == nil {
				return u.Username
			}
			return os.Getenv("USER")
		},
		home: func() string { h, _ := os.UserHomeDir(); return h },
	}
}

// plan turns the target flags (and the inventory they name) into jobs.
// Without --host, --inventory or --root it is the local host.
func (t *targetFlags) plan(env environment) ([]job, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if t.root != "" {
		abs, err := filepath.Abs(t.root)
		if err != nil {
			return nil, fmt.Errorf("--root %s: %w", t.root, err)
		}
		return []job{{Name: abs, Root: abs}}, nil
	}
	if len(t.hosts.values) == 0 && t.inventory == "" {
		return []job{{Name: "localhost"}}, nil
	}
	var defaults hostEntry
	var entries []hostEntry
	if t.inventory != "" {
		inv, err := loadInventory(t.inventory)
		if err != nil {
			return nil, err
		}
		defaults, entries = inv.Defaults, inv.Hosts
	}
	for _, spec := range t.hosts.values {
		h, err := parseHostSpec(spec)
		if err != nil {
			return nil, err
		}
		entries = append(entries, h)
	}
	return t.jobs(env, defaults, entries)
}

// jobs resolves each entry's settings and rejects duplicate names.
func (t *targetFlags) jobs(env environment, defaults hostEntry, entries []hostEntry) ([]job, error) {
	seen := map[string]bool{}
	jobs := make([]job, 0, len(entries))
	for _, h := range entries {
		if seen[h.Name] {
			return nil, fmt.Errorf("host %q is listed more than once", h.Name)
		}
		seen[h.Name] = true
		opts, err := t.resolve(env, defaults, h)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		jobs = append(jobs, job{Name: h.Name, Address: h.Address, Groups: h.Groups, SSH: opts})
	}
	return jobs, nil
}

// resolve builds one host's SSH options. Each setting comes from the host's
// own entry, else the command line, else the inventory's defaults, else the
// built-in default. Secrets come only from environment variables.
func (t *targetFlags) resolve(env environment, d, h hostEntry) (*engine.SSHOptions, error) {
	opts := &engine.SSHOptions{
		Host:              h.Address,
		Name:              h.Name,
		Port:              firstInt(h.Port, d.Port, defaultSSHPort),
		User:              firstString(h.User, d.User, env.username()),
		KnownHostsFile:    firstString(t.flagString("known-hosts", t.knownHosts), d.KnownHosts),
		AcceptUnknownHost: t.acceptNew,
		UseAgent:          t.agent,
		ConnectTimeout:    t.connectTimeout,
	}
	if opts.User == "" {
		return nil, fmt.Errorf("no user: write user@%s or set the inventory's user", h.Address)
	}
	opts.KeyFiles = h.Keys
	if len(opts.KeyFiles) == 0 {
		opts.KeyFiles = t.keys.values
	}
	if len(opts.KeyFiles) == 0 {
		opts.KeyFiles = d.Keys
	}
	passEnv := firstString(h.PasswordEnv, t.flagString("password-env", t.passwordEnv), d.PasswordEnv)
	sudoEnv := firstString(h.SudoPasswordEnv, t.flagString("sudo-password-env", t.sudoPasswordEnv), d.SudoPasswordEnv)
	var err error
	if opts.Password, err = secret(env, passEnv); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	if opts.SudoPassword, err = secret(env, sudoEnv); err != nil {
		return nil, fmt.Errorf("sudo password: %w", err)
	}
	opts.Sudo = firstBool(h.Sudo, t.flagBool("sudo", t.sudo), d.Sudo) || sudoEnv != ""
	if opts.UseAgent && env.getenv("SSH_AUTH_SOCK") == "" {
		return nil, fmt.Errorf("--agent: SSH_AUTH_SOCK is not set")
	}
	if len(opts.KeyFiles) == 0 && opts.Password == "" && !opts.UseAgent {
		opts.KeyFiles = defaultIdentities(env.home())
	}
	return opts, nil
}

// secret reads a password from the named environment variable; no name
// means no password.
func secret(env environment, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	v, ok := env.lookup(name)
	if !ok || v == "" {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

// defaultIdentities are the key files ssh itself would try, when present.
func defaultIdentities(home string) []string {
	if home == "" {
		return nil
	}
	var out []string
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", name)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// flagString returns v when the flag was given on the command line, "" otherwise.
func (t *targetFlags) flagString(name, v string) string {
	if t.set[name] {
		return v
	}
	return ""
}

func (t *targetFlags) flagBool(name string, v bool) *bool {
	if t.set[name] {
		return &v
	}
	return nil
}

func firstString(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstInt(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

func firstBool(vs ...*bool) bool {
	for _, v := range vs {
		if v != nil {
			return *v
		}
	}
	return false
}
