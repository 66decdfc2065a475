package loadgen_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/loadgen"
)

// BenchmarkAgentsScale runs vigil-loadgen as its own process against a
// vigil-server process (SQLite) for each fleet size listed in
// VIGIL_BENCH_AGENTS ("500,5000"; `make bench-agents` sets it), samples the
// server's memory from /proc and reports connected agents, server RSS
// total and per agent, results/s end to end and ack latency. It skips
// without VIGIL_BENCH_AGENTS, so that `go test -bench .` over the server
// does not start thousands of connections by accident.
//
// VIGIL_BENCH_RESULTS sets the results per scan (default 300),
// VIGIL_BENCH_HEARTBEAT the heartbeat interval (default 10s) and
// VIGIL_BENCH_HOLD how long agents stay connected after the last scan
// (default 30s; the steady-state memory is sampled at its end).
func BenchmarkAgentsScale(b *testing.B) {
	spec := os.Getenv("VIGIL_BENCH_AGENTS")
	if spec == "" {
		b.Skip("set VIGIL_BENCH_AGENTS=500,5000 (make bench-agents) to run")
	}
	var sizes []int
	for f := range strings.SplitSeq(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > loadgen.MaxAgents {
			b.Fatalf("VIGIL_BENCH_AGENTS=%q: %q is not a fleet size (1 to %d)", spec, f, loadgen.MaxAgents)
		}
		sizes = append(sizes, n)
	}
	serverBin, lgBin := binaries(b, b.TempDir())
	for _, n := range sizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			// One run whatever b.N: a run is minutes of wall time.
			scaleRun(b, serverBin, lgBin, n)
		})
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func scaleRun(b *testing.B, serverBin, lgBin string, n int) {
	srv := startServer(b, serverBin)
	pid := srv.cmd.Process.Pid
	token, pin := srv.token(b, n)
	time.Sleep(time.Second)
	idle, err := readMemory(pid)
	if err != nil {
		b.Fatal(err)
	}

	hold, err := time.ParseDuration(envOr("VIGIL_BENCH_HOLD", "30s"))
	if err != nil {
		b.Fatalf("VIGIL_BENCH_HOLD: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lgBin, "--server", srv.grpcAddr, "--token", token, "--ca-pin", pin,
		"--agents", strconv.Itoa(n), "--results-per-scan", envOr("VIGIL_BENCH_RESULTS", "300"),
		"--heartbeat", envOr("VIGIL_BENCH_HEARTBEAT", "10s"), "--enroll-parallel", "32",
		"--duration", "25m", "--hold", hold.String(), "--progress", "15s", "--json")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}

	// Sample the server once a second; remember the peak, the sample when
	// every agent is connected, and the last one while they are held.
	var mu sync.Mutex
	var peak, atConnected, held, last memory
	phase := ""
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
			m, err := readMemory(pid)
			if err != nil {
				continue
			}
			mu.Lock()
			peak.RSS = max(peak.RSS, m.RSS)
			last = m
			if phase == string(loadgen.PhaseScansDone) {
				held = m
			}
			mu.Unlock()
		}
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		b.Log(line)
		_, rest, ok := strings.Cut(line, "phase=")
		if !ok {
			continue
		}
		p, _, _ := strings.Cut(rest, " ")
		m, _ := readMemory(pid)
		mu.Lock()
		switch loadgen.Phase(p) {
		case loadgen.PhaseConnected:
			atConnected = m
		case loadgen.PhaseScansDone:
			held = m
		}
		phase = p
		mu.Unlock()
	}
	waitErr := cmd.Wait()
	b.StopTimer()
	close(stopSampling)
	<-sampled
	end, _ := readMemory(pid)
	if held.RSS == 0 {
		// The scans never all finished: the last sample while agents were
		// still connected stands in for the held figure.
		held = last
	}

	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		b.Fatalf("vigil-loadgen: %v; report %q: %v\nserver log:\n%s", waitErr, stdout.String(), err, srv.log())
	}
	perAgent := func(m memory) float64 { return float64(m.RSS) / float64(max(rep.Connected, 1)) }
	b.ReportMetric(float64(rep.Connected), "agents-connected")
	b.ReportMetric(float64(held.RSS)/1024, "server-RSS-MiB")
	b.ReportMetric(perAgent(held), "server-KiB/agent")
	b.ReportMetric(float64(held.RSS-idle.RSS)/float64(max(rep.Connected, 1)), "server-delta-KiB/agent")
	b.ReportMetric(float64(end.HWM)/1024, "server-peak-MiB")
	b.ReportMetric(rep.ResultsPerSecond, "results/s")
	b.ReportMetric(rep.AckP50Ms, "ack-p50-ms")
	b.ReportMetric(rep.AckP95Ms, "ack-p95-ms")
	b.ReportMetric(rep.EnrollPerSecond, "enrol/s")
	b.Logf("agents %d: enrolled %d (%.0f/s), connected %d (failed %d), heartbeats %d sent / %d failed, "+
		"scans %d completed / %d failed, results acked %d",
		n, rep.Enrolled, rep.EnrollPerSecond, rep.Connected, rep.ConnectFailed, rep.HeartbeatsSent, rep.HeartbeatsFailed,
		rep.ScansCompleted, rep.ScansFailed, rep.ResultsAcked)
	b.Logf("server RSS: idle %d KiB; all connected %d KiB; held after scans %d KiB = %.1f KiB/agent (%.1f over idle); "+
		"peak sampled %d KiB, VmHWM %d KiB",
		idle.RSS, atConnected.RSS, held.RSS, perAgent(held), float64(held.RSS-idle.RSS)/float64(max(rep.Connected, 1)),
		peak.RSS, end.HWM)
	b.Logf("results: %.0f/s end to end over %.1fs; ack p50 %.1f ms, p95 %.1f ms, p99 %.1f ms",
		rep.ResultsPerSecond, rep.ResultsSeconds, rep.AckP50Ms, rep.AckP95Ms, rep.AckP99Ms)
	if rep.FirstError != "" {
		b.Logf("first error: %s", rep.FirstError)
	}
	if waitErr != nil || rep.Connected < int64(n) || !rep.AllScansDone {
		b.Errorf("vigil-loadgen: %v: %d of %d connected, all scans done %v\nserver log tail:\n%s",
			waitErr, rep.Connected, n, rep.AllScansDone, srv.log())
	}
	if end.HWM > 1<<20 {
		b.Errorf("server peak memory %d KiB is over the 1 GiB goal at %d agents", end.HWM, n)
	}
}
