package export

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// corpusDir is the repository's rule corpus, relative to this package.
const corpusDir = "../../../rules"

// corpusIndex loads the corpus once per test binary; an Index is immutable.
var corpusIndex = sync.OnceValues(func() (*posture.Index, error) { return posture.LoadIndex(corpusDir) })

// testFramework is the framework the fixture's rules are drawn from.
const testFramework = "nist_800_53"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a real SQLite store with the real corpus, posture with
// governance's waivers, a signer in a temp dir and an exporter.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	idx    *posture.Index
	ps     *posture.Service
	gov    *governance.Service
	clk    *clock
	signer *Signer
	exp    *Exporter
	dir    string

	// What the standard scenario (populate) created.
	web, db    store.Host
	group      store.Group
	rules      []string // rule ids used, all mapped to testFramework
	scanWeb    store.Scan
	hostExc    store.Exception // approved, host web1, rules[1]
	groupExc   store.Exception // approved, group dmz, rules[2]
	rejected   store.Exception // rejected, rules[3]
	beforeAppr time.Time       // a moment after the scans, before any approval
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tt, _ := t.(*testing.T)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	idx, err := corpusIndex()
	if err != nil {
		t.Fatalf("load rule corpus %s: %v", corpusDir, err)
	}
	clk := &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	ps := posture.NewService(st, idx, clk.Now)
	gov, err := governance.New(governance.Config{Store: st, Posture: ps, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ps.SetWaivers(gov)
	signer, err := LoadOrCreateSigner(filepath.Join(dir, "keys", "export-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	exp := New(Deps{Store: st, Posture: ps, Waivers: gov, Signer: signer, Now: clk.Now, ServerName: "vigil.example.test"})
	return &fixture{t: tt, ctx: ctx, st: st, idx: idx, ps: ps, gov: gov, clk: clk, signer: signer, exp: exp, dir: dir}
}

// res builds a result for a corpus rule the way the engine reports it.
func (f *fixture) res(ruleID string, st result.Status, reason string, ev ...result.Evidence) result.Result {
	r := f.idx.Rule(ruleID)
	if r == nil {
		panic("rule " + ruleID + " not in the corpus")
	}
	return result.Result{RuleID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category, Status: st,
		Reason: reason, References: r.References.Pairs(), Evidence: ev, Time: f.clk.Now()}
}

// scan records a completed scan of host with results, as the scheduler
// would (results ingested, scan finished, posture snapshot recorded).
func (f *fixture) scan(tb testing.TB, hostID int64, rs []result.Result) store.Scan {
	tb.Helper()
	at := f.clk.Now()
	sc, err := f.st.CreateScan(f.ctx, store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "test-1", StartedAt: at})
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i*500 < len(rs); i++ {
		end := min((i+1)*500, len(rs))
		if _, err := f.st.Ingest(f.ctx, store.Batch{ScanID: sc.ID, Seq: int64(i + 1), Results: rs[i*500 : end]}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.st.FinishScan(f.ctx, sc.ID, store.ScanCompleted, at.Add(time.Second), result.Summarize(rs)); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.ps.RecordScan(f.ctx, hostID, sc.ID); err != nil {
		tb.Fatal(err)
	}
	sc, err = f.st.Scan(f.ctx, sc.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

// Texts the scenario plants to test escaping, transliteration and
// injection handling.
const (
	injectReason  = "=HYPERLINK(\"http://evil.example/\",\"click\")"
	plusReason    = "+cmd|' /C calc'!A0"
	unicodeJust   = "Legacy payroll app needs this – approved by the CISO “until migration”; 日本語 ✓ Łódź façade"
	markerInOut   = "output mentions vigil-sig:v1: and must not confuse verification"
	longOutputLen = 3000
)

// populate builds the standard scenario: two hosts (web1 in group dmz, db1
// in group core), scans with every status and evidence, a host exception
// and a group exception requested by alice and approved by bob, one
// rejected exception.
func (f *fixture) populate() {
	t := f.t
	ids, ok := f.idx.RuleIDs(testFramework)
	if !ok || len(ids) < 6 {
		t.Fatalf("framework %s maps %d rules; the test needs 6", testFramework, len(ids))
	}
	f.rules = ids[:6]
	var err error
	if f.group, err = f.st.CreateGroup(f.ctx, store.Group{Name: "dmz", CreatedAt: f.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err = f.st.CreateGroup(f.ctx, store.Group{Name: "core", CreatedAt: f.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if f.web, err = f.st.UpsertHost(f.ctx, store.Host{Name: "web1", Address: "10.0.0.5", OS: "debian 12",
		Labels: map[string]string{"env": "prod"}, Groups: []string{"dmz"}}); err != nil {
		t.Fatal(err)
	}
	if f.db, err = f.st.UpsertHost(f.ctx, store.Host{Name: "db1", Address: "2001:db8::1", OS: "rhel 9",
		Groups: []string{"core"}}); err != nil {
		t.Fatal(err)
	}
	exit1 := 1
	long := strings.Repeat("PermitRootLogin yes # ünïcödé ", longOutputLen/30+1)
	ev := func(probe, out string) result.Evidence {
		return result.Evidence{Method: "command", Probe: probe, Stdout: out, ExitCode: &exit1,
			Expected: "no", Actual: "yes", Time: f.clk.Now()}
	}
	r := f.rules
	f.scanWeb = f.scan(t, f.web.ID, []result.Result{
		f.res(r[0], result.Pass, ""),
		f.res(r[1], result.Fail, injectReason, ev("sshd -T | grep -i permitrootlogin", long)),
		f.res(r[2], result.Fail, plusReason, ev("stat -c %a /etc/shadow", markerInOut)),
		f.res(r[3], result.Fail, "failing, no exception", ev("cat /etc/issue", "Ubuntu 日本語")),
		f.res(r[4], result.Error, "probe timed out"),
		f.res(r[5], result.Skipped, "not applicable"),
	})
	f.clk.Add(time.Minute)
	f.scan(t, f.db.ID, []result.Result{
		f.res(r[0], result.Pass, ""),
		f.res(r[1], result.Fail, "fails on db too", ev("sshd -T", "permitrootlogin yes")),
		f.res(r[2], result.Fail, "group exception does not cover core"),
		f.res(r[3], result.Pass, ""),
	})
	f.clk.Add(30 * time.Minute)
	f.beforeAppr = f.clk.Now()
	f.clk.Add(30 * time.Minute)
	f.hostExc = f.exception(governance.ExceptionRequest{RuleID: r[1], HostID: f.web.ID, Justification: unicodeJust,
		ExpiresAt: f.clk.Now().Add(90 * 24 * time.Hour)}, store.ExceptionApproved)
	f.groupExc = f.exception(governance.ExceptionRequest{RuleID: r[2], GroupID: f.group.ID,
		Justification: "Compensating control: file integrity monitoring on the dmz hosts."}, store.ExceptionApproved)
	f.rejected = f.exception(governance.ExceptionRequest{RuleID: r[3],
		Justification: "Please accept this fleet-wide, we have no time."}, store.ExceptionRejected)
	f.clk.Add(time.Hour)
}

// exception requests as alice and decides as bob.
func (f *fixture) exception(req governance.ExceptionRequest, to store.ExceptionState) store.Exception {
	f.t.Helper()
	x, err := f.gov.RequestException(f.ctx, "alice", req)
	if err != nil {
		f.t.Fatalf("request exception %+v: %v", req, err)
	}
	f.clk.Add(time.Minute)
	x, err = f.gov.DecideException(f.ctx, "bob", x.ID, to, "reviewed")
	if err != nil {
		f.t.Fatalf("decide exception %d: %v", x.ID, err)
	}
	return x
}

// export renders and fails the test on error.
func (f *fixture) export(s Scope, fm Format) File {
	f.t.Helper()
	file, err := f.exp.Export(f.ctx, s, fm, "carol")
	if err != nil {
		f.t.Fatalf("export %s %+v: %v", fm, s, err)
	}
	if _, err := Verify(file.Body, f.signer.PublicKey()); err != nil {
		f.t.Fatalf("export %s %+v does not verify: %v", fm, s, err)
	}
	return file
}

func hostScope(id int64) Scope { return Scope{HostID: id} }

func (f *fixture) ruleTitle(id string) string { return f.idx.Rule(id).Title }

func fmtID(id int64) string { return fmt.Sprint(id) }
