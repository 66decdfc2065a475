package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// setPosture records a host's band and score as of `at`, as the
// scheduler does when a scan completes.
func (e *env) setPosture(t *testing.T, h store.Host, at time.Time, score float64, band posture.Band) {
	t.Helper()
	if err := e.st.SetHostPosture(context.Background(), h.ID, at, score, string(band)); err != nil {
		t.Fatal(err)
	}
}

// byKey indexes alerts by key.
func byKey(as []store.Alert) map[string]store.Alert {
	out := make(map[string]store.Alert, len(as))
	for _, a := range as {
		out[a.Key] = a
	}
	return out
}

// wantEvents checks the sink received exactly these (event, key) pairs,
// in order.
func wantEvents(t *testing.T, got []event, want ...string) {
	t.Helper()
	var have []string
	for _, ev := range got {
		have = append(have, ev.Event+" "+ev.Alert.Key)
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("notifications:\n  %s\nwant:\n  %s", strings.Join(have, "\n  "), strings.Join(want, "\n  "))
	}
}

func testAlertDedup(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	h := e.host(t, "web1", map[string]string{"env": "prod"})
	e.setPosture(t, h, e.clk.Now(), 30, posture.BandPoor)
	key := fmt.Sprintf("band_drop/host/%d", h.ID)

	if st := e.evaluate(t); st.Raised != 1 || st.Seen != 1 {
		t.Errorf("first evaluation: %+v, want one raised", st)
	}
	e.clk.Add(time.Minute)
	if st := e.evaluate(t); st.Raised != 0 || st.Seen != 1 || st.Resolved != 0 {
		t.Errorf("second evaluation: %+v, want one seen, none raised", st)
	}
	as := e.alerts(t, KindBandDrop)
	if len(as) != 1 {
		t.Fatalf("band_drop alerts = %+v, want one", as)
	}
	a := as[0]
	if a.Key != key || a.Count != 2 || a.State != store.AlertActive || a.Severity != "medium" || a.HostID != h.ID ||
		!maps.Equal(a.Labels, map[string]string{"env": "prod"}) || !a.LastSeenAt.Equal(e.clk.Now()) || !a.OpenedAt.Equal(e.clk.Now().Add(-time.Minute)) {
		t.Errorf("alert = %+v", a)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(a.Detail), &d); err != nil || d["band"] != "poor" || d["host"] != "web1" {
		t.Errorf("detail %s: %v", a.Detail, err)
	}
	evs := e.sink.take()
	wantEvents(t, evs, "opened "+key)
	if len(evs) == 1 && (evs[0].Alert.Kind != KindBandDrop || evs[0].Alert.Labels["env"] != "prod") {
		t.Errorf("opened event carries %+v", evs[0].Alert)
	}
	e.mu.Lock()
	last := e.counts[len(e.counts)-1]
	n := len(e.counts)
	e.mu.Unlock()
	if n != 2 || last[store.AlertActive] != 1 {
		t.Errorf("OnEvaluate saw %d evaluations, last %v; want 2 with one active", n, last)
	}

	// The condition clears: resolved once, told once.
	e.clk.Add(time.Minute)
	e.setPosture(t, h, e.clk.Now(), 85, posture.BandGood)
	if st := e.evaluate(t); st.Resolved != 1 {
		t.Errorf("evaluation after recovery: %+v, want one resolved", st)
	}
	e.clk.Add(time.Minute)
	if st := e.evaluate(t); st.Resolved != 0 || st.Raised != 0 {
		t.Errorf("evaluation after that: %+v, want nothing", st)
	}
	wantEvents(t, e.sink.take(), "resolved "+key)
	as = e.alerts(t, KindBandDrop)
	if len(as) != 1 || as[0].State != store.AlertResolved || as[0].ResolvedBy != "system" || as[0].Count != 2 {
		t.Errorf("after recovery: %+v", as)
	}
}

