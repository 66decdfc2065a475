package daemon

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/config"
	"github.com/vigilfleet/vigil/agent/internal/enroll"
	"github.com/vigilfleet/vigil/agent/internal/servertest"
	"github.com/vigilfleet/vigil/agent/internal/spool"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// fixture is an enrolled agent and the server it talks to.
type fixture struct {
	srv    *servertest.Server
	cfg    *config.Config
	priv   ed25519.PrivateKey
	corpus string
}

func setup(t *testing.T, targets ...config.Target) *fixture {
	t.Helper()
	srv := servertest.Start(t)
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := enroll.Enroll(t.Context(), enroll.Options{Server: srv.Addr, Token: srv.Token, CAPin: srv.CA.Pin(),
		StateDir: dir, Hostname: "jump-1"}); err != nil {
		t.Fatal(err)
	}
	_, priv, pubFile := bundletest.Keys(t)
	cfg := config.Default()
	cfg.StateDir = dir
	cfg.TrustedBundleKeys = []string{pubFile}
	cfg.Targets = targets
	cfg.HeartbeatInterval = time.Second
	return &fixture{srv: srv, cfg: cfg, priv: priv, corpus: bundletest.Corpus(t, "ssh-", "accounts-no-")}
}

// start runs a daemon until the returned stop is called (or the test ends).
func (f *fixture) start(t *testing.T) (d *Daemon, stop func()) {
	t.Helper()
	d, err := New(Options{Config: f.cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BackoffBase: 20 * time.Millisecond, ShutdownGrace: 20 * time.Second, Hostname: "jump-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

func ends(srv *servertest.Server) map[int64]*agentpb.ResultBatch {
	out := map[int64]*agentpb.ResultBatch{}
	for _, b := range srv.Batches() {
		if b.GetEnd() != nil {
			out[b.GetScanId()] = b
		}
	}
	return out
}

func results(srv *servertest.Server, scan int64) int {
	n := 0
	for _, b := range srv.Batches() {
		if b.GetScanId() == scan {
			n += len(b.GetResults())
		}
	}
	return n
}

func TestJumpBoxAndLocalScan(t *testing.T) {
	h := testtarget.Start(t, testtarget.Options{Hostname: "web1"})
	f := setup(t, config.Target{Name: "web1", Address: h.IP(), Port: h.Port(), User: testtarget.RootUser,
		IdentityFile: h.RootKeyFile(), KnownHostsFile: h.KnownHostsFile()})
	d, _ := f.start(t)
	digest := f.srv.Publish(bundletest.Signed(t, f.corpus, "2026.11.1", f.priv))
	f.srv.Assign(&agentpb.Assignment{ScanId: 1, HostId: 10, BundleDigest: digest, BundleVersion: "2026.11.1",
		Target: &agentpb.Target{Kind: agentpb.Target_KIND_SSH, Name: "web1"}})
	f.srv.Assign(&agentpb.Assignment{ScanId: 2, HostId: 11, BundleDigest: digest, BundleVersion: "2026.11.1",
		Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	f.srv.Assign(&agentpb.Assignment{ScanId: 3, HostId: 12, BundleDigest: digest,
		Target: &agentpb.Target{Kind: agentpb.Target_KIND_SSH, Name: "not-configured"}})
	f.srv.Wait(t, 2*time.Minute, "three scan ends", func() bool { return len(ends(f.srv)) == 3 })

	e := ends(f.srv)
	for _, id := range []int64{1, 2} {
		end := e[id].GetEnd()
		if end.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED {
			t.Fatalf("scan %d: %v %s", id, end.GetStatus(), end.GetMessage())
		}
		if end.GetTotal() == 0 || int(end.GetTotal()) != results(f.srv, id) ||
			end.GetPass()+end.GetFail()+end.GetSkipped()+end.GetError() != end.GetTotal() {
			t.Errorf("scan %d: counts %+v for %d results", id, end, results(f.srv, id))
		}
		if end.GetInventory() == nil || len(end.GetInventory().GetPackages()) == 0 {
			t.Errorf("scan %d: no inventory", id)
		}
	}
	if p := e[1].GetEnd().GetPlatform(); p != "debian 12" {
		t.Errorf("ssh target platform = %q", p)
	}
	var sawSSHD bool
	for _, p := range e[1].GetEnd().GetInventory().GetPorts() {
		sawSSHD = sawSSHD || (p.GetPort() == int32(h.Port()) && p.GetAddress() == h.IP())
	}
	if !sawSSHD {
		t.Errorf("target inventory lacks sshd's listener %s", h.Addr())
	}
	// Evidence travels with the results.
	var evidence int
	for _, b := range f.srv.Batches() {
		for _, r := range b.GetResults() {
			evidence += len(r.GetEvidence())
		}
	}
	if evidence == 0 {
		t.Error("no evidence in any result")
	}
	if end := e[3].GetEnd(); end.GetStatus() != agentpb.ScanEnd_STATUS_FAILED ||
		!strings.Contains(end.GetMessage(), `target "not-configured" is not in this agent's targets`) {
		t.Errorf("unknown target: %v %q", end.GetStatus(), end.GetMessage())
	}
	if fetches, _, dups := f.srv.Counts(); fetches != 1 || dups != 0 {
		t.Errorf("fetches = %d (want 1: cached after the first), duplicates = %d", fetches, dups)
	}
	f.srv.Wait(t, 30*time.Second, "spool emptied by acks", func() bool { n, _ := d.Spool().Stats(); return n == 0 })
	f.srv.Wait(t, 30*time.Second, "a heartbeat with the bundle and targets", func() bool {
		hb := f.srv.Heartbeats()
		last := hb[len(hb)-1]
		return last.GetBundleDigest() == digest && len(last.GetTargets()) == 1 && last.GetTargets()[0].GetName() == "web1" &&
			last.GetHostname() == "jump-1" && last.GetAgentVersion() != ""
	})
	st, err := (&state.Dir{Path: f.cfg.StateDir}).Status()
	if err != nil || !st.Connected || st.LastAssignment == nil || st.BundleVersion != "2026.11.1" {
		t.Errorf("status.json = %+v, %v", st, err)
	}
}

func TestBundleRefusedIsReported(t *testing.T) {
	f := setup(t)
	f.start(t)
	now := time.Now()
	unsigned := bundletest.Build(t, f.corpus, "2026.11.2", now.Add(-time.Hour), now.Add(time.Hour))
	digest := f.srv.Publish(unsigned)
	f.srv.Assign(&agentpb.Assignment{ScanId: 5, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	f.srv.Wait(t, time.Minute, "the failed scan", func() bool { return ends(f.srv)[5] != nil })
	end := ends(f.srv)[5].GetEnd()
	if end.GetStatus() != agentpb.ScanEnd_STATUS_FAILED || !strings.Contains(end.GetMessage(), "bundle is not signed") {
		t.Fatalf("end = %v %q", end.GetStatus(), end.GetMessage())
	}
	var ev *agentpb.AgentEvent
	f.srv.Wait(t, 30*time.Second, "a bundle_refused event", func() bool {
		for _, hb := range f.srv.Heartbeats() {
			for _, e := range hb.GetEvents() {
				if e.GetKind() == EventBundleRefused {
					ev = e
				}
			}
		}
		return ev != nil
	})
	if ev.GetMessage() != end.GetMessage() || ev.GetBundleDigest() != digest {
		t.Errorf("event %q (%s), want the scan's error %q (%s)", ev.GetMessage(), ev.GetBundleDigest(), end.GetMessage(), digest)
	}
	if c := (&state.Dir{Path: f.cfg.StateDir}).File(state.BundlesDir); fileExists(filepath.Join(c, strings.TrimPrefix(digest, "sha256:")+".tar")) {
		t.Error("refused bundle cached")
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestSpoolReplayedFirstAndDeletedOnlyOnAck(t *testing.T) {
	f := setup(t)
	// Batches left by an earlier run (or a crash) are in the spool.
	sp, err := spool.Open((&state.Dir{Path: f.cfg.StateDir}).File(state.SpoolDir), f.cfg.SpoolMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 3; seq++ {
		b := &agentpb.ResultBatch{ScanId: 40, Seq: seq, Results: []*agentpb.Result{{RuleId: "r", Status: "pass"}}}
		if seq == 3 {
			b.End = &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED, Total: 3, Pass: 3}
		}
		if err := sp.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	// The server cuts every result stream after one batch, unacknowledged.
	f.srv.DropAfter(1)
	digest := f.srv.Publish(bundletest.Signed(t, f.corpus, "2026.11.3", f.priv))
	f.srv.Assign(&agentpb.Assignment{ScanId: 41, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	d, _ := f.start(t)
	f.srv.Wait(t, 2*time.Minute, "every batch", func() bool { return len(ends(f.srv)) == 2 })
	var got []servertest.Key
	for _, b := range f.srv.Batches() {
		got = append(got, servertest.Key{Scan: b.GetScanId(), Seq: b.GetSeq()})
	}
	if len(got) < 4 || got[0] != (servertest.Key{Scan: 40, Seq: 1}) || got[1] != (servertest.Key{Scan: 40, Seq: 2}) ||
		got[2] != (servertest.Key{Scan: 40, Seq: 3}) || got[3].Scan != 41 {
		t.Errorf("arrival order %v: the old spool must be replayed, in order, before new work", got)
	}
	f.srv.Wait(t, 30*time.Second, "spool emptied", func() bool { n, _ := d.Spool().Stats(); return n == 0 })
	if _, _, dups := f.srv.Counts(); dups != 0 {
		t.Errorf("duplicates = %d", dups)
	}
}

func TestSpoolFullIsReported(t *testing.T) {
	f := setup(t)
	f.cfg.SpoolMaxBytes = 2000 // far too small for a scan's results
	f.start(t)
	digest := f.srv.Publish(bundletest.Signed(t, f.corpus, "2026.11.4", f.priv))
	f.srv.Assign(&agentpb.Assignment{ScanId: 50, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	f.srv.Wait(t, 2*time.Minute, "the failed scan", func() bool { return ends(f.srv)[50] != nil })
	end := ends(f.srv)[50].GetEnd()
	if end.GetStatus() != agentpb.ScanEnd_STATUS_FAILED || !strings.Contains(end.GetMessage(), "spool is full") {
		t.Errorf("end = %v %q", end.GetStatus(), end.GetMessage())
	}
	f.srv.Wait(t, 30*time.Second, "a spool_full event", func() bool {
		for _, hb := range f.srv.Heartbeats() {
			for _, e := range hb.GetEvents() {
				if e.GetKind() == EventSpoolFull && strings.Contains(e.GetMessage(), "cap of 2000") {
					return true
				}
			}
		}
		return false
	})
}

func TestRestartLosesNothingAndRenews(t *testing.T) {
	f := setup(t)
	d, stop := f.start(t)
	digest := f.srv.Publish(bundletest.Signed(t, f.corpus, "2026.11.5", f.priv))
	// The server is gone while the scan runs: the result stays in the spool.
	f.srv.Assign(&agentpb.Assignment{ScanId: 60, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	f.srv.RefuseResults(true)
	f.srv.Wait(t, 2*time.Minute, "the scan spooled", func() bool { n, _ := d.Spool().Stats(); return n > 0 })
	stop()
	if n, _ := d.Spool().Stats(); n == 0 {
		t.Fatal("spool empty after a stop without acks")
	}
	if len(ends(f.srv)) != 0 {
		t.Fatal("a batch was stored though the server refused it")
	}
	f.srv.RefuseResults(false)
	oldCert, _ := (&state.Dir{Path: f.cfg.StateDir}).Certificate()
	f.srv.RequestRenew()
	d2, _ := f.start(t)
	f.srv.Wait(t, time.Minute, "the spooled scan after restart", func() bool { return ends(f.srv)[60] != nil })
	f.srv.Wait(t, 30*time.Second, "spool emptied", func() bool { n, _ := d2.Spool().Stats(); return n == 0 })
	f.srv.Wait(t, 30*time.Second, "renewal", func() bool { _, r, _ := f.srv.Counts(); return r == 1 })
	f.srv.Wait(t, 30*time.Second, "renewed certificate on disk", func() bool {
		c, err := (&state.Dir{Path: f.cfg.StateDir}).Certificate()
		return err == nil && c.SerialNumber.Cmp(oldCert.SerialNumber) != 0
	})
	if _, err := (&state.Dir{Path: f.cfg.StateDir}).TLSCertificate(); err != nil {
		t.Errorf("renewed key and certificate do not pair: %v", err)
	}
	if _, _, dups := f.srv.Counts(); dups != 0 {
		t.Errorf("duplicates = %d", dups)
	}
}
