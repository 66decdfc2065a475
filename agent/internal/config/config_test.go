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
