package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/shared/bundle"
)

const adminPassword = "correct horse battery staple"

var (
	serverOnce sync.Once
	serverBin  string
	serverErr  error
)

// vigilServer builds the real vigil-server from the workspace once.
func vigilServer(t *testing.T) string {
	t.Helper()
	serverOnce.Do(func() {
		serverBin = filepath.Join(filepath.Dir(binary), "vigil-server")
		cmd := exec.Command("go", "build", "-o", serverBin, "./cmd/vigil-server")
		cmd.Dir = filepath.Join("..", "..", "..", "server")
		if out, err := cmd.CombinedOutput(); err != nil {
			serverErr = fmt.Errorf("build vigil-server: %v\n%s", err, out)
		}
	})
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return serverBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer is a bytes.Buffer a child process writes while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running child process with its output kept.
type proc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), log: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(name), p.log)
		}
	})
	return p
}

func (p *proc) term(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit within 60 s of SIGTERM\n%s", p.log)
	}
}

func runCmd(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}

// api is a REST client for the server's HTTPS API.
type api struct {
	base   string
	client *http.Client
	token  string
}

func (a *api) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func serve(t *testing.T, bin, data, rules, httpAddr, grpcAddr string) (*proc, *api) {
	t.Helper()
	p := start(t, bin, "serve", "--data-dir", data, "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--rules-dir", rules)
	deadline := time.After(60 * time.Second)
	for {
		if pem, err := os.ReadFile(filepath.Join(data, "tls", "server.crt")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			a := &api{base: "https://" + httpAddr, client: &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}}
			if resp, err := a.client.Get(a.base + "/api/v1/auth/me"); err == nil {
				resp.Body.Close()
				var r struct{ Token string }
				if code := a.call(t, "POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": adminPassword}, &r); code != 200 {
					t.Fatalf("login: %d", code)
				}
				a.token = r.Token
				return p, a
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("server exited: %v\n%s", err, p.log)
		case <-deadline:
			t.Fatalf("server not ready in 60 s\n%s", p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type hostJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	AgentID    *int64     `json:"agent_id"`
	LastScanAt *time.Time `json:"last_scan_at"`
}

type scanJSON struct {
	ID      int64
	Status  string
	Message string
	Counts  struct{ Total, Pass, Fail int }
}

func scansOf(t *testing.T, a *api, host int64) []scanJSON {
	var r struct{ Scans []scanJSON }
	a.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/scans", host), nil, &r)
	return r.Scans
}

func completed(scans []scanJSON) int {
	n := 0
	for _, s := range scans {
		if s.Status == "completed" {
			n++
		}
	}
	return n
}

// poll runs cond every 250 ms until it holds or timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestEndToEndWithServer runs the real vigil-server and vigil-agent: the
// agent enrols, scans its own host and two SSH targets as a jump box, the
// results, evidence and inventory are read back through the REST API; the
// server is then restarted and the agent reconnects and scans again.
func TestEndToEndWithServer(t *testing.T) {
	targets := testtarget.StartAll(t, testtarget.Options{Hostname: "web-a"}, testtarget.Options{Hostname: "web-b"})
	vs := vigilServer(t)
	data := t.TempDir()
	runCmd(t, "", vs, "migrate", "--data-dir", data)
	runCmd(t, adminPassword+"\n", vs, "admin", "create", "--data-dir", data, "--username", "admin", "--password-stdin")
	rules := bundletest.Corpus(t, "ssh-", "accounts-no-")
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	server, a := serve(t, vs, data, rules, httpAddr, grpcAddr)

	var tok struct {
		Token string `json:"token"`
		CAPin string `json:"ca_pin"`
	}
	if err := json.Unmarshal([]byte(runCmd(t, "", vs, "token", "create", "--data-dir", data, "--json")), &tok); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	runCmd(t, "", binary, "enroll", "--server", grpcAddr, "--token", tok.Token, "--ca-pin", tok.CAPin,
		"--state-dir", stateDir, "--hostname", "e2e-jump")

	pub, err := filepath.Glob(filepath.Join(data, "bundle-signing*.pub"))
	if err != nil || len(pub) != 1 {
		t.Fatalf("bundle signing public key in %s: %v %v", data, pub, err)
	}
	cfg := fmt.Sprintf("state_dir: %s\ntrusted_bundle_keys: [%s]\nheartbeat_interval: 1s\nlog_format: text\ntargets:\n", stateDir, pub[0])
	for _, h := range []*testtarget.Host{targets[0], targets[1]} {
		cfg += fmt.Sprintf("  - {name: %s, address: %s, port: %d, user: root, identity_file: %s, known_hosts_file: %s}\n",
			h.Hostname(), h.IP(), h.Port(), h.RootKeyFile(), h.KnownHostsFile())
	}
	cfgFile := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "", binary, "check-config", "--config", cfgFile, "--server", grpcAddr)
	agent := start(t, binary, "run", "--config", cfgFile)

	ids := map[string]int64{}
	poll(t, 3*time.Minute, "three hosts scanned", func() bool {
		var r struct{ Hosts []hostJSON }
		a.call(t, "GET", "/api/v1/hosts", nil, &r)
		for _, h := range r.Hosts {
			if h.AgentID != nil && completed(scansOf(t, a, h.ID)) > 0 {
				ids[h.Name] = h.ID
			}
		}
		return len(ids) == 3
	})
	for _, name := range []string{"e2e-jump", "web-a", "web-b"} {
		if _, ok := ids[name]; !ok {
			t.Fatalf("host %s missing: %v", name, ids)
		}
		sc := scansOf(t, a, ids[name])[0]
		if sc.Status != "completed" || sc.Counts.Total == 0 {
			t.Errorf("%s: scan %+v", name, sc)
		}
	}
	// Evidence of a result on a jump-box target.
	var findings struct {
		Findings []struct {
			RuleID string `json:"rule_id"`
		}
	}
	a.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/findings", ids["web-a"]), nil, &findings)
	if len(findings.Findings) == 0 {
		t.Fatal("no findings for web-a")
	}
	var ev struct{ Evidence []map[string]any }
	scanA := scansOf(t, a, ids["web-a"])[0]
	if code := a.call(t, "GET", fmt.Sprintf("/api/v1/scans/%d/results/%s", scanA.ID, findings.Findings[0].RuleID), nil, &ev); code != 200 || len(ev.Evidence) == 0 {
		t.Errorf("evidence of %s on web-a: %d %v", findings.Findings[0].RuleID, code, ev)
	}
	// Inventory collected over SSH by the jump box.
	var inv struct {
		Kernel   string
		Packages []struct{ Name, Version string }
		Ports    []struct {
			Address string
			Port    int
		}
	}
	a.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/inventory", ids["web-b"]), nil, &inv)
	var ssh, port bool
	for _, p := range inv.Packages {
		ssh = ssh || p.Name == "openssh-server"
	}
	for _, p := range inv.Ports {
		port = port || (p.Address == targets[1].IP() && p.Port == targets[1].Port())
	}
	if inv.Kernel == "" || !ssh || !port {
		t.Errorf("web-b inventory: kernel %q, openssh-server %v, sshd port %v", inv.Kernel, ssh, port)
	}

	// The server dies (SIGKILL) as soon as the agent has the next scan of
	// web-a; the agent keeps the results in its spool, reconnects to the
	// restarted server and delivers them once: the scan completes with the
	// same count as before, nothing lost, nothing doubled.
	firstTotal := scansOf(t, a, ids["web-a"])[0].Counts.Total
	if code := a.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", ids["web-a"]), nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	poll(t, time.Minute, "the agent to receive the new scan of web-a", func() bool {
		return strings.Count(agent.log.String(), "target=web-a kind=KIND_SSH") >= 2
	})
	if err := server.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-server.done
	server, a = serve(t, vs, data, rules, httpAddr, grpcAddr)
	poll(t, 2*time.Minute, "the second scan of web-a after the crash", func() bool {
		return completed(scansOf(t, a, ids["web-a"])) >= 2
	})
	if second := scansOf(t, a, ids["web-a"])[0]; second.Counts.Total != firstTotal {
		t.Errorf("scan after the crash has %d results, the first %d", second.Counts.Total, firstTotal)
	}
	agent.term(t)
	st := runCmd(t, "", binary, "status", "--state-dir", stateDir)
	if !strings.Contains(st, "spool:        0 batches") {
		t.Errorf("status after the run:\n%s", st)
	}
	server.term(t)

	// Air-gapped: an offline scan with a bundle signed by the server's
	// key, imported by the server from the file; a second import changes
	// nothing.
	key, err := bundle.LoadPrivateKey(filepath.Join(data, "bundle-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	bfile := filepath.Join(t.TempDir(), "offline.bundle")
	if err := os.WriteFile(bfile, bundletest.Signed(t, rules, "2099.1.1", key), 0o644); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(t.TempDir(), "results.vra")
	runCmd(t, "", binary, "scan", "--bundle", bfile, "--out", results, "--state-dir", stateDir, "--trusted-key", pub[0])
	out := runCmd(t, "", vs, "import", results, "--data-dir", data, "--rules-dir", rules)
	if !strings.Contains(out, "imported ") || !strings.Contains(out, "host e2e-jump") {
		t.Errorf("import: %s", out)
	}
	if out := runCmd(t, "", vs, "import", results, "--data-dir", data, "--rules-dir", rules); !strings.Contains(out, "already imported") {
		t.Errorf("second import: %s", out)
	}
}
