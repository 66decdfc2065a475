package loadgen_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/loadgen"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// TestRunAgainstServer runs a small fleet against a real vigil-server
// process: every agent enrols, connects, heartbeats and reports a scan of
// three batches, and the server's store holds each scan completed with
// every result.
func TestRunAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vigil-server")
	}
	serverBin, _ := binaries(t, t.TempDir())
	srv := startServer(t, serverBin)
	const agents, perScan = 4, 1100 // batches of 500, 500, 100
	token, pin := srv.token(t, agents)
	var phases []loadgen.Phase
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadgen.Run(ctx, loadgen.Config{Server: srv.grpcAddr, Token: token, CAPin: pin, Agents: agents,
		ResultsPerScan: perScan, Duration: 90 * time.Second, Hold: 300 * time.Millisecond, Heartbeat: 100 * time.Millisecond,
		OnPhase: func(p loadgen.Phase, _ loadgen.Progress) { phases = append(phases, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrolled != agents || rep.Connected != agents || rep.ScansCompleted != agents || !rep.AllScansDone ||
		rep.ResultsAcked != agents*perScan || rep.BatchesAcked != agents*3 || rep.BatchErrors != 0 || rep.FirstError != "" {
		t.Errorf("report: %+v", rep)
	}
	if rep.HeartbeatsSent < agents || rep.HeartbeatsFailed != 0 {
		t.Errorf("heartbeats: %d sent, %d failed", rep.HeartbeatsSent, rep.HeartbeatsFailed)
	}
	if rep.ResultsPerSecond <= 0 || rep.AckP50Ms <= 0 || rep.AckP95Ms < rep.AckP50Ms {
		t.Errorf("figures: %.0f results/s, p50 %.1f ms, p95 %.1f ms", rep.ResultsPerSecond, rep.AckP50Ms, rep.AckP95Ms)
	}
	want := []loadgen.Phase{loadgen.PhaseEnrolled, loadgen.PhaseConnected, loadgen.PhaseScansDone, loadgen.PhaseHoldEnd}
	if strings.Join(phaseNames(phases), ",") != strings.Join(phaseNames(want), ",") {
		t.Errorf("phases %v, want %v", phases, want)
	}

	// What the agents were told was acknowledged is in the server's rows.
	st, err := sqlite.Open(ctx, filepath.Join(srv.dataDir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scans, err := st.Scans(ctx, store.ScanFilter{Status: store.ScanCompleted})
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) != agents {
		t.Fatalf("%d completed scans in the store, want %d", len(scans), agents)
	}
	for _, sc := range scans {
		rs, err := st.ScanResults(ctx, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != perScan {
			t.Errorf("scan %d: %d results stored, want %d", sc.ID, len(rs), perScan)
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]loadgen.Config{
		"no server":   {Token: "vjt_x", CAPin: "sha256:00", Agents: 1, Duration: time.Second},
		"no token":    {Server: "127.0.0.1:1", CAPin: "sha256:00", Agents: 1, Duration: time.Second},
		"no agents":   {Server: "127.0.0.1:1", Token: "vjt_x", CAPin: "sha256:00", Duration: time.Second},
		"no duration": {Server: "127.0.0.1:1", Token: "vjt_x", CAPin: "sha256:00", Agents: 1},
	} {
		if _, err := loadgen.Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func phaseNames(ps []loadgen.Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