func testExceptionExpiry(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	h := e.host(t, "web1", map[string]string{"env": "prod"})
	e.setPosture(t, h, e.clk.Now(), 95, posture.BandExcellent)
	ex := e.approve(t, ExceptionRequest{RuleID: r.med1, HostID: h.ID, ExpiresAt: e.clk.Now().Add(time.Hour)})
	key := fmt.Sprintf("exception_expiring/%d", ex.ID)

	if st := e.evaluate(t); st.Expired != 0 || st.Raised != 1 {
		t.Errorf("before expiry: %+v", st)
	}
	as := e.open(t, KindExceptionExpiring)
	if len(as) != 1 || as[0].Key != key || as[0].Severity != "medium" || as[0].ExceptionID != ex.ID || as[0].RuleID != r.med1 ||
		as[0].HostID != h.ID || as[0].Labels["env"] != "prod" {
		t.Errorf("expiring alerts = %+v", as)
	}
	expiredAt := e.clk.Add(2 * time.Hour)
	if st := e.evaluate(t); st.Expired != 1 || st.Resolved != 1 {
		t.Errorf("after expiry: %+v, want one expired, one resolved", st)
	}
	if st := e.evaluate(t); st.Expired != 0 {
		t.Errorf("again: %+v, want nothing expired", st)
	}
	wantEvents(t, e.sink.take(), "opened "+key, "resolved "+key)
	got, err := st.Exception(ctx, ex.ID)
	if err != nil || got.State != store.ExceptionExpired || !got.ExpiredAt.Equal(expiredAt) {
		t.Errorf("exception after expiry: %+v %v", got, err)
	}
	entries, err := st.Audit(ctx, store.AuditFilter{Action: "exception.expire"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("exception.expire audit entries = %+v, want one", entries)
	}
	en := entries[0]
	var d map[string]any
	if err := json.Unmarshal([]byte(en.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", en.Detail, err)
	}
	if en.Actor != "system" || en.Target != fmt.Sprintf("exception/%d", ex.ID) || d["rule_id"] != r.med1 || d["scope"] != "host" ||
		d["host_id"] != float64(h.ID) {
		t.Errorf("audit entry %+v detail %v", en, d)
	}
}

func testRuleFailing(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	t0 := e.clk.Now()
	web1 := e.host(t, "web1", map[string]string{"env": "prod"})
	old := e.host(t, "old1", nil)
	crit, high := rule.Critical, rule.High
	fail, pass := result.Fail, result.Pass
	// The first evaluation looks back twice the interval (2 min): a
	// failure 90 s ago alerts, one 5 min ago does not.
	e.scan(t, web1, t0.Add(-90*time.Second), obs{r.crit, fail, crit}, obs{r.med1, fail, ""}, obs{r.ok, pass, high})
	e.scan(t, old, t0.Add(-5*time.Minute), obs{r.crit, fail, crit})
	key := fmt.Sprintf("rule_failing/host/%d/%s", web1.ID, r.crit)
	e.evaluate(t)
	as := e.open(t, KindRuleFailing)
	if len(as) != 1 || as[0].Key != key || as[0].Severity != "critical" || as[0].RuleID != r.crit || as[0].HostID != web1.ID ||
		as[0].Labels["env"] != "prod" {
		t.Fatalf("rule_failing alerts = %+v, want one for %s (medium failures do not alert)", as, key)
	}
	// Still failing, no new transition: the alert stays and counts.
	e.clk.Add(time.Minute)
	e.evaluate(t)
	// A high rule starting to fail later alerts too.
	e.clk.Add(time.Minute)
	e.scan(t, web1, e.clk.Now(), obs{r.crit, fail, crit}, obs{r.med1, fail, ""}, obs{r.ok, fail, high})
	e.evaluate(t)
	keyHigh := fmt.Sprintf("rule_failing/host/%d/%s", web1.ID, r.ok)
	as = e.open(t, KindRuleFailing)
	if len(as) != 2 || as[0].Count != 3 || as[1].Key != keyHigh || as[1].Severity != "high" {
		t.Errorf("after a high rule failed: %+v", as)
	}
	// The critical rule passes again: its alert resolves.
	e.clk.Add(time.Minute)
	e.scan(t, web1, e.clk.Now(), obs{r.crit, pass, crit}, obs{r.med1, fail, ""}, obs{r.ok, fail, high})
	e.evaluate(t)
	// An approved exception covering the high rule resolves its alert.
	e.approve(t, ExceptionRequest{RuleID: r.ok, HostID: web1.ID})
	e.clk.Add(time.Minute)
	e.evaluate(t)
	if as := e.open(t, KindRuleFailing); len(as) != 0 {
		t.Errorf("open rule_failing alerts after fix and exception: %+v", as)
	}
	// Failing again after the fix opens a new alert.
	e.clk.Add(time.Minute)
	e.scan(t, web1, e.clk.Now(), obs{r.crit, fail, crit}, obs{r.med1, fail, ""}, obs{r.ok, fail, high})
	e.evaluate(t)
	as = e.alerts(t, KindRuleFailing)
	if len(as) != 3 || as[2].Key != key || as[2].State != store.AlertActive || as[0].State != store.AlertResolved {
		t.Errorf("after the rule failed again: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindRuleFailing), "opened "+key, "opened "+keyHigh, "resolved "+key, "resolved "+keyHigh, "opened "+key)
	// A deleted host's alert resolves.
	if err := st.DeleteHost(ctx, web1.ID); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	e.evaluate(t)
	if as := e.open(t, KindRuleFailing); len(as) != 0 {
		t.Errorf("open rule_failing alerts after the host was deleted: %+v", as)
	}
}

func testScoreDrop(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	now := e.clk.Now()
	h := e.host(t, "web1", map[string]string{"env": "prod"})
	fail, pass := result.Fail, result.Pass
	// Yesterday all four passed (100); today two fail (50): a drop of 50.
	e.clk.Set(now.Add(-24 * time.Hour))
	e.scan(t, h, e.clk.Now(), obs{r.crit, pass, ""}, obs{r.med1, pass, ""}, obs{r.med2, pass, ""}, obs{r.ok, pass, ""})
	e.clk.Set(now)
	e.scan(t, h, now, obs{r.crit, pass, ""}, obs{r.med1, pass, ""}, obs{r.med2, fail, ""}, obs{r.ok, fail, ""})
	e.evaluate(t)
	key := fmt.Sprintf("score_drop/host/%d", h.ID)
	as := e.open(t, KindScoreDrop)
	if len(as) != 1 || as[0].Key != key || as[0].Severity != "high" || as[0].Labels["env"] != "prod" {
		t.Fatalf("score_drop alerts = %+v", as)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(as[0].Detail), &d); err != nil || d["score"] != 50.0 || d["max_score"] != 100.0 {
		t.Errorf("detail %s: %v", as[0].Detail, err)
	}
	// A drop within the threshold does not alert: 100 -> 75 with
	// ScoreDrop 30 is fine.
	e2 := newEnv(t, st, x, Thresholds{ScoreDrop: 30})
	e2.clk.Set(now)
	if hs := e2.holding(t, e2.gov.scoreDrop); len(hs) != 1 {
		t.Errorf("with threshold 30 a 50-point drop holds for %d hosts, want 1", len(hs))
	}
	// Fixed today: the latest snapshot is back at 100 and the alert resolves.
	e.clk.Add(time.Minute)
	e.scan(t, h, e.clk.Now(), obs{r.crit, pass, ""}, obs{r.med1, pass, ""}, obs{r.med2, pass, ""}, obs{r.ok, pass, ""})
	e.evaluate(t)
	if as := e.open(t, KindScoreDrop); len(as) != 0 {
		t.Errorf("score_drop still open after recovery: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindScoreDrop), "opened "+key, "resolved "+key)
	e.scan(t, h, e.clk.Now(), obs{r.crit, pass, ""}, obs{r.med1, pass, ""}, obs{r.med2, pass, ""}, obs{r.ok, fail, ""})
	if hs := e2.holding(t, e2.gov.scoreDrop); len(hs) != 0 {
		t.Errorf("a 25-point drop with threshold 30 holds: %+v", hs)
	}
}

// holding runs one check directly and returns the alerts whose condition
// holds, for threshold cases that need no lifecycle.
func (e *env) holding(t *testing.T, fn func(context.Context, *evalState) ([]store.Alert, error)) []store.Alert {
	t.Helper()
	hosts, err := e.st.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev := &evalState{now: e.clk.Now(), hosts: map[int64]store.Host{}, list: hosts}
	for _, h := range hosts {
		ev.hosts[h.ID] = h
	}
	out, err := fn(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testBandDrop(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	h := e.host(t, "web1", nil)
	fair := e.host(t, "web2", nil)
	e.setPosture(t, fair, e.clk.Now(), 60, posture.BandFair) // at the floor: no alert
	e.setPosture(t, h, e.clk.Now(), 30, posture.BandPoor)
	e.evaluate(t)
	key := fmt.Sprintf("band_drop/host/%d", h.ID)
	if as := e.open(t, KindBandDrop); len(as) != 1 || as[0].Key != key || as[0].Severity != "medium" {
		t.Fatalf("band_drop alerts = %+v", as)
	}
	// Critical: the same alert, now of severity critical.
	e.setPosture(t, h, e.clk.Add(time.Minute), 10, posture.BandCritical)
	e.evaluate(t)
	if as := e.open(t, KindBandDrop); len(as) != 1 || as[0].Severity != "critical" || as[0].Count != 2 {
		t.Errorf("band_drop after critical = %+v", as)
	}
	e.setPosture(t, h, e.clk.Add(time.Minute), 75, posture.BandGood)
	e.evaluate(t)
	if as := e.open(t, KindBandDrop); len(as) != 0 {
		t.Errorf("band_drop open after recovery: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindBandDrop), "opened "+key, "resolved "+key)
	// A higher floor alerts on fair hosts.
	e2 := newEnv(t, st, x, Thresholds{BandFloor: posture.BandGood})
	if hs := e2.holding(t, e2.gov.bandDrop); len(hs) != 1 || hs[0].HostID != fair.ID {
		t.Errorf("floor good: holding %+v, want web2 only", hs)
	}
}

func testMassDrift(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{MassDriftHosts: 3})
	r := pickRules(t, x)
	now := e.clk.Now()
	fail, pass := result.Fail, result.Pass
	var hosts []store.Host
	for i := range 4 {
		hosts = append(hosts, e.host(t, fmt.Sprintf("m%d", i), nil))
	}
	for _, h := range hosts {
		e.scan(t, h, now.Add(-3*time.Hour), obs{r.med1, pass, ""}, obs{r.med2, pass, ""})
	}
	// Three hosts flip med1 to fail, two flip med2 (below the threshold),
	// and three see ok for the first time failing (not a change).
	for i, h := range hosts[:3] {
		med2 := pass
		if i < 2 {
			med2 = fail
		}
		e.scan(t, h, now.Add(-10*time.Minute), obs{r.med1, fail, ""}, obs{r.med2, med2, ""}, obs{r.ok, fail, ""})
	}
	e.evaluate(t)
	key := "mass_drift/" + r.med1 + "/fail"
	as := e.open(t, KindMassDrift)
	if len(as) != 1 || as[0].Key != key || as[0].RuleID != r.med1 || as[0].Severity != "high" {
		t.Fatalf("mass_drift alerts = %+v, want one for %s", as, key)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(as[0].Detail), &d); err != nil || d["hosts"] != 3.0 {
		t.Errorf("detail %s: %v", as[0].Detail, err)
	}
	// An hour later the changes are out of the window.
	e.clk.Add(time.Hour)
	e.evaluate(t)
	if as := e.open(t, KindMassDrift); len(as) != 0 {
		t.Errorf("mass_drift open after the window: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindMassDrift), "opened "+key, "resolved "+key)
}

func testScanOverdue(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	t0 := e.clk.Now()
	scanned := e.host(t, "scanned", map[string]string{"env": "prod"})
	never := e.host(t, "never", nil) // due for its first scan at creation (wall clock, about t0)
	e.setPosture(t, scanned, t0, 95, posture.BandExcellent)
	e.evaluate(t)
	if as := e.open(t, KindScanOverdue); len(as) != 0 {
		t.Fatalf("overdue right after scanning: %+v", as)
	}
	// The injectable clock moves 49 hours on, past the 48 h OverdueAfter;
	// nothing else about the hosts changes.
	e.clk.Set(t0.Add(49 * time.Hour))
	e.evaluate(t)
	keyS, keyN := fmt.Sprintf("scan_overdue/host/%d", scanned.ID), fmt.Sprintf("scan_overdue/host/%d", never.ID)
	as := byKey(e.open(t, KindScanOverdue))
	if len(as) != 2 || as[keyS].Severity != "medium" || as[keyS].Labels["env"] != "prod" || !strings.Contains(as[keyN].Title, "never") {
		t.Fatalf("scan_overdue alerts = %+v", as)
	}
	// A scan completes on one host: its alert resolves, the other stays.
	e.setPosture(t, scanned, e.clk.Now(), 95, posture.BandExcellent)
	e.clk.Add(time.Minute)
	e.evaluate(t)
	if as := e.open(t, KindScanOverdue); len(as) != 1 || as[0].Key != keyN {
		t.Errorf("after a scan: %+v, want only %s", as, keyN)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindScanOverdue), "opened "+keyN, "opened "+keyS, "resolved "+keyS) // hosts by name
}

func testAgentOffline(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	ctx := context.Background()
	t0 := e.clk.Now()
	ag, err := st.CreateAgent(ctx, store.Agent{Name: "a1", Labels: map[string]string{"site": "lyon"}, EnrolledAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := st.CreateAgent(ctx, store.Agent{Name: "a2", EnrolledAt: t0.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeAgent(ctx, gone.ID, t0); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(t0.Add(5 * time.Minute))
	e.evaluate(t)
	if as := e.open(t, KindAgentOffline); len(as) != 0 {
		t.Fatalf("offline 5 min after enrolment: %+v", as)
	}
	// Never seen and enrolled 11 minutes ago: offline (the revoked agent
	// never alerts).
	e.clk.Set(t0.Add(11 * time.Minute))
	e.evaluate(t)
	key := fmt.Sprintf("agent_offline/agent/%d", ag.ID)
	as := e.open(t, KindAgentOffline)
	if len(as) != 1 || as[0].Key != key || as[0].AgentID != ag.ID || as[0].Severity != "high" || as[0].Labels["site"] != "lyon" {
		t.Fatalf("agent_offline alerts = %+v", as)
	}
	if err := st.TouchAgent(ctx, ag.ID, store.AgentHeartbeat{At: e.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	e.evaluate(t)
	if as := e.open(t, KindAgentOffline); len(as) != 0 {
		t.Errorf("offline after a heartbeat: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindAgentOffline), "opened "+key, "resolved "+key)
}

func testBundleRefused(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	ctx := context.Background()
	t0 := e.clk.Now()
	ag, err := st.CreateAgent(ctx, store.Agent{Name: "a1", EnrolledAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	// Another action on the agent does not alert.
	for _, action := range []string{"agent.bundle_refused", "agent.spool_full"} {
		if _, err := st.AppendAudit(ctx, store.AuditEntry{At: t0, Actor: "agent:a1", Action: action, Target: fmt.Sprintf("agent/%d", ag.ID),
			Detail: `{"kind":"bundle_refused","message":"signature by an untrusted key","bundle_digest":"sha256:ab"}`}); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(time.Minute)
	e.evaluate(t)
	key := fmt.Sprintf("bundle_refused/agent/%d", ag.ID)
	as := e.open(t, KindBundleRefused)
	if len(as) != 1 || as[0].Key != key || as[0].AgentID != ag.ID || as[0].Severity != "high" {
		t.Fatalf("bundle_refused alerts = %+v", as)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(as[0].Detail), &d); err != nil || d["refusals"] != 1.0 || d["message"] != "signature by an untrusted key" {
		t.Errorf("detail %s: %v", as[0].Detail, err)
	}
	// 24 hours after the refusal the alert resolves.
	e.clk.Set(t0.Add(24*time.Hour + time.Second))
	e.evaluate(t)
	if as := e.open(t, KindBundleRefused); len(as) != 0 {
		t.Errorf("bundle_refused open a day later: %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindBundleRefused), "opened "+key, "resolved "+key)
}

func testExceptionExpiring(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	t0 := e.clk.Now()
	soon := e.approve(t, ExceptionRequest{RuleID: r.med1, ExpiresAt: t0.Add(2 * 24 * time.Hour)})
	later := e.approve(t, ExceptionRequest{RuleID: r.med2, ExpiresAt: t0.Add(5 * 24 * time.Hour)})
	e.approve(t, ExceptionRequest{RuleID: r.ok, ExpiresAt: t0.Add(30 * 24 * time.Hour)}) // beyond 7 days
	e.approve(t, ExceptionRequest{RuleID: r.crit})                                       // never expires
	pending := e.request(t, ExceptionRequest{RuleID: r.extra, ExpiresAt: t0.Add(24 * time.Hour)})
	e.evaluate(t)
	keySoon, keyLater := fmt.Sprintf("exception_expiring/%d", soon.ID), fmt.Sprintf("exception_expiring/%d", later.ID)
	as := byKey(e.open(t, KindExceptionExpiring))
	if len(as) != 2 || as[keySoon].Severity != "medium" || as[keyLater].Severity != "low" {
		t.Fatalf("expiring alerts = %+v, want %s medium and %s low (not %d, only requested)", as, keySoon, keyLater, pending.ID)
	}
	// Two days and a minute on: soon expired (its alert resolves), later
	// has under three days left (medium now).
	e.clk.Set(t0.Add(2*24*time.Hour + time.Minute))
	if st := e.evaluate(t); st.Expired != 1 {
		t.Errorf("evaluation: %+v, want one expired", st)
	}
	if as := e.open(t, KindExceptionExpiring); len(as) != 1 || as[0].Key != keyLater || as[0].Severity != "medium" {
		t.Errorf("expiring alerts after two days = %+v", as)
	}
	wantEvents(t, eventsOf(e.sink.take(), KindExceptionExpiring), "opened "+keySoon, "opened "+keyLater, "resolved "+keySoon)
}

func testOperatorActions(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	ctx := context.Background()
	h := e.host(t, "web1", nil)
	e.setPosture(t, h, e.clk.Now(), 30, posture.BandPoor)
	e.evaluate(t)
	a := e.open(t, KindBandDrop)[0]
	now := e.clk.Now()

	for _, tc := range []struct {
		to    store.AlertState
		until time.Time
		field string
	}{
		{store.AlertSilenced, time.Time{}, "until"},
		{store.AlertSilenced, now, "until"},
		{store.AlertSilenced, now.Add(31 * 24 * time.Hour), "until"},
		{"bogus", time.Time{}, "state"},
	} {
		_, err := e.gov.SetAlertState(ctx, "olga", a.ID, tc.to, tc.until)
		wantField(t, err, tc.field)
	}
	got, err := e.gov.SetAlertState(ctx, "olga", a.ID, store.AlertAcknowledged, time.Time{})
	if err != nil || got.State != store.AlertAcknowledged || got.AckBy != "olga" || !got.AckAt.Equal(now) {
		t.Errorf("acknowledge: %+v %v", got, err)
	}
	if got, err = e.gov.SetAlertState(ctx, "olga", a.ID, store.AlertActive, time.Time{}); err != nil || got.State != store.AlertActive || got.AckBy != "" {
		t.Errorf("reactivate: %+v %v", got, err)
	}
	// Manual resolution while the condition holds: a new alert opens on
	// the next evaluation, and the resolved one cannot change any more.
	if _, err := e.gov.SetAlertState(ctx, "olga", a.ID, store.AlertResolved, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gov.SetAlertState(ctx, "olga", a.ID, store.AlertAcknowledged, time.Time{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("acknowledge a resolved alert: err = %v, want ErrConflict", err)
	}
	if _, err := e.gov.SetAlertState(ctx, "olga", a.ID+1000, store.AlertAcknowledged, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("acknowledge a missing alert: err = %v, want ErrNotFound", err)
	}
	e.clk.Add(time.Minute)
	if st := e.evaluate(t); st.Raised != 1 {
		t.Errorf("evaluation after a manual resolution: %+v, want a new alert", st)
	}
	b := e.open(t, KindBandDrop)
	if len(b) != 1 || b[0].ID == a.ID || b[0].Count != 1 {
		t.Fatalf("after manual resolution: %+v", b)
	}
	// Silenced: its automatic resolution is not notified.
	until := e.clk.Now().Add(time.Hour)
	if got, err := e.gov.SetAlertState(ctx, "olga", b[0].ID, store.AlertSilenced, until); err != nil || got.State != store.AlertSilenced ||
		!got.SilencedUntil.Equal(until) {
		t.Errorf("silence: %+v %v", got, err)
	}
	e.setPosture(t, h, e.clk.Add(time.Minute), 80, posture.BandGood)
	if st := e.evaluate(t); st.Resolved != 1 {
		t.Errorf("evaluation after recovery: %+v", st)
	}
	wantEvents(t, e.sink.take(), "opened "+a.Key, "opened "+a.Key)
}

func testRun(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	evaluated := make(chan map[store.AlertState]int, 16)
	gov, err := New(Config{Store: st, Posture: e.post, Now: e.clk.Now, Interval: 20 * time.Millisecond,
		OnEvaluate: func(c map[store.AlertState]int) {
			select {
			case evaluated <- c:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	h := e.host(t, "web1", nil)
	e.setPosture(t, h, e.clk.Now(), 30, posture.BandPoor)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gov.Run(ctx) }()
	// Evaluates at start and then every interval.
	for i := range 2 {
		select {
		case c := <-evaluated:
			if c[store.AlertActive] != 1 {
				t.Errorf("evaluation %d saw %v, want one active alert", i, c)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no evaluation %d within 20 s", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop within 20 s of cancel")
	}
	if as := e.alerts(t, KindBandDrop); len(as) != 1 || as[0].State != store.AlertActive {
		t.Errorf("alerts after Run: %+v, want one active", as)
	}
}

// testSteadyStateWritesNothing runs the production refresh (the default,
// 15 minutes): an alert whose condition keeps holding unchanged is not
// rewritten by evaluations within the refresh, a change of severity is
// written at once, and after the refresh the sighting is recorded again.
func testSteadyStateWritesNothing(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	gov, err := New(Config{Store: st, Posture: e.post, Sink: e.sink, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	evaluate := func() EvalStats {
		t.Helper()
		s, err := gov.Evaluate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := e.host(t, "web1", nil)
	e.setPosture(t, h, e.clk.Now(), 30, posture.BandPoor)
	opened := e.clk.Now()
	if s := evaluate(); s.Raised != 1 {
		t.Fatalf("first evaluation: %+v, want one alert raised", s)
	}
	one := func(what string) store.Alert {
		t.Helper()
		as := e.open(t, KindBandDrop)
		if len(as) != 1 {
			t.Fatalf("%s: band_drop alerts %+v, want one", what, as)
		}
		return as[0]
	}
	// Within the refresh: seen, nothing written.
	for range 3 {
		e.clk.Add(time.Minute)
		if s := evaluate(); s.Seen < 1 || s.Raised != 0 || s.Resolved != 0 {
			t.Fatalf("steady evaluation: %+v", s)
		}
	}
	if a := one("steady"); a.Count != 1 || !a.LastSeenAt.Equal(opened) || a.Severity != "medium" {
		t.Fatalf("steady alert rewritten: %+v (opened %s)", a, opened)
	}
	// A change of severity is written at once, same alert.
	e.setPosture(t, h, e.clk.Add(time.Minute), 10, posture.BandCritical)
	evaluate()
	if a := one("critical"); a.Severity != "critical" || a.Count != 2 || !a.LastSeenAt.Equal(e.clk.Now()) || !a.OpenedAt.Equal(opened) {
		t.Fatalf("after the band went critical: %+v", a)
	}
	// Past the refresh, the sighting is recorded again.
	e.clk.Add(DefaultSightingRefresh)
	evaluate()
	if a := one("refresh"); a.Count != 3 || !a.LastSeenAt.Equal(e.clk.Now()) {
		t.Fatalf("after the refresh: %+v", a)
	}
	wantEvents(t, e.sink.take(), "opened "+fmt.Sprintf("band_drop/host/%d", h.ID))
}
