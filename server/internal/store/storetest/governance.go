package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// governanceTests cover exceptions, alerts, notification channels and the
// delivery log (store.Governance).
var governanceTests = []contractTest{
	{"Governance/ExceptionRoundTrip", testExceptionRoundTrip},
	{"Governance/ExceptionFilters", testExceptionFilters},
	{"Governance/DecideException", testDecideException},
	{"Governance/DecideExceptionConcurrent", testDecideExceptionConcurrent},
	{"Governance/ExpireExceptions", testExpireExceptions},
	{"Governance/ExpireExceptionsConcurrent", testExpireExceptionsConcurrent},
	{"Governance/FailingAt", testFailingAt},
	{"Governance/RaiseAlert", testRaiseAlert},
	{"Governance/RaiseAlertConcurrent", testRaiseAlertConcurrent},
	{"Governance/ResolveAlerts", testResolveAlerts},
	{"Governance/SetAlertState", testSetAlertState},
	{"Governance/SilenceLapses", testSilenceLapses},
	{"Governance/AlertsListAndCounts", testAlertsListAndCounts},
	{"Governance/Channels", testChannels},
	{"Governance/Deliveries", testDeliveries},
}

// govAt is a moment with sub-microsecond digits: stores keep microseconds.
var govAt = base.Add(1234567891 * time.Nanosecond)

