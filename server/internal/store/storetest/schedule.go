package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// scheduleTests are the contract cases for the store.Scheduling methods.
var scheduleTests = []contractTest{
	{"ClaimDueOrderLimitAndLease", testClaimDue},
	{"ClaimDueAgentAndDeleted", testClaimFilters},
	{"CompleteClaimOwnerAndPendingRequest", testCompleteClaim},
	{"ReleaseClaim", testReleaseClaim},
	{"ClaimDueConcurrent", testClaimConcurrent},
	{"Snapshots", testSnapshots},
	{"CountsAtMatchesHistory", testCountsAt},
	{"ValidToClosesTransitions", testValidTo},
	{"CountsAtAcrossDaysAndLateBatches", testCountsAtDays},
	{"FleetTransitions", testFleetTransitions},
	{"PruneResultsKeepsHistory", testPrune},
}

// setDue puts each host's next scan at the given time with reason
// "scheduled", whatever UpsertHost chose for a new host: every host is
// requested, claimed and completed far in the past.
func setDue(t *testing.T, s store.Store, due map[int64]time.Time) {
	t.Helper()
	ctx := context.Background()
	past := base.Add(-1000 * time.Hour)
	for id := range due {
		if err := s.RequestScan(ctx, id, "manual", past); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := s.ClaimDue(ctx, store.ClaimRequest{Owner: "setup", Now: past, Limit: len(due) + 10, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl) != len(due) {
		t.Fatalf("setup claimed %d hosts, want %d", len(cl), len(due))
	}
	for id, at := range due {
		if err := s.CompleteClaim(ctx, id, "setup", store.Completion{ScannedAt: past, NextScanAt: at, Score: 50, Band: "fair"}); err != nil {
			t.Fatal(err)
		}
	}
}

func claimIDs(cl []store.Claim) []int64 {
	ids := []int64{}
	for _, c := range cl {
		ids = append(ids, c.HostID)
	}
	return ids
}

func claim(t *testing.T, s store.Store, owner string, now time.Time, limit int) []store.Claim {
	t.Helper()
	cl, err := s.ClaimDue(context.Background(), store.ClaimRequest{Owner: owner, Now: now, Limit: limit, Lease: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func testClaimDue(t *testing.T, s store.Store) {
	a, b, c, d := host(t, s, "a"), host(t, s, "b"), host(t, s, "c"), host(t, s, "d")
	setDue(t, s, map[int64]time.Time{
		a.ID: base.Add(-time.Minute), b.ID: base.Add(-3 * time.Minute), c.ID: base, d.ID: base.Add(time.Second),
	})
	// Earliest first, only due ones (d is due one second later), limit held.
	cl := claim(t, s, "r1", base, 2)
	if got, want := claimIDs(cl), []int64{b.ID, a.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first claim = %v, want %v (earliest due first, limit 2)", got, want)
	}
	if cl[0].Reason != "scheduled" || !cl[0].Until.Equal(base.Add(10*time.Minute)) {
		t.Errorf("claim = %+v, want reason scheduled until now+10m", cl[0])
	}
	if got, want := claimIDs(claim(t, s, "r2", base, 10)), []int64{c.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second claim = %v, want %v (leased hosts and not-yet-due hosts excluded)", got, want)
	}
	// While leases hold nobody else gets those hosts; d became due.
	if got, want := claimIDs(claim(t, s, "r3", base.Add(5*time.Minute), 10)), []int64{d.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim during leases = %v, want %v", got, want)
	}
	// Expired leases are claimable again, earliest due first.
	if got, want := claimIDs(claim(t, s, "r4", base.Add(11*time.Minute), 10)), []int64{b.ID, a.ID, c.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claim after lease expiry = %v, want %v", got, want)
	}
	// The first owner lost its lease: completing is refused and changes nothing.
	err := s.CompleteClaim(context.Background(), b.ID, "r1", store.Completion{ScannedAt: base, NextScanAt: base.Add(time.Hour)})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("complete by former owner: err = %v, want ErrNotFound", err)
	}
	if got, want := claimIDs(claim(t, s, "r5", base.Add(22*time.Minute), 10)), []int64{b.ID, a.ID, c.ID, d.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("after refused completion, claim = %v, want %v (schedule unchanged)", got, want)
	}
	if cl := claim(t, s, "r6", base, 0); len(cl) != 0 {
		t.Errorf("limit 0 claimed %v", claimIDs(cl))
	}
	if err := s.RequestScan(context.Background(), d.ID+1000, "manual", base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("request scan of unknown host: err = %v, want ErrNotFound", err)
	}
}

func testClaimFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	mine, err := s.UpsertHost(ctx, store.Host{Name: "via-agent", AgentID: 7})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.UpsertHost(ctx, store.Host{Name: "other-agent", AgentID: 8})
	if err != nil {
		t.Fatal(err)
	}
	local, gone := host(t, s, "agentless"), host(t, s, "gone")
	for _, h := range []store.Host{mine, other, local, gone} {
		if err := s.RequestScan(ctx, h.ID, "manual", base); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteHost(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimDue(ctx, store.ClaimRequest{Owner: "agent7", Now: base, Limit: 10, Lease: time.Minute, AgentID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if ids := claimIDs(got); !reflect.DeepEqual(ids, []int64{mine.ID}) {
		t.Errorf("agent 7 claimed %v, want only %d", ids, mine.ID)
	}
	if ids := claimIDs(claim(t, s, "server", base, 10)); !reflect.DeepEqual(ids, []int64{local.ID}) {
		t.Errorf("agentless claim = %v, want only %d (deleted and agent-owned hosts excluded)", ids, local.ID)
	}
}

func testCompleteClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "h")
	setDue(t, s, map[int64]time.Time{h.ID: base})
	if ids := claimIDs(claim(t, s, "r1", base, 1)); !reflect.DeepEqual(ids, []int64{h.ID}) {
		t.Fatalf("claim = %v", ids)
	}
	// A request made during the lease survives its completion.
	if err := s.RequestScan(ctx, h.ID, "rescan", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	done := store.Completion{ScannedAt: base.Add(2 * time.Minute), NextScanAt: base.Add(24 * time.Hour), Score: 91.5, Band: "good"}
	if err := s.CompleteClaim(ctx, h.ID, "intruder", done); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("complete by wrong owner: err = %v, want ErrNotFound", err)
	}
	if err := s.CompleteClaim(ctx, h.ID, "r1", done); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteClaim(ctx, h.ID, "r1", done); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second completion: err = %v, want ErrNotFound", err)
	}
	cl := claim(t, s, "r2", base.Add(3*time.Minute), 10)
	if len(cl) != 1 || cl[0].HostID != h.ID || cl[0].Reason != "rescan" {
		t.Fatalf("claim after completion with a pending request = %+v, want host %d for rescan", cl, h.ID)
	}
	// Without a pending request the scan's own next time and reason apply.
	next := base.Add(6 * time.Hour)
	if err := s.CompleteClaim(ctx, h.ID, "r2", store.Completion{ScannedAt: base.Add(4 * time.Minute), NextScanAt: next, Score: 80, Band: "fair"}); err != nil {
		t.Fatal(err)
	}
	if cl := claim(t, s, "r3", next.Add(-time.Microsecond), 10); len(cl) != 0 {
		t.Errorf("claimed before its next scan time: %+v", cl)
	}
	// A later request does not postpone a due time; an earlier one advances it.
	if err := s.RequestScan(ctx, h.ID, "manual", next.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cl = claim(t, s, "r3", next, 10)
	if len(cl) != 1 || cl[0].Reason != "scheduled" {
		t.Fatalf("claim at next scan time = %+v, want host %d scheduled", cl, h.ID)
	}
	if err := s.CompleteClaim(ctx, h.ID, "r3", store.Completion{ScannedAt: next, NextScanAt: next.Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestScan(ctx, h.ID, "manual", next.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cl = claim(t, s, "r4", next.Add(time.Hour), 10)
	if len(cl) != 1 || cl[0].Reason != "manual" {
		t.Errorf("claim after manual request = %+v, want host %d manual", cl, h.ID)
	}
}

func testReleaseClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "h")
	setDue(t, s, map[int64]time.Time{h.ID: base})
	claim(t, s, "r1", base, 1)
	retry := base.Add(5 * time.Minute)
	if err := s.ReleaseClaim(ctx, h.ID, "intruder", retry); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("release by wrong owner: err = %v, want ErrNotFound", err)
	}
	if err := s.ReleaseClaim(ctx, h.ID, "r1", retry); err != nil {
		t.Fatal(err)
	}
	// Released: no lease any more, but not due before retryAt.
	if cl := claim(t, s, "r2", retry.Add(-time.Second), 1); len(cl) != 0 {
		t.Errorf("claimed before retry time: %+v", cl)
	}
	cl := claim(t, s, "r2", retry, 1)
	if len(cl) != 1 || cl[0].HostID != h.ID || cl[0].Reason != "scheduled" {
		t.Fatalf("claim at retry time = %+v, want host %d scheduled", cl, h.ID)
	}
	// A request during the lease pulls the retry earlier.
	if err := s.RequestScan(ctx, h.ID, "rescan", retry.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseClaim(ctx, h.ID, "r2", retry.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cl = claim(t, s, "r3", retry.Add(time.Minute), 1)
	if len(cl) != 1 || cl[0].Reason != "rescan" {
		t.Errorf("claim after release with pending request = %+v, want host %d rescan", cl, h.ID)
	}
}

func testClaimConcurrent(t *testing.T, s store.Store) {
	const hosts, workers, claims = 40, 2, 50
	due := map[int64]time.Time{}
	for i := range hosts {
		due[host(t, s, fmt.Sprintf("h%02d", i)).ID] = base.Add(-time.Duration(i) * time.Second)
	}
	setDue(t, s, due)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*claims)
	for w := range workers {
		owner := fmt.Sprintf("w%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range claims {
				cl, err := s.ClaimDue(context.Background(), store.ClaimRequest{Owner: owner, Now: base, Limit: 1, Lease: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, c := range cl {
					if prev, dup := seen[c.HostID]; dup {
						errs <- fmt.Errorf("host %d handed to %s while leased to %s", c.HostID, owner, prev)
					}
					seen[c.HostID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != hosts {
		t.Errorf("%d distinct hosts claimed, want all %d", len(seen), hosts)
	}
}

func testSnapshots(t *testing.T, s store.Store) {
	ctx := context.Background()
	day := func(n int) time.Time { return time.Date(2026, 1, 10+n, 0, 0, 0, 0, time.UTC) }
	snap := func(h int64, fw string, d int, score float64) store.Snapshot {
		return store.Snapshot{HostID: h, Framework: fw, Day: day(d), Score: score, Pass: int(score), Fail: 100 - int(score),
			Error: 1, Skipped: 2, Band: "fair", ScanID: int64(d + 1)}
	}
	first := []store.Snapshot{snap(1, "", 0, 50), snap(1, "", 1, 60), snap(1, "stig", 1, 70), snap(2, "", 1, 80), snap(1, "", 2, 10)}
	// Same key twice in one call, with a non-midnight time: the last wins.
	late := snap(1, "", 2, 20)
	late.Day = day(2).Add(17*time.Hour + 3*time.Minute)
	if err := s.PutSnapshots(ctx, append(first, late)); err != nil {
		t.Fatal(err)
	}
	// Across calls: the last write of a day wins.
	if err := s.PutSnapshots(ctx, []store.Snapshot{snap(1, "", 1, 65)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSnapshots(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		f    store.SnapshotFilter
		want []store.Snapshot
	}{
		{store.SnapshotFilter{From: day(0), To: day(5)}, []store.Snapshot{snap(1, "", 0, 50), snap(1, "", 1, 65), snap(1, "", 2, 20), snap(2, "", 1, 80)}},
		{store.SnapshotFilter{HostIDs: []int64{1}, From: day(1), To: day(1).Add(23 * time.Hour)}, []store.Snapshot{snap(1, "", 1, 65)}},
		{store.SnapshotFilter{HostIDs: []int64{2, 1}, Framework: "stig", From: day(0), To: day(5)}, []store.Snapshot{snap(1, "stig", 1, 70)}},
		{store.SnapshotFilter{HostIDs: []int64{}, From: day(0), To: day(5)}, nil},
		{store.SnapshotFilter{From: day(3), To: day(5)}, nil},
	}
	for i, c := range cases {
		got, err := s.Snapshots(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("case %d: snapshots %+v\n got %+v\nwant %+v", i, c.f, got, c.want)
		}
	}
}

// history is a generated fleet history and the model it came from.
type history struct {
	hosts []store.Host
	rules []string
	sev   map[string]rule.Severity
	// steps[i] is the moment of scan i and each host's statuses then.
	steps []historyStep
	scans []int64 // every scan id, in creation order
}

type historyStep struct {
	at    time.Time
	state map[int64]map[string]result.Status
}

// buildHistory ingests scans every 6 hours for three hosts and eight rules
// whose statuses change in an irregular, deterministic pattern. Host 3
// has no rules before its first scan at step 2, and rule r7 appears only
// from step 3, so hosts and rules both come and go.
func buildHistory(t *testing.T, s store.Store) history {
	h := history{sev: map[string]rule.Severity{}}
	for i := range 3 {
		h.hosts = append(h.hosts, host(t, s, fmt.Sprintf("hist%d", i)))
	}
	for i := range 8 {
		id := fmt.Sprintf("r%d", i)
		h.rules = append(h.rules, id)
		h.sev[id] = []rule.Severity{rule.Critical, rule.High, rule.Medium, rule.Critical}[i%4]
	}
	statuses := []result.Status{result.Pass, result.Fail, result.Fail, result.Error, result.Pass, result.Skipped, result.Pass}
	for step := range 8 {
		at := base.Add(time.Duration(step) * 6 * time.Hour)
		hs := historyStep{at: at, state: map[int64]map[string]result.Status{}}
		for hi, ho := range h.hosts {
			if hi == 2 && step < 2 {
				continue
			}
			sc := scan(t, s, ho.ID, at)
			h.scans = append(h.scans, sc.ID)
			hs.state[ho.ID] = map[string]result.Status{}
			var rs []result.Result
			for ri, id := range h.rules {
				if id == "r7" && step < 3 {
					continue
				}
				st := statuses[(ri*3+hi*5+step*step)%len(statuses)]
				r := res(id, st, at)
				r.Severity = h.sev[id]
				rs = append(rs, r)
				hs.state[ho.ID][id] = st
			}
			ingest(t, s, sc.ID, 1, rs[:3]...)
			ingest(t, s, sc.ID, 2, rs[3:]...)
		}
		h.steps = append(h.steps, hs)
	}
	return h
}

// expect computes CountsAt's answer from the model alone: a host's state
// at T is what its last scan at or before T reported.
func (h history) expect(at time.Time, rules []string, hostIDs []int64) []store.HostCounts {
	inRules := func(id string) bool { return rules == nil || contains(rules, id) }
	var out []store.HostCounts
	for _, ho := range h.hosts {
		if hostIDs != nil && !contains(hostIDs, ho.ID) {
			continue
		}
		state := map[string]result.Status{}
		for _, st := range h.steps {
			if st.at.After(at) {
				break
			}
			for id, v := range st.state[ho.ID] {
				state[id] = v
			}
		}
		hc := store.HostCounts{HostID: ho.ID, Counts: map[result.Status]int{}}
		for id, v := range state {
			if !inRules(id) {
				continue
			}
			hc.Counts[v]++
			if v == result.Fail && h.sev[id] == rule.Critical {
				hc.CriticalFail++
			}
		}
		if len(hc.Counts) > 0 {
			out = append(out, hc)
		}
	}
	return out
}

func contains[T comparable](xs []T, x T) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// moments are the instants worth asking about: before anything, at each
// scan, just before each scan, between scans, and long after.
func (h history) moments() []time.Time {
	ms := []time.Time{base.Add(-time.Hour)}
	for _, st := range h.steps {
		ms = append(ms, st.at.Add(-time.Microsecond), st.at, st.at.Add(time.Hour))
	}
	return append(ms, base.Add(1000*time.Hour))
}

func sortCounts(cs []store.HostCounts) []store.HostCounts {
	sort.Slice(cs, func(i, j int) bool { return cs[i].HostID < cs[j].HostID })
	return cs
}

func testCountsAt(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	filters := []struct {
		rules []string
		hosts []int64
	}{
		{nil, nil},
		{[]string{"r0", "r3", "r7", "nope"}, nil},
		{nil, []int64{h.hosts[2].ID, h.hosts[0].ID}},
		{[]string{"r1", "r2"}, []int64{h.hosts[1].ID}},
		{[]string{}, nil},
	}
	for _, at := range h.moments() {
		for _, f := range filters {
			got, err := s.CountsAt(ctx, at, f.rules, f.hosts)
			if err != nil {
				t.Fatal(err)
			}
			want := h.expect(at, f.rules, f.hosts)
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			if !reflect.DeepEqual(sortCounts(got), want) {
				t.Errorf("counts at %s rules %v hosts %v\n got %+v\nwant %+v", at.Sub(base), f.rules, f.hosts, got, want)
			}
		}
		// StateAt, the per-host view, agrees with the model too.
		for _, ho := range h.hosts {
			fs, err := s.StateAt(ctx, ho.ID, at)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]result.Status{}
			for _, st := range h.steps {
				if !st.at.After(at) {
					for id, v := range st.state[ho.ID] {
						want[id] = v
					}
				}
			}
			if got := statuses(fs); !reflect.DeepEqual(got, want) {
				t.Errorf("state of %s at %s = %v, want %v", ho.Name, at.Sub(base), got, want)
			}
		}
	}
}

func testValidTo(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "flip")
	seq := []result.Status{result.Pass, result.Fail, result.Pass}
	for i, st := range seq {
		at := base.Add(time.Duration(i) * time.Hour)
		ingest(t, s, scan(t, s, h.ID, at).ID, 1, res("r1", st, at), res("r2", result.Pass, at))
	}
	// Two transitions of one rule inside one batch: the first is closed
	// by the second, not left open.
	at3 := base.Add(3 * time.Hour)
	ingest(t, s, scan(t, s, h.ID, at3).ID, 1, res("r2", result.Fail, at3), res("r2", result.Error, at3.Add(time.Minute)))
	cases := []struct {
		at                time.Time
		pass, fail, error int
	}{
		{base.Add(-time.Microsecond), 0, 0, 0},
		{base, 2, 0, 0},
		{base.Add(time.Hour - time.Microsecond), 2, 0, 0},
		{base.Add(time.Hour), 1, 1, 0},
		{base.Add(2 * time.Hour), 2, 0, 0},
		{at3, 1, 1, 0},
		{at3.Add(time.Minute), 1, 0, 1},
		{base.Add(100 * time.Hour), 1, 0, 1},
	}
	for _, c := range cases {
		got, err := s.CountsAt(ctx, c.at, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[result.Status]int{}
		for st, n := range map[result.Status]int{result.Pass: c.pass, result.Fail: c.fail, result.Error: c.error} {
			if n > 0 {
				want[st] = n
			}
		}
		if len(want) == 0 {
			if len(got) != 0 {
				t.Errorf("counts at %s = %+v, want none", c.at.Sub(base), got)
			}
			continue
		}
		if len(got) != 1 || got[0].HostID != h.ID || !reflect.DeepEqual(got[0].Counts, want) {
			t.Errorf("counts at %s = %+v, want %v", c.at.Sub(base), got, want)
		}
	}
}

func testFleetTransitions(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := host(t, s, "a"), host(t, s, "b")
	for i, st := range []result.Status{result.Pass, result.Fail, result.Pass} {
		at := base.Add(time.Duration(i) * time.Hour)
		ingest(t, s, scan(t, s, b.ID, at).ID, 1, res("r2", st, at), res("r1", st, at))
		ingest(t, s, scan(t, s, a.ID, at).ID, 1, res("r1", result.Fail, at))
	}
	render := func(tr []store.Transition) []string {
		var out []string
		for _, x := range tr {
			host := map[int64]string{a.ID: "a", b.ID: "b"}[x.HostID]
			out = append(out, fmt.Sprintf("%s:%s:%s->%s@%s", host, x.RuleID, x.From, x.Status, x.At.Sub(base)))
		}
		return out
	}
	all, err := s.FleetTransitions(ctx, base, base.Add(3*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a:r1:->fail@0s",
		"b:r1:->pass@0s", "b:r1:pass->fail@1h0m0s", "b:r1:fail->pass@2h0m0s",
		"b:r2:->pass@0s", "b:r2:pass->fail@1h0m0s", "b:r2:fail->pass@2h0m0s"}
	if a.ID > b.ID {
		want = append(want[1:], want[0])
	}
	if got := render(all); !reflect.DeepEqual(got, want) {
		t.Errorf("fleet transitions\n got %v\nwant %v", got, want)
	}
	one, err := s.FleetTransitions(ctx, base.Add(time.Hour), base.Add(2*time.Hour), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(one), []string{"b:r1:pass->fail@1h0m0s", "b:r2:pass->fail@1h0m0s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("host b transitions in [1h, 2h)\n got %v\nwant %v", got, want)
	}
	// The per-host view carries the host id too.
	tr, err := s.Transitions(ctx, a.ID, base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 1 || tr[0].HostID != a.ID {
		t.Errorf("transitions of host a = %+v, want one with HostID %d", tr, a.ID)
	}
}

func testPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	type answers struct {
		counts [][]store.HostCounts
		states [][]store.Finding
		cur    [][]store.Finding
	}
	ask := func() answers {
		var a answers
		for _, at := range h.moments() {
			cs, err := s.CountsAt(ctx, at, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			a.counts = append(a.counts, sortCounts(cs))
			for _, ho := range h.hosts {
				fs, err := s.StateAt(ctx, ho.ID, at)
				if err != nil {
					t.Fatal(err)
				}
				a.states = append(a.states, fs)
			}
		}
		for _, ho := range h.hosts {
			fs, err := s.CurrentState(ctx, ho.ID)
			if err != nil {
				t.Fatal(err)
			}
			a.cur = append(a.cur, fs)
		}
		return a
	}
	before := ask()
	cut := h.steps[5].at // results of steps 0..4 go
	var old, kept int
	for _, id := range h.scans {
		rs, err := s.ScanResults(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.At.Before(cut) {
				old++
			} else {
				kept++
			}
		}
	}
	n, err := s.PruneResults(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(old) || old == 0 {
		t.Errorf("pruned %d rows, want %d (> 0)", n, old)
	}
	var left int
	for _, id := range h.scans {
		rs, err := s.ScanResults(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.At.Before(cut) {
				t.Errorf("result %s of scan %d at %s survived pruning", r.RuleID, id, r.At)
			}
		}
		left += len(rs)
	}
	if left != kept {
		t.Errorf("%d results left, want %d", left, kept)
	}
	if after := ask(); !reflect.DeepEqual(before, after) {
		t.Errorf("pruning results changed history answers")
	}
	if n, err := s.PruneResults(ctx, cut); err != nil || n != 0 {
		t.Errorf("second prune = %d, %v; want 0, nil", n, err)
	}
}

// testCountsAtDays checks CountsAt against StateAt (the per-host
// rebuild) over several UTC days, with a change exactly at midnight, a
// rule first seen late, a critical rule, and a late batch whose results
// predate changes already stored on a later day: a driver that keeps
// per-day state must not answer from state the late batch made stale.
func testCountsAtDays(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := host(t, s, "days-a"), host(t, s, "days-b")
	day := func(d, h int) time.Time { return time.Date(2026, 2, 1+d, h, 0, 0, 0, time.UTC) }
	crit := func(r result.Result) result.Result { r.Severity = rule.Critical; return r }
	var moments []time.Time
	put := func(hostID int64, at time.Time, rs ...result.Result) {
		t.Helper()
		ingest(t, s, scan(t, s, hostID, at).ID, 1, rs...)
		for _, r := range rs {
			moments = append(moments, r.Time.Add(-time.Microsecond), r.Time, r.Time.Add(time.Microsecond))
		}
	}
	put(a.ID, day(0, 8), res("r1", result.Pass, day(0, 8)), res("r2", result.Pass, day(0, 8)),
		res("r3", result.Pass, day(0, 8)), crit(res("r4", result.Pass, day(0, 8))))
	put(b.ID, day(0, 9), res("r1", result.Fail, day(0, 9)), crit(res("r4", result.Fail, day(0, 9))))
	put(a.ID, day(1, 8), res("r1", result.Fail, day(1, 8)), crit(res("r4", result.Fail, day(1, 8))))
	put(a.ID, day(3, 10), res("r2", result.Fail, day(3, 10)), res("r5", result.Skipped, day(3, 10)))
	put(b.ID, day(3, 0), res("r1", result.Pass, day(3, 0)), res("r6", result.Error, day(3, 0)))
	// Late: r3's results of day 2 arrive after day 3's changes.
	put(a.ID, day(2, 12), res("r3", result.Fail, day(2, 12)))
	put(a.ID, day(4, 0), crit(res("r4", result.Pass, day(4, 0))), res("r1", result.Error, day(4, 0)))
	put(b.ID, day(4, 1), crit(res("r4", result.Pass, day(4, 1))))
	for d := -1; d <= 6; d++ {
		moments = append(moments, day(d, 0), day(d, 0).Add(-time.Microsecond), day(d, 12))
	}
	filters := []struct {
		rules []string
		hosts []int64
	}{
		{nil, nil},
		{[]string{"r1", "r4", "r5", "r6", "zz"}, nil},
		{[]string{"r3"}, []int64{a.ID}},
		{nil, []int64{b.ID}},
	}
	for _, at := range moments {
		for _, f := range filters {
			got, err := s.CountsAt(ctx, at, f.rules, f.hosts)
			if err != nil {
				t.Fatal(err)
			}
			var want []store.HostCounts
			for _, h := range []store.Host{a, b} {
				if f.hosts != nil && !slices.Contains(f.hosts, h.ID) {
					continue
				}
				fs, err := s.StateAt(ctx, h.ID, at)
				if err != nil {
					t.Fatal(err)
				}
				hc := store.HostCounts{HostID: h.ID, Counts: map[result.Status]int{}}
				for _, fi := range fs {
					if f.rules != nil && !slices.Contains(f.rules, fi.RuleID) {
						continue
					}
					hc.Counts[fi.Status]++
					if fi.Status == result.Fail && fi.Severity == rule.Critical {
						hc.CriticalFail++
					}
				}
				if len(hc.Counts) > 0 {
					want = append(want, hc)
				}
			}
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			if !reflect.DeepEqual(sortCounts(got), want) {
				t.Errorf("counts at %s rules %v hosts %v\n got %+v\nwant %+v", at.Format(time.RFC3339Nano), f.rules, f.hosts, got, want)
			}
		}
	}
	// A spot check that StateAt itself saw the late batch.
	fs, err := s.StateAt(ctx, a.ID, day(2, 13))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(fs); got["r3"] != result.Fail || got["r1"] != result.Fail || got["r2"] != result.Pass {
		t.Errorf("state of days-a at day 2 13:00 = %v, want r1 fail, r2 pass, r3 fail", got)
	}
}
