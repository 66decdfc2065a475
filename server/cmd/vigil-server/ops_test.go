package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
)

// opsServer starts the real binary like startServer, with extra flags and
// environment, trusting pool (nil: the generated self-signed certificate).
func opsServer(t *testing.T, dataDir string, env []string, pool *x509.CertPool, extra ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{base: "https://" + addr, log: &bytes.Buffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", addr, "--grpc-addr", freeAddr(t),
		"--rules-dir", "../../../rules", "--log-format", "json"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), env...)
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := pool
		if p == nil {
			if b, err := os.ReadFile(filepath.Join(dataDir, "tls", "server.crt")); err == nil {
				p = x509.NewCertPool()
				p.AppendCertsFromPEM(b)
			}
		}
		if p != nil {
			s.client = &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p, ServerName: "127.0.0.1"}}}
			if resp, err := s.client.Get(s.base + "/healthz"); err == nil {
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

// get fetches path with an optional bearer token and returns status and body.
func (s *server) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample whose name and labels (in
// exposition order, e.g. `vigil_scans_finished_total{status="completed"}`)
// are series; ok is false when absent.
func metricValue(text, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// setupAdmin migrates dir (or the database) and creates the admin.
func setupAdmin(t *testing.T, dir string, extra ...string) {
	t.Helper()
	if out, err := vs(t, "", append([]string{"migrate", "--data-dir", dir}, extra...)...); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword+"\n", append([]string{"admin", "create", "--data-dir", dir, "--username", "admin", "--password-stdin"}, extra...)...); err != nil {
		t.Fatalf("admin create: %v %s", err, out)
	}
}

// addTarget registers a real sshd target as an agentless host.
func addTarget(t *testing.T, s *server, tok string, tgt *testtarget.Host) int64 {
	t.Helper()
	key, err := os.ReadFile(tgt.RootKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(tgt.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		ID int64 `json:"id"`
	}
	code := s.call(t, "POST", "/api/v1/hosts", tok, map[string]any{"name": "target-1", "address": tgt.IP(),
		"ssh": map[string]any{"user": "root", "port": tgt.Port(), "private_key": string(key), "known_hosts": string(known)}}, &h)
	if code != 201 || h.ID == 0 {
		t.Fatalf("create host: %d", code)
	}
	return h.ID
}

type scanJSON struct {
	ID      int64  `json:"id"`
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
	Message string `json:"message"`
	Counts  struct {
		Total int `json:"total"`
	} `json:"counts"`
}

// hostScans lists a host's scans, newest first.
func hostScans(t *testing.T, s *server, tok string, hostID int64) []scanJSON {
	t.Helper()
	var r struct {
		Scans []scanJSON `json:"scans"`
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/scans", hostID), tok, nil, &r); code != 200 {
		t.Fatalf("host scans: %d", code)
	}
	return r.Scans
}

// waitScan waits (90 s at most) until the host has a completed scan.
func waitScan(t *testing.T, s *server, tok string, hostID int64) scanJSON {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		for _, sc := range hostScans(t, s, tok, hostID) {
			if sc.Status == "completed" {
				return sc
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed scan within 90s: %+v", hostScans(t, s, tok, hostID))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOpsMetricsAfterScan scrapes /metrics of the real server after an
// agentless scan of a real sshd target: the token is required, and the
// scan, ingest, HTTP and store families moved. Health and readiness
// answer without authentication, and every request log line carries its
// request id.
func TestOpsMetricsAfterScan(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	dir := t.TempDir()
	setupAdmin(t, dir)
	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	const token = "metrics-token-for-the-test-0123456789"
	s := opsServer(t, dir, []string{"VIGIL_TEST_METRICS_TOKEN=" + token}, nil, "--metrics-token-env", "VIGIL_TEST_METRICS_TOKEN")

	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := s.get(t, p, ""); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	tok := s.login(t)
	id := addTarget(t, s, tok, tgt)
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", id), tok, nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	sc := waitScan(t, s, tok, id)
	if code := s.call(t, "GET", "/api/v1/hosts/999999", tok, nil, nil); code != 404 {
		t.Fatalf("missing host: %d", code)
	}

	if code, _ := s.get(t, "/metrics", ""); code != 401 {
		t.Fatalf("/metrics without the token: %d, want 401", code)
	}
	if code, _ := s.get(t, "/metrics", "wrong"); code != 401 {
		t.Fatalf("/metrics with a wrong token: %d, want 401", code)
	}
	code, text := s.get(t, "/metrics", token)
	if code != 200 {
		t.Fatalf("/metrics with the token: %d %s", code, text)
	}
	atLeast := []struct {
		series string
		min    float64
	}{
		{`vigil_results_ingested_total`, float64(sc.Counts.Total)},
		{`vigil_scans_started_total`, 1},
		{`vigil_scans_finished_total{status="completed"}`, 1},
		{`vigil_scan_duration_seconds_count{status="completed"}`, 1},
		{`vigil_ingest_duration_seconds_count`, 1},
		{`vigil_http_requests_total{code="201",method="POST",route="/api/v1/hosts"}`, 1},
		{`vigil_http_requests_total{code="202",method="POST",route="/api/v1/hosts/:id/scan"}`, 1},
		{`vigil_http_requests_total{code="404",method="GET",route="/api/v1/hosts/:id"}`, 1},
		{`vigil_http_request_duration_seconds_count{method="GET",route="/api/v1/hosts/:id/scans"}`, 1},
		{`vigil_store_query_duration_seconds_count{method="ClaimDue"}`, 1},
		{`vigil_store_query_duration_seconds_count{method="Ingest"}`, 1},
		{`vigil_hosts{band="none"}`, 0},
		{`vigil_hosts_overdue`, 0},
		{`vigil_scans_running`, 0},
		{`vigil_agents_connected`, 0},
		{`vigil_alerts{state="active"}`, 0},
	}
	for _, c := range atLeast {
		v, ok := metricValue(text, c.series)
		if !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want >= %v", c.series, v, ok, c.min)
		}
	}
	if sc.Counts.Total == 0 {
		t.Fatal("the scan stored no results")
	}
	// Exactly one host, in some band now.
	var hosts float64
	for _, b := range []string{"none", "critical", "poor", "fair", "good", "excellent"} {
		v, _ := metricValue(text, `vigil_hosts{band="`+b+`"}`)
		hosts += v
	}
	if hosts != 1 {
		t.Errorf("vigil_hosts sums to %v, want 1", hosts)
	}
	s.stop(t)

	// Every request line carries its id; the 404 is logged at info.
	found404 := false
	for _, line := range strings.Split(s.log.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["msg"] != "http request" {
			continue
		}
		if id, _ := e["request_id"].(string); id == "" {
			t.Errorf("request log without request_id: %s", line)
		}
		if e["status"] == float64(404) && e["level"] == "INFO" {
			found404 = true
		}
	}
	if !found404 {
		t.Error("the 404 request was not logged at info")
	}
}

// TestOpsReadinessFollowsDatabase runs the server on a PostgreSQL of its
// own, stops the database and expects /readyz to answer 503 naming the
// store (and nothing sensitive) while /healthz stays 200, then starts the
// database again and expects ready.
func TestOpsReadinessFollowsDatabase(t *testing.T) {
	pg := pgtest.NewInstance(t)
	dir := t.TempDir()
	setupAdmin(t, dir, "--database-url", pg.URL())
	s := opsServer(t, dir, nil, nil, "--database-url", pg.URL())
	if code, body := s.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	port := pg.URL()[strings.LastIndex(pg.URL(), ":")+1 : strings.LastIndex(pg.URL(), "/")]

	pg.Stop(t)
	waitReady := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := s.get(t, "/readyz", "")
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz stayed %d (%s), want %d", code, body, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	body := waitReady(503)
	var b struct {
		Status  string   `json:"status"`
		Failing []string `json:"failing"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if b.Status != "not ready" || len(b.Failing) == 0 || b.Failing[0] != "store" {
		t.Fatalf("/readyz body %s, want store failing first", body)
	}
	for _, leak := range []string{port, "postgres", "127.0.0.1", dir} {
		if strings.Contains(body, leak) {
			t.Fatalf("/readyz reveals %q: %s", leak, body)
		}
	}
	if code, _ := s.get(t, "/healthz", ""); code != 200 {
		t.Fatalf("/healthz while the database is down: %d", code)
	}

	pg.Start(t)
	waitReady(200)
	if code, _ := s.get(t, "/healthz", ""); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	s.stop(t)
}

// TestOpsSIGTERMDuringScanLosesNothing stops the server with SIGTERM right
// after a scan was requested: the scan ends completed, or failed and the
// host is handed back; a restart completes a scan, and no scan has more
// result rows than its counts say.
func TestOpsSIGTERMDuringScanLosesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	dir := t.TempDir()
	setupAdmin(t, dir)
	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	s := opsServer(t, dir, nil, nil)
	tok := s.login(t)
	id := addTarget(t, s, tok, tgt)
	// A new host is due at once; wait until its first scan is running,
	// then stop the server under it.
	deadline := time.Now().Add(30 * time.Second)
	var first int64
	for {
		scans := hostScans(t, s, tok, id)
		if len(scans) > 0 {
			first = scans[len(scans)-1].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scan started within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.stop(t)

	s2 := opsServer(t, dir, nil, nil)
	// The scan under way at SIGTERM ended either way, before the restart
	// could claim the host again.
	for _, sc := range hostScans(t, s2, tok, id) {
		if sc.ID != first {
			continue
		}
		switch {
		case sc.Status == "completed":
		case sc.Status == "failed" && strings.Contains(sc.Message, "interrupted"):
		default:
			t.Fatalf("scan %d after a graceful stop: %+v", sc.ID, sc)
		}
		t.Logf("scan %d after SIGTERM: %s %q", sc.ID, sc.Status, sc.Message)
	}
	t.Logf("restarted; waiting for a completed scan")
	completed := waitScan(t, s2, tok, id)
	for _, sc := range hostScans(t, s2, tok, id) {
		var r struct {
			Results []struct {
				RuleID string `json:"rule_id"`
			} `json:"results"`
		}
		if code := s2.call(t, "GET", fmt.Sprintf("/api/v1/scans/%d/results", sc.ID), tok, nil, &r); code != 200 {
			t.Fatalf("scan %d results: %d", sc.ID, code)
		}
		seen := map[string]bool{}
		for _, res := range r.Results {
			if seen[res.RuleID] {
				t.Fatalf("scan %d has rule %s twice", sc.ID, res.RuleID)
			}
			seen[res.RuleID] = true
		}
		if sc.Status == "completed" && len(r.Results) != sc.Counts.Total {
			t.Fatalf("scan %d: %d result rows, counts say %d", sc.ID, len(r.Results), sc.Counts.Total)
		}
	}
	if completed.Counts.Total == 0 {
		t.Fatalf("completed scan without results: %+v", completed)
	}
	s2.stop(t)
}

// TestOpsSIGHUPReloadsCertificate rotates the --tls-cert files under a
// running server and sends SIGHUP: the next handshake presents the new
// certificate.
func TestOpsSIGHUPReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "https.crt"), filepath.Join(dir, "https.key")
	pool := x509.NewCertPool()
	first := writeCert(t, certFile, keyFile, pool)
	s := opsServer(t, filepath.Join(dir, "data"), nil, pool, "--tls-cert", certFile, "--tls-key", keyFile)
	if got := servedSerial(t, s, pool); got.Cmp(first) != 0 {
		t.Fatalf("served serial %v, want %v", got, first)
	}
	second := writeCert(t, certFile, keyFile, pool)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for servedSerial(t, s, pool).Cmp(second) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v after SIGHUP, want %v", servedSerial(t, s, pool), second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := s.get(t, "/healthz", ""); code != 200 {
		t.Fatalf("/healthz after reload: %d", code)
	}
	s.stop(t)
}

// writeCert writes a fresh self-signed certificate for 127.0.0.1 (and
// its key) over certFile and keyFile, adds it to pool and returns its
// serial.
func writeCert(t *testing.T, certFile, keyFile string, pool *x509.CertPool) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "vigil-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(c)
	return serial
}

// servedSerial makes a fresh TLS handshake and returns the serial of the
// certificate the server presented.
func servedSerial(t *testing.T, s *server, pool *x509.CertPool) *big.Int {
	t.Helper()
	addr := strings.TrimPrefix(s.base, "https://")
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}
