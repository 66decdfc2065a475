package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/servertest"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "vigil-agent ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if code, _, _ := run(t, nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	os.WriteFile(p, []byte("server: s:8444\nstate_dir: "+dir+"\ntrusted_bundle_keys: [/nonexistent/key.pub]\nmax_paralel_targets: 3\n"), 0o600)
	code, _, errs := run(t, nil, "check-config", "--config", p)
	if code != 1 || !strings.Contains(errs, p+`:4: unknown key "max_paralel_targets"`) {
		t.Errorf("typo: %d %q", code, errs)
	}
	os.WriteFile(p, []byte("server: s:8444\nstate_dir: "+dir+"\ntrusted_bundle_keys: [/nonexistent/key.pub]\n"), 0o600)
	code, _, errs = run(t, nil, "check-config", "--config", p)
	if code != 1 || !strings.Contains(errs, "trusted_bundle_keys: open /nonexistent/key.pub") {
		t.Errorf("unreadable key: %d %q", code, errs)
	}
	_, _, pub := bundletest.Keys(t)
	os.WriteFile(p, []byte("server: s:8444\nstate_dir: "+dir+"\ntrusted_bundle_keys: ["+pub+"]\n"), 0o600)
	code, out, errs := run(t, map[string]string{"VIGIL_AGENT_MAX_PARALLEL_TARGETS": "7"}, "check-config", "--config", p, "--server", "flag:1")
	if code != 0 || !strings.Contains(out, "server: flag:1") || !strings.Contains(out, "max_parallel_targets: 7") {
		t.Errorf("valid: %d %q %q", code, out, errs)
	}
}

func TestEnrollAndStatus(t *testing.T) {
	srv := servertest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	code, out, errs := run(t, nil, "enroll", "--server", srv.Addr, "--token", srv.Token, "--ca-pin", srv.CA.Pin(),
		"--state-dir", stateDir, "--hostname", "db-1")
	if code != 0 || !strings.Contains(out, "enrolled as db-1 (agent 1)") {
		t.Fatalf("enroll: %d %q %q", code, out, errs)
	}
	code, out, errs = run(t, nil, "status", "--state-dir", stateDir)
	if code != 0 {
		t.Fatalf("status: %d %q", code, errs)
	}
	for _, want := range []string{"agent:        db-1 (id 1)", "server:       " + srv.Addr, "certificate:  expires",
		"daemon:       has not run", "spool:        0 batches, 0 bytes", "bundle:       none accepted yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "valid for 23h") && !strings.Contains(out, "valid for 24h") {
		t.Errorf("status should show the 24 h certificate's remaining life:\n%s", out)
	}
	// Offline scan through the command line.
	_, priv, pub := bundletest.Keys(t)
	bfile := filepath.Join(t.TempDir(), "b.bundle")
	os.WriteFile(bfile, bundletest.Signed(t, bundletest.Corpus(t, "ssh-permit"), "2026.11.8", priv), 0o644)
	res := filepath.Join(t.TempDir(), "r.vra")
	code, out, errs = run(t, nil, "scan", "--bundle", bfile, "--out", res, "--state-dir", stateDir, "--trusted-key", pub)
	if code != 0 || !strings.Contains(out, "wrote "+res) {
		t.Fatalf("scan: %d %q %q", code, out, errs)
	}
	_, out, _ = run(t, nil, "status", "--state-dir", stateDir)
	if !strings.Contains(out, "bundle:       2026.11.8") {
		t.Errorf("status after offline scan:\n%s", out)
	}
}

func TestEnrollWrongPinExit(t *testing.T) {
	srv := servertest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	code, _, errs := run(t, nil, "enroll", "--server", srv.Addr, "--token", srv.Token,
		"--ca-pin", "sha256:"+strings.Repeat("0", 64), "--state-dir", stateDir)
	if code != 1 || !strings.Contains(errs, "does not chain to the pinned CA") {
		t.Errorf("wrong pin: %d %q", code, errs)
	}
}

