package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// currentTests cover the "now" queries answered from current state.
var currentTests = []contractTest{
	{"CurrentCountsMatchCountsAtNow", testCurrentCounts},
	{"TopFailing", testTopFailing},
	{"RecentChanges", testRecentChanges},
	{"RuleStatusCountsSumToCurrentCounts", testRuleStatusCounts},
}

// The per-rule totals, summed over any rule set, equal the per-host counts
// summed over hosts; critical failures match by severity.
func testRuleStatusCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	buildHistory(t, s)
	rcs, err := s.RuleStatusCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) == 0 {
		t.Fatal("no rule status counts for a store with history")
	}
	for _, set := range [][]string{nil, {"r0", "r3", "r7"}, {"r5"}} {
		in := map[string]bool{}
		for _, r := range set {
			in[r] = true
		}
		sum, crit := map[result.Status]int{}, 0
		for _, rc := range rcs {
			if set != nil && !in[rc.RuleID] {
				continue
			}
			sum[rc.Status] += rc.Hosts
			if rc.Status == result.Fail && rc.Severity == rule.Critical {
				crit += rc.Hosts
			}
		}
		hc, err := s.CurrentCounts(ctx, set, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, wantCrit := map[result.Status]int{}, 0
		for _, h := range hc {
			for st, n := range h.Counts {
				want[st] += n
			}
			wantCrit += h.CriticalFail
		}
		for _, st := range []result.Status{result.Pass, result.Fail, result.Error, result.Skipped} {
			if sum[st] != want[st] {
				t.Errorf("rules %v: %s summed per rule %d, per host %d", set, st, sum[st], want[st])
			}
		}
		if crit != wantCrit {
			t.Errorf("rules %v: critical failures per rule %d, per host %d", set, crit, wantCrit)
		}
	}
}

func testCurrentCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	now := base.Add(1000 * time.Hour)
	filters := []struct {
		rules []string
		hosts []int64
	}{
		{nil, nil},
		{[]string{"r0", "r3", "r7", "nope"}, nil},
		{nil, []int64{h.hosts[2].ID, h.hosts[0].ID}},
		{[]string{"r1", "r2"}, []int64{h.hosts[1].ID}},
		{[]string{"r5"}, []int64{h.hosts[2].ID, h.hosts[2].ID + 1000}},
		{[]string{}, nil},
		{nil, []int64{}},
	}
	for _, f := range filters {
		got, err := s.CurrentCounts(ctx, f.rules, f.hosts)
		if err != nil {
			t.Fatal(err)
		}
		at, err := s.CountsAt(ctx, now, f.rules, f.hosts)
		if err != nil {
			t.Fatal(err)
		}
		want := h.expect(now, f.rules, f.hosts)
		if len(want) == 0 {
			if len(got) != 0 || len(at) != 0 {
				t.Errorf("rules %v hosts %v: current %+v, counts at now %+v, want none", f.rules, f.hosts, got, at)
			}
			continue
		}
		if !reflect.DeepEqual(sortCounts(got), want) {
			t.Errorf("current counts rules %v hosts %v\n got %+v\nwant %+v", f.rules, f.hosts, got, want)
		}
		if !reflect.DeepEqual(sortCounts(at), sortCounts(got)) {
			t.Errorf("rules %v hosts %v: current counts %+v differ from counts at now %+v", f.rules, f.hosts, got, at)
		}
	}
}

