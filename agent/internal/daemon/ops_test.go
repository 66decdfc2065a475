package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/config"
	"github.com/vigilfleet/vigil/agent/internal/health"
	"github.com/vigilfleet/vigil/agent/internal/servertest"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// unixGet fetches path from the health endpoint on a unix socket.
func unixGet(t *testing.T, sock, path string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://agent" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric returns the value of the sample line "name value" (name with
// its labels, exactly as exposed), or -1 when absent.
func metric(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

func readyz(t *testing.T, sock string) (int, health.Report) {
	t.Helper()
	code, body, err := unixGet(t, sock, "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	var r health.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, r
}

// TestHealthReadinessAndMetrics: /readyz is 503 naming "connected" while
// the server is down, 200 once connected, 503 again when contact is lost;
// /metrics after a scan shows the counters moved.
func TestHealthReadinessAndMetrics(t *testing.T) {
	f := setup(t)
	addr := f.srv.Addr
	f.srv.Stop()
	sock := filepath.Join(t.TempDir(), "health.sock")
	f.cfg.HealthAddr = "unix:" + sock
	d, _ := f.start(t)

	waitFor(t, 30*time.Second, "/healthz", func() bool {
		code, _, err := unixGet(t, sock, "/healthz")
		return err == nil && code == http.StatusOK
	})
	code, rep := readyz(t, sock)
	if code != http.StatusServiceUnavailable || rep.Ready || len(rep.Failing) != 1 || rep.Failing[0] != "connected" {
		t.Fatalf("/readyz before any connection: %d %+v", code, rep)
	}
	for _, c := range rep.Checks {
		if c.Name != "connected" && !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Detail)
		}
	}

	waitFor(t, time.Minute, "a failed connection attempt", func() bool {
		st, err := (&state.Dir{Path: f.cfg.StateDir}).Status()
		return err == nil && st.LastError != ""
	})
	srv := servertest.StartWithCA(t, f.srv.CA, addr)
	waitFor(t, time.Minute, "/readyz 200 after connecting", func() bool { c, _ := readyz(t, sock); return c == http.StatusOK })

	digest := srv.Publish(bundletest.Signed(t, f.corpus, "2026.12.1", f.priv))
	srv.Assign(&agentpb.Assignment{ScanId: 90, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	srv.Wait(t, 2*time.Minute, "the scan's end", func() bool { return ends(srv)[90] != nil })
	srv.Wait(t, 30*time.Second, "spool emptied", func() bool { n, _ := d.Spool().Stats(); return n == 0 })
	end := ends(srv)[90].GetEnd()

	code, body, err := unixGet(t, sock, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	if v := metric(body, `vigil_agent_scans_total{result="completed"}`); v != 1 {
		t.Errorf("scans completed = %v, want 1", v)
	}
	if v := metric(body, `vigil_agent_scans_total{result="failed"}`); v != 0 {
		t.Errorf("scans failed = %v, want 0", v)
	}
	var rules float64
	for _, s := range []string{"pass", "fail", "skipped", "error"} {
		rules += metric(body, `vigil_agent_rules_evaluated_total{status="`+s+`"}`)
	}
	if end.GetTotal() == 0 || rules != float64(end.GetTotal()) {
		t.Errorf("rules evaluated = %v, scan total %d", rules, end.GetTotal())
	}
	if v := metric(body, `vigil_agent_rules_evaluated_total{status="pass"}`); v != float64(end.GetPass()) {
		t.Errorf("rules passed = %v, scan says %d", v, end.GetPass())
	}
	if v := metric(body, "vigil_agent_scan_duration_seconds_count"); v != 1 {
		t.Errorf("scan duration count = %v", v)
	}
	if v := metric(body, "vigil_agent_reconnects_total"); v < 1 {
		t.Errorf("reconnects = %v, want >= 1 (the first attempts failed)", v)
	}
	if v := metric(body, "vigil_agent_heartbeat_failures_total"); v < 1 {
		t.Errorf("heartbeat failures = %v, want >= 1", v)
	}
	if v := metric(body, "vigil_agent_connected"); v != 1 {
		t.Errorf("connected = %v", v)
	}
	if v := metric(body, "vigil_agent_spool_batches"); v != 0 {
		t.Errorf("spool batches = %v", v)
	}
	if v := metric(body, "vigil_agent_spool_bytes"); v != 0 {
		t.Errorf("spool bytes = %v", v)
	}
	if v := metric(body, "vigil_agent_bundle_refusals_total"); v != 0 {
		t.Errorf("bundle refusals = %v", v)
	}
	cert, _ := (&state.Dir{Path: f.cfg.StateDir}).Certificate()
	if v := metric(body, "vigil_agent_certificate_expiry_timestamp_seconds"); v != float64(cert.NotAfter.Unix()) {
		t.Errorf("certificate expiry = %v, want %d", v, cert.NotAfter.Unix())
	}

	// Contact lost: not ready within two heartbeat intervals (1 s each).
	srv.Stop()
	waitFor(t, 30*time.Second, "/readyz 503 after the server went away", func() bool {
		c, r := readyz(t, sock)
		return c == http.StatusServiceUnavailable && len(r.Failing) == 1 && r.Failing[0] == "connected"
	})
	if v := metric(func() string { _, b, _ := unixGet(t, sock, "/metrics"); return b }(), "vigil_agent_connected"); v != 0 {
		t.Errorf("connected after the server stopped = %v", v)
	}
}

// TestHealthRefusesNonLoopback: the daemon will not serve its
// unauthenticated endpoints on an address others can reach.
func TestHealthRefusesNonLoopback(t *testing.T) {
	f := setup(t)
	f.cfg.HealthAddr = "0.0.0.0:0"
	d, err := New(Options{Config: f.cfg, Hostname: "jump-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := d.Run(ctx); err == nil || !strings.Contains(err.Error(), "health_addr") || !strings.Contains(err.Error(), "not a loopback") {
		t.Errorf("Run with health_addr 0.0.0.0:0: %v", err)
	}
}

// TestShutdownDuringScanLosesNothing cancels the daemon (what SIGTERM
// does) while a scan over SSH runs: the scan finishes within the grace
// period, its batches are flushed before Run returns, each exactly once;
// and when the server refuses them at that moment they stay spooled and
// a restart delivers them exactly once.
func TestShutdownDuringScanLosesNothing(t *testing.T) {
	h := testtarget.Start(t, testtarget.Options{Hostname: "web9"})
	f := setup(t, config.Target{Name: "web9", Address: h.IP(), Port: h.Port(), User: testtarget.RootUser,
		IdentityFile: h.RootKeyFile(), KnownHostsFile: h.KnownHostsFile()})
	digest := f.srv.Publish(bundletest.Signed(t, f.corpus, "2026.12.2", f.priv))
	dir := &state.Dir{Path: f.cfg.StateDir}
	running := func(scan int64) func() bool {
		return func() bool {
			st, err := dir.Status()
			return err == nil && st.LastAssignment != nil && st.LastAssignment.ScanID == scan && st.LastAssignment.Status == "running"
		}
	}
	assertOnce := func(srv *servertest.Server, scan int64) {
		t.Helper()
		seen := map[int64]bool{}
		var maxSeq int64
		for _, b := range srv.Batches() {
			if b.GetScanId() != scan {
				continue
			}
			if seen[b.GetSeq()] {
				t.Errorf("scan %d batch %d arrived twice", scan, b.GetSeq())
			}
			seen[b.GetSeq()] = true
			maxSeq = max(maxSeq, b.GetSeq())
		}
		if int64(len(seen)) != maxSeq || maxSeq == 0 {
			t.Errorf("scan %d: batches %v, want 1..%d without gaps", scan, seen, maxSeq)
		}
		end := ends(srv)[scan].GetEnd()
		if end.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED || int(end.GetTotal()) != results(srv, scan) {
			t.Errorf("scan %d: %v %q, total %d, results received %d", scan, end.GetStatus(), end.GetMessage(), end.GetTotal(), results(srv, scan))
		}
		if _, _, dups := srv.Counts(); dups != 0 {
			t.Errorf("duplicates = %d", dups)
		}
	}

	// Connected at shutdown: flushed before Run returns.
	d, stop := f.start(t)
	f.srv.Assign(&agentpb.Assignment{ScanId: 100, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_SSH, Name: "web9"}})
	waitFor(t, time.Minute, "scan 100 running", running(100))
	stop()
	if ends(f.srv)[100] == nil {
		t.Fatal("the scan running at shutdown was not delivered before Run returned")
	}
	if n, _ := d.Spool().Stats(); n != 0 {
		t.Errorf("%d batches left in the spool after a connected shutdown", n)
	}
	assertOnce(f.srv, 100)
	if st, _ := dir.Status(); st.LastAssignment.Status != "completed" || st.Connected {
		t.Errorf("status after shutdown: %+v", st)
	}

	// The server refuses results at shutdown: they stay spooled, and the
	// next start delivers them once.
	d2, stop2 := f.start(t)
	f.srv.RefuseResults(true)
	f.srv.Assign(&agentpb.Assignment{ScanId: 101, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_SSH, Name: "web9"}})
	waitFor(t, time.Minute, "scan 101 running", running(101))
	stop2()
	if n, _ := d2.Spool().Stats(); n == 0 {
		t.Fatal("spool empty after a shutdown whose flush the server refused")
	}
	if ends(f.srv)[101] != nil {
		t.Fatal("a refused batch was stored")
	}
	f.srv.RefuseResults(false)
	d3, _ := f.start(t)
	f.srv.Wait(t, time.Minute, "scan 101 after restart", func() bool { return ends(f.srv)[101] != nil })
	f.srv.Wait(t, 30*time.Second, "spool emptied", func() bool { n, _ := d3.Spool().Stats(); return n == 0 })
	assertOnce(f.srv, 100)
	assertOnce(f.srv, 101)
}

// TestRenewedCertificateUsedWithoutRestart: after a renewal, the next
// connection presents the new certificate, with no restart of the agent.
func TestRenewedCertificateUsedWithoutRestart(t *testing.T) {
	f := setup(t)
	f.start(t)
	dir := &state.Dir{Path: f.cfg.StateDir}
	old, err := dir.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Wait(t, 30*time.Second, "a heartbeat", func() bool { return len(f.srv.HeartbeatSerials()) > 0 })
	if s := f.srv.HeartbeatSerials()[0]; s != old.SerialNumber.String() {
		t.Fatalf("first connection presented serial %s, enrolled certificate is %s", s, old.SerialNumber)
	}
	f.srv.RequestRenew()
	var renewed string
	f.srv.Wait(t, 30*time.Second, "the renewed certificate on disk", func() bool {
		c, err := dir.Certificate()
		if err != nil || c.SerialNumber.Cmp(old.SerialNumber) == 0 {
			return false
		}
		renewed = c.SerialNumber.String()
		return true
	})
	// A server restart forces a new TLS handshake on the same daemon.
	addr := f.srv.Addr
	f.srv.Stop()
	srv := servertest.StartWithCA(t, f.srv.CA, addr)
	srv.Wait(t, time.Minute, "a heartbeat on the new connection", func() bool { return len(srv.HeartbeatSerials()) > 0 })
	for i, s := range srv.HeartbeatSerials() {
		if s != renewed {
			t.Errorf("heartbeat %d after reconnect presented serial %s, want the renewed %s", i, s, renewed)
		}
	}
}
