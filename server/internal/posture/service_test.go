package posture

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

const (
	pass = result.Pass
	fail = result.Fail
	errd = result.Error
	skip = result.Skipped
)

// testFramework is the framework the scenario filters on.
const testFramework = "pci_dss_4"

// scenario is a small fleet with three scan rounds a day apart:
//
//	        t1 (day 1)         t2 (day 2)             t3 (day 3)
//	web1    A+ B+ C- D+        A+ B- C- D-(crit)      A+ B+ C+ D-(crit)
//	web2    A- B+ C+ D+        same                   A+ B+ C! D+
//	db1     -                  A+ B+ C+ E~            -
//
// (+ pass, - fail, ! error, ~ skipped). A, B and D map to testFramework;
// C and E do not. web1 is scanned again an hour after t2 with identical
// results. Every scan is recorded by RecordScan two minutes after it.
type scenario struct {
	st         store.Store
	svc        *Service
	clk        *clock
	a, b, c, d string // rule ids
	e          string
	t1, t2, t3 time.Time
	web1, web2 store.Host
	db1        store.Host
	scans      map[string][]store.Scan
	outcomes   map[string][]Outcome
}

func pickRules(t *testing.T, x *Index) (in, out []string) {
	t.Helper()
	in, ok := x.RuleIDs(testFramework)
	if !ok || len(in) < 3 {
		t.Fatalf("%s has %d rules, the scenario needs 3", testFramework, len(in))
	}
	for _, r := range x.Rules() {
		if _, found := slices.BinarySearch(in, r.ID); !found {
			out = append(out, r.ID)
		}
	}
	if len(out) < 2 {
		t.Fatalf("only %d rules outside %s, the scenario needs 2", len(out), testFramework)
	}
	return in, out
}

func newScenario(t *testing.T, st store.Store, x *Index) *scenario {
	t.Helper()
	in, out := pickRules(t, x)
	t0 := time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)
	sc := &scenario{st: st, clk: &clock{}, a: in[0], b: in[1], d: in[2], c: out[0], e: out[1],
		t1: t0, t2: t0.Add(24 * time.Hour), t3: t0.Add(48 * time.Hour),
		scans: map[string][]store.Scan{}, outcomes: map[string][]Outcome{}}
	sc.svc = NewService(st, x, sc.clk.now)
	sc.web1 = upsertHost(t, st, "web1", "web")
	sc.web2 = upsertHost(t, st, "web2", "web")
	sc.db1 = upsertHost(t, st, "db1", "db")
	crit := rule.Critical
	sc.scan(t, sc.web1, sc.t1, obs{sc.a, pass, ""}, obs{sc.b, pass, ""}, obs{sc.c, fail, ""}, obs{sc.d, pass, crit})
	sc.scan(t, sc.web2, sc.t1, obs{sc.a, fail, ""}, obs{sc.b, pass, ""}, obs{sc.c, pass, ""}, obs{sc.d, pass, crit})
	web1t2 := []obs{{sc.a, pass, ""}, {sc.b, fail, ""}, {sc.c, fail, ""}, {sc.d, fail, crit}}
	sc.scan(t, sc.web1, sc.t2, web1t2...)
	sc.scan(t, sc.web2, sc.t2, obs{sc.a, fail, ""}, obs{sc.b, pass, ""}, obs{sc.c, pass, ""}, obs{sc.d, pass, crit})
	sc.scan(t, sc.db1, sc.t2, obs{sc.a, pass, ""}, obs{sc.b, pass, ""}, obs{sc.c, pass, ""}, obs{sc.e, skip, ""})
	sc.scan(t, sc.web1, sc.t2.Add(time.Hour), web1t2...)
	sc.scan(t, sc.web1, sc.t3, obs{sc.a, pass, ""}, obs{sc.b, pass, ""}, obs{sc.c, pass, ""}, obs{sc.d, fail, crit})
	sc.scan(t, sc.web2, sc.t3, obs{sc.a, pass, ""}, obs{sc.b, pass, ""}, obs{sc.c, errd, ""}, obs{sc.d, pass, crit})
	return sc
}

