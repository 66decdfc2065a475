package loadgen_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binaries builds vigil-server and vigil-loadgen into dir; a vigil-server
// already built (make build) is used instead when VIGIL_SERVER_BIN names it.
func binaries(tb testing.TB, dir string) (server, lg string) {
	tb.Helper()
	server, lg = filepath.Join(dir, "vigil-server"), filepath.Join(dir, "vigil-loadgen")
	build := map[string]string{server: "../../cmd/vigil-server", lg: "../../cmd/vigil-loadgen"}
	if bin := os.Getenv("VIGIL_SERVER_BIN"); bin != "" {
		delete(build, server)
		server = bin
	}
	for bin, pkg := range build {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
		cancel()
		if err != nil {
			tb.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return server, lg
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serverProc is a vigil-server process this test started.
type serverProc struct {
	cmd      *exec.Cmd
	bin      string
	dataDir  string
	grpcAddr string
	logFile  string
	done     chan error
}

// startServer runs `vigil-server serve` (SQLite in a temp data dir, the
// repository's rules, loopback ports, scheduler on) and waits until its
// gRPC port accepts connections.
func startServer(tb testing.TB, bin string) *serverProc {
	tb.Helper()
	dir := tb.TempDir()
	s := &serverProc{bin: bin, dataDir: filepath.Join(dir, "data"), grpcAddr: freeAddr(tb),
		logFile: filepath.Join(dir, "server.log"), done: make(chan error, 1)}
	logf, err := os.Create(s.logFile)
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve", "--data-dir", s.dataDir, "--http-addr", freeAddr(tb), "--grpc-addr", s.grpcAddr,
		"--rules-dir", "../../../rules", "--log-format", "json", "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	tb.Cleanup(func() { s.stop(tb) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.grpcAddr, 5*time.Second); err == nil {
			c.Close()
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			tb.Fatalf("vigil-server exited: %v\n%s", err, s.log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("vigil-server not listening on %s within 60s\n%s", s.grpcAddr, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *serverProc) log() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// stop ends the server by its PID: SIGTERM, then SIGKILL after 40 s.
func (s *serverProc) stop(tb testing.TB) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(40 * time.Second):
		tb.Errorf("vigil-server %d did not stop within 40s of SIGTERM; killing it", s.cmd.Process.Pid)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// token creates a join token with uses uses and returns it with the CA pin.
func (s *serverProc) token(tb testing.TB, uses int) (token, pin string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, "token", "create", "--data-dir", s.dataDir, "--ttl", "2h",
		"--uses", strconv.Itoa(uses), "--json").Output()
	if err != nil {
		tb.Fatalf("token create: %v %s", err, out)
	}
	var t struct {
		Token string `json:"token"`
		CAPin string `json:"ca_pin"`
	}
	if err := json.Unmarshal(out, &t); err != nil || t.Token == "" || t.CAPin == "" {
		tb.Fatalf("token create printed %q: %v", out, err)
	}
	return t.Token, t.CAPin
}

// memory is a process's resident set and its peak, in KiB.
type memory struct{ RSS, HWM int64 }

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, sc.Err()
}
