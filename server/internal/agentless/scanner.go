package agentless

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/sshtarget"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultScanTimeout    = 10 * time.Minute
)

// ErrNoCredential is returned (wrapped) when a host has no stored
// credential: the server cannot scan it until an operator gives one.
var ErrNoCredential = errors.New("no SSH credential stored")

// Credentials is the part of the store the scanner reads.
type Credentials interface {
	Credential(ctx context.Context, hostID int64) ([]byte, error)
}

// Config says what a Scanner scans with.
type Config struct {
	// Store holds the sealed credentials. Required.
	Store Credentials
	// Box opens them. Required.
	Box *secrets.Box
	// RulesDir is the rule corpus (with its defaults.yml); loaded once by
	// New. Required.
	RulesDir string
	// Site is the site configuration (engine.LoadConfig) whose variables
	// and capability overrides apply per host name and groups; New adds
	// the corpus defaults to it. Nil means the corpus defaults alone.
	Site *engine.Config
	// Filter selects the rules to run; zero means all.
	Filter engine.Filter
	// ConnectTimeout bounds the TCP connect; default 5 s.
	ConnectTimeout time.Duration
	// ScanTimeout bounds one whole scan, so a hung host cannot hold its
	// schedule lease forever; default 10 min.
	ScanTimeout time.Duration
}

// Scanner scans agentless hosts over SSH. It is safe for concurrent use:
// rules and configuration are read-only after New.
type Scanner struct {
	cfg   Config
	rules []*rule.Rule
	vars  *engine.Config
}

// New loads the rules and the corpus defaults once and returns a Scanner.
// A corpus that does not load is an error listing every problem.
func New(cfg Config) (*Scanner, error) {
	if cfg.Store == nil || cfg.Box == nil || cfg.RulesDir == "" {
		return nil, errors.New("agentless: Store, Box and RulesDir are required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ScanTimeout <= 0 {
		cfg.ScanTimeout = DefaultScanTimeout
	}
	rules, err := engine.LoadRules(cfg.RulesDir)
	if err != nil {
		return nil, fmt.Errorf("agentless: rules %s: %w", cfg.RulesDir, err)
	}
	vars := cfg.Site
	if vars == nil {
		vars = engine.NewConfig()
	}
	if err := vars.LoadCorpusDefaults(cfg.RulesDir); err != nil {
		return nil, fmt.Errorf("agentless: corpus defaults: %w", err)
	}
	return &Scanner{cfg: cfg, rules: rules, vars: vars}, nil
}

// Rules returns how many rules the scanner loaded.
func (s *Scanner) Rules() int { return len(s.rules) }

// Scan logs in to the host with its stored credential and scans it. The
// error names the host and wraps ErrNoCredential, ErrInvalidCredential or
// one of sshtarget's errors (ErrUnreachable, ErrHostKeyMismatch, ErrAuth,
// sudo errors, ErrConnectionLost), so that Reason can classify it.
func (s *Scanner) Scan(ctx context.Context, h store.Host) (*engine.Report, error) {
	rep, err := s.scan(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("host %s (%s): %w", h.Name, h.Address, err)
	}
	return rep, nil
}

func (s *Scanner) scan(ctx context.Context, h store.Host) (*engine.Report, error) {
	if h.Address == "" {
		return nil, errors.New("no address")
	}
	sealed, err := s.cfg.Store.Credential(ctx, h.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, fmt.Errorf("reading credential: %w", err)
	}
	cred, err := OpenCredential(s.cfg.Box, h.ID, sealed)
	if err != nil {
		return nil, err
	}
	opts, cleanup, err := s.options(h, cred)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	ctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	defer cancel()
	sess, err := engine.NewSSHSession(ctx, opts)
	if err != nil {
		return nil, hideTempPath(err, opts.KnownHostsFile)
	}
	defer sess.Close()
	sess.Vars = s.vars.Vars(h.Name, h.Groups)
	sess.CapOverrides = s.vars.CapabilityOverrides(h.Name, h.Groups)
	return engine.Scan(ctx, sess, s.rules, s.cfg.Filter)
}

// options turns a credential into sshtarget options. sshtarget reads host
// keys from a file, so the known_hosts text goes to a private temporary
// file that cleanup removes.
func (s *Scanner) options(h store.Host, c Credential) (engine.SSHOptions, func(), error) {
	opts := engine.SSHOptions{
		Host: h.Address, Port: c.port(), User: c.User, Password: c.Password,
		Sudo: c.Sudo, ConnectTimeout: s.cfg.ConnectTimeout, Name: h.Name,
	}
	if c.Sudo && c.Password != "" {
		opts.SudoPassword = c.Password
	}
	if c.PrivateKey != "" {
		signer, err := c.signer()
		if err != nil {
			return opts, nil, fmt.Errorf("%w: %w", ErrInvalidCredential, err)
		}
		opts.Signers = []ssh.Signer{signer}
	}
	f, err := os.CreateTemp("", fmt.Sprintf("vigil-known-hosts-%d-*", h.ID))
	if err != nil {
		return opts, nil, fmt.Errorf("known_hosts: %w", err)
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = f.WriteString(c.KnownHosts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return opts, nil, fmt.Errorf("known_hosts: %w", err)
	}
	opts.KnownHostsFile = f.Name()
	return opts, cleanup, nil
}

// hideTempPath rewrites an error that names the temporary known_hosts
// file to name the stored known_hosts instead: the operator edits the
// credential, not a file that no longer exists.
func hideTempPath(err error, path string) error {
	if !strings.Contains(err.Error(), path) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), path+":", "the stored known_hosts, line ")
	msg = strings.ReplaceAll(msg, path, "the stored known_hosts")
	return &renamed{msg: msg, err: err}
}

// renamed is an error with a rewritten message that still unwraps to the
// original, so errors.Is keeps working.
type renamed struct {
	msg string
	err error
}

func (e *renamed) Error() string { return e.msg }
func (e *renamed) Unwrap() error { return e.err }

// Reason names the kind of failure behind a Scan error in a few words an
// operator acts on ("host unreachable", "host key mismatch", ...), or ""
// when it is none of the known kinds.
func Reason(err error) string {
	for _, k := range []error{
		ErrNoCredential, ErrInvalidCredential,
		sshtarget.ErrHostKeyMismatch, sshtarget.ErrUnknownHost, sshtarget.ErrAuth,
		sshtarget.ErrUnreachable, sshtarget.ErrConnectionLost,
		sshtarget.ErrSudoPasswordRequired, sshtarget.ErrSudoPasswordWrong, sshtarget.ErrSudo,
		context.DeadlineExceeded, context.Canceled,
	} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return ""
}
