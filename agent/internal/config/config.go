// Package config is the agent's configuration: defaults, then the YAML file
// (/etc/vigil/agent.yaml), then VIGIL_AGENT_* environment variables, then
// command-line flags, then validation. Defaults live in Default only.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultFile is where the agent looks for its configuration when no
// --config flag is given; a missing default file is not an error.
const DefaultFile = "/etc/vigil/agent.yaml"

// Target is a host the agent scans over SSH as a jump box. Its credentials
// are files on the jump box and never leave it.
type Target struct {
	Name           string `yaml:"name"`
	Address        string `yaml:"address"`
	Port           int    `yaml:"port"`
	User           string `yaml:"user"`
	IdentityFile   string `yaml:"identity_file"`
	PasswordFile   string `yaml:"password_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
	Sudo           bool   `yaml:"sudo"`
}

// Config is the agent's effective configuration.
type Config struct {
	Server             string        `yaml:"server"`
	StateDir           string        `yaml:"state_dir"`
	TrustedBundleKeys  []string      `yaml:"trusted_bundle_keys"`
	Targets            []Target      `yaml:"targets"`
	MaxParallelTargets int           `yaml:"max_parallel_targets"`
	SpoolMaxBytes      int64         `yaml:"spool_max_bytes"`
	HeartbeatInterval  time.Duration `yaml:"heartbeat_interval"`
	LogLevel           string        `yaml:"log_level"`
	// LogFormat is auto (text on a terminal, JSON otherwise), text or json.
	LogFormat string `yaml:"log_format"`
	// HealthAddr, when set, serves /healthz, /readyz and /metrics on a
	// loopback address (HOST:PORT) or a unix socket (unix:/path or /path);
	// the endpoints are unauthenticated, so nothing else is accepted.
	HealthAddr string `yaml:"health_addr"`
}

// Default returns the built-in defaults.
func Default() *Config {
	return &Config{
		StateDir:           "/var/lib/vigil-agent",
		MaxParallelTargets: 4,
		SpoolMaxBytes:      256 << 20,
		HeartbeatInterval:  30 * time.Second,
		LogLevel:           "info",
		LogFormat:          "auto",
	}
}

// The keys the file may hold, so a typo is an error with its line rather
// than a silently ignored setting.
var (
	topKeys = map[string]bool{"server": true, "state_dir": true, "trusted_bundle_keys": true, "targets": true,
		"max_parallel_targets": true, "spool_max_bytes": true, "heartbeat_interval": true, "log_level": true,
		"log_format": true, "health_addr": true}
	targetKeys = map[string]bool{"name": true, "address": true, "port": true, "user": true, "identity_file": true,
		"password_file": true, "known_hosts_file": true, "sudo": true}
)

// LoadFile merges the YAML file at path into c. Unknown keys and values of
// the wrong type are errors naming path:line.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the configuration must be a mapping", path, root.Line)
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !topKeys[k.Value] {
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", path, k.Line, k.Value))
			continue
		}
		if k.Value == "targets" && v.Kind == yaml.SequenceNode {
			for _, t := range v.Content {
				if t.Kind != yaml.MappingNode {
					errs = append(errs, fmt.Errorf("%s:%d: a target must be a mapping", path, t.Line))
					continue
				}
				for j := 0; j+1 < len(t.Content); j += 2 {
					if tk := t.Content[j]; !targetKeys[tk.Value] {
						errs = append(errs, fmt.Errorf("%s:%d: unknown key %q in a target", path, tk.Line, tk.Value))
					}
				}
			}
		}
		if k.Value == "heartbeat_interval" {
			d, err := time.ParseDuration(v.Value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: heartbeat_interval: %w", path, v.Line, err))
				continue
			}
			c.HeartbeatInterval = d
			continue
		}
		if err := decodeKey(c, k.Value, v); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", path, v.Line, k.Value, err))
		}
	}
	return errors.Join(errs...)
}

// decodeKey decodes one top-level value into its field.
func decodeKey(c *Config, key string, v *yaml.Node) error {
	switch key {
	case "server":
		return v.Decode(&c.Server)
	case "state_dir":
		return v.Decode(&c.StateDir)
	case "trusted_bundle_keys":
		return v.Decode(&c.TrustedBundleKeys)
	case "targets":
		return v.Decode(&c.Targets)
	case "max_parallel_targets":
		return v.Decode(&c.MaxParallelTargets)
	case "spool_max_bytes":
		return v.Decode(&c.SpoolMaxBytes)
	case "log_level":
		return v.Decode(&c.LogLevel)
	case "log_format":
		return v.Decode(&c.LogFormat)
	case "health_addr":
		return v.Decode(&c.HealthAddr)
	}
	return fmt.Errorf("unknown key %q", key)
}

// EnvPrefix prefixes the environment variables that override the file.
const EnvPrefix = "VIGIL_AGENT_"

// LoadEnv applies VIGIL_AGENT_SERVER, _STATE_DIR, _TRUSTED_BUNDLE_KEYS
// (comma-separated), _MAX_PARALLEL_TARGETS, _SPOOL_MAX_BYTES,
// _HEARTBEAT_INTERVAL, _LOG_LEVEL, _LOG_FORMAT and _HEALTH_ADDR from getenv.
func (c *Config) LoadEnv(getenv func(string) string) error {
	var errs []error
	if v := getenv(EnvPrefix + "SERVER"); v != "" {
		c.Server = v
	}
	if v := getenv(EnvPrefix + "STATE_DIR"); v != "" {
		c.StateDir = v
	}
	if v := getenv(EnvPrefix + "TRUSTED_BUNDLE_KEYS"); v != "" {
		c.TrustedBundleKeys = splitList(v)
	}
	if v := getenv(EnvPrefix + "LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	if v := getenv(EnvPrefix + "LOG_FORMAT"); v != "" {
		c.LogFormat = v
	}
	if v := getenv(EnvPrefix + "HEALTH_ADDR"); v != "" {
		c.HealthAddr = v
	}
	if v := getenv(EnvPrefix + "MAX_PARALLEL_TARGETS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sMAX_PARALLEL_TARGETS: %w", EnvPrefix, err))
		}
		c.MaxParallelTargets = n
	}
	if v := getenv(EnvPrefix + "SPOOL_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sSPOOL_MAX_BYTES: %w", EnvPrefix, err))
		}
		c.SpoolMaxBytes = n
	}
	if v := getenv(EnvPrefix + "HEARTBEAT_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sHEARTBEAT_INTERVAL: %w", EnvPrefix, err))
		}
		c.HeartbeatInterval = d
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Load builds the configuration from defaults, the file (the default file
// only if it exists, when path is empty) and the environment. Flags are
// applied by the caller, which then calls Validate.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := Default()
	if path == "" {
		if _, err := os.Stat(DefaultFile); err == nil {
			path = DefaultFile
		}
	}
	if path != "" {
		if err := c.LoadFile(path); err != nil {
			return nil, err
		}
	}
	if err := c.LoadEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// Target returns the target named name.
func (c *Config) Target(name string) (Target, bool) {
	for _, t := range c.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// Validate checks values and that every referenced key file is readable;
// requireServer is set for commands that talk to the server.
func (c *Config) Validate(requireServer bool) error {
	var errs []error
	if requireServer && c.Server == "" {
		errs = append(errs, errors.New("server is not set"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir is not set"))
	}
	if c.MaxParallelTargets < 1 || c.MaxParallelTargets > 256 {
		errs = append(errs, fmt.Errorf("max_parallel_targets %d: must be 1..256", c.MaxParallelTargets))
	}
	if c.SpoolMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("spool_max_bytes %d: must be at least 1 MiB", c.SpoolMaxBytes))
	}
	if c.HeartbeatInterval < time.Second || c.HeartbeatInterval > time.Hour {
		errs = append(errs, fmt.Errorf("heartbeat_interval %s: must be 1s..1h", c.HeartbeatInterval))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: must be debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: must be auto, text or json", c.LogFormat))
	}
	if c.HealthAddr != "" {
		if _, _, err := ParseHealthAddr(c.HealthAddr); err != nil {
			errs = append(errs, fmt.Errorf("health_addr: %w", err))
		}
	}
	for _, k := range c.TrustedBundleKeys {
		errs = append(errs, readable("trusted_bundle_keys", k))
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		where := fmt.Sprintf("targets[%d] (%s)", i, t.Name)
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("targets[%d]: name is not set", i))
		} else if seen[t.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[t.Name] = true
		if t.Address == "" {
			errs = append(errs, fmt.Errorf("%s: address is not set", where))
		}
		if t.User == "" {
			errs = append(errs, fmt.Errorf("%s: user is not set", where))
		}
		if t.Port < 0 || t.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d out of range", where, t.Port))
		}
		if t.KnownHostsFile == "" {
			errs = append(errs, fmt.Errorf("%s: known_hosts_file is required (host keys are always verified)", where))
		} else {
			errs = append(errs, readable(where+" known_hosts_file", t.KnownHostsFile))
		}
		if t.IdentityFile == "" && t.PasswordFile == "" {
			errs = append(errs, fmt.Errorf("%s: identity_file or password_file is required", where))
		}
		if t.IdentityFile != "" {
			errs = append(errs, readable(where+" identity_file", t.IdentityFile))
		}
		if t.PasswordFile != "" {
			errs = append(errs, readable(where+" password_file", t.PasswordFile))
		}
	}
	return errors.Join(errs...)
}

// ParseHealthAddr splits a health_addr into a network and address for
// net.Listen. The health endpoints answer without authentication, so only
// a unix socket (unix:/path or an absolute path) or a loopback TCP address
// (127.0.0.0/8, ::1 or localhost, with a port) is accepted.
func ParseHealthAddr(addr string) (network, address string, err error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok || filepath.IsAbs(addr) {
		if !ok {
			p = addr
		}
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("%q: a unix socket path must be absolute", addr)
		}
		return "unix", p, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%q: want a loopback HOST:PORT or unix:/path: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", "", fmt.Errorf("%q: port %q is not a number 0..65535", addr, port)
	}
	if host == "localhost" {
		return "tcp", addr, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("%q is not a loopback address: the health endpoints are unauthenticated, "+
			"so only 127.0.0.0/8, ::1, localhost or a unix socket are allowed", addr)
	}
	return "tcp", addr, nil
}

// readable reports a file that cannot be opened for reading.
func readable(what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	f.Close()
	return nil
}

// String renders the effective configuration as YAML with sorted keys.
// The configuration holds no inline secrets by design (credentials are
// file paths whose contents are never read here, and a key such as
// "password" is rejected as unknown); MaskSecrets still blanks any value
// whose key looks secret, so a future field cannot leak through
// check-config.
func (c *Config) String() string {
	m := map[string]any{}
	b, _ := yaml.Marshal(c)
	_ = yaml.Unmarshal(b, &m)
	m["heartbeat_interval"] = c.HeartbeatInterval.String()
	MaskSecrets(m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	node := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		var v yaml.Node
		_ = v.Encode(m[k])
		node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &v)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(node)
	return buf.String()
}

// Masked replaces a secret value in check-config output.
const Masked = "********"

// MaskSecrets replaces, recursively, the values of keys that look like
// secrets (password, secret, token, private key) with Masked. Keys naming
// a file or directory (…_file, …_files, …_dir, …_keys) hold paths, not
// secrets, and are kept.
func MaskSecrets(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if secretKey(k) {
				if val != nil && val != "" {
					t[k] = Masked
				}
				continue
			}
			MaskSecrets(val)
		}
	case []any:
		for _, e := range t {
			MaskSecrets(e)
		}
	}
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"_file", "_files", "_dir", "_keys"} {
		if strings.HasSuffix(k, s) {
			return false
		}
	}
	for _, s := range []string{"password", "passwd", "secret", "token", "private", "credential", "api_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
