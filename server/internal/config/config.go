// Package config is vigil-server's configuration: Default(), then a YAML
// file, then VIGIL_SERVER_* environment variables, then command-line flags,
// then Validate. Defaults live here and nowhere else.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration that YAML and flags write as "90s", "12h"
// or "30d" (days, for retention).
type Duration time.Duration

// ParseDuration accepts Go durations plus a whole number of days ("30d").
func ParseDuration(s string) (Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 90d, 12h, 30m", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 90d, 12h, 30m", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String writes whole days as "Nd".
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	return td.String()
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole server configuration.
type Config struct {
	// DataDir holds the SQLite store, the TLS certificate and key, the CA
	// and the secrets key.
	DataDir string `yaml:"data_dir"`
	// DatabaseURL selects PostgreSQL (postgres://...); empty means the
	// embedded SQLite store in DataDir.
	DatabaseURL string `yaml:"database_url"`
	HTTPAddr    string `yaml:"http_addr"`
	GRPCAddr    string `yaml:"grpc_addr"`
	// TLSCert and TLSKey supply the HTTPS certificate; empty means a
	// self-signed one generated into DataDir on first start.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// RulesDir is the rule corpus the server scores with and scans with.
	RulesDir string `yaml:"rules_dir"`
	// CACert and CAKey supply the agent CA; empty means the CA generated
	// into DataDir/ca on first start.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// AgentCertTTL is how long an agent's client certificate lasts; agents
	// renew at about half of it.
	AgentCertTTL Duration `yaml:"agent_cert_ttl"`
	// BundleTrustedKeys are extra Ed25519 public key files whose signed
	// bundles `bundle publish` accepts, besides the server's own key.
	BundleTrustedKeys []string `yaml:"bundle_trusted_keys"`
	// ResultsRetention is how long per-scan result rows are kept;
	// transitions and daily snapshots are kept forever.
	ResultsRetention Duration  `yaml:"results_retention"`
	SessionTTL       Duration  `yaml:"session_ttl"`
	LoginLimit       int       `yaml:"login_limit"`
	Scheduler        Scheduler `yaml:"scheduler"`
	Log              Log       `yaml:"log"`
	// MetricsTokenEnv names the environment variable holding the bearer
	// token /metrics requires. Empty: /metrics answers loopback clients
	// only. The token itself never appears in a file or on a command line.
	MetricsTokenEnv string `yaml:"metrics_token_env"`
	// Alerts sets when governance opens alerts and how often it looks.
	Alerts Alerts `yaml:"alerts"`
	// Notifications tunes outbound alert delivery.
	Notifications Notifications `yaml:"notifications"`
	// Exports configures signed compliance exports.
	Exports Exports `yaml:"exports"`
}

// Alerts are the alert thresholds (governance.Thresholds) and the
// evaluation period, so operators tune noise without a rebuild.
type Alerts struct {
	// FailingSeverities are the rule severities whose move into fail
	// opens a rule_failing alert.
	FailingSeverities []string `yaml:"failing_severities"`
	// ScoreDrop is how many points a host's score may fall below its best
	// within ScoreDropWindow before score_drop alerts.
	ScoreDrop       float64  `yaml:"score_drop"`
	ScoreDropWindow Duration `yaml:"score_drop_window"`
	// BandFloor: a host in a worse band alerts (band_drop).
	BandFloor string `yaml:"band_floor"`
	// MassDriftHosts hosts changing one rule to one status within
	// MassDriftWindow alert (mass_drift).
	MassDriftHosts  int      `yaml:"mass_drift_hosts"`
	MassDriftWindow Duration `yaml:"mass_drift_window"`
	// OverdueAfter: a host without a completed scan for this long alerts.
	OverdueAfter Duration `yaml:"overdue_after"`
	// AgentOfflineAfter: an active agent silent this long alerts.
	AgentOfflineAfter Duration `yaml:"agent_offline_after"`
	// ExpiringWithin: an approved exception expiring this soon alerts.
	ExpiringWithin Duration `yaml:"expiring_within"`
	// Interval is how often conditions are evaluated (and exceptions
	// expired).
	Interval Duration `yaml:"interval"`
}

// Notifications tunes outbound alert delivery.
type Notifications struct {
	// AllowNetworks are CIDRs delivery may reach although they are
	// link-local or cloud metadata addresses, refused by default.
	AllowNetworks []string `yaml:"allow_networks"`
	// BaseURL is the web UI's external address, for links in messages;
	// empty: messages carry no links.
	BaseURL string `yaml:"base_url"`
}

// AllowNets returns AllowNetworks parsed; Validate has refused bad ones.
func (n Notifications) AllowNets() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range n.AllowNetworks {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Exports configures signed exports.
type Exports struct {
	// SigningKey is the Ed25519 private key (PKCS#8 PEM, created on first
	// start) exports are signed with; empty: DataDir/export-signing.key.
	SigningKey string `yaml:"signing_key"`
	// MaxHosts caps the hosts one export covers (fleet or group): an
	// export is built in memory, about 0.3 MB of JSON per host at 300
	// rules, so a larger fleet is exported by group. 0: 1000.
	MaxHosts int `yaml:"max_hosts"`
}

// ExportSigningKey is the export signing key's path, the default in
// DataDir when none is set.
func (c *Config) ExportSigningKey() string {
	if c.Exports.SigningKey != "" {
		return c.Exports.SigningKey
	}
	return filepath.Join(c.DataDir, "export-signing.key")
}

// Scheduler tunes the adaptive scheduler. Intervals are per posture band.
type Scheduler struct {
	Enabled   bool      `yaml:"enabled"`
	Workers   int       `yaml:"workers"`
	Poll      Duration  `yaml:"poll"`
	Jitter    float64   `yaml:"jitter"`
	Intervals Intervals `yaml:"intervals"`
}

// Intervals is the time between scans per band; never more than 48 h.
type Intervals struct {
	Critical  Duration `yaml:"critical"`
	Poor      Duration `yaml:"poor"`
	Fair      Duration `yaml:"fair"`
	Good      Duration `yaml:"good"`
	Excellent Duration `yaml:"excellent"`
}

// Log selects the log format and level.
type Log struct {
	Format string `yaml:"format"` // auto (text on a terminal, else JSON), text, json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// MaxInterval is the longest a reachable host may go unscanned.
const MaxInterval = 48 * time.Hour

// Default returns the configuration with every default set.
func Default() Config {
	h := func(n int) Duration { return Duration(time.Duration(n) * time.Hour) }
	return Config{
		DataDir:          "/var/lib/vigil-server",
		HTTPAddr:         "127.0.0.1:8443",
		GRPCAddr:         "127.0.0.1:8444",
		ResultsRetention: Duration(90 * 24 * time.Hour),
		AgentCertTTL:     h(24),
		SessionTTL:       h(12),
		LoginLimit:       5,
		Scheduler: Scheduler{
			Enabled: true, Workers: 4, Poll: Duration(15 * time.Second), Jitter: 0.1,
			Intervals: Intervals{Critical: h(4), Poor: h(8), Fair: h(12), Good: h(24), Excellent: h(48)},
		},
		Log: Log{Format: "auto", Level: "info"},
		Alerts: Alerts{
			FailingSeverities: []string{"critical", "high"},
			ScoreDrop:         10, ScoreDropWindow: h(24), BandFloor: "fair",
			MassDriftHosts: 5, MassDriftWindow: h(1), OverdueAfter: h(48),
			AgentOfflineAfter: Duration(10 * time.Minute), ExpiringWithin: h(7 * 24),
			Interval: Duration(time.Minute),
		},
	}
}

// LoadFile merges the YAML file at path over c. Unknown keys are errors
// naming the file and line.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file (io.EOF) means no settings.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// envVars maps each environment variable to the setting it overrides.
var envVars = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"VIGIL_SERVER_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"VIGIL_SERVER_DATABASE_URL", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{"VIGIL_SERVER_HTTP_ADDR", func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{"VIGIL_SERVER_GRPC_ADDR", func(c *Config, v string) error { c.GRPCAddr = v; return nil }},
	{"VIGIL_SERVER_TLS_CERT", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"VIGIL_SERVER_TLS_KEY", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"VIGIL_SERVER_RULES_DIR", func(c *Config, v string) error { c.RulesDir = v; return nil }},
	{"VIGIL_SERVER_CA_CERT", func(c *Config, v string) error { c.CACert = v; return nil }},
	{"VIGIL_SERVER_CA_KEY", func(c *Config, v string) error { c.CAKey = v; return nil }},
	{"VIGIL_SERVER_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"VIGIL_SERVER_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"VIGIL_SERVER_METRICS_TOKEN_ENV", func(c *Config, v string) error { c.MetricsTokenEnv = v; return nil }},
	{"VIGIL_SERVER_RESULTS_RETENTION", func(c *Config, v string) (err error) {
		c.ResultsRetention, err = ParseDuration(v)
		return err
	}},
}

// LoadEnv applies VIGIL_SERVER_* variables found by lookup (os.LookupEnv).
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	for _, e := range envVars {
		if v, ok := lookup(e.name); ok {
			if err := e.set(c, v); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	return nil
}

// Validate checks every setting and fills derived defaults (RulesDir; see
// CheckRulesDir for whether it exists).
// The error names the setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "is required")
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		bad("database_url", "must be a postgres:// URL")
	}
	for _, a := range []struct{ field, v string }{{"http_addr", c.HTTPAddr}, {"grpc_addr", c.GRPCAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			bad(a.field, "%q is not host:port", a.v)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert", "tls_cert and tls_key must be given together")
	}
	if (c.CACert == "") != (c.CAKey == "") {
		bad("ca_cert", "ca_cert and ca_key must be given together")
	}
	if c.AgentCertTTL.D() < 10*time.Minute || c.AgentCertTTL.D() > 30*24*time.Hour {
		bad("agent_cert_ttl", "must be between 10m and 30d, got %s", c.AgentCertTTL)
	}
	for i, k := range c.BundleTrustedKeys {
		if _, err := os.Stat(k); err != nil {
			bad(fmt.Sprintf("bundle_trusted_keys[%d]", i), "%v", err)
		}
	}
	if c.RulesDir == "" {
		c.RulesDir = defaultRulesDir()
	}
	if c.ResultsRetention.D() < 24*time.Hour {
		bad("results_retention", "must be at least 1d, got %s", c.ResultsRetention)
	}
	if c.SessionTTL.D() < time.Minute || c.SessionTTL.D() > 30*24*time.Hour {
		bad("session_ttl", "must be between 1m and 30d, got %s", c.SessionTTL)
	}
	if c.LoginLimit < 1 {
		bad("login_limit", "must be at least 1")
	}
	s := c.Scheduler
	if s.Workers < 1 || s.Workers > 256 {
		bad("scheduler.workers", "must be 1-256, got %d", s.Workers)
	}
	if s.Poll.D() < time.Second {
		bad("scheduler.poll", "must be at least 1s, got %s", s.Poll)
	}
	if s.Jitter < 0 || s.Jitter > 0.5 {
		bad("scheduler.jitter", "must be between 0 and 0.5, got %g", s.Jitter)
	}
	for _, iv := range []struct {
		field string
		d     Duration
	}{{"critical", s.Intervals.Critical}, {"poor", s.Intervals.Poor}, {"fair", s.Intervals.Fair},
		{"good", s.Intervals.Good}, {"excellent", s.Intervals.Excellent}} {
		if iv.d.D() <= 0 || iv.d.D() > MaxInterval {
			bad("scheduler.intervals."+iv.field, "must be above 0 and at most 48h, got %s", iv.d)
		}
	}
	if c.MetricsTokenEnv != "" && os.Getenv(c.MetricsTokenEnv) == "" {
		bad("metrics_token_env", "environment variable %s is unset or empty", c.MetricsTokenEnv)
	}
	c.validateGovernance(bad)
	switch c.Log.Format {
	case "auto", "text", "json":
	default:
		bad("log.format", "must be auto, text or json, got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	return errors.Join(errs...)
}

// validateGovernance checks the alerts, notifications and exports
// sections and fills the default export signing key path.
func (c *Config) validateGovernance(bad func(field, format string, args ...any)) {
	a := c.Alerts
	if len(a.FailingSeverities) == 0 {
		bad("alerts.failing_severities", "must list at least one of critical, high, medium, low")
	}
	for i, sev := range a.FailingSeverities {
		switch sev {
		case "critical", "high", "medium", "low":
		default:
			bad(fmt.Sprintf("alerts.failing_severities[%d]", i), "must be critical, high, medium or low, got %q", sev)
		}
	}
	if a.ScoreDrop <= 0 || a.ScoreDrop > 100 {
		bad("alerts.score_drop", "must be above 0 and at most 100, got %g", a.ScoreDrop)
	}
	switch a.BandFloor {
	case "critical", "poor", "fair", "good", "excellent":
	default:
		bad("alerts.band_floor", "must be critical, poor, fair, good or excellent, got %q", a.BandFloor)
	}
	if a.MassDriftHosts < 2 {
		bad("alerts.mass_drift_hosts", "must be at least 2, got %d", a.MassDriftHosts)
	}
	for _, d := range []struct {
		field    string
		v        Duration
		min, max time.Duration
	}{
		{"alerts.score_drop_window", a.ScoreDropWindow, time.Hour, 90 * 24 * time.Hour},
		{"alerts.mass_drift_window", a.MassDriftWindow, time.Minute, 7 * 24 * time.Hour},
		{"alerts.overdue_after", a.OverdueAfter, time.Hour, 90 * 24 * time.Hour},
		{"alerts.agent_offline_after", a.AgentOfflineAfter, time.Minute, 30 * 24 * time.Hour},
		{"alerts.expiring_within", a.ExpiringWithin, time.Hour, 365 * 24 * time.Hour},
		{"alerts.interval", a.Interval, 10 * time.Second, time.Hour},
	} {
		if d.v.D() < d.min || d.v.D() > d.max {
			bad(d.field, "must be between %s and %s, got %s", Duration(d.min), Duration(d.max), d.v)
		}
	}
	for i, n := range c.Notifications.AllowNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad(fmt.Sprintf("notifications.allow_networks[%d]", i), "%q is not a CIDR network (e.g. 169.254.10.0/24)", n)
		}
	}
	if b := c.Notifications.BaseURL; b != "" {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("notifications.base_url", "%q is not an http(s) URL such as https://vigil.example.com", b)
		}
	}
	if c.Exports.SigningKey == "" && c.DataDir != "" {
		c.Exports.SigningKey = c.ExportSigningKey()
	}
	if c.Exports.MaxHosts < 0 || c.Exports.MaxHosts > 100_000 {
		bad("exports.max_hosts", "must be between 1 and 100000 (0: the default, 1000), got %d", c.Exports.MaxHosts)
	}
}

// CheckRulesDir reports a rules directory that is missing; only commands
// that score or scan (serve, check-config) need one.
func (c *Config) CheckRulesDir() error {
	if st, err := os.Stat(c.RulesDir); err != nil || !st.IsDir() {
		return fmt.Errorf("rules_dir: %q is not a readable directory", c.RulesDir)
	}
	return nil
}

// defaultRulesDir prefers the packaged corpus, then ./rules (a checkout).
func defaultRulesDir() string {
	for _, d := range []string{"/usr/share/vigil/rules", "rules"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			abs, err := filepath.Abs(d)
			if err == nil {
				return abs
			}
			return d
		}
	}
	return "/usr/share/vigil/rules"
}

