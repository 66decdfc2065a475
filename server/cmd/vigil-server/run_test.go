package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runScript is one run of scripts/run-local.sh, the script `make run` calls.
type runScript struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	line chan string
	done chan error
	// exited is set once the test has received the script's exit.
	exited bool
}

func startRunScript(t *testing.T, env []string) *runScript {
	t.Helper()
	r := &runScript{line: make(chan string, 256), done: make(chan error, 1)}
	r.cmd = exec.Command("bash", "../../../scripts/run-local.sh")
	r.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.line <- sc.Text():
			default: // nobody waits for lines now; the buffer keeps them
			}
		}
	}()
	go func() {
		err := r.cmd.Wait()
		pw.Close()
		r.done <- err
	}()
	t.Cleanup(func() {
		if !r.exited {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(60 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
	})
	return r
}

func (r *runScript) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitFor returns the first line containing want printed before deadline.
func (r *runScript) waitFor(t *testing.T, want string, deadline time.Time) string {
	t.Helper()
	for {
		select {
		case l := <-r.line:
			if strings.Contains(l, want) {
				return l
			}
		case err := <-r.done:
			r.done <- err
			t.Fatalf("run-local.sh exited (%v) before printing %q:\n%s", err, want, r.output())
		case <-time.After(time.Until(deadline)):
			t.Fatalf("run-local.sh did not print %q in time:\n%s", want, r.output())
		}
	}
}

// stop sends sig to the script alone (a terminal's Ctrl-C reaches only
// the script, since it starts the server and the agent in their own
// sessions) and checks that it exits 0 and that both processes are gone.
func (r *runScript) stop(t *testing.T, sig os.Signal, pids []int) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.exited = true
		if err != nil {
			t.Fatalf("run-local.sh after %v: %v\n%s", sig, err, r.output())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("run-local.sh still running 90s after %v:\n%s", sig, r.output())
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the script stopped (kill -0: %v)", pid, err)
		}
	}
	if !strings.Contains(r.output(), "==> stopped") {
		t.Errorf("no \"stopped\" line:\n%s", r.output())
	}
}

