// Package storetest is the contract every store.Store implementation must
// meet. Each driver's tests call Run with a function that opens a fresh,
// empty store, so SQLite and PostgreSQL are held to the same behaviour.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Opener returns a new, empty, migrated store; it registers its own cleanup.
type Opener func(t testing.TB) store.Store

type contractTest struct {
	name string
	fn   func(*testing.T, store.Store)
}

// Run runs the contract suite against the stores open makes.
func Run(t *testing.T, open Opener) {
	tests := []contractTest{
		{"HostsAndScans", testHostsAndScans},
		{"ReplayChangesNothing", testReplay},
		{"TransitionsOnlyOnChange", testTransitions},
		{"EvidenceDeduplicated", testEvidence},
		{"StateAt", testStateAt},
		{"FailingBatchRollsBack", testRollback},
		{"LateBatchDoesNotRewindState", testLateBatch},
		{"ConcurrentHosts", testConcurrentHosts},
		{"ConcurrentReplay", testConcurrentReplay},
	}
	tests = append(tests, inventoryTests...)
	tests = append(tests, createHostTests...)
	tests = append(tests, scheduleTests...)
	tests = append(tests, accountsTests...)
	tests = append(tests, factsTests...)
	tests = append(tests, enrollmentTests...)
	tests = append(tests, dueTests...)
	tests = append(tests, currentTests...)
	tests = append(tests, governanceTests...)
	tests = append(tests, statesTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var base = time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)

func res(ruleID string, st result.Status, at time.Time) result.Result {
	return result.Result{
		RuleID: ruleID, Status: st, Severity: rule.High, Reason: "reason " + string(st), Time: at,
		References: []rule.Ref{{Framework: "nist_800_53", Control: "AC-2"}},
		Evidence: []result.Evidence{{Method: "file_content", Probe: "/etc/" + ruleID,
			Expected: "x", Actual: string(st), Time: base}},
	}
}

func host(t testing.TB, s store.Store, name string) store.Host {
	t.Helper()
	h, err := s.UpsertHost(context.Background(), store.Host{Name: name, Address: "127.0.0.2", OS: "debian 12"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func scan(t testing.TB, s store.Store, hostID int64, at time.Time) store.Scan {
	t.Helper()
	sc, err := s.CreateScan(context.Background(), store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "1.0.0", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func ingest(t testing.TB, s store.Store, scanID, seq int64, rs ...result.Result) store.IngestStats {
	t.Helper()
	st, err := s.Ingest(context.Background(), store.Batch{ScanID: scanID, Seq: seq, Results: rs})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func statuses(fs []store.Finding) map[string]result.Status {
	m := map[string]result.Status{}
	for _, f := range fs {
		m[f.RuleID] = f.Status
	}
	return m
}

func testHostsAndScans(t *testing.T, s store.Store) {
	ctx := context.Background()
	h1, err := s.UpsertHost(ctx, store.Host{Name: "web1", Address: "127.0.0.2", OS: "debian 12",
		Labels: map[string]string{"env": "prod"}, Groups: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.UpsertHost(ctx, store.Host{Name: "web1", Address: "127.0.0.3", OS: "debian 12"})
	if err != nil {
		t.Fatal(err)
	}
	if h1.ID == 0 || h1.ID != h2.ID {
		t.Fatalf("upsert by name gave ids %d and %d, want one non-zero id", h1.ID, h2.ID)
	}
	h3, err := s.UpsertHost(ctx, store.Host{Name: "db1", Labels: map[string]string{"env": "prod", "tier": "1"}, Groups: []string{"db", "pci"}})
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := s.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := []store.Host{
		{ID: h3.ID, Name: "db1", Labels: map[string]string{"env": "prod", "tier": "1"}, Groups: []string{"db", "pci"}},
		{ID: h1.ID, Name: "web1", Address: "127.0.0.3", OS: "debian 12", Labels: map[string]string{}, Groups: []string{}},
	}
	// A new host is due at once; when exactly is the schedule's business.
	for i := range min(len(hosts), len(wantHosts)) {
		if hosts[i].NextScanAt.IsZero() {
			t.Errorf("host %s has no next scan time", hosts[i].Name)
		}
		wantHosts[i].NextScanAt = hosts[i].NextScanAt
	}
	if !reflect.DeepEqual(hosts, wantHosts) {
		t.Errorf("hosts = %+v\nwant %+v", hosts, wantHosts)
	}
	if _, err := s.UpsertHost(ctx, store.Host{}); err == nil {
		t.Error("host without a name was accepted")
	}
	if _, err := s.CreateScan(ctx, store.Scan{HostID: h1.ID + 1000, Trigger: "manual"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("scan of unknown host: err = %v, want ErrNotFound", err)
	}
	sc := scan(t, s, h1.ID, base)
	if sc.Status != store.ScanRunning {
		t.Errorf("new scan status %q, want running", sc.Status)
	}
	counts := result.Summary{Total: 3, Pass: 1, Fail: 1, Skipped: 1}
	if err := s.FinishScan(ctx, sc.ID, store.ScanCompleted, base.Add(time.Minute), counts); err != nil {
		t.Fatal(err)
	}
	got, err := s.Scan(ctx, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Scan{ID: sc.ID, HostID: h1.ID, Trigger: "scheduled", Status: store.ScanCompleted, BundleVersion: "1.0.0",
		StartedAt: base, FinishedAt: base.Add(time.Minute), Counts: counts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan = %+v\nwant %+v", got, want)
	}
	if err := s.FinishScan(ctx, sc.ID+1000, store.ScanFailed, base, result.Summary{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finish unknown scan: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Scan(ctx, sc.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown scan: err = %v, want ErrNotFound", err)
	}
}

type snapshot struct {
	current, results []store.Finding
	trans            []store.Transition
}

func snap(t *testing.T, s store.Store, hostID, scanID int64) snapshot {
	t.Helper()
	ctx := context.Background()
	cur, err := s.CurrentState(ctx, hostID)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.ScanResults(ctx, scanID)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Transitions(ctx, hostID, base.Add(-time.Hour), base.Add(1000*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{cur, rs, tr}
}

func testReplay(t *testing.T, s store.Store) {
	h := host(t, s, "db1")
	sc := scan(t, s, h.ID, base)
	batch := []result.Result{res("r1", result.Pass, base), res("r2", result.Fail, base), res("r3", result.Skipped, base)}
	st := ingest(t, s, sc.ID, 1, batch...)
	if st.Replayed || st.Results != 3 || st.Transitions != 3 || st.NewEvidence != 3 {
		t.Fatalf("first ingest stats %+v, want 3 results, 3 transitions, 3 evidence", st)
	}
	before := snap(t, s, h.ID, sc.ID)
	// The retry carries different content on purpose: the key alone decides.
	st = ingest(t, s, sc.ID, 1, res("r1", result.Fail, base.Add(time.Second)))
	if !st.Replayed || st.Results != 0 || st.Transitions != 0 {
		t.Fatalf("replay stats %+v, want Replayed and nothing written", st)
	}
	if after := snap(t, s, h.ID, sc.ID); !reflect.DeepEqual(before, after) {
		t.Fatalf("replay changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	f := before.current[0]
	if f.RuleID != "r1" || f.Severity != rule.High || f.Reason != "reason pass" || f.ScanID != sc.ID ||
		!f.At.Equal(base) || len(f.References) != 1 || f.References[0].Control != "AC-2" || len(f.EvidenceHash) != 64 {
		t.Errorf("finding round trip: %+v", f)
	}
}

func testTransitions(t *testing.T, s store.Store) {
	h := host(t, s, "app1")
	steps := []map[string]result.Status{
		{"r1": result.Pass, "r2": result.Fail},
		{"r1": result.Pass, "r2": result.Pass},
		{"r1": result.Fail, "r2": result.Pass},
		{"r1": result.Fail, "r2": result.Pass},
	}
	wantNew := []int{2, 1, 1, 0}
	for i, step := range steps {
		at := base.Add(time.Duration(i) * time.Hour)
		sc := scan(t, s, h.ID, at)
		var rs []result.Result
		for _, id := range []string{"r1", "r2"} {
			rs = append(rs, res(id, step[id], at))
		}
		if st := ingest(t, s, sc.ID, 1, rs...); st.Transitions != wantNew[i] {
			t.Errorf("scan %d: %d transitions, want %d", i, st.Transitions, wantNew[i])
		}
	}
	tr, err := s.Transitions(context.Background(), h.ID, base, base.Add(10*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range tr {
		got = append(got, fmt.Sprintf("%s:%s->%s@%s", x.RuleID, x.From, x.Status, x.At.Sub(base)))
	}
	want := []string{"r1:->pass@0s", "r2:->fail@0s", "r2:fail->pass@1h0m0s", "r1:pass->fail@2h0m0s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transitions\n got %v\nwant %v", got, want)
	}
	// The window is half-open: [from, to).
	tr, err = s.Transitions(context.Background(), h.ID, base.Add(time.Hour), base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 1 || tr[0].RuleID != "r2" {
		t.Errorf("transitions in [1h, 2h) = %+v, want only r2", tr)
	}
}

func testEvidence(t *testing.T, s store.Store) {
	ctx := context.Background()
	h1, h2 := host(t, s, "e1"), host(t, s, "e2")
	same := res("r1", result.Pass, base)
	other := res("r1", result.Pass, base)
	other.RuleID = "r2" // same evidence body under another rule
	st := ingest(t, s, scan(t, s, h1.ID, base).ID, 1, same, other)
	if st.NewEvidence != 1 {
		t.Errorf("two results with one evidence body stored %d bodies, want 1", st.NewEvidence)
	}
	st = ingest(t, s, scan(t, s, h2.ID, base).ID, 1, same)
	if st.NewEvidence != 0 {
		t.Errorf("evidence seen before stored again (%d)", st.NewEvidence)
	}
	cur, err := s.CurrentState(ctx, h1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 2 || cur[0].EvidenceHash == "" || cur[0].EvidenceHash != cur[1].EvidenceHash {
		t.Fatalf("current state %+v: want two rules sharing one evidence hash", cur)
	}
	ev, err := s.Evidence(ctx, cur[0].EvidenceHash)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev, same.Evidence) {
		t.Errorf("evidence round trip\n got %+v\nwant %+v", ev, same.Evidence)
	}
	if _, err := s.Evidence(ctx, "00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown evidence: err = %v, want ErrNotFound", err)
	}
	noEv := res("r3", result.Error, base)
	noEv.Evidence = nil
	ingest(t, s, scan(t, s, h1.ID, base).ID, 1, noEv)
	if cur, _ = s.CurrentState(ctx, h1.ID); cur[2].EvidenceHash != "" {
		t.Errorf("result without evidence has hash %q", cur[2].EvidenceHash)
	}
}

func testStateAt(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "asof")
	other := host(t, s, "noise")
	// Day 0: r1 pass, r2 fail. Day 1: r2 pass, r3 appears failing.
	// Day 2: r1 fail. Day 3: same as day 2 (no transitions).
	days := []map[string]result.Status{
		{"r1": result.Pass, "r2": result.Fail},
		{"r1": result.Pass, "r2": result.Pass, "r3": result.Fail},
		{"r1": result.Fail, "r2": result.Pass, "r3": result.Fail},
		{"r1": result.Fail, "r2": result.Pass, "r3": result.Fail},
	}
	day := 24 * time.Hour
	for i, d := range days {
		at := base.Add(time.Duration(i) * day)
		var rs []result.Result
		for id, st := range d {
			rs = append(rs, res(id, st, at))
		}
		// Split into two batches to exercise sequences.
		sc := scan(t, s, h.ID, at)
		ingest(t, s, sc.ID, 1, rs[:1]...)
		ingest(t, s, sc.ID, 2, rs[1:]...)
		// Another host with opposite results must not leak in.
		ingest(t, s, scan(t, s, other.ID, at).ID, 1, res("r1", result.Error, at))
	}
	cases := []struct {
		at   time.Time
		want map[string]result.Status
	}{
		{base.Add(-time.Second), map[string]result.Status{}},
		{base, map[string]result.Status{"r1": result.Pass, "r2": result.Fail}},
		{base.Add(day - time.Second), map[string]result.Status{"r1": result.Pass, "r2": result.Fail}},
		{base.Add(day), map[string]result.Status{"r1": result.Pass, "r2": result.Pass, "r3": result.Fail}},
		{base.Add(2*day + time.Hour), map[string]result.Status{"r1": result.Fail, "r2": result.Pass, "r3": result.Fail}},
		{base.Add(30 * day), map[string]result.Status{"r1": result.Fail, "r2": result.Pass, "r3": result.Fail}},
	}
	for _, c := range cases {
		fs, err := s.StateAt(ctx, h.ID, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(fs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("state at %s = %v, want %v", c.at, got, c.want)
		}
	}
	// As of now, the log and current state must agree.
	cur, err := s.CurrentState(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.StateAt(ctx, h.ID, base.Add(30*day))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(statuses(cur), statuses(now)) {
		t.Errorf("current state %v disagrees with the log %v", statuses(cur), statuses(now))
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "rb")
	sc := scan(t, s, h.ID, base)
	ingest(t, s, sc.ID, 1, res("r1", result.Pass, base))
	before := snap(t, s, h.ID, sc.ID)

	if _, err := s.Ingest(ctx, store.Batch{ScanID: sc.ID + 1000, Seq: 1, Results: []result.Result{res("r1", result.Fail, base)}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("batch for unknown scan: err = %v, want ErrNotFound", err)
	}
	// The third result is refused by the database after the first two
	// were written inside the transaction: all of it must go.
	bad := res("r4", "bogus", base)
	_, err := s.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 2, Results: []result.Result{
		res("r1", result.Fail, base.Add(time.Minute)), res("r2", result.Fail, base.Add(time.Minute)), bad}})
	if err == nil {
		t.Fatal("batch with an invalid status was accepted")
	}
	if after := snap(t, s, h.ID, sc.ID); !reflect.DeepEqual(before, after) {
		t.Fatalf("failed batch left changes:\nbefore %+v\nafter  %+v", before, after)
	}
	// The failed sequence number was not consumed: a corrected retry applies.
	st := ingest(t, s, sc.ID, 2, res("r1", result.Fail, base.Add(time.Minute)))
	if st.Replayed || st.Transitions != 1 {
		t.Errorf("corrected retry: %+v, want applied with 1 transition", st)
	}
}

func testLateBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "late")
	old, recent := scan(t, s, h.ID, base), scan(t, s, h.ID, base.Add(time.Hour))
	ingest(t, s, recent.ID, 1, res("r1", result.Fail, base.Add(time.Hour)))
	// An agent's spool delivers an older scan's results after a newer one.
	st := ingest(t, s, old.ID, 1, res("r1", result.Pass, base))
	if st.Results != 1 || st.Transitions != 0 {
		t.Errorf("late batch: %+v, want its result kept and no transition", st)
	}
	cur, err := s.CurrentState(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 1 || cur[0].Status != result.Fail || cur[0].ScanID != recent.ID {
		t.Errorf("current state after late batch: %+v, want r1 fail from the recent scan", cur)
	}
}

func testConcurrentHosts(t *testing.T, s store.Store) {
	ctx := context.Background()
	const hosts, scans, rules = 8, 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, hosts)
	for i := range hosts {
		h := host(t, s, fmt.Sprintf("c%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range scans {
				at := base.Add(time.Duration(j) * time.Hour)
				sc, err := s.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "scheduled", StartedAt: at})
				if err != nil {
					errs <- err
					return
				}
				rs := make([]result.Result, rules)
				for k := range rs {
					st := result.Pass
					if (k+j)%2 == 0 {
						st = result.Fail
					}
					rs[k] = res(fmt.Sprintf("r%03d", k), st, at)
				}
				if _, err := s.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: rs}); err != nil {
					errs <- fmt.Errorf("host %s scan %d: %w", h.Name, j, err)
					return
				}
			}
			cur, err := s.CurrentState(ctx, h.ID)
			if err != nil {
				errs <- err
				return
			}
			tr, err := s.Transitions(ctx, h.ID, base, base.Add(24*time.Hour))
			if err != nil {
				errs <- err
				return
			}
			if len(cur) != rules || len(tr) != rules*scans {
				errs <- fmt.Errorf("host %s: %d rules, %d transitions; want %d and %d", h.Name, len(cur), len(tr), rules, rules*scans)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// An agent that times out and retries can race its own first attempt:
// exactly one of them may apply.
func testConcurrentReplay(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "retry")
	sc := scan(t, s, h.ID, base)
	rs := []result.Result{res("r1", result.Fail, base), res("r2", result.Pass, base)}
	const tries = 6
	var wg sync.WaitGroup
	stats := make(chan store.IngestStats, tries)
	errs := make(chan error, tries)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 7, Results: rs})
			if err != nil {
				errs <- err
				return
			}
			stats <- st
		}()
	}
	wg.Wait()
	close(stats)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	applied := 0
	for st := range stats {
		if !st.Replayed {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("%d of %d concurrent deliveries applied, want 1", applied, tries)
	}
	got, err := s.ScanResults(ctx, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rs) {
		t.Errorf("%d result rows stored, want %d", len(got), len(rs))
	}
}

// Bench measures ingest of 500-result batches, each a new scan of one
// host. "changing" flips every rule's status and evidence each scan (500
// transitions and 500 new evidence bodies per batch: the worst case);
// "steady" repeats the same verdicts and evidence (no transitions, no new
// bodies: the common case once a fleet settles).
func Bench(b *testing.B, open Opener) {
	b.Run("changing", func(b *testing.B) { bench(b, open(b), true) })
	b.Run("steady", func(b *testing.B) { bench(b, open(b), false) })
}

func bench(b *testing.B, s store.Store, changing bool) {
	h := host(b, s, "bench")
	const n = 500
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		at := base.Add(time.Duration(i) * time.Minute)
		sc := scan(b, s, h.ID, at)
		rs := make([]result.Result, n)
		for k := range rs {
			st := result.Pass
			if changing && (k+i)%2 == 0 {
				st = result.Fail
			}
			rs[k] = res(fmt.Sprintf("rule_%03d", k), st, at)
		}
		b.StartTimer()
		ingest(b, s, sc.ID, 1, rs...)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "results/s")
}