func testTopFailing(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	gone := h.hosts[1]
	if err := s.DeleteHost(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	last := h.steps[len(h.steps)-1]
	expect := func(rules []string, limit int) []store.RuleFailures {
		n := map[string]int{}
		for _, ho := range h.hosts {
			if ho.ID == gone.ID {
				continue
			}
			for id, st := range last.state[ho.ID] {
				if st == result.Fail && (rules == nil || contains(rules, id)) {
					n[id]++
				}
			}
		}
		out := []store.RuleFailures{}
		for id, k := range n {
			out = append(out, store.RuleFailures{RuleID: id, Hosts: k, Severity: h.sev[id]})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Hosts != out[j].Hosts {
				return out[i].Hosts > out[j].Hosts
			}
			return out[i].RuleID < out[j].RuleID
		})
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	cases := []struct {
		rules []string
		limit int
	}{
		{nil, 100}, {nil, 2}, {[]string{"r0", "r1", "r6", "nope"}, 100}, {[]string{"r3"}, 1}, {[]string{}, 10}, {nil, 0},
	}
	nonEmpty := false
	for _, c := range cases {
		got, err := s.TopFailing(ctx, c.rules, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		want := expect(c.rules, c.limit)
		nonEmpty = nonEmpty || len(want) > 0
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("top failing rules %v limit %d\n got %+v\nwant %+v", c.rules, c.limit, got, want)
		}
	}
	if !nonEmpty {
		t.Fatal("history has no failing rule: the test checks nothing")
	}
}

func testRecentChanges(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	gone := h.hosts[0]
	if err := s.DeleteHost(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	since := h.steps[5].at // a scan's own changes are at since: included
	all, err := s.FleetTransitions(ctx, base.Add(-time.Hour), base.Add(1000*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Transition
	for _, tr := range all {
		if tr.From != "" && tr.HostID != gone.ID && !tr.At.Before(since) {
			want = append(want, tr)
		}
	}
	if len(want) < 4 || !containsAt(want, since) {
		t.Fatalf("history gives %d changes since %s: the test needs more, some at since", len(want), since)
	}
	key := func(tr store.Transition) string {
		return fmt.Sprintf("%s|%d|%s|%s|%s|%d", tr.At.UTC().Format(time.RFC3339Nano), tr.HostID, tr.RuleID, tr.From, tr.Status, tr.ScanID)
	}
	keys := func(ts []store.Transition) []string {
		out := make([]string, len(ts))
		for i, tr := range ts {
			out[i] = key(tr)
		}
		sort.Strings(out)
		return out
	}
	for _, limit := range []int{len(want) + 10, len(want), 5, 1} {
		got, err := s.RecentChanges(ctx, since, limit)
		if err != nil {
			t.Fatal(err)
		}
		if n := min(limit, len(want)); len(got) != n {
			t.Fatalf("limit %d: %d changes, want %d", limit, len(got), n)
		}
		for i := 1; i < len(got); i++ {
			if got[i].At.After(got[i-1].At) {
				t.Fatalf("limit %d: change %d at %s after change %d at %s: not newest first", limit, i, got[i].At, i-1, got[i-1].At)
			}
		}
		if limit >= len(want) {
			if !reflect.DeepEqual(keys(got), keys(want)) {
				t.Errorf("limit %d: changes\n got %v\nwant %v", limit, keys(got), keys(want))
			}
			// Full rows, not only keys: the finding columns come back too.
			byKey := map[string]store.Transition{}
			for _, tr := range want {
				byKey[key(tr)] = tr
			}
			for _, tr := range got {
				if w := byKey[key(tr)]; !reflect.DeepEqual(tr, w) {
					t.Errorf("change %s\n got %+v\nwant %+v", key(tr), tr, w)
				}
			}
			continue
		}
		// A prefix of the newest: every change newer than the oldest
		// returned is returned, and each returned one is a real change.
		in := map[string]bool{}
		for _, k := range keys(want) {
			in[k] = true
		}
		gotKeys := map[string]bool{}
		for _, tr := range got {
			if !in[key(tr)] {
				t.Errorf("limit %d: unexpected change %s", limit, key(tr))
			}
			gotKeys[key(tr)] = true
		}
		oldest := got[len(got)-1].At
		for _, tr := range want {
			if tr.At.After(oldest) && !gotKeys[key(tr)] {
				t.Errorf("limit %d: newer change %s left out", limit, key(tr))
			}
		}
	}
	if got, err := s.RecentChanges(ctx, since, 0); err != nil || len(got) != 0 {
		t.Errorf("limit 0: %d changes, err %v; want none", len(got), err)
	}
}

func containsAt(ts []store.Transition, at time.Time) bool {
	for _, tr := range ts {
		if tr.At.Equal(at) {
			return true
		}
	}
	return false
}
