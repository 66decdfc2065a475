package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	kh := write(t, dir, "known_hosts", "")
	id := write(t, dir, "id", "key")
	pub := write(t, dir, "bundle.pub", "pub")
	p := write(t, dir, "agent.yaml", `server: file.example:8444
state_dir: `+dir+`
trusted_bundle_keys: [`+pub+`]
max_parallel_targets: 2
heartbeat_interval: 45s
targets:
  - name: web1
    address: 127.0.0.2
    port: 2222
    user: vigil
    identity_file: `+id+`
    known_hosts_file: `+kh+`
    sudo: true
`)
	env := map[string]string{"VIGIL_AGENT_SERVER": "env.example:8444", "VIGIL_AGENT_SPOOL_MAX_BYTES": "2097152"}
	c, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "env.example:8444" {
		t.Errorf("server = %q, want the environment's", c.Server)
	}
	if c.MaxParallelTargets != 2 || c.HeartbeatInterval != 45*time.Second || c.SpoolMaxBytes != 2<<20 {
		t.Errorf("got %+v", c)
	}
	tg, ok := c.Target("web1")
	if !ok || tg.Port != 2222 || !tg.Sudo || tg.KnownHostsFile != kh {
		t.Errorf("target = %+v %v", tg, ok)
	}
	if err := c.Validate(true); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	out := c.String()
	for _, want := range []string{"server: env.example:8444", "heartbeat_interval: 45s", "name: web1"} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
}

func TestFileErrorsNameLine(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "agent.yaml", `server: a:1
sever: typo:1
targets:
  - name: web1
    adress: 127.0.0.2
max_parallel_targets: many
`)
	err := Default().LoadFile(p)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		p + `:2: unknown key "sever"`,
		p + `:5: unknown key "adress" in a target`,
		p + `:6: max_parallel_targets`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateFiles(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	c.Server = "s:1"
	c.TrustedBundleKeys = []string{filepath.Join(dir, "missing.pub")}
	c.Targets = []Target{
		{Name: "a", Address: "127.0.0.2", User: "u", IdentityFile: filepath.Join(dir, "nokey")},
		{Name: "a", Address: "127.0.0.3", User: "u", KnownHostsFile: filepath.Join(dir, "nokh"), PasswordFile: filepath.Join(dir, "nopw")},
	}
	err := c.Validate(true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"trusted_bundle_keys: open " + filepath.Join(dir, "missing.pub"),
		"targets[0] (a): known_hosts_file is required",
		"targets[0] (a) identity_file: open " + filepath.Join(dir, "nokey"),
		"targets[1] (a): duplicate name",
		"targets[1] (a) known_hosts_file: open",
		"targets[1] (a) password_file: open",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := Default().Validate(true); err == nil || !strings.Contains(err.Error(), "server is not set") {
		t.Errorf("missing server: %v", err)
	}
	if err := Default().LoadEnv(func(k string) string {
		if k == "VIGIL_AGENT_HEARTBEAT_INTERVAL" {
			return "soon"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "VIGIL_AGENT_HEARTBEAT_INTERVAL") {
		t.Errorf("bad env: %v", err)
	}
}

func TestHealthAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, network, address string
	}{
		{"127.0.0.1:9102", "tcp", "127.0.0.1:9102"},
		{"127.0.0.53:0", "tcp", "127.0.0.53:0"},
		{"[::1]:9102", "tcp", "[::1]:9102"},
		{"localhost:9102", "tcp", "localhost:9102"},
		{"unix:/run/vigil-agent/health.sock", "unix", "/run/vigil-agent/health.sock"},
		{"/run/vigil-agent/health.sock", "unix", "/run/vigil-agent/health.sock"},
	} {
		n, a, err := ParseHealthAddr(tc.addr)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("ParseHealthAddr(%q) = %q %q %v, want %q %q", tc.addr, n, a, err, tc.network, tc.address)
		}
	}
	for _, bad := range []string{"0.0.0.0:9102", ":9102", "10.1.2.3:9102", "[::]:9102", "example.com:9102",
		"127.0.0.1", "127.0.0.1:http", "unix:relative.sock"} {
		if _, _, err := ParseHealthAddr(bad); err == nil {
			t.Errorf("ParseHealthAddr(%q) accepted", bad)
		}
		c := Default()
		c.HealthAddr = bad
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "health_addr") {
			t.Errorf("Validate with health_addr %q: %v, want an error naming health_addr", bad, err)
		}
	}
	c := Default()
	c.HealthAddr = "0.0.0.0:9102"
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("all-interfaces address: %v", err)
	}
}

func TestLogFormatAndEnv(t *testing.T) {
	env := map[string]string{"VIGIL_AGENT_LOG_FORMAT": "json", "VIGIL_AGENT_HEALTH_ADDR": "unix:/run/h.sock"}
	c := Default()
	if c.LogFormat != "auto" {
		t.Errorf("default log_format %q", c.LogFormat)
	}
	if err := c.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.LogFormat != "json" || c.HealthAddr != "unix:/run/h.sock" {
		t.Errorf("env not applied: %q %q", c.LogFormat, c.HealthAddr)
	}
	c.LogFormat = "xml"
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), `log_format "xml"`) {
		t.Errorf("bad log_format: %v", err)
	}
}

func TestNoInlineSecretsAndMasking(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "agent.yaml", "targets:\n  - name: web1\n    password: hunter2\n")
	if err := Default().LoadFile(p); err == nil || !strings.Contains(err.Error(), `unknown key "password" in a target`) {
		t.Errorf("inline password accepted: %v", err)
	}
	p = write(t, dir, "agent2.yaml", "token: vjt_secret\n")
	if err := Default().LoadFile(p); err == nil || !strings.Contains(err.Error(), `unknown key "token"`) {
		t.Errorf("inline token accepted: %v", err)
	}
	m := map[string]any{
		"password_file": "/etc/vigil/pw", "api_token": "abc", "targets": []any{
			map[string]any{"password": "hunter2", "identity_file": "/k", "client_secret": ""},
		}, "trusted_bundle_keys": []any{"/k.pub"}, "private_key": "-----BEGIN",
	}
	MaskSecrets(m)
	tg := m["targets"].([]any)[0].(map[string]any)
	if m["password_file"] != "/etc/vigil/pw" || tg["identity_file"] != "/k" || m["trusted_bundle_keys"].([]any)[0] != "/k.pub" {
		t.Errorf("paths masked: %v", m)
	}
	if m["api_token"] != Masked || tg["password"] != Masked || m["private_key"] != Masked || tg["client_secret"] != "" {
		t.Errorf("secrets not masked: %v", m)
	}
	c := Default()
	c.Targets = []Target{{Name: "w", PasswordFile: "/etc/vigil/pw"}}
	if out := c.String(); !strings.Contains(out, "password_file: /etc/vigil/pw") || strings.Contains(out, Masked) {
		t.Errorf("String() of a config without secrets:\n%s", out)
	}
}