// SQLitePath is the embedded store's file.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "vigil.db") }

// Masked returns a copy safe to print: the database password is hidden.
func (c Config) Masked() Config {
	if i := strings.Index(c.DatabaseURL, "://"); i >= 0 {
		rest := c.DatabaseURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			cred := rest[:at]
			if colon := strings.Index(cred, ":"); colon >= 0 {
				c.DatabaseURL = c.DatabaseURL[:i+3] + cred[:colon] + ":****" + rest[at:]
			}
		}
	}
	return c
}

// SetFlag applies a command-line flag by name (the flag names of
// vigil-server's commands), so flags override file and environment.
func (c *Config) SetFlag(name, value string) error {
	switch name {
	case "data-dir":
		c.DataDir = value
	case "database-url":
		c.DatabaseURL = value
	case "http-addr":
		c.HTTPAddr = value
	case "grpc-addr":
		c.GRPCAddr = value
	case "tls-cert":
		c.TLSCert = value
	case "tls-key":
		c.TLSKey = value
	case "rules-dir":
		c.RulesDir = value
	case "log-format":
		c.Log.Format = value
	case "log-level":
		c.Log.Level = value
	case "metrics-token-env":
		c.MetricsTokenEnv = value
	case "config":
	default:
		return fmt.Errorf("unknown flag %q", name)
	}
	return nil
}
