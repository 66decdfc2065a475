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
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/testtarget"
)

// bin is the vigil-server binary built once for the black-box tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-server-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "vigil-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build vigil-server: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminPassword = "correct horse battery staple"

func vs(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
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

// server is a running vigil-server process.
type server struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	log    *bytes.Buffer
	done   chan error
}

func startServer(t *testing.T, dataDir string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{base: "https://" + addr, log: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", addr,
		"--grpc-addr", freeAddr(t), "--rules-dir", "../../../rules", "--log-format", "json")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.log)
		}
	})
	// The self-signed certificate appears in the data directory; trust
	// exactly it, as an operator pinning it would.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "server.crt")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			s.client = &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
			if resp, err := s.client.Get(s.base + "/api/v1/auth/me"); err == nil {
				resp.Body.Close()
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("server exited: %v\n%s", err, s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready in 30s\n%s", s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("server exit after SIGTERM: %v\n%s", err, s.log)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("server did not stop within 40s of SIGTERM")
	}
}

func (s *server) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func (s *server) login(t *testing.T) string {
	t.Helper()
	var r struct{ Token string }
	if code := s.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}, &r); code != 200 || r.Token == "" {
		t.Fatalf("login: %d %+v", code, r)
	}
	return r.Token
}

func TestCommandsErrors(t *testing.T) {
	dir := t.TempDir()
	if out, err := vs(t, "", "frobnicate"); err == nil || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown command: %v %s", err, out)
	}
	if out, err := vs(t, "short\n", "admin", "create", "--data-dir", dir, "--username", "a", "--password-stdin"); err == nil || !strings.Contains(out, "password") {
		t.Errorf("short password accepted: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword, "admin", "create", "--data-dir", dir, "--username", "a"); err == nil || !strings.Contains(out, "--password-stdin") {
		t.Errorf("password without --password-stdin: %v %s", err, out)
	}
	if out, err := vs(t, "", "serve", "--data-dir", dir, "--http-addr", "nohostport", "--rules-dir", "../../../rules"); err == nil || !strings.Contains(out, "http_addr") {
		t.Errorf("bad http addr: %v %s", err, out)
	}
	cfg := filepath.Join(dir, "server.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\nrules_dir: ../../../rules\nschedulr: {}\n"), 0o600)
	if out, err := vs(t, "", "check-config", "--config", cfg); err == nil || !strings.Contains(out, "line 3") {
		t.Errorf("unknown config key: %v %s", err, out)
	}
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\nrules_dir: ../../../rules\ndatabase_url: postgres://vigil:hunter2hunter2@127.0.0.1:1/v\n"), 0o600)
	out, err := vs(t, "", "check-config", "--config", cfg)
	if err != nil || strings.Contains(out, "hunter2") || !strings.Contains(out, "vigil:****@") {
		t.Errorf("check-config: %v %s", err, out)
	}
}

// TestServeEndToEnd drives the real binary: migrate, create the admin,
// serve HTTPS with a generated certificate, add an agentless host that is a
// real sshd target, scan it, read findings, posture and evidence, stop with
// SIGTERM, verify the audit chain, restart on the same data.
func TestServeEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	dir := t.TempDir()
	if out, err := vs(t, "", "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword+"\n", "admin", "create", "--data-dir", dir, "--username", "admin", "--password-stdin"); err != nil {
		t.Fatalf("admin create: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword+"\n", "admin", "create", "--data-dir", dir, "--username", "admin", "--password-stdin"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("duplicate admin: %v %s", err, out)
	}

	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	key, err := os.ReadFile(tgt.RootKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(tgt.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}

	s := startServer(t, dir)
	tok := s.login(t)
	var h struct {
		ID int64 `json:"id"`
	}
	code := s.call(t, "POST", "/api/v1/hosts", tok, map[string]any{"name": "target-1", "address": tgt.IP(),
		"ssh": map[string]any{"user": "root", "port": tgt.Port(), "private_key": string(key), "known_hosts": string(known)}}, &h)
	if code != 201 || h.ID == 0 {
		t.Fatalf("create host: %d", code)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", h.ID), tok, nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	var scans struct {
		Scans []struct {
			ID      int64
			Status  string
			Message string
			Counts  struct{ Total, Pass, Fail int }
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		s.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/scans", h.ID), tok, nil, &scans)
		if len(scans.Scans) > 0 && scans.Scans[0].Status != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished scan within 90s: %+v", scans)
		}
		time.Sleep(250 * time.Millisecond)
	}
	sc := scans.Scans[0]
	if sc.Status != "completed" || sc.Counts.Pass == 0 || sc.Counts.Fail == 0 {
		t.Fatalf("scan %+v", sc)
	}

	var findings struct {
		Findings []struct {
			RuleID        string                                `json:"rule_id"`
			Status        string                                `json:"status"`
			Severity      string                                `json:"severity"`
			FrameworkRefs []struct{ Framework, Control string } `json:"framework_refs"`
		}
	}
	s.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/findings?status=fail", h.ID), tok, nil, &findings)
	if len(findings.Findings) != sc.Counts.Fail {
		t.Fatalf("failing findings %d, scan says %d", len(findings.Findings), sc.Counts.Fail)
	}
	failing := findings.Findings[0]
	withRefs := 0
	for _, f := range findings.Findings {
		if f.RuleID == "" || f.Status != "fail" || f.Severity == "" {
			t.Fatalf("finding %+v", f)
		}
		if len(f.FrameworkRefs) > 0 {
			withRefs++
		}
	}
	if withRefs == 0 {
		t.Fatal("no failing finding carries framework references")
	}
	var ev struct {
		Evidence []map[string]any
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/scans/%d/results/%s", sc.ID, failing.RuleID), tok, nil, &ev); code != 200 || len(ev.Evidence) == 0 {
		t.Fatalf("evidence of %s: %d %+v", failing.RuleID, code, ev)
	}
	var post struct {
		Hosts []struct {
			HostID int64 `json:"host_id"`
			Score  float64
			Band   string
		}
	}
	s.call(t, "GET", "/api/v1/posture?framework=nist_800_53", tok, nil, &post)
	if len(post.Hosts) != 1 || post.Hosts[0].Band == "" || post.Hosts[0].Score <= 0 || post.Hosts[0].Score >= 100 {
		t.Fatalf("posture %+v", post)
	}
	var hosts struct {
		Hosts []map[string]any
	}
	s.call(t, "GET", "/api/v1/hosts", tok, nil, &hosts)
	if len(hosts.Hosts) != 1 || hosts.Hosts[0]["last_scan_at"] == nil || hosts.Hosts[0]["score"] == nil {
		t.Fatalf("hosts %+v", hosts)
	}
	s.stop(t)

	out, err := vs(t, "", "audit", "verify", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	// The data survives a restart and the session token still works.
	s2 := startServer(t, dir)
	if code := s2.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d", h.ID), tok, nil, nil); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	s2.stop(t)
}