// TestConfigOrder: defaults, then the file, then VIGIL_AGENT_*, then
// flags; each later source wins only for what it sets.
func TestConfigOrder(t *testing.T) {
	dir := t.TempDir()
	_, _, pub := bundletest.Keys(t)
	p := filepath.Join(dir, "agent.yaml")
	os.WriteFile(p, []byte("server: file:1\nstate_dir: "+dir+"\ntrusted_bundle_keys: ["+pub+"]\nlog_level: debug\n"+
		"max_parallel_targets: 2\nhealth_addr: 127.0.0.1:9102\nlog_format: text\n"), 0o600)
	env := map[string]string{"VIGIL_AGENT_SERVER": "env:1", "VIGIL_AGENT_MAX_PARALLEL_TARGETS": "3",
		"VIGIL_AGENT_LOG_FORMAT": "json"}
	code, out, errs := run(t, env, "check-config", "--config", p, "--server", "flag:1", "--health-addr", "unix:/run/h.sock")
	if code != 0 {
		t.Fatalf("check-config: %d %s", code, errs)
	}
	for _, want := range []string{
		"server: flag:1",                // flag over env over file
		"max_parallel_targets: 3",       // env over file
		"log_format: json",              // env over file
		"health_addr: unix:/run/h.sock", // flag over file
		"log_level: debug",              // file over default
		"spool_max_bytes: 268435456",    // default
		"heartbeat_interval: 30s",       // default
	} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
}

func TestHealthAddrMustBeLocal(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"check-config", "--state-dir", dir, "--health-addr", "0.0.0.0:9102"},
		{"run", "--state-dir", dir, "--health-addr", "192.0.2.1:9102"},
	} {
		code, _, errs := run(t, nil, args...)
		if code != 1 || !strings.Contains(errs, "health_addr") || !strings.Contains(errs, "not a loopback address") {
			t.Errorf("%v: %d %q", args, code, errs)
		}
	}
	code, _, errs := run(t, map[string]string{"VIGIL_AGENT_HEALTH_ADDR": "10.0.0.1:9102"}, "check-config", "--state-dir", dir)
	if code != 1 || !strings.Contains(errs, "health_addr") {
		t.Errorf("from the environment: %d %q", code, errs)
	}
}

func TestStatusJSON(t *testing.T) {
	srv := servertest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if code, _, errs := run(t, nil, "enroll", "--server", srv.Addr, "--token", srv.Token, "--ca-pin", srv.CA.Pin(),
		"--state-dir", stateDir, "--hostname", "db-2"); code != 0 {
		t.Fatalf("enroll: %s", errs)
	}
	code, out, errs := run(t, nil, "status", "--state-dir", stateDir, "--json")
	if code != 0 {
		t.Fatalf("status --json: %d %s", code, errs)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if st.Agent != "db-2" || st.AgentID != 1 || st.Server != srv.Addr || st.Certificate.NotAfter == nil ||
		st.Certificate.Expired || st.DaemonHasRun || st.Connected || st.LastAssignment != nil ||
		st.Spool.Batches != 0 || st.Bundle.Version != "" {
		t.Errorf("status --json:\n%s", out)
	}
	for _, key := range []string{`"connected"`, `"last_assignment"`, `"spool"`, `"bundle"`, `"not_after"`} {
		if !strings.Contains(out, key) {
			t.Errorf("status --json lacks %s:\n%s", key, out)
		}
	}
}

func TestLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	Logger(&buf, "info", "auto").Info("hello", "scan_id", 7)
	if !strings.HasPrefix(buf.String(), `{"time":`) || !strings.Contains(buf.String(), `"scan_id":7`) {
		t.Errorf("auto on a non-terminal should be JSON: %q", buf.String())
	}
	buf.Reset()
	Logger(&buf, "warn", "text").Info("dropped")
	Logger(&buf, "info", "text").Info("hello", "scan_id", 7)
	if got := buf.String(); strings.Contains(got, "dropped") || !strings.Contains(got, "msg=hello scan_id=7") {
		t.Errorf("text logger: %q", got)
	}
}