func (sc *scenario) scan(t *testing.T, h store.Host, at time.Time, rs ...obs) {
	t.Helper()
	s := runScan(t, sc.st, h.ID, at, rs...)
	sc.clk.t = at.Add(2 * time.Minute)
	o, err := sc.svc.RecordScan(context.Background(), h.ID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	sc.scans[h.Name] = append(sc.scans[h.Name], s)
	sc.outcomes[h.Name] = append(sc.outcomes[h.Name], o)
}

// TestService runs the posture service against real stores of both
// drivers, sharing one index of the real corpus.
func TestService(t *testing.T) {
	x := loadCorpus(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Store, *Index)
	}{
		{"RecordScan", testRecordScan},
		{"FleetAtPastMoments", testFleetAtPastMoments},
		{"FleetRuleStates", testFleetRuleStates},
		{"LastScanAt", testLastScanAt},
		{"DeletedHostsLeaveViews", testDeletedHosts},
		{"Drift", testDrift},
		{"Trend", testTrend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, st store.Store) { tc.fn(t, st, x) })
		})
	}
}

func testRecordScan(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	want := map[string][]Outcome{
		"web1": {
			{Score: 75, Band: BandGood},
			{Score: 25, Band: BandCritical, NewCriticalFailures: []string{sc.d}},
			{Score: 25, Band: BandCritical}, // identical rescan: not new again
			{Score: 75, Band: BandCritical}, // still failing
		},
		"web2": {{Score: 75, Band: BandGood}, {Score: 75, Band: BandGood}, {Score: 75, Band: BandGood}},
		"db1":  {{Score: 100, Band: BandExcellent}},
	}
	if !reflect.DeepEqual(sc.outcomes, want) {
		t.Errorf("outcomes = %+v\nwant %+v", sc.outcomes, want)
	}

	day1 := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	day2, day3 := day1.AddDate(0, 0, 1), day1.AddDate(0, 0, 2)
	web1 := sc.scans["web1"]
	checkSnaps(t, st, sc.web1.ID, "", day1, day3, []store.Snapshot{
		{HostID: sc.web1.ID, Day: day1, Score: 75, Pass: 3, Fail: 1, Band: "good", ScanID: web1[0].ID},
		// The rescan later on day 2 wins the day.
		{HostID: sc.web1.ID, Day: day2, Score: 25, Pass: 1, Fail: 3, Band: "critical", ScanID: web1[2].ID},
		{HostID: sc.web1.ID, Day: day3, Score: 75, Pass: 3, Fail: 1, Band: "critical", ScanID: web1[3].ID},
	})
	fw := testFramework
	checkSnaps(t, st, sc.web1.ID, fw, day1, day3, []store.Snapshot{
		{HostID: sc.web1.ID, Framework: fw, Day: day1, Score: 100, Pass: 3, Band: "excellent", ScanID: web1[0].ID},
		{HostID: sc.web1.ID, Framework: fw, Day: day2, Score: 33.3, Pass: 1, Fail: 2, Band: "critical", ScanID: web1[2].ID},
		{HostID: sc.web1.ID, Framework: fw, Day: day3, Score: 66.7, Pass: 2, Fail: 1, Band: "critical", ScanID: web1[3].ID},
	})
	checkSnaps(t, st, sc.db1.ID, fw, day1, day3, []store.Snapshot{
		{HostID: sc.db1.ID, Framework: fw, Day: day2, Score: 100, Pass: 2, Band: "excellent", ScanID: sc.scans["db1"][0].ID},
	})
	// A catalogue no rule maps to gets no snapshot.
	checkSnaps(t, st, sc.web1.ID, "cis_debian12", day1, day3, nil)
	// A framework that has rules but none of them on the host says
	// "nothing assessed", not a perfect score.
	emptyFw := frameworkWithout(t, x, sc.a, sc.b, sc.c, sc.d, sc.e)
	snaps, err := st.Snapshots(ctx, store.SnapshotFilter{HostIDs: []int64{sc.web1.ID}, Framework: emptyFw, From: day1, To: day1})
	if err != nil {
		t.Fatal(err)
	}
	if emptyFw != "" && (len(snaps) != 1 || snaps[0].Band != "" || snaps[0].Score != 0) {
		t.Errorf("%s snapshots of web1 on day 1 = %+v, want one with band \"\" and score 0", emptyFw, snaps)
	}

	// Recording a scan for a host it does not belong to is refused.
	if _, err := sc.svc.RecordScan(ctx, sc.web2.ID, web1[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordScan of web1's scan as web2: err = %v, want ErrNotFound", err)
	}
	if _, err := sc.svc.RecordScan(ctx, sc.web1.ID, 1_000_000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordScan of an unknown scan: err = %v, want ErrNotFound", err)
	}
}

// frameworkWithout returns a framework with rules, none of which is one
// of ids, or "" when the corpus has none.
func frameworkWithout(t *testing.T, x *Index, ids ...string) string {
	t.Helper()
	for _, fw := range x.Frameworks() {
		if fw.Rules == 0 {
			continue
		}
		rules, _ := x.RuleIDs(fw.ID)
		hit := false
		for _, id := range ids {
			_, found := slices.BinarySearch(rules, id)
			hit = hit || found
		}
		if !hit {
			return fw.ID
		}
	}
	t.Logf("every framework with rules maps one of %v; the empty-framework check is skipped", ids)
	return ""
}

func checkSnaps(t *testing.T, st store.Store, hostID int64, fw string, from, to time.Time, want []store.Snapshot) {
	t.Helper()
	got, err := st.Snapshots(context.Background(), store.SnapshotFilter{HostIDs: []int64{hostID}, Framework: fw, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].Day = got[i].Day.UTC()
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Errorf("snapshots of host %d framework %q = %+v\nwant %+v", hostID, fw, got, want)
	}
}

// hostWant is a host's expected posture.
type hostWant struct {
	name   string
	counts Counts
	score  float64
	band   Band
}

func checkFleet(t *testing.T, what string, got FleetPosture, want []hostWant, fleet Counts, score float64) {
	t.Helper()
	bands := map[Band]int{BandCritical: 0, BandPoor: 0, BandFair: 0, BandGood: 0, BandExcellent: 0, BandNone: 0}
	var gotHosts []hostWant
	for _, h := range got.Hosts {
		gotHosts = append(gotHosts, hostWant{h.Name, h.Counts, h.Score, h.Band})
	}
	for _, h := range want {
		bands[h.band]++
	}
	if !reflect.DeepEqual(gotHosts, want) {
		t.Errorf("%s: hosts = %+v\nwant %+v", what, gotHosts, want)
	}
	if got.Counts != fleet || got.Score != score {
		t.Errorf("%s: fleet counts %+v score %v, want %+v score %v", what, got.Counts, got.Score, fleet, score)
	}
	if !reflect.DeepEqual(got.Bands, bands) {
		t.Errorf("%s: bands = %v, want %v", what, got.Bands, bands)
	}
}

func testFleetAtPastMoments(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	m0, m1 := sc.t1.Add(-time.Hour), sc.t1.Add(12*time.Hour)
	m2, m3 := sc.t2.Add(12*time.Hour), sc.t3.Add(12*time.Hour)
	none := func(name string) hostWant { return hostWant{name: name} }
	tests := []struct {
		what  string
		q     FleetQuery
		hosts []hostWant
		fleet Counts
		score float64
	}{
		{"before any scan", FleetQuery{At: m0}, []hostWant{none("db1"), none("web1"), none("web2")}, Counts{}, 0},
		{"after round 1", FleetQuery{At: m1}, []hostWant{none("db1"),
			{"web1", Counts{Pass: 3, Fail: 1}, 75, BandGood},
			{"web2", Counts{Pass: 3, Fail: 1}, 75, BandGood},
		}, Counts{Pass: 6, Fail: 2}, 75},
		{"after round 2", FleetQuery{At: m2}, []hostWant{
			{"db1", Counts{Pass: 3, Skipped: 1}, 100, BandExcellent},
			{"web1", Counts{Pass: 1, Fail: 3, CriticalFail: 1}, 25, BandCritical},
			{"web2", Counts{Pass: 3, Fail: 1}, 75, BandGood},
		}, Counts{Pass: 7, Fail: 4, Skipped: 1, CriticalFail: 1}, 63.6},
		{"after round 3", FleetQuery{At: m3}, []hostWant{
			{"db1", Counts{Pass: 3, Skipped: 1}, 100, BandExcellent},
			{"web1", Counts{Pass: 3, Fail: 1, CriticalFail: 1}, 75, BandCritical},
			{"web2", Counts{Pass: 3, Error: 1}, 75, BandGood},
		}, Counts{Pass: 9, Fail: 1, Error: 1, Skipped: 1, CriticalFail: 1}, 81.8},
		// The framework view ignores C and E, which it does not map.
		{"framework after round 1", FleetQuery{At: m1, Framework: testFramework}, []hostWant{none("db1"),
			{"web1", Counts{Pass: 3}, 100, BandExcellent},
			{"web2", Counts{Pass: 2, Fail: 1}, 66.7, BandFair},
		}, Counts{Pass: 5, Fail: 1}, 83.3},
		{"framework after round 2", FleetQuery{At: m2, Framework: testFramework}, []hostWant{
			{"db1", Counts{Pass: 2}, 100, BandExcellent},
			{"web1", Counts{Pass: 1, Fail: 2, CriticalFail: 1}, 33.3, BandCritical},
			{"web2", Counts{Pass: 2, Fail: 1}, 66.7, BandFair},
		}, Counts{Pass: 5, Fail: 3, CriticalFail: 1}, 62.5},
		{"framework after round 3", FleetQuery{At: m3, Framework: testFramework}, []hostWant{
			{"db1", Counts{Pass: 2}, 100, BandExcellent},
			{"web1", Counts{Pass: 2, Fail: 1, CriticalFail: 1}, 66.7, BandCritical},
			{"web2", Counts{Pass: 3}, 100, BandExcellent},
		}, Counts{Pass: 7, Fail: 1, CriticalFail: 1}, 87.5},
		{"group web after round 2", FleetQuery{At: m2, Group: "web"}, []hostWant{
			{"web1", Counts{Pass: 1, Fail: 3, CriticalFail: 1}, 25, BandCritical},
			{"web2", Counts{Pass: 3, Fail: 1}, 75, BandGood},
		}, Counts{Pass: 4, Fail: 4, CriticalFail: 1}, 50},
		{"group db, framework, after round 3", FleetQuery{At: m3, Group: "db", Framework: testFramework}, []hostWant{
			{"db1", Counts{Pass: 2}, 100, BandExcellent},
		}, Counts{Pass: 2}, 100},
		{"one host after round 2", FleetQuery{At: m2, HostID: sc.web2.ID}, []hostWant{
			{"web2", Counts{Pass: 3, Fail: 1}, 75, BandGood},
		}, Counts{Pass: 3, Fail: 1}, 75},
		{"a group nobody is in", FleetQuery{At: m2, Group: "nobody"}, nil, Counts{}, 0},
		// The clock stands two minutes after round 3: the present view.
		{"now", FleetQuery{}, []hostWant{
			{"db1", Counts{Pass: 3, Skipped: 1}, 100, BandExcellent},
			{"web1", Counts{Pass: 3, Fail: 1, CriticalFail: 1}, 75, BandCritical},
			{"web2", Counts{Pass: 3, Error: 1}, 75, BandGood},
		}, Counts{Pass: 9, Fail: 1, Error: 1, Skipped: 1, CriticalFail: 1}, 81.8},
	}
	for _, tc := range tests {
		got, err := sc.svc.Fleet(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		checkFleet(t, tc.what, got, tc.hosts, tc.fleet, tc.score)
		wantAt := tc.q.At
		if wantAt.IsZero() {
			wantAt = sc.clk.now()
		}
		if !got.At.Equal(wantAt) || got.Framework != tc.q.Framework || got.Group != tc.q.Group {
			t.Errorf("%s: echoed at %s framework %q group %q", tc.what, got.At, got.Framework, got.Group)
		}
		// The per-rule path (StateAt per host) must agree with the
		// aggregated one (CountsAt).
		q := tc.q
		q.Rules = true
		withRules, err := sc.svc.Fleet(ctx, q)
		if err != nil {
			t.Fatalf("%s with rules: %v", tc.what, err)
		}
		checkFleet(t, tc.what+" with rules", withRules, tc.hosts, tc.fleet, tc.score)
	}

	if _, err := sc.svc.Fleet(ctx, FleetQuery{Framework: "no_such_framework"}); !errors.Is(err, ErrUnknownFramework) {
		t.Errorf("unknown framework: err = %v, want ErrUnknownFramework", err)
	}
	if _, err := sc.svc.Fleet(ctx, FleetQuery{HostID: 1_000_000}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: err = %v, want ErrNotFound", err)
	}
	// A known framework no rule maps to selects no rule, not every rule.
	got, err := sc.svc.Fleet(ctx, FleetQuery{At: m3, Framework: "cis_debian12"})
	if err != nil {
		t.Fatal(err)
	}
	checkFleet(t, "framework without rules", got, []hostWant{none("db1"), none("web1"), none("web2")}, Counts{}, 0)
}

func testFleetRuleStates(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	web1 := sc.scans["web1"]
	got, err := sc.svc.Fleet(context.Background(), FleetQuery{At: sc.t2.Add(12 * time.Hour), HostID: sc.web1.ID,
		Framework: testFramework, Rules: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Hosts) != 1 {
		t.Fatalf("%d hosts, want web1 alone", len(got.Hosts))
	}
	// C is not in the framework; A has passed since round 1, B and D
	// fail since round 2 (the identical rescan changed nothing).
	want := []RuleState{
		{RuleID: sc.a, Status: pass, Severity: rule.Medium, ScanID: web1[0].ID, Since: sc.t1},
		{RuleID: sc.b, Status: fail, Severity: rule.Medium, ScanID: web1[1].ID, Since: sc.t2},
		{RuleID: sc.d, Status: fail, Severity: rule.Critical, ScanID: web1[1].ID, Since: sc.t2},
	}
	slices.SortFunc(want, func(a, b RuleState) int { return cmpStr(a.RuleID, b.RuleID) })
	rs := got.Hosts[0].Rules
	for i := range rs {
		rs[i].Since = rs[i].Since.UTC()
	}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("rule states = %+v\nwant %+v", rs, want)
	}
	if got.Hosts[0].LastScanAt != nil {
		t.Errorf("a past view carries LastScanAt %v", got.Hosts[0].LastScanAt)
	}
}

// The present view carries each host's last scan time as the scheduler
// recorded it; a past view carries none.
func testLastScanAt(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	// Claim every host (all are due: none has completed a scan yet), then
	// complete web1's claim as the scheduler does after a scan.
	claims, err := st.ClaimDue(ctx, store.ClaimRequest{Owner: "test", Now: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		Limit: 10, Lease: time.Minute})
	if err != nil || len(claims) != 3 {
		t.Fatalf("claimed %d hosts (%v), want 3", len(claims), err)
	}
	if err := st.CompleteClaim(ctx, sc.web1.ID, "test", store.Completion{ScannedAt: sc.t3,
		NextScanAt: sc.t3.Add(time.Hour), Score: 75, Band: string(BandCritical)}); err != nil {
		t.Fatal(err)
	}
	now, err := sc.svc.Fleet(ctx, FleetQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range now.Hosts {
		switch {
		case h.Name == "web1" && (h.LastScanAt == nil || !h.LastScanAt.Equal(sc.t3)):
			t.Errorf("web1 last scan at %v, want %s", h.LastScanAt, sc.t3)
		case h.Name != "web1" && h.LastScanAt != nil:
			t.Errorf("%s last scan at %v, want none (never completed)", h.Name, h.LastScanAt)
		}
	}
	past, err := sc.svc.Fleet(ctx, FleetQuery{At: sc.t3.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range past.Hosts {
		if h.LastScanAt != nil {
			t.Errorf("past view: %s last scan at %v, want none", h.Name, h.LastScanAt)
		}
	}
}

// A deleted host keeps its history in the store but leaves the fleet's
// views: its counts no longer add to the fleet's.
func testDeletedHosts(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	if err := st.DeleteHost(ctx, sc.db1.ID); err != nil {
		t.Fatal(err)
	}
	got, err := sc.svc.Fleet(ctx, FleetQuery{At: sc.t3.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	checkFleet(t, "without db1", got, []hostWant{
		{"web1", Counts{Pass: 3, Fail: 1, CriticalFail: 1}, 75, BandCritical},
		{"web2", Counts{Pass: 3, Error: 1}, 75, BandGood},
	}, Counts{Pass: 6, Fail: 1, Error: 1, CriticalFail: 1}, 75)
	drift, err := sc.svc.Drift(ctx, sc.t1, sc.t3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) == 0 {
		t.Fatal("no drift at all between rounds 1 and 3")
	}
	for _, d := range drift {
		if d.HostID == sc.db1.ID {
			t.Errorf("drift lists deleted host db1: %+v", d)
		}
	}
}

func testDrift(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	web1, web2, db1 := sc.scans["web1"], sc.scans["web2"], sc.scans["db1"]
	m1, m3 := sc.t1.Add(12*time.Hour), sc.t3.Add(12*time.Hour)
	ch := func(at time.Time, from, to result.Status, scan store.Scan) Change {
		return Change{At: at, From: from, To: to, ScanID: scan.ID}
	}
	d := func(h store.Host, ruleID string, sev rule.Severity, before, after result.Status, cs ...Change) Drift {
		return Drift{HostID: h.ID, HostName: h.Name, RuleID: ruleID, Severity: sev, Before: before, After: after, Changes: cs}
	}
	med, crit := rule.Medium, rule.Critical
	tests := []struct {
		what     string
		from, to time.Time
		host     int64
		want     []Drift
	}{
		{"whole fleet, rounds 2 and 3", m1, m3, 0, []Drift{
			// db1 was first seen in the window: its state before is unknown.
			d(sc.db1, sc.a, med, "", pass, ch(sc.t2, "", pass, db1[0])),
			d(sc.db1, sc.b, med, "", pass, ch(sc.t2, "", pass, db1[0])),
			d(sc.db1, sc.c, med, "", pass, ch(sc.t2, "", pass, db1[0])),
			d(sc.db1, sc.e, med, "", skip, ch(sc.t2, "", skip, db1[0])),
			// web1's B failed and recovered: no drift.
			d(sc.web1, sc.c, med, fail, pass, ch(sc.t3, fail, pass, web1[3])),
			d(sc.web1, sc.d, crit, pass, fail, ch(sc.t2, pass, fail, web1[1])),
			d(sc.web2, sc.a, med, fail, pass, ch(sc.t3, fail, pass, web2[2])),
			d(sc.web2, sc.c, med, pass, errd, ch(sc.t3, pass, errd, web2[2])),
		}},
		{"one host, changes at `to` count", sc.t1, sc.t2, sc.web1.ID, []Drift{
			d(sc.web1, sc.b, med, pass, fail, ch(sc.t2, pass, fail, web1[1])),
			d(sc.web1, sc.d, crit, pass, fail, ch(sc.t2, pass, fail, web1[1])),
		}},
		{"one host, changes at `from` do not", sc.t2, sc.t3, sc.web1.ID, []Drift{
			d(sc.web1, sc.b, med, fail, pass, ch(sc.t3, fail, pass, web1[3])),
			d(sc.web1, sc.c, med, fail, pass, ch(sc.t3, fail, pass, web1[3])),
		}},
		{"a change and its undoing", m1, m3, sc.web1.ID, []Drift{
			d(sc.web1, sc.c, med, fail, pass, ch(sc.t3, fail, pass, web1[3])),
			d(sc.web1, sc.d, crit, pass, fail, ch(sc.t2, pass, fail, web1[1])),
		}},
		{"quiet window", sc.t3.Add(time.Hour), sc.t3.Add(2 * time.Hour), 0, nil},
	}
	for _, tc := range tests {
		got, err := sc.svc.Drift(ctx, tc.from, tc.to, tc.host)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		for i := range got {
			for j := range got[i].Changes {
				got[i].Changes[j].At = got[i].Changes[j].At.UTC()
			}
		}
		want := slices.Clone(tc.want)
		slices.SortStableFunc(want, func(a, b Drift) int {
			if a.HostName != b.HostName {
				return cmpStr(a.HostName, b.HostName)
			}
			return cmpStr(a.RuleID, b.RuleID)
		})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: drift =\n%+v\nwant\n%+v", tc.what, got, want)
		}
	}
	// B failed then recovered within the window: two changes, no drift,
	// but a window covering only the failure shows it.
	got, err := sc.svc.Drift(ctx, m1, sc.t2.Add(2*time.Hour), sc.web1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(d Drift) bool { return d.RuleID == sc.b }) {
		t.Errorf("drift to round 2 lacks rule B: %+v", got)
	}
	var ae *ArgError
	if _, err := sc.svc.Drift(ctx, m3, m1, 0); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ae) || ae.Field != "from" {
		t.Errorf("reversed window: err = %v, want ErrInvalidArgument naming from", err)
	}
	if _, err := sc.svc.Drift(ctx, m1, m1, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty window: err = %v, want ErrInvalidArgument", err)
	}
	if _, err := sc.svc.Drift(ctx, m1, m3, 1_000_000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: err = %v, want ErrNotFound", err)
	}
}

func testTrend(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	day := func(n int) time.Time { return time.Date(2026, 3, 9+n, 0, 0, 0, 0, time.UTC) }
	p := func(n int, score float64, band Band, c Counts, carried bool) TrendPoint {
		return TrendPoint{Day: day(n), Score: score, Band: band, Counts: c, Carried: carried}
	}
	r1 := Counts{Pass: 3, Fail: 1}
	r2 := Counts{Pass: 1, Fail: 3}
	sc.clk.t = sc.t1.Add(4*24*time.Hour + 2*time.Hour) // day 5, 10:00
	tests := []struct {
		what string
		days int
		fw   string
		host int64
		want []TrendPoint
	}{
		{"days before the first scan omitted", 7, "", sc.web1.ID, []TrendPoint{
			p(1, 75, BandGood, r1, false), p(2, 25, BandCritical, r2, false), p(3, 75, BandCritical, r1, false),
			p(4, 75, BandCritical, r1, true), p(5, 75, BandCritical, r1, true),
		}},
		{"window starts on a scanned day", 3, "", sc.web1.ID, []TrendPoint{
			p(3, 75, BandCritical, r1, false), p(4, 75, BandCritical, r1, true), p(5, 75, BandCritical, r1, true),
		}},
		{"value carried into the window", 2, "", sc.web1.ID, []TrendPoint{
			p(4, 75, BandCritical, r1, true), p(5, 75, BandCritical, r1, true),
		}},
		{"today only", 1, "", sc.db1.ID, []TrendPoint{p(5, 100, BandExcellent, Counts{Pass: 3, Skipped: 1}, true)}},
		{"framework series", 5, testFramework, sc.web2.ID, []TrendPoint{
			p(1, 66.7, BandFair, Counts{Pass: 2, Fail: 1}, false), p(2, 66.7, BandFair, Counts{Pass: 2, Fail: 1}, false),
			p(3, 100, BandExcellent, Counts{Pass: 3}, false), p(4, 100, BandExcellent, Counts{Pass: 3}, true),
			p(5, 100, BandExcellent, Counts{Pass: 3}, true),
		}},
	}
	for _, tc := range tests {
		got, err := sc.svc.Trend(ctx, tc.host, tc.days, tc.fw)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: trend =\n%+v\nwant\n%+v", tc.what, got, tc.want)
		}
	}
	// A host never scanned has no points.
	fresh := upsertHost(t, st, "fresh")
	if got, err := sc.svc.Trend(ctx, fresh.ID, 30, ""); err != nil || len(got) != 0 {
		t.Errorf("trend of a host never scanned = %+v, %v; want none", got, err)
	}
	for _, days := range []int{0, -1, MaxTrendDays + 1} {
		var ae *ArgError
		if _, err := sc.svc.Trend(ctx, sc.web1.ID, days, ""); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ae) || ae.Field != "days" {
			t.Errorf("days %d: err = %v, want ErrInvalidArgument naming days", days, err)
		}
	}
	if _, err := sc.svc.Trend(ctx, sc.web1.ID, MaxTrendDays, ""); err != nil {
		t.Errorf("days %d: %v", MaxTrendDays, err)
	}
	if _, err := sc.svc.Trend(ctx, sc.web1.ID, 7, "no_such_framework"); !errors.Is(err, ErrUnknownFramework) {
		t.Errorf("unknown framework: err = %v, want ErrUnknownFramework", err)
	}
	if _, err := sc.svc.Trend(ctx, 1_000_000, 7, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: err = %v, want ErrNotFound", err)
	}
}
