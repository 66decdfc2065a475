package importer

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
	"github.com/vigilfleet/vigil/shared/resultsarchive"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// corpus is the repository's rule index, loaded once (seconds under -race).
var corpus = sync.OnceValues(func() (*posture.Index, error) { return posture.LoadIndex("../../../rules") })

// drivers runs fn against a fresh SQLite and a fresh PostgreSQL store.
func drivers(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.DB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
}

var now = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// fixture is a server (store, CA, posture) with one enrolled agent.
type fixture struct {
	t     *testing.T
	st    store.Store
	ca    *pki.CA
	post  *posture.Service
	agent store.Agent
	rules []string // corpus rule ids results use
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := corpus()
	if err != nil {
		t.Fatal(err)
	}
	ag, err := st.UpsertAgent(context.Background(), store.Agent{Name: "edge1", Status: store.AgentActive, EnrolledAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, ca: ca, post: posture.NewService(st, idx, func() time.Time { return now }), agent: ag}
	for _, r := range idx.Rules()[:3] {
		f.rules = append(f.rules, r.ID)
	}
	return f
}

// cert issues a client certificate for (id, name) from ca, with a new key.
func (f *fixture) cert(ca *pki.CA, id int64, name string) ([]byte, crypto.Signer) {
	f.t.Helper()
	key, _, err := pki.NewKey()
	if err != nil {
		f.t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		f.t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClient(csr, id, name, 24*time.Hour, now.Add(-time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	return certPEM, key
}

// archive builds an offline scan of host by the fixture's agent: n results
// (the corpus rules first, then synthetic ones), an inventory with pkgs.
func (f *fixture) archive(id, host string, created time.Time, n int, pkgs ...string) *agentpb.ResultsArchive {
	a := &agentpb.ResultsArchive{
		AgentId: f.agent.ID, AgentName: f.agent.Name, Hostname: host, BundleVersion: "2026.11.1",
		BundleDigest: "sha256:00", Created: timestamppb.New(created), ArchiveId: id,
		End: &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED, Started: timestamppb.New(created.Add(-time.Minute)),
			Finished: timestamppb.New(created), Platform: "debian 12",
			Inventory: &agentpb.HostInventory{Os: "Debian GNU/Linux 12", Kernel: "6.1.0",
				Ports: []*agentpb.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"}}}},
	}
	for _, p := range pkgs {
		a.End.Inventory.Packages = append(a.End.Inventory.Packages, &agentpb.Package{Name: p, Version: "1.0", Arch: "amd64"})
	}
	for i := range n {
		ruleID := fmt.Sprintf("offline_rule_%04d", i)
		if i < len(f.rules) {
			ruleID = f.rules[i]
		}
		st := "pass"
		if i%3 == 1 {
			st = "fail"
		}
		a.Results = append(a.Results, &agentpb.Result{RuleId: ruleID, Severity: "medium", Status: st, Reason: "offline",
			Time: timestamppb.New(created), References: []*agentpb.Ref{{Framework: "cis", Control: "1.1"}},
			Evidence: []*agentpb.Evidence{{Method: "file_content", Probe: "/etc/x", Actual: st, HasExitCode: true, ExitCode: 1,
				Time: timestamppb.New(created)}}})
	}
	return a
}

// write signs a with the agent's certificate and key (a fresh one of the
// fixture's agent when certPEM is nil).
func (f *fixture) write(a *agentpb.ResultsArchive, certPEM []byte, key crypto.Signer) []byte {
	f.t.Helper()
	if certPEM == nil {
		certPEM, key = f.cert(f.ca, f.agent.ID, f.agent.Name)
	}
	var buf bytes.Buffer
	if err := resultsarchive.Write(&buf, a, key, certPEM); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) imp(data []byte) (Report, error) {
	f.t.Helper()
	return Import(context.Background(), f.st, f.post, f.ca, data, now)
}

func (f *fixture) auditCount() int {
	f.t.Helper()
	es, err := f.st.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(es)
}

// state is everything an import may change, to compare before and after.
func (f *fixture) state(hostID int64) string {
	f.t.Helper()
	ctx := context.Background()
	scans, err := f.st.Scans(ctx, store.ScanFilter{HostID: hostID})
	if err != nil {
		f.t.Fatal(err)
	}
	var b strings.Builder
	for _, sc := range scans {
		rs, err := f.st.ScanResults(ctx, sc.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "scan %d %s %s %d results; ", sc.ID, sc.Status, sc.Trigger, len(rs))
	}
	h, err := f.st.Host(ctx, hostID)
	if err != nil {
		f.t.Fatal(err)
	}
	ch, err := f.st.FactChanges(ctx, hostID, time.Time{}, now.Add(time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	fmt.Fprintf(&b, "host %s %.1f %s last %s; %d fact changes; %d audit", h.Name, h.Score, h.Band, h.LastScanAt, len(ch), f.auditCount())
	return b.String()
}

func TestImportOnce(t *testing.T) {
	drivers(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		const n = 1201 // three store batches
		data := f.write(f.archive("a1", "edge1", now.Add(-time.Hour), n, "openssh-server"), nil, nil)
		rep, err := f.imp(data)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Already || rep.Results != n || rep.Status != store.ScanCompleted || rep.AgentID != f.agent.ID ||
			rep.HostName != "edge1" || rep.HostID == 0 || rep.ScanID == 0 || rep.Band == "" || !strings.HasPrefix(rep.Digest, "sha256:") {
			t.Fatalf("report %+v", rep)
		}
		sc, err := st.Scan(ctx, rep.ScanID)
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := result.Summary{Total: n, Pass: n - n/3, Fail: n / 3}
		if sc.Trigger != TriggerImport || sc.Status != store.ScanCompleted || sc.BundleVersion != "2026.11.1" ||
			sc.Counts != wantCounts || !sc.FinishedAt.Equal(now.Add(-time.Hour)) || !sc.StartedAt.Equal(now.Add(-61*time.Minute)) {
			t.Errorf("scan %+v, want counts %+v", sc, wantCounts)
		}
		rs, err := st.ScanResults(ctx, rep.ScanID)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != n || rs[0].RuleID != f.rules[0] || rs[1].Status != result.Fail || rs[0].EvidenceHash == "" {
			t.Errorf("%d results stored, first %+v", len(rs), rs[0])
		}
		h, err := st.Host(ctx, rep.HostID)
		if err != nil {
			t.Fatal(err)
		}
		if h.AgentID != f.agent.ID || h.OS != "debian 12" || h.Band != rep.Band || !h.LastScanAt.Equal(now.Add(-time.Hour)) {
			t.Errorf("host %+v, want under agent %d with the scan's posture", h, f.agent.ID)
		}
		facts, err := st.Facts(ctx, rep.HostID)
		if err != nil {
			t.Fatal(err)
		}
		if facts.Kernel != "6.1.0" || len(facts.Packages) != 1 || facts.Packages[0].Name != "openssh-server" || len(facts.Ports) != 1 {
			t.Errorf("facts %+v", facts)
		}
		es, err := st.Audit(ctx, store.AuditFilter{Action: "results.import", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 || es[0].Actor != "cli" || es[0].Target != fmt.Sprintf("scan/%d", rep.ScanID) || !strings.Contains(es[0].Detail, rep.Digest) {
			t.Errorf("audit entries %+v", es)
		}

		// The same file again changes nothing.
		before := f.state(rep.HostID)
		again, err := f.imp(data)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Already || again.ScanID != rep.ScanID || again.HostID != rep.HostID {
			t.Errorf("second import %+v, want Already with scan %d", again, rep.ScanID)
		}
		if after := f.state(rep.HostID); after != before {
			t.Errorf("second import changed the store:\nbefore %s\nafter  %s", before, after)
		}

		// A later archive with the same inventory: a new scan, no inventory
		// change; one with a new package: one change.
		r2, err := f.imp(f.write(f.archive("a2", "edge1", now.Add(-30*time.Minute), 5, "openssh-server"), nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		r3, err := f.imp(f.write(f.archive("a3", "edge1", now.Add(-20*time.Minute), 5, "openssh-server", "nginx"), nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		if r2.ScanID == rep.ScanID || r2.FactChanges != 0 || r3.FactChanges != 1 {
			t.Errorf("later imports: %+v / %+v; want new scans, 0 then 1 inventory change", r2, r3)
		}
		ch, _ := st.FactChanges(ctx, rep.HostID, time.Time{}, now)
		if len(ch) != 1 || ch[0].Item != "nginx:amd64" || ch[0].Change != store.ChangeAdded {
			t.Errorf("fact changes %+v", ch)
		}
	})
}

func TestImportRefusals(t *testing.T) {
	drivers(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		good := f.archive("ok", "edge1", now.Add(-time.Hour), 4)

		foreign, err := pki.LoadOrCreateCA(t.TempDir(), now.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		foreignPEM, foreignKey := f.cert(foreign, f.agent.ID, f.agent.Name)
		unknownPEM, unknownKey := f.cert(f.ca, f.agent.ID+100, "ghost")
		misnamedPEM, misnamedKey := f.cert(f.ca, f.agent.ID, "impostor")

		revoked, err := st.UpsertAgent(ctx, store.Agent{Name: "gone", Status: store.AgentRevoked, EnrolledAt: now.Add(-time.Hour), RevokedAt: now.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		revokedPEM, revokedKey := f.cert(f.ca, revoked.ID, "gone")
		revokedArchive := f.archive("rv", "gone-host", now.Add(-time.Hour), 4)
		revokedArchive.AgentId, revokedArchive.AgentName = revoked.ID, "gone"

		other, err := st.UpsertAgent(ctx, store.Agent{Name: "edge2", Status: store.AgentActive, EnrolledAt: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpsertHost(ctx, store.Host{Name: "owned", AgentID: other.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpsertHost(ctx, store.Host{Name: "agentless", Address: "127.0.0.9"}); err != nil {
			t.Fatal(err)
		}

		tampered := f.write(good, nil, nil)
		if i := bytes.Index(tampered, []byte("offline")); i < 0 {
			t.Fatal("no result text in the archive")
		} else {
			tampered[i] = 'O'
		}
		as := func(id int64, name string) *agentpb.ResultsArchive {
			a := f.archive("as-"+name, "edge1", now.Add(-time.Hour), 4)
			a.AgentId, a.AgentName = id, name
			return a
		}
		claimsOther := f.archive("co", "edge1", now.Add(-time.Hour), 4)
		claimsOther.AgentId = other.ID
		badStatus := f.archive("bs", "edge1", now.Add(-time.Hour), 4)
		badStatus.Results[2].Status = "maybe"
		noHost := f.archive("nh", "", now.Add(-time.Hour), 4)

		cases := []struct {
			name string
			data []byte
			want error  // besides ErrRefused
			msg  string // in the error
		}{
			{"garbage", []byte("not an archive"), resultsarchive.ErrMalformed, ""},
			{"tampered", tampered, resultsarchive.ErrSignature, ""},
			{"foreign CA", f.write(good, foreignPEM, foreignKey), resultsarchive.ErrChain, "CA"},
			{"unknown agent", f.write(as(f.agent.ID+100, "ghost"), unknownPEM, unknownKey), nil, "not enrolled"},
			{"renamed agent", f.write(as(f.agent.ID, "impostor"), misnamedPEM, misnamedKey), nil, fmt.Sprintf(`names agent %d "impostor", but that agent is "edge1"`, f.agent.ID)},
			{"revoked agent", f.write(revokedArchive, revokedPEM, revokedKey), nil, "revoked"},
			{"claims another agent", f.write(claimsOther, nil, nil), nil, "claims agent"},
			{"host of another agent", f.write(f.archive("ho", "owned", now.Add(-time.Hour), 4), nil, nil), nil, fmt.Sprintf("agent %d", other.ID)},
			{"agentless host", f.write(f.archive("al", "agentless", now.Add(-time.Hour), 4), nil, nil), nil, "agentless"},
			{"unknown status", f.write(badStatus, nil, nil), nil, `unknown status "maybe"`},
			{"no hostname", f.write(noHost, nil, nil), nil, "no hostname"},
		}
		for _, c := range cases {
			_, err := f.imp(c.data)
			if !errors.Is(err, ErrRefused) || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: err = %v; want ErrRefused, %v and %q", c.name, err, c.want, c.msg)
			}
		}
		// Nothing was written by any refusal.
		hosts, err := st.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		scans, err := st.Scans(ctx, store.ScanFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 2 || len(scans) != 0 || f.auditCount() != 0 {
			t.Errorf("refusals left %d hosts, %d scans, %d audit entries", len(hosts), len(scans), f.auditCount())
		}
		// The good archive, untouched, still imports.
		if _, err := f.imp(f.write(good, nil, nil)); err != nil {
			t.Errorf("good archive after the refusals: %v", err)
		}
	})
}

// An import interrupted after its scan was recorded completes in that
// scan; a failed offline scan is recorded as failed, without posture.
func TestImportResumeAndFailedScan(t *testing.T) {
	drivers(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		data := f.write(f.archive("r1", "edge1", now.Add(-time.Hour), 7), nil, nil)
		h, err := st.UpsertHost(ctx, store.Host{Name: "edge1", AgentID: f.agent.ID})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: TriggerImport, StartedAt: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		// What the interrupted attempt got done: its record and one batch.
		a, err := resultsarchive.Read(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordImport(ctx, store.ImportRecord{Digest: a.Digest, HostID: h.ID, ScanID: sc.ID, AgentID: f.agent.ID, StartedAt: now}); err != nil {
			t.Fatal(err)
		}
		var batch []result.Result
		for _, p := range a.Archive.Results {
			r, err := ResultFromProto(p, "edge1")
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, r)
		}
		if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: batch}); err != nil {
			t.Fatal(err)
		}
		rep, err := f.imp(data)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Already || rep.ScanID != sc.ID {
			t.Errorf("resumed import %+v, want it completed in scan %d", rep, sc.ID)
		}
		got, err := st.Scan(ctx, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Batch 1 was applied before and is not applied again.
		rs, _ := st.ScanResults(ctx, sc.ID)
		if got.Status != store.ScanCompleted || len(rs) != 7 || got.Counts.Total != 7 {
			t.Errorf("resumed scan %+v with %d results", got, len(rs))
		}
		if again, err := f.imp(data); err != nil || !again.Already {
			t.Errorf("import after resume: %+v, %v; want Already", again, err)
		}

		failed := f.archive("f1", "edge1", now.Add(-10*time.Minute), 0)
		failed.End.Status = agentpb.ScanEnd_STATUS_FAILED
		failed.End.Message = "engine: no rules selected"
		rep, err = f.imp(f.write(failed, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		got, err = st.Scan(ctx, rep.ScanID)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != store.ScanFailed || got.Status != store.ScanFailed || got.Message != "engine: no rules selected" || rep.Band != "" {
			t.Errorf("failed offline scan: report %+v, scan %+v", rep, got)
		}
	})
}