func newException(t *testing.T, s store.Store, e store.Exception) store.Exception {
	t.Helper()
	out, err := s.CreateException(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decide(t *testing.T, s store.Store, id int64, to store.ExceptionState, at time.Time, from ...store.ExceptionState) store.Exception {
	t.Helper()
	e, err := s.DecideException(context.Background(), store.ExceptionDecision{ID: id, From: from, To: to,
		By: "sec-" + string(to), At: at, Note: "note " + string(to)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testExceptionRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "exc-host")
	g, err := s.CreateGroup(ctx, store.Group{Name: "exc-group"})
	if err != nil {
		t.Fatal(err)
	}
	in := []store.Exception{
		{RuleID: "sshd_permit_root", HostID: h.ID, Justification: "legacy jump host, replaced in Q3",
			ExpiresAt: govAt.Add(30 * 24 * time.Hour), RequestedBy: "alice", RequestedAt: govAt},
		{RuleID: "auditd_enabled", GroupID: g.ID, Justification: "containers log elsewhere", RequestedBy: "bob",
			RequestedAt: govAt.Add(time.Second)},
		// Decision fields and a state in the input are ignored: new is requested.
		{RuleID: "fleet_rule", Justification: "fleet wide acceptance", RequestedBy: "carol", RequestedAt: govAt.Add(2 * time.Second),
			State: store.ExceptionApproved, DecidedBy: "mallory", DecidedAt: govAt},
	}
	for _, e := range in {
		got := newException(t, s, e)
		want := store.Exception{ID: got.ID, RuleID: e.RuleID, HostID: e.HostID, GroupID: e.GroupID,
			Justification: e.Justification, ExpiresAt: store.Micro(e.ExpiresAt), State: store.ExceptionRequested,
			RequestedBy: e.RequestedBy, RequestedAt: store.Micro(e.RequestedAt)}
		if e.ExpiresAt.IsZero() {
			want.ExpiresAt = time.Time{}
		}
		if got.ID == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("created exception\n got %+v\nwant %+v", got, want)
		}
		read, err := s.Exception(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(read, want) {
			t.Errorf("read exception\n got %+v\nwant %+v", read, want)
		}
	}
	if _, err := s.CreateException(ctx, store.Exception{RuleID: "r", HostID: h.ID, GroupID: g.ID, RequestedBy: "x",
		Justification: "both scopes set"}); err == nil {
		t.Error("exception with both host and group was accepted")
	}
	if _, err := s.CreateException(ctx, store.Exception{HostID: h.ID, RequestedBy: "x", Justification: "no rule id"}); err == nil {
		t.Error("exception without a rule was accepted")
	}
	if _, err := s.CreateException(ctx, store.Exception{RuleID: "r", HostID: h.ID + 1000, RequestedBy: "x",
		Justification: "unknown host"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("exception for an unknown host: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Exception(ctx, 1_000_000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown exception: err = %v, want ErrNotFound", err)
	}
}

func exceptionIDs(es []store.Exception) []int64 {
	ids := []int64{}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func testExceptionFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	h1, h2 := host(t, s, "f1"), host(t, s, "f2")
	g, err := s.CreateGroup(ctx, store.Group{Name: "fg"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rule string, hostID, groupID int64, i int) store.Exception {
		return newException(t, s, store.Exception{RuleID: rule, HostID: hostID, GroupID: groupID,
			Justification: "justified at length", RequestedBy: "op", RequestedAt: base.Add(time.Duration(i) * time.Minute)})
	}
	a := mk("r1", h1.ID, 0, 0)
	b := mk("r1", h2.ID, 0, 1)
	c := mk("r2", 0, g.ID, 2)
	d := mk("r2", 0, 0, 3)
	decide(t, s, b.ID, store.ExceptionApproved, base.Add(time.Hour), store.ExceptionRequested)
	decide(t, s, c.ID, store.ExceptionRejected, base.Add(time.Hour), store.ExceptionRequested)
	cases := []struct {
		f    store.ExceptionFilter
		want []int64
	}{
		{store.ExceptionFilter{}, []int64{d.ID, c.ID, b.ID, a.ID}},
		{store.ExceptionFilter{Limit: 2}, []int64{d.ID, c.ID}},
		{store.ExceptionFilter{States: []store.ExceptionState{store.ExceptionRequested}}, []int64{d.ID, a.ID}},
		{store.ExceptionFilter{States: []store.ExceptionState{store.ExceptionApproved, store.ExceptionRejected}}, []int64{c.ID, b.ID}},
		{store.ExceptionFilter{States: []store.ExceptionState{}}, []int64{}},
		{store.ExceptionFilter{RuleID: "r1"}, []int64{b.ID, a.ID}},
		{store.ExceptionFilter{HostID: h1.ID}, []int64{a.ID}},
		{store.ExceptionFilter{GroupID: g.ID}, []int64{c.ID}},
		{store.ExceptionFilter{RuleID: "r2", States: []store.ExceptionState{store.ExceptionRequested}}, []int64{d.ID}},
		{store.ExceptionFilter{RuleID: "nope"}, []int64{}},
	}
	for _, c := range cases {
		got, err := s.Exceptions(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if ids := exceptionIDs(got); !reflect.DeepEqual(ids, c.want) {
			t.Errorf("exceptions %+v = %v, want %v", c.f, ids, c.want)
		}
	}
}

func testDecideException(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "decide")
	e := newException(t, s, store.Exception{RuleID: "r1", HostID: h.ID, Justification: "needed for the backup agent",
		ExpiresAt: base.Add(48 * time.Hour), RequestedBy: "alice", RequestedAt: base})

	approved := decide(t, s, e.ID, store.ExceptionApproved, govAt, store.ExceptionRequested)
	want := e
	want.State, want.DecidedBy, want.DecidedAt, want.DecisionNote = store.ExceptionApproved, "sec-approved", store.Micro(govAt), "note approved"
	if !reflect.DeepEqual(approved, want) {
		t.Errorf("approved\n got %+v\nwant %+v", approved, want)
	}

	// Approving again, or rejecting, finds it approved: conflict, no change.
	for _, to := range []store.ExceptionState{store.ExceptionApproved, store.ExceptionRejected} {
		_, err := s.DecideException(ctx, store.ExceptionDecision{ID: e.ID, From: []store.ExceptionState{store.ExceptionRequested},
			To: to, By: "bob", At: govAt.Add(time.Hour), Note: "late"})
		if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "approved") {
			t.Errorf("%s an approved exception: err = %v, want ErrConflict naming approved", to, err)
		}
	}
	if got, err := s.Exception(ctx, e.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after refused decisions: %+v, %v; want unchanged %+v", got, err, want)
	}

	revoked := decide(t, s, e.ID, store.ExceptionRevoked, govAt.Add(2*time.Hour), store.ExceptionApproved)
	want.State, want.RevokedBy, want.RevokedAt, want.RevokeNote = store.ExceptionRevoked, "sec-revoked", store.Micro(govAt.Add(2*time.Hour)), "note revoked"
	if !reflect.DeepEqual(revoked, want) {
		t.Errorf("revoked (decision kept)\n got %+v\nwant %+v", revoked, want)
	}
	if _, err := s.DecideException(ctx, store.ExceptionDecision{ID: e.ID, From: []store.ExceptionState{store.ExceptionApproved},
		To: store.ExceptionRevoked, By: "x", At: govAt}); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoke twice: err = %v, want ErrConflict naming revoked", err)
	}

	r := newException(t, s, store.Exception{RuleID: "r2", Justification: "fleet wide for a while", RequestedBy: "alice", RequestedAt: base})
	rejected := decide(t, s, r.ID, store.ExceptionRejected, govAt, store.ExceptionRequested)
	if rejected.State != store.ExceptionRejected || rejected.DecidedBy != "sec-rejected" || !rejected.DecidedAt.Equal(store.Micro(govAt)) ||
		rejected.DecisionNote != "note rejected" || !rejected.RevokedAt.IsZero() {
		t.Errorf("rejected: %+v", rejected)
	}

	x := newException(t, s, store.Exception{RuleID: "r3", Justification: "expires through a decision", RequestedBy: "alice", RequestedAt: base})
	decide(t, s, x.ID, store.ExceptionApproved, base.Add(time.Minute), store.ExceptionRequested)
	expired := decide(t, s, x.ID, store.ExceptionExpired, govAt, store.ExceptionApproved)
	if expired.State != store.ExceptionExpired || !expired.ExpiredAt.Equal(store.Micro(govAt)) || expired.DecidedBy != "sec-approved" ||
		expired.RevokedBy != "" || !expired.RevokedAt.IsZero() {
		t.Errorf("expired by decision: %+v", expired)
	}

	if _, err := s.DecideException(ctx, store.ExceptionDecision{ID: e.ID + 1000, From: []store.ExceptionState{store.ExceptionRequested},
		To: store.ExceptionApproved, By: "x", At: govAt}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("decide unknown exception: err = %v, want ErrNotFound", err)
	}
	if _, err := s.DecideException(ctx, store.ExceptionDecision{ID: r.ID, From: []store.ExceptionState{store.ExceptionRejected},
		To: store.ExceptionRequested, By: "x", At: govAt}); err == nil {
		t.Error("moving an exception back to requested was accepted")
	}
	if got, _ := s.Exception(ctx, r.ID); !reflect.DeepEqual(got, rejected) {
		t.Errorf("refused move changed the exception: %+v", got)
	}
}

// Deciders racing on one requested exception: exactly one wins.
func testDecideExceptionConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := newException(t, s, store.Exception{RuleID: "r1", Justification: "raced by several approvers", RequestedBy: "a", RequestedAt: base})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := store.ExceptionApproved
			if i%2 == 1 {
				to = store.ExceptionRejected
			}
			_, err := s.DecideException(ctx, store.ExceptionDecision{ID: e.ID, From: []store.ExceptionState{store.ExceptionRequested},
				To: to, By: fmt.Sprintf("u%d", i), At: base.Add(time.Duration(i) * time.Second)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("losing decider: err = %v, want ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent decisions applied, want 1", won, n)
	}
}

func testExpireExceptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := govAt.Add(10 * 24 * time.Hour)
	mk := func(rule string, expires time.Time, approve bool) store.Exception {
		e := newException(t, s, store.Exception{RuleID: rule, Justification: "expiry test case", ExpiresAt: expires,
			RequestedBy: "op", RequestedAt: base})
		if approve {
			e = decide(t, s, e.ID, store.ExceptionApproved, base.Add(time.Minute), store.ExceptionRequested)
		}
		return e
	}
	past := mk("past", now.Add(-time.Hour), true)
	exact := mk("exact", now, true)
	future := mk("future", now.Add(time.Microsecond), true)
	never := mk("never", time.Time{}, true)
	pending := mk("pending", now.Add(-time.Hour), false)
	revoked := mk("revoked", now.Add(-time.Hour), true)
	decide(t, s, revoked.ID, store.ExceptionRevoked, base.Add(time.Hour), store.ExceptionApproved)

	got, err := s.ExpireExceptions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if ids := exceptionIDs(got); !reflect.DeepEqual(ids, []int64{past.ID, exact.ID}) {
		t.Fatalf("expired %v, want %v (past and exactly now)", ids, []int64{past.ID, exact.ID})
	}
	for _, e := range got {
		if e.State != store.ExceptionExpired || !e.ExpiredAt.Equal(store.Micro(now)) || e.DecidedBy != "sec-approved" {
			t.Errorf("expired exception %+v: want state expired at %s, decision kept", e, store.Micro(now))
		}
	}
	for _, e := range []store.Exception{future, never, pending} {
		read, err := s.Exception(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if read.State != e.State || !read.ExpiredAt.IsZero() {
			t.Errorf("exception %s changed: %+v", e.RuleID, read)
		}
	}
	if read, _ := s.Exception(ctx, revoked.ID); read.State != store.ExceptionRevoked || !read.ExpiredAt.IsZero() {
		t.Errorf("revoked exception expired: %+v", read)
	}
	again, err := s.ExpireExceptions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Errorf("second expiry moved %v again", exceptionIDs(again))
	}
}

// Replicas expiring at once each get a disjoint share, together all.
func testExpireExceptionsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n, callers = 30, 4
	want := map[int64]bool{}
	for i := range n {
		e := newException(t, s, store.Exception{RuleID: fmt.Sprintf("r%02d", i), Justification: "concurrent expiry",
			ExpiresAt: base.Add(time.Hour), RequestedBy: "op", RequestedAt: base})
		decide(t, s, e.ID, store.ExceptionApproved, base, store.ExceptionRequested)
		want[e.ID] = true
	}
	var wg sync.WaitGroup
	results := make(chan []store.Exception, callers)
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.ExpireExceptions(ctx, base.Add(2*time.Hour))
			if err != nil {
				errs <- err
				return
			}
			results <- got
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for got := range results {
		for _, e := range got {
			seen[e.ID]++
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("exception %d returned by %d callers, want exactly 1", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d exceptions returned, want %d", len(seen), len(want))
	}
}

func testFailingAt(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c := host(t, s, "fa-a"), host(t, s, "fa-b"), host(t, s, "fa-c")
	day := 24 * time.Hour
	crit := func(r result.Result) result.Result { r.Severity = rule.Critical; return r }
	steps := []struct {
		h   store.Host
		at  time.Time
		res []result.Result
	}{
		{a, base, []result.Result{res("r1", result.Fail, base), res("r2", result.Pass, base), res("r3", result.Fail, base)}},
		{b, base, []result.Result{res("r1", result.Pass, base), crit(res("r2", result.Fail, base))}},
		{c, base, []result.Result{res("r1", result.Fail, base)}},
		{a, base.Add(day), []result.Result{res("r1", result.Pass, base.Add(day)), res("r2", result.Fail, base.Add(day))}},
		{b, base.Add(day), []result.Result{crit(res("r1", result.Fail, base.Add(day))), crit(res("r2", result.Fail, base.Add(day)))}},
	}
	for _, st := range steps {
		ingest(t, s, scan(t, s, st.h.ID, st.at).ID, 1, st.res...)
	}
	if err := s.DeleteHost(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	name := map[int64]string{a.ID: "a", b.ID: "b", c.ID: "c"}
	// expected gives each failing (host, rule) the severity and scan of the
	// finding in force: CurrentState now, StateAt in the past.
	expected := func(at time.Time, hosts []store.Host, rules []string) []store.HostRule {
		var out []store.HostRule
		for _, h := range hosts {
			var fs []store.Finding
			var err error
			if at.IsZero() {
				fs, err = s.CurrentState(ctx, h.ID)
			} else {
				fs, err = s.StateAt(ctx, h.ID, at)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if f.Status == result.Fail && contains(rules, f.RuleID) {
					out = append(out, store.HostRule{HostID: h.ID, RuleID: f.RuleID, Severity: f.Severity, ScanID: f.ScanID})
				}
			}
		}
		return out
	}
	rules := []string{"r1", "r2"}
	ab := []store.Host{a, b}
	cases := []struct {
		name  string
		at    time.Time
		rules []string
		hosts []int64
		pairs []string // host/rule in order
		from  []store.Host
	}{
		{"now", time.Time{}, rules, nil, []string{"a/r2", "b/r1", "b/r2"}, ab},
		{"day 0", base.Add(time.Hour), rules, nil, []string{"a/r1", "b/r2"}, ab},
		{"last moment of day 0", base.Add(day - time.Microsecond), rules, nil, []string{"a/r1", "b/r2"}, ab},
		{"day 1", base.Add(day), rules, nil, []string{"a/r2", "b/r1", "b/r2"}, ab},
		{"long after", base.Add(300 * day), rules, nil, []string{"a/r2", "b/r1", "b/r2"}, ab},
		{"before history", base.Add(-time.Second), rules, nil, nil, nil},
		{"one host now", time.Time{}, rules, []int64{a.ID}, []string{"a/r2"}, []store.Host{a}},
		{"one host day 0", base, rules, []int64{b.ID}, []string{"b/r2"}, []store.Host{b}},
		{"deleted host named", time.Time{}, rules, []int64{c.ID}, []string{"c/r1"}, []store.Host{c}},
		{"deleted host named in the past", base, rules, []int64{c.ID}, []string{"c/r1"}, []store.Host{c}},
		{"no hosts", time.Time{}, rules, []int64{}, nil, nil},
		{"no hosts in the past", base, rules, []int64{}, nil, nil},
		{"other rule", base, []string{"r3"}, nil, []string{"a/r3"}, ab},
		{"rule given twice", base, []string{"r3", "r3"}, nil, []string{"a/r3"}, ab},
		{"unknown rule", base.Add(day), []string{"zz"}, nil, nil, nil},
	}
	for _, cs := range cases {
		got, err := s.FailingAt(ctx, cs.at, cs.rules, cs.hosts)
		if err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		var pairs []string
		for _, hr := range got {
			pairs = append(pairs, name[hr.HostID]+"/"+hr.RuleID)
		}
		if !reflect.DeepEqual(pairs, cs.pairs) {
			t.Errorf("%s: failing %v, want %v", cs.name, pairs, cs.pairs)
			continue
		}
		if want := expected(cs.at, cs.from, cs.rules); len(got) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: failing\n got %+v\nwant %+v", cs.name, got, want)
		}
	}
	// b/r1 failed critical on day 1: the severity is the finding's.
	got, err := s.FailingAt(ctx, base.Add(day), []string{"r1"}, []int64{b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Severity != rule.Critical || got[0].ScanID == 0 {
		t.Errorf("b/r1 on day 1: %+v, want critical with its scan", got)
	}
	if _, err := s.FailingAt(ctx, time.Time{}, nil, nil); err == nil {
		t.Error("FailingAt without rules was accepted")
	}
}

func raise(t *testing.T, s store.Store, a store.Alert) (store.Alert, bool) {
	t.Helper()
	out, created, err := s.RaiseAlert(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return out, created
}

func testRaiseAlert(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Alert{Kind: "rule_failing", Key: "rule_failing/host/7/sshd_permit_root", Severity: "critical",
		HostID: 7, AgentID: 3, RuleID: "sshd_permit_root", ExceptionID: 11, Labels: map[string]string{"env": "prod", "team": "web"},
		Title: "sshd_permit_root fails on web1", Detail: `{"from":"pass","to":"fail"}`, At: govAt}
	first, created := raise(t, s, in)
	want := store.Alert{ID: first.ID, Kind: in.Kind, Key: in.Key, Severity: in.Severity, HostID: 7, AgentID: 3,
		RuleID: in.RuleID, ExceptionID: 11, Labels: in.Labels, Title: in.Title, Detail: in.Detail, State: store.AlertActive,
		OpenedAt: store.Micro(govAt), LastSeenAt: store.Micro(govAt), Count: 1}
	if !created || first.ID == 0 || !reflect.DeepEqual(first, want) {
		t.Errorf("raised (created %v)\n got %+v\nwant %+v", created, first, want)
	}
	if read, err := s.Alert(ctx, first.ID); err != nil || !reflect.DeepEqual(read, want) {
		t.Errorf("read alert: %+v, %v\nwant %+v", read, err, want)
	}

	// Seen again: the same incident, updated; identity fields stay.
	again := in
	again.Severity, again.Title, again.Detail, again.At = "high", "still failing", `{"n":2}`, govAt.Add(time.Hour)
	again.Labels = map[string]string{"other": "x"}
	second, created := raise(t, s, again)
	want.Severity, want.Title, want.Detail, want.LastSeenAt, want.Count = "high", "still failing", `{"n":2}`, store.Micro(govAt.Add(time.Hour)), 2
	if created || !reflect.DeepEqual(second, want) {
		t.Errorf("raised again (created %v)\n got %+v\nwant %+v", created, second, want)
	}
	// A late sighting (an earlier At) counts but does not move LastSeenAt back.
	late := again
	late.At = govAt
	third, created := raise(t, s, late)
	want.Count = 3
	if created || !reflect.DeepEqual(third, want) {
		t.Errorf("late sighting (created %v)\n got %+v\nwant %+v", created, third, want)
	}
	// Another key is another alert; empty labels come back empty, not nil.
	other, created := raise(t, s, store.Alert{Kind: "scan_overdue", Key: "scan_overdue/host/8", Severity: "medium", HostID: 8,
		Title: "overdue", Detail: "{}", At: govAt})
	if !created || other.ID == first.ID || other.Labels == nil || len(other.Labels) != 0 || other.AgentID != 0 || other.RuleID != "" {
		t.Errorf("other key: created %v, %+v", created, other)
	}
	// Once resolved, the key opens a new incident.
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: first.ID, To: store.AlertResolved, By: "op", At: govAt.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	again.At = govAt.Add(3 * time.Hour)
	reopened, created := raise(t, s, again)
	if !created || reopened.ID == first.ID || reopened.Count != 1 || !reopened.OpenedAt.Equal(store.Micro(again.At)) ||
		reopened.State != store.AlertActive {
		t.Errorf("raise after resolution: created %v, %+v; want a new active alert", created, reopened)
	}
	if old, _ := s.Alert(ctx, first.ID); old.State != store.AlertResolved || old.Count != 3 {
		t.Errorf("resolved alert changed by a new raise: %+v", old)
	}
	if _, _, err := s.RaiseAlert(ctx, store.Alert{Kind: "x", Title: "no key", At: govAt}); err == nil {
		t.Error("alert without a key was accepted")
	}
	if _, err := s.Alert(ctx, 1_000_000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown alert: err = %v, want ErrNotFound", err)
	}
}

// Replicas raising one key at once: one incident, every sighting counted.
func testRaiseAlertConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	type outcome struct {
		a       store.Alert
		created bool
		err     error
	}
	out := make(chan outcome, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, created, err := s.RaiseAlert(ctx, store.Alert{Kind: "band_drop", Key: "band_drop/host/1", Severity: "critical",
				HostID: 1, Title: "band critical", Detail: "{}", At: base.Add(time.Duration(i) * time.Second)})
			out <- outcome{a, created, err}
		}()
	}
	wg.Wait()
	close(out)
	created, ids := 0, map[int64]bool{}
	for o := range out {
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.created {
			created++
		}
		ids[o.a.ID] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Errorf("%d created, %d distinct ids; want exactly one alert created", created, len(ids))
	}
	all, err := s.Alerts(ctx, store.AlertFilter{Kind: "band_drop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Count != n || !all[0].LastSeenAt.Equal(base.Add((n-1)*time.Second)) {
		t.Errorf("alerts after %d concurrent raises: %+v; want one with count %d", n, all, n)
	}
}

func alertIDs(as []store.Alert) []int64 {
	ids := []int64{}
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

func testResolveAlerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(kind, key string) store.Alert {
		a, _ := raise(t, s, store.Alert{Kind: kind, Key: key, Severity: "high", Title: key, Detail: "{}", At: base})
		return a
	}
	a1, a2, a3 := mk("scan_overdue", "scan_overdue/host/1"), mk("scan_overdue", "scan_overdue/host/2"), mk("scan_overdue", "scan_overdue/host/3")
	b1 := mk("agent_offline", "agent_offline/agent/1")
	acked := mk("scan_overdue", "scan_overdue/host/4")
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: acked.ID, To: store.AlertAcknowledged, By: "op", At: base}); err != nil {
		t.Fatal(err)
	}
	manual := mk("scan_overdue", "scan_overdue/host/5")
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: manual.ID, To: store.AlertResolved, By: "op", At: base}); err != nil {
		t.Fatal(err)
	}

	at := govAt.Add(time.Hour)
	got, err := s.ResolveAlerts(ctx, []string{"scan_overdue"}, []string{a1.Key, "scan_overdue/host/99", b1.Key}, at)
	if err != nil {
		t.Fatal(err)
	}
	if ids := alertIDs(got); !reflect.DeepEqual(ids, []int64{a2.ID, a3.ID, acked.ID}) {
		t.Errorf("resolved %v, want %v (not kept, not already resolved, this kind only)", ids, []int64{a2.ID, a3.ID, acked.ID})
	}
	for _, a := range got {
		if a.State != store.AlertResolved || a.ResolvedBy != "system" || !a.ResolvedAt.Equal(store.Micro(at)) {
			t.Errorf("resolved alert %+v: want resolved by system at %s", a, store.Micro(at))
		}
	}
	for _, id := range []int64{a1.ID, b1.ID} {
		if a, _ := s.Alert(ctx, id); a.State != store.AlertActive {
			t.Errorf("alert %s was resolved: %+v", a.Key, a)
		}
	}
	if a, _ := s.Alert(ctx, manual.ID); a.ResolvedBy != "op" || !a.ResolvedAt.Equal(base) {
		t.Errorf("already resolved alert changed: %+v", a)
	}
	// No kinds: nothing; nil keep: every unresolved alert of the kind.
	if got, err := s.ResolveAlerts(ctx, nil, nil, at); err != nil || len(got) != 0 {
		t.Errorf("resolve with no kinds: %v, %v; want nothing", alertIDs(got), err)
	}
	got, err = s.ResolveAlerts(ctx, []string{"scan_overdue", "agent_offline"}, nil, at)
	if err != nil {
		t.Fatal(err)
	}
	if ids := alertIDs(got); !reflect.DeepEqual(ids, []int64{a1.ID, b1.ID}) {
		t.Errorf("resolve keeping nothing: %v, want %v", ids, []int64{a1.ID, b1.ID})
	}
}

func testSetAlertState(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, _ := raise(t, s, store.Alert{Kind: "agent_offline", Key: "agent_offline/agent/9", Severity: "high", AgentID: 9,
		Title: "agent offline", Detail: "{}", At: base})
	change := func(to store.AlertState, at, until time.Time) store.Alert {
		t.Helper()
		out, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID, To: to, By: "op-" + string(to), At: at, Until: until})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ack := change(store.AlertAcknowledged, govAt, time.Time{})
	if ack.State != store.AlertAcknowledged || ack.AckBy != "op-acknowledged" || !ack.AckAt.Equal(store.Micro(govAt)) || !ack.SilencedUntil.IsZero() {
		t.Errorf("acknowledged: %+v", ack)
	}
	until := govAt.Add(24 * time.Hour)
	sil := change(store.AlertSilenced, govAt.Add(time.Minute), until)
	if sil.State != store.AlertSilenced || sil.AckBy != "op-silenced" || !sil.AckAt.Equal(store.Micro(govAt.Add(time.Minute))) ||
		!sil.SilencedUntil.Equal(store.Micro(until)) {
		t.Errorf("silenced: %+v", sil)
	}
	ack = change(store.AlertAcknowledged, govAt.Add(2*time.Minute), time.Time{})
	if ack.State != store.AlertAcknowledged || !ack.SilencedUntil.IsZero() {
		t.Errorf("acknowledged after silence: %+v, want the silence cleared", ack)
	}
	change(store.AlertSilenced, govAt, until)
	act := change(store.AlertActive, govAt.Add(3*time.Minute), time.Time{})
	if act.State != store.AlertActive || act.AckBy != "" || !act.AckAt.IsZero() || !act.SilencedUntil.IsZero() {
		t.Errorf("reactivated: %+v, want ack and silence cleared", act)
	}
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID, To: store.AlertSilenced, By: "op", At: govAt}); err == nil {
		t.Error("silence without an end was accepted")
	}
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID, To: "bogus", By: "op", At: govAt}); err == nil {
		t.Error("unknown state was accepted")
	}
	res := change(store.AlertResolved, govAt.Add(4*time.Minute), time.Time{})
	want := act
	want.State, want.ResolvedBy, want.ResolvedAt = store.AlertResolved, "op-resolved", store.Micro(govAt.Add(4*time.Minute))
	if !reflect.DeepEqual(res, want) {
		t.Errorf("resolved\n got %+v\nwant %+v", res, want)
	}
	for _, to := range []store.AlertState{store.AlertActive, store.AlertAcknowledged, store.AlertSilenced, store.AlertResolved} {
		_, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID, To: to, By: "late", At: govAt.Add(time.Hour), Until: govAt.Add(48 * time.Hour)})
		if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "resolved") {
			t.Errorf("%s a resolved alert: err = %v, want ErrConflict naming resolved", to, err)
		}
	}
	if got, _ := s.Alert(ctx, a.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("resolved alert changed\n got %+v\nwant %+v", got, want)
	}
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID + 1000, To: store.AlertAcknowledged, By: "op", At: govAt}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("change unknown alert: err = %v, want ErrNotFound", err)
	}
}

