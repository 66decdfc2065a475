package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/testtarget"
)

// sshCorpus holds a rule that passes on a stock Debian 12 target and one
// that fails there.
func sshCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "filesystem/passwd-mode.yml", permRule("passwd-mode", "high", "/etc/passwd", "0644"))
	writeFile(t, dir, "filesystem/passwd-too-open.yml", permRule("passwd-too-open", "low", "/etc/passwd", "0666"))
	return dir
}

// TestCheckSSHInventory scans two real SSH targets and a closed port from
// an inventory with two workers: the real hosts have results, the closed
// one an error, and the run exits 1.
func TestCheckSSHInventory(t *testing.T) {
	t.Parallel()
	hosts := testtarget.StartAll(t, testtarget.Options{}, testtarget.Options{})
	dir := t.TempDir()
	var kh []byte
	for _, h := range hosts {
		data, err := os.ReadFile(h.KnownHostsFile())
		if err != nil {
			t.Fatal(err)
		}
		kh = append(kh, data...)
	}
	writeFile(t, dir, "known_hosts", string(kh))
	inv := writeFile(t, dir, "inventory.yml", `defaults:
  user: `+testtarget.User+`
  known_hosts: known_hosts
hosts:
  - name: t1
    address: `+hosts[0].IP()+`
    port: `+itoa(hosts[0].Port())+`
    key: `+hosts[0].UserKeyFile()+`
    groups: [web]
  - name: t2
    address: `+hosts[1].IP()+`
    port: `+itoa(hosts[1].Port())+`
    key: `+hosts[1].UserKeyFile()+`
  - name: closed
    address: 127.0.0.1
    port: `+itoa(closedPort(t))+`
    key: `+hosts[0].UserKeyFile()+`
`)
	code, stdout, stderr := runCLI(t, testEnv(t, nil), "check", "--inventory", inv, "--rules", sshCorpus(t),
		"--config", t.TempDir(), "--workers", "2", "--format", "json")
	if code != exitFail {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	var reps []engine.Report
	if err := json.Unmarshal([]byte(stdout), &reps); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(reps) != 3 {
		t.Fatalf("%d reports, want 3", len(reps))
	}
	for i, name := range []string{"t1", "t2"} {
		r := reps[i]
		if r.Host != name || r.Error != "" || r.Platform.ID != "debian" || len(r.Results) != 2 {
			t.Errorf("report %s: host %q error %q platform %+v, %d results", name, r.Host, r.Error, r.Platform, len(r.Results))
			continue
		}
		if s := r.Summary; s.Pass != 1 || s.Fail != 1 {
			t.Errorf("%s summary = %+v, want 1 pass 1 fail", name, s)
		}
	}
	if r := reps[2]; r.Host != "closed" || !strings.Contains(r.Error, "unreachable") || len(r.Results) != 0 {
		t.Errorf("closed port: host %q error %q, %d results", r.Host, r.Error, len(r.Results))
	}
}

// TestCheckSSHHostKeys covers host key verification: a wrong key in
// known_hosts is a mismatch, an unknown host is refused unless
// --accept-new-host-keys, which then records the key.
func TestCheckSSHHostKeys(t *testing.T) {
	t.Parallel()
	h := testtarget.Start(t, testtarget.Options{})
	rules := sshCorpus(t)
	dir := t.TempDir()
	spec := testtarget.User + "@" + h.Addr()
	check := func(knownHosts string, extra ...string) (int, engine.Report) {
		t.Helper()
		args := append([]string{"check", "--host", spec, "--key", h.UserKeyFile(), "--known-hosts", knownHosts,
			"--rules", rules, "--config", t.TempDir(), "--format", "json"}, extra...)
		code, stdout, stderr := runCLI(t, testEnv(t, nil), args...)
		var reps []engine.Report
		if err := json.Unmarshal([]byte(stdout), &reps); err != nil || len(reps) != 1 {
			t.Fatalf("exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
		}
		return code, reps[0]
	}

	t.Run("wrong key", func(t *testing.T) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		line := "[" + h.IP() + "]:" + itoa(h.Port()) + " " + string(ssh.MarshalAuthorizedKey(sshPub))
		kh := writeFile(t, dir, "wrong_known_hosts", line)
		code, rep := check(kh, "--accept-new-host-keys")
		if code != exitFail || !strings.Contains(rep.Error, "host key mismatch") || len(rep.Results) != 0 {
			t.Errorf("exit %d, error %q, %d results; want a host key mismatch", code, rep.Error, len(rep.Results))
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		kh := filepath.Join(dir, "empty_known_hosts")
		code, rep := check(kh)
		if code != exitFail || !strings.Contains(rep.Error, "--accept-new-host-keys") {
			t.Errorf("exit %d, error %q; want a refusal suggesting --accept-new-host-keys", code, rep.Error)
		}
		code, rep = check(kh, "--accept-new-host-keys")
		if rep.Error != "" || len(rep.Results) != 2 || code != exitFail {
			t.Fatalf("exit %d, error %q, %d results; want a scan", code, rep.Error, len(rep.Results))
		}
		data, _ := os.ReadFile(kh)
		if !strings.Contains(string(data), h.IP()) {
			t.Errorf("known_hosts was not updated:\n%s", data)
		}
		if _, rep = check(kh); rep.Error != "" {
			t.Errorf("the recorded key is not trusted afterwards: %s", rep.Error)
		}
	})
}
