package governance

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// corpusDir is the repository's rule corpus, relative to this package.
const corpusDir = "../../../rules"

// testFramework is a framework of the corpus that maps only part of it.
const testFramework = "pci_dss_4"

func loadCorpus(t testing.TB) *posture.Index {
	t.Helper()
	x, err := posture.LoadIndex(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// forEachStore runs fn against a fresh store of both drivers: the key
// cases must hold on PostgreSQL as on SQLite.
func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgres(t)) })
}

// clock is a settable test clock, safe for the Run goroutine.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// event is one notification a recorder received.
type event struct {
	Event string
	Alert store.Alert
}

// recorder is a Sink keeping what it is told.
type recorder struct {
	mu      sync.Mutex
	events  []event
	batches int
}

func (r *recorder) NotifyAll(_ context.Context, evs []Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	for _, e := range evs {
		r.events = append(r.events, event{e.Name, e.Alert})
	}
}

// calls returns how many batches the sink was handed so far.
func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches
}

// take returns the events received since the last take.
func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// env is a governance service over a real store, with the posture
// service it applies exceptions to, a test clock and a recording sink.
type env struct {
	st     store.Store
	x      *posture.Index
	clk    *clock
	post   *posture.Service
	gov    *Service
	sink   *recorder
	mu     sync.Mutex
	counts []map[store.AlertState]int
}

// base is the test's starting moment: the store stamps a new host's first
// scan time with the wall clock, so the test clock starts there too.
func base() time.Time { return time.Now().UTC().Truncate(time.Second) }

func newEnv(t *testing.T, st store.Store, x *posture.Index, th Thresholds) *env {
	t.Helper()
	e := &env{st: st, x: x, clk: &clock{t: base()}, sink: &recorder{}}
	e.post = posture.NewService(st, x, e.clk.Now)
	// Tests step the clock a minute between evaluations; a one-minute
	// refresh records every sighting, so Count and LastSeenAt show each
	// evaluation. testSteadyStateWritesNothing covers the default.
	gov, err := New(Config{Store: st, Posture: e.post, Sink: e.sink, Now: e.clk.Now, Thresholds: th, SightingRefresh: time.Minute,
		OnEvaluate: func(c map[store.AlertState]int) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.counts = append(e.counts, c)
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.gov = gov
	e.post.SetWaivers(gov)
	return e
}

func (e *env) host(t *testing.T, name string, labels map[string]string, groups ...string) store.Host {
	t.Helper()
	h, err := e.st.UpsertHost(context.Background(), store.Host{Name: name, Address: "127.0.0.2", OS: "debian 12", Labels: labels, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *env) group(t *testing.T, name string) store.Group {
	t.Helper()
	g, err := e.st.CreateGroup(context.Background(), store.Group{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// obs is one rule's verdict in a test scan.
type obs struct {
	rule   string
	status result.Status
	sev    rule.Severity
}

// scan records a finished scan of host h at `at` reporting rs, each
// result stamped at `at`, and records its posture snapshots.
func (e *env) scan(t *testing.T, h store.Host, at time.Time, rs ...obs) store.Scan {
	t.Helper()
	ctx := context.Background()
	sc, err := e.st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "scheduled", BundleVersion: "1.0.0", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	results := make([]result.Result, len(rs))
	for i, o := range rs {
		sev := o.sev
		if sev == "" {
			sev = rule.Medium
		}
		results[i] = result.Result{RuleID: o.rule, Status: o.status, Severity: sev, Reason: "reason " + string(o.status), Time: at,
			Evidence: []result.Evidence{{Method: "file_content", Probe: "/etc/" + o.rule, Expected: "x", Actual: string(o.status), Time: at}}}
	}
	if _, err := e.st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: results}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.FinishScan(ctx, sc.ID, store.ScanCompleted, at, result.Summarize(results)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.post.RecordScan(ctx, h.ID, sc.ID); err != nil {
		t.Fatal(err)
	}
	return sc
}

// request records an exception requested by alice.
func (e *env) request(t *testing.T, req ExceptionRequest) store.Exception {
	t.Helper()
	if req.Justification == "" {
		req.Justification = "compensating control documented in ticket SEC-1"
	}
	ex, err := e.gov.RequestException(context.Background(), "alice", req)
	if err != nil {
		t.Fatalf("request %+v: %v", req, err)
	}
	return ex
}

// approve requests an exception as alice and approves it as bob.
func (e *env) approve(t *testing.T, req ExceptionRequest) store.Exception {
	t.Helper()
	ex := e.request(t, req)
	ex, err := e.gov.DecideException(context.Background(), "bob", ex.ID, store.ExceptionApproved, "accepted")
	if err != nil {
		t.Fatalf("approve %d: %v", ex.ID, err)
	}
	return ex
}

func (e *env) evaluate(t *testing.T) EvalStats {
	t.Helper()
	st, err := e.gov.Evaluate(context.Background())
	if err != nil {
		t.Fatalf("evaluate at %s: %v", e.clk.Now(), err)
	}
	return st
}

// alerts lists alerts of one kind, any state, oldest id first.
func (e *env) alerts(t *testing.T, kind string) []store.Alert {
	t.Helper()
	as, err := e.st.Alerts(context.Background(), store.AlertFilter{Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(as, func(a, b store.Alert) int { return int(a.ID - b.ID) })
	return as
}

// open lists the unresolved alerts of one kind.
func (e *env) open(t *testing.T, kind string) []store.Alert {
	t.Helper()
	var out []store.Alert
	for _, a := range e.alerts(t, kind) {
		if a.State != store.AlertResolved {
			out = append(out, a)
		}
	}
	return out
}

// eventsOf keeps the events about alerts of one kind.
func eventsOf(evs []event, kind string) []event {
	var out []event
	for _, ev := range evs {
		if ev.Alert.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// rules are corpus rules the scenarios use: crit and med1 map to
// testFramework, med2 and ok do not. Severities in results are the
// test's choice (the corpus has no critical rule; agents report it).
type rules struct {
	crit, med1, med2, ok, extra string
}

func pickRules(t *testing.T, x *posture.Index) rules {
	t.Helper()
	in, ok := x.RuleIDs(testFramework)
	if !ok || len(in) < 2 {
		t.Fatalf("%s has %d rules", testFramework, len(in))
	}
	var out []string
	for _, r := range x.Rules() {
		if _, found := slices.BinarySearch(in, r.ID); !found {
			out = append(out, r.ID)
		}
	}
	if len(out) < 3 {
		t.Fatalf("only %d rules outside %s", len(out), testFramework)
	}
	return rules{crit: in[0], med1: in[1], med2: out[0], ok: out[1], extra: out[2]}
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Errorf("err = %v, want a FieldError on %s", err, field)
	}
}