// A silence lasts until its time: raises before it keep the alert
// silenced, the first raise at or after it makes it active again, and
// AlertCounts counts a lapsed silence as active even before that raise.
func testSilenceLapses(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Alert{Kind: "band_drop", Key: "band_drop/host/3", Severity: "medium", HostID: 3, Title: "band poor", Detail: "{}", At: base}
	a, _ := raise(t, s, in)
	until := base.Add(time.Hour)
	if _, err := s.SetAlertState(ctx, store.AlertChange{ID: a.ID, To: store.AlertSilenced, By: "op", At: base, Until: until}); err != nil {
		t.Fatal(err)
	}
	in.At = until.Add(-time.Microsecond)
	got, created := raise(t, s, in)
	if created || got.State != store.AlertSilenced || !got.SilencedUntil.Equal(until) || got.Count != 2 {
		t.Errorf("raise during the silence: created %v, %+v; want still silenced", created, got)
	}
	counts, err := s.AlertCounts(ctx, until.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.AlertSilenced] != 1 || counts[store.AlertActive] != 0 {
		t.Errorf("counts during the silence: %v", counts)
	}
	counts, err = s.AlertCounts(ctx, until)
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.AlertSilenced] != 0 || counts[store.AlertActive] != 1 {
		t.Errorf("counts once the silence lapsed: %v, want it active", counts)
	}
	in.At = until
	got, created = raise(t, s, in)
	if created || got.ID != a.ID || got.State != store.AlertActive || !got.SilencedUntil.IsZero() || got.AckBy != "" ||
		!got.AckAt.IsZero() || got.Count != 3 {
		t.Errorf("raise when the silence lapsed: created %v, %+v; want the same alert active again", created, got)
	}
}

func testAlertsListAndCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(kind, key string, hostID int64, seen time.Time) store.Alert {
		a, _ := raise(t, s, store.Alert{Kind: kind, Key: key, Severity: "high", HostID: hostID, Title: key, Detail: "{}", At: seen})
		return a
	}
	now := base.Add(100 * time.Hour)
	a := mk("score_drop", "score_drop/host/1", 1, base.Add(3*time.Hour))
	b := mk("score_drop", "score_drop/host/2", 2, base.Add(5*time.Hour))
	c := mk("scan_overdue", "scan_overdue/host/1", 1, base.Add(5*time.Hour)) // ties b: higher id first
	d := mk("mass_drift", "mass_drift/r1/fail", 0, base.Add(time.Hour))
	e := mk("agent_offline", "agent_offline/agent/4", 0, base.Add(2*time.Hour))
	f := mk("agent_offline", "agent_offline/agent/5", 0, base.Add(2*time.Hour))
	g := mk("agent_offline", "agent_offline/agent/6", 0, base.Add(2*time.Hour))
	set := func(id int64, to store.AlertState, at time.Time, until time.Time) {
		if _, err := s.SetAlertState(ctx, store.AlertChange{ID: id, To: to, By: "op", At: at, Until: until}); err != nil {
			t.Fatal(err)
		}
	}
	set(b.ID, store.AlertAcknowledged, now, time.Time{})
	set(c.ID, store.AlertSilenced, now, now.Add(time.Hour))
	set(d.ID, store.AlertResolved, now.Add(-23*time.Hour), time.Time{}) // within 24 h
	set(e.ID, store.AlertResolved, now.Add(-25*time.Hour), time.Time{}) // too old
	set(f.ID, store.AlertResolved, now.Add(time.Hour), time.Time{})     // after now
	set(g.ID, store.AlertSilenced, now, now)                            // lapses at now

	cases := []struct {
		f    store.AlertFilter
		want []int64
	}{
		{store.AlertFilter{}, []int64{c.ID, b.ID, a.ID, g.ID, f.ID, e.ID, d.ID}},
		{store.AlertFilter{Limit: 3}, []int64{c.ID, b.ID, a.ID}},
		{store.AlertFilter{States: []store.AlertState{store.AlertResolved}}, []int64{f.ID, e.ID, d.ID}},
		{store.AlertFilter{States: []store.AlertState{store.AlertActive, store.AlertAcknowledged}}, []int64{b.ID, a.ID}},
		{store.AlertFilter{States: []store.AlertState{}}, []int64{}},
		{store.AlertFilter{Kind: "score_drop"}, []int64{b.ID, a.ID}},
		{store.AlertFilter{HostID: 1}, []int64{c.ID, a.ID}},
		{store.AlertFilter{HostID: 1, Kind: "score_drop"}, []int64{a.ID}},
		{store.AlertFilter{Kind: "nope"}, []int64{}},
	}
	for _, cs := range cases {
		got, err := s.Alerts(ctx, cs.f)
		if err != nil {
			t.Fatal(err)
		}
		if ids := alertIDs(got); !reflect.DeepEqual(ids, cs.want) {
			t.Errorf("alerts %+v = %v, want %v", cs.f, ids, cs.want)
		}
	}
	counts, err := s.AlertCounts(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.AlertState]int{store.AlertActive: 2, store.AlertAcknowledged: 1, store.AlertSilenced: 1, store.AlertResolved: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("alert counts at now = %v, want %v", counts, want)
	}
	empty, err := s.AlertCounts(ctx, base.Add(-1000*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Long before: nothing resolved yet in the window, the rest counted by state.
	if empty[store.AlertResolved] != 0 || len(empty) != 4 {
		t.Errorf("alert counts long before = %v, want every state present and none resolved", empty)
	}
}

func testChannels(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Channel{Name: "ops-webhook", Kind: "webhook", Config: map[string]string{"url_host": "hooks.example.test"},
		Secret: []byte{0, 1, 2, 0xff, 'x'}, MinSeverity: "high", Labels: map[string]string{"env": "prod"},
		Kinds: []string{"rule_failing", "band_drop"}, Enabled: true, CreatedBy: "admin", CreatedAt: govAt}
	ch, err := s.CreateChannel(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ID, want.CreatedAt = ch.ID, store.Micro(govAt)
	if ch.ID == 0 || !reflect.DeepEqual(ch, want) {
		t.Errorf("created channel\n got %+v\nwant %+v", ch, want)
	}
	if got, err := s.Channel(ctx, ch.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("read channel %+v, %v\nwant %+v", got, err, want)
	}
	bare, err := s.CreateChannel(ctx, store.Channel{Name: "a-mail", Kind: "email", CreatedAt: govAt})
	if err != nil {
		t.Fatal(err)
	}
	wantBare := store.Channel{ID: bare.ID, Name: "a-mail", Kind: "email", Config: map[string]string{}, Labels: map[string]string{},
		Kinds: []string{}, CreatedAt: store.Micro(govAt)}
	if !reflect.DeepEqual(bare, wantBare) {
		t.Errorf("channel with nothing set\n got %+v\nwant %+v", bare, wantBare)
	}
	if _, err := s.CreateChannel(ctx, store.Channel{Name: "ops-webhook", Kind: "slack", CreatedAt: govAt}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate channel name: err = %v, want ErrConflict", err)
	}
	list, err := s.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list, []store.Channel{wantBare, want}) {
		t.Errorf("channels by name\n got %+v\nwant %+v", list, []store.Channel{wantBare, want})
	}

	up := want
	up.Name, up.Config, up.Secret, up.MinSeverity = "ops-hook", map[string]string{"url_host": "other.test"}, []byte("resealed"), "low"
	up.Labels, up.Kinds, up.Enabled = nil, nil, false
	up.Kind, up.CreatedBy, up.CreatedAt = "slack", "someone", base // not changed by an update
	if err := s.UpdateChannel(ctx, up); err != nil {
		t.Fatal(err)
	}
	wantUp := want
	wantUp.Name, wantUp.Config, wantUp.Secret, wantUp.MinSeverity = up.Name, up.Config, up.Secret, up.MinSeverity
	wantUp.Labels, wantUp.Kinds, wantUp.Enabled = map[string]string{}, []string{}, false
	if got, err := s.Channel(ctx, ch.ID); err != nil || !reflect.DeepEqual(got, wantUp) {
		t.Errorf("updated channel %+v, %v\nwant %+v", got, err, wantUp)
	}
	dup := wantUp
	dup.Name = "a-mail"
	if err := s.UpdateChannel(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto another channel's name: err = %v, want ErrConflict", err)
	}
	missing := wantUp
	missing.ID, missing.Name = ch.ID+1000, "ghost"
	if err := s.UpdateChannel(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update unknown channel: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteChannel(ctx, bare.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Channel(ctx, bare.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted channel: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteChannel(ctx, bare.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	// The freed name can be used again.
	if _, err := s.CreateChannel(ctx, store.Channel{Name: "a-mail", Kind: "email", CreatedAt: govAt}); err != nil {
		t.Errorf("reuse a deleted channel's name: %v", err)
	}
}

func testDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	c1, err := s.CreateChannel(ctx, store.Channel{Name: "c1", Kind: "webhook", Enabled: true, CreatedAt: base})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := s.CreateChannel(ctx, store.Channel{Name: "c2", Kind: "slack", Enabled: true, CreatedAt: base})
	if err != nil {
		t.Fatal(err)
	}
	add := func(ch int64, alert int64, event string, at time.Time, ok bool) store.Delivery {
		d, err := s.AppendDelivery(ctx, store.Delivery{ChannelID: ch, AlertID: alert, Event: event, At: at, OK: ok,
			Attempts: 3, Status: "503 Service Unavailable", Duration: 1500*time.Millisecond + 7*time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := add(c1.ID, 5, "opened", govAt, false)
	want := store.Delivery{ID: d1.ID, ChannelID: c1.ID, AlertID: 5, Event: "opened", At: store.Micro(govAt), OK: false,
		Attempts: 3, Status: "503 Service Unavailable", Duration: 1500*time.Millisecond + 7*time.Nanosecond}
	if d1.ID == 0 || !reflect.DeepEqual(d1, want) {
		t.Errorf("appended delivery\n got %+v\nwant %+v", d1, want)
	}
	d2 := add(c1.ID, 0, "test", govAt.Add(2*time.Minute), true)
	d3 := add(c1.ID, 5, "resolved", govAt.Add(time.Minute), true)
	d4 := add(c1.ID, 6, "opened", govAt.Add(2*time.Minute), true) // ties d2: higher id first
	e1 := add(c2.ID, 6, "opened", govAt.Add(90*time.Second), true)
	ids := func(ds []store.Delivery) []int64 {
		out := []int64{}
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	cases := []struct {
		ch    int64
		limit int
		want  []int64
	}{
		{c1.ID, 0, []int64{d4.ID, d2.ID, d3.ID, d1.ID}},
		{c1.ID, 2, []int64{d4.ID, d2.ID}},
		{c2.ID, -1, []int64{e1.ID}},
		{0, 0, []int64{d4.ID, d2.ID, e1.ID, d3.ID, d1.ID}},
		{c2.ID + 1000, 0, []int64{}},
	}
	for _, c := range cases {
		got, err := s.Deliveries(ctx, c.ch, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if g := ids(got); !reflect.DeepEqual(g, c.want) {
			t.Errorf("deliveries of channel %d limit %d = %v, want %v", c.ch, c.limit, g, c.want)
		}
	}
	got, err := s.Deliveries(ctx, c1.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got[3] != want || got[1].AlertID != 0 || got[1].Event != "test" || !got[1].OK {
		t.Errorf("deliveries read back: %+v", got)
	}
	// The default limit is 100.
	for i := range 101 {
		add(c2.ID, 0, "test", base.Add(time.Duration(i)*time.Second), true)
	}
	if got, err := s.Deliveries(ctx, c2.ID, 0); err != nil || len(got) != 100 {
		t.Errorf("default limit: %d deliveries, %v; want 100", len(got), err)
	}
	if _, err := s.AppendDelivery(ctx, store.Delivery{ChannelID: c2.ID + 1000, Event: "test", At: govAt}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delivery to an unknown channel: err = %v, want ErrNotFound", err)
	}
	// Deleting a channel deletes its log, and only its log.
	if err := s.DeleteChannel(ctx, c1.ID); err != nil {
		t.Fatal(err)
	}
	all, err := s.Deliveries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	chans := map[int64]int{}
	for _, d := range all {
		chans[d.ChannelID]++
	}
	if !reflect.DeepEqual(chans, map[int64]int{c2.ID: 102}) {
		t.Errorf("deliveries by channel after deleting c1: %v, want only c2's 102", chans)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if all[0].ID != e1.ID {
		t.Errorf("oldest remaining delivery %d, want %d", all[0].ID, e1.ID)
	}
}