// readPIDs reads the server and agent PIDs the script records, and makes
// sure the test kills them should it fail before the script stops them.
func readPIDs(t *testing.T, runDir string) []int {
	t.Helper()
	var pids []int
	for _, name := range []string{"server.pid", "agent.pid"} {
		b, err := os.ReadFile(filepath.Join(runDir, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			t.Fatalf("%s: %q", name, b)
		}
		pids = append(pids, pid)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return pids
}

// TestRunLocal runs what `make run` runs, twice: the first run creates the
// admin, enrols a local agent and waits for the first scan of this machine;
// the UI answers with the printed credentials; SIGINT stops everything and
// the script exits 0. The second run reuses the data: no new admin, no new
// agent, and SIGTERM stops it as cleanly.
func TestRunLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack and a full local scan; skipped with -short")
	}
	for _, tool := range []string{"bash", "curl", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("run-local.sh needs %s: apt-get install %s", tool, tool)
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	binDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "vigil-server")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, "vigil-agent"), "./cmd/vigil-agent")
	build.Dir = "../../../agent"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vigil-agent: %v\n%s", err, out)
	}

	runDir := filepath.Join(t.TempDir(), "run")
	httpAddr := freeAddr(t)
	env := []string{"VIGIL_RUN_DIR=" + runDir, "VIGIL_RUN_HTTP=" + httpAddr, "VIGIL_RUN_GRPC=" + freeAddr(t),
		"VIGIL_RUN_BIN=" + binDir, "VIGIL_RUN_SCAN_TIMEOUT=180"}

	// First run: everything is created.
	first := startRunScript(t, env)
	scanLine := first.waitFor(t, "==> first scan of ", deadline)
	first.waitFor(t, "Ctrl-C stops everything", deadline)
	out := first.output()
	for _, want := range []string{"creating the admin account", "enrolling the local agent", "https://" + httpAddr + "/"} {
		if !strings.Contains(out, want) {
			t.Errorf("first run did not print %q:\n%s", want, out)
		}
	}
	t.Logf("first run: %s", scanLine)
	password := printedField(t, out, "Password:")
	if saved := readPrivate(t, filepath.Join(runDir, "admin-password")); saved != password {
		t.Errorf("admin-password holds %q, the script printed %q", saved, password)
	}
	certFile := filepath.Join(runDir, "server", "tls", "server.crt")
	if got, want := printedFingerprint(t, out), fingerprint(t, certFile); got != want {
		t.Errorf("printed fingerprint %s, certificate's is %s", got, want)
	}
	s := &server{base: "https://" + httpAddr, client: pinnedClient(t, certFile)}
	code, body := s.getPage(t, "/login")
	if code != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Errorf("GET /login: %d, sign-in form missing:\n%.300s", code, body)
	}
	tok := loginAs(t, s, password)
	var hosts struct {
		Hosts []struct {
			Name       string     `json:"name"`
			AgentID    *int64     `json:"agent_id"`
			LastScanAt *time.Time `json:"last_scan_at"`
		} `json:"hosts"`
	}
	if code := s.call(t, "GET", "/api/v1/hosts", tok, nil, &hosts); code != 200 || len(hosts.Hosts) != 1 ||
		hosts.Hosts[0].AgentID == nil || hosts.Hosts[0].LastScanAt == nil {
		t.Fatalf("hosts after the first run: %d %+v", code, hosts)
	}
	pids := readPIDs(t, runDir)
	sig := os.Signal(syscall.SIGINT)
	if signal.Ignored(syscall.SIGINT) {
		// A shell cannot trap a signal ignored when it started; a test run
		// from a background job inherits SIGINT ignored.
		t.Log("SIGINT is ignored in this process (started in the background?); stopping with SIGTERM")
		sig = syscall.SIGTERM
	}
	first.stop(t, sig, pids)

	// Second run: the same admin and agent.
	second := startRunScript(t, env)
	second.waitFor(t, "==> latest scan of ", deadline)
	second.waitFor(t, "Ctrl-C stops everything", deadline)
	out = second.output()
	for _, unwanted := range []string{"creating the admin account", "enrolling the local agent"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("second run printed %q:\n%s", unwanted, out)
		}
	}
	if p := printedField(t, out, "Password:"); p != password {
		t.Errorf("second run printed password %q, want the first run's", p)
	}
	tok = loginAs(t, s, password)
	var users struct {
		Users []struct{ Username string } `json:"users"`
	}
	var agents struct {
		Agents []struct{ ID int64 } `json:"agents"`
	}
	if code := s.call(t, "GET", "/api/v1/users", tok, nil, &users); code != 200 || len(users.Users) != 1 {
		t.Errorf("users after the second run: %d %+v, want the one admin", code, users)
	}
	if code := s.call(t, "GET", "/api/v1/agents", tok, nil, &agents); code != 200 || len(agents.Agents) != 1 {
		t.Errorf("agents after the second run: %d %+v, want the one enrolled agent", code, agents)
	}
	second.stop(t, syscall.SIGTERM, readPIDs(t, runDir))
}

// printedField is the first word after label in the script's output.
func printedField(t *testing.T, out, label string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(l, label); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	t.Fatalf("no %q line in:\n%s", label, out)
	return ""
}

// printedFingerprint is the line after "SHA-256 fingerprint".
func printedFingerprint(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "SHA-256 fingerprint")
	if !ok {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	lines := strings.Split(rest, "\n")
	if len(lines) < 2 {
		t.Fatalf("no fingerprint after the label:\n%s", out)
	}
	return strings.TrimSpace(lines[1])
}

// fingerprint is the certificate's SHA-256 as browsers show it (AB:CD:...).
func fingerprint(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	sum := sha256.Sum256(blk.Bytes)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// readPrivate reads a file that must be readable by its owner only.
func readPrivate(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// pinnedClient trusts exactly the server's generated certificate.
func pinnedClient(t *testing.T, certFile string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate", certFile)
	}
	return &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
}

// getPage fetches a UI page without following redirects.
func (s *server) getPage(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := s.client.Get(s.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func loginAs(t *testing.T, s *server, password string) string {
	t.Helper()
	var r struct{ Token string }
	if code := s.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": password}, &r); code != 200 || r.Token == "" {
		t.Fatalf("login with the printed password: %d %+v", code, r)
	}
	return r.Token
}
