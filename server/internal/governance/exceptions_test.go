package governance

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// TestGovernance loads the real corpus once (seconds under -race) and runs
// every case against real stores: the key ones on SQLite and PostgreSQL,
// the rest on SQLite.
func TestGovernance(t *testing.T) {
	x := loadCorpus(t)
	both := []struct {
		name string
		fn   func(*testing.T, store.Store, *posture.Index)
	}{
		{"ExceptionValidation", testExceptionValidation},
		{"ExceptionStateMachine", testExceptionStateMachine},
		{"AcceptedAtMoments", testAcceptedAtMoments},
		{"PostureWithExceptions", testPostureWithExceptions},
		{"AlertDedupAndNotifications", testAlertDedup},
		{"SteadyStateWritesNothing", testSteadyStateWritesNothing},
		{"ExceptionExpiry", testExceptionExpiry},
	}
	for _, tc := range both {
		t.Run(tc.name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, st store.Store) { tc.fn(t, st, x) })
		})
	}
	sqliteOnly := []struct {
		name string
		fn   func(*testing.T, store.Store, *posture.Index)
	}{
		{"RuleFailing", testRuleFailing},
		{"ScoreDrop", testScoreDrop},
		{"BandDrop", testBandDrop},
		{"MassDrift", testMassDrift},
		{"ScanOverdue", testScanOverdue},
		{"AgentOffline", testAgentOffline},
		{"BundleRefused", testBundleRefused},
		{"ExceptionExpiring", testExceptionExpiring},
		{"OperatorActions", testOperatorActions},
		{"Run", testRun},
	}
	for _, tc := range sqliteOnly {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, openSQLite(t), x) })
	}
}

func testExceptionValidation(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	h := e.host(t, "web1", nil, "web")
	g := e.group(t, "web")
	good := "compensating control documented in ticket SEC-1"
	for _, tc := range []struct {
		name  string
		req   ExceptionRequest
		field string
	}{
		{"no rule", ExceptionRequest{Justification: good}, "rule_id"},
		{"unknown rule", ExceptionRequest{RuleID: "no_such_rule", Justification: good}, "rule_id"},
		{"host and group", ExceptionRequest{RuleID: r.crit, HostID: h.ID, GroupID: g.ID, Justification: good}, "group_id"},
		{"unknown host", ExceptionRequest{RuleID: r.crit, HostID: h.ID + 1000, Justification: good}, "host_id"},
		{"negative host", ExceptionRequest{RuleID: r.crit, HostID: -1, Justification: good}, "host_id"},
		{"unknown group", ExceptionRequest{RuleID: r.crit, GroupID: g.ID + 1000, Justification: good}, "group_id"},
		{"short justification", ExceptionRequest{RuleID: r.crit, Justification: "   too short   "[:13]}, "justification"},
		{"blank justification", ExceptionRequest{RuleID: r.crit, Justification: "                    "}, "justification"},
		{"long justification", ExceptionRequest{RuleID: r.crit, Justification: strings.Repeat("é", 4001)}, "justification"},
		{"expiry passed", ExceptionRequest{RuleID: r.crit, Justification: good, ExpiresAt: e.clk.Now()}, "expires_at"},
	} {
		_, err := e.gov.RequestException(ctx, "alice", tc.req)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		wantField(t, err, tc.field)
	}
	// Nothing refused was stored.
	if all, err := st.Exceptions(ctx, store.ExceptionFilter{}); err != nil || len(all) != 0 {
		t.Fatalf("exceptions after refusals: %v %v", all, err)
	}
	// Boundaries: 10 characters (after trimming) and 4000 are accepted.
	for _, just := range []string{"  0123456789  ", strings.Repeat("é", 4000)} {
		if _, err := e.gov.RequestException(ctx, "alice", ExceptionRequest{RuleID: r.crit, Justification: just}); err != nil {
			t.Errorf("justification of %d characters: %v", len([]rune(strings.TrimSpace(just))), err)
		}
	}
	exp := e.clk.Now().Add(time.Hour)
	for _, req := range []ExceptionRequest{
		{RuleID: " " + r.crit + " ", HostID: h.ID, Justification: "  " + good + "  ", ExpiresAt: exp},
		{RuleID: r.med1, GroupID: g.ID, Justification: good},
		{RuleID: r.med2, Justification: good},
	} {
		ex, err := e.gov.RequestException(ctx, "alice", req)
		if err != nil {
			t.Fatalf("valid request %+v: %v", req, err)
		}
		if ex.ID == 0 || ex.State != store.ExceptionRequested || ex.RequestedBy != "alice" || ex.Justification != good ||
			ex.RuleID != strings.TrimSpace(req.RuleID) || ex.HostID != req.HostID || ex.GroupID != req.GroupID || !ex.ExpiresAt.Equal(req.ExpiresAt) {
			t.Errorf("stored %+v for %+v", ex, req)
		}
	}
}

func testExceptionStateMachine(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	ex := e.request(t, ExceptionRequest{RuleID: r.crit})

	// The requester may neither approve nor reject their own request.
	for _, to := range []store.ExceptionState{store.ExceptionApproved, store.ExceptionRejected} {
		if _, err := e.gov.DecideException(ctx, "alice", ex.ID, to, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("%s by the requester: err = %v, want ErrSelfApproval", to, err)
		}
	}
	// Only approved exceptions can be revoked.
	if _, err := e.gov.DecideException(ctx, "bob", ex.ID, store.ExceptionRevoked, ""); !errors.Is(err, store.ErrConflict) ||
		!strings.Contains(err.Error(), "requested") {
		t.Errorf("revoke a requested exception: err = %v, want ErrConflict naming requested", err)
	}
	if _, err := e.gov.DecideException(ctx, "bob", ex.ID, store.ExceptionExpired, ""); err == nil {
		t.Error("an operator moved an exception to expired")
	}
	if _, err := e.gov.DecideException(ctx, "bob", ex.ID+1000, store.ExceptionApproved, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("approve a missing exception: err = %v, want ErrNotFound", err)
	}

	approvedAt := e.clk.Add(time.Minute)
	got, err := e.gov.DecideException(ctx, "bob", ex.ID, store.ExceptionApproved, "  risk accepted  ")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ExceptionApproved || got.DecidedBy != "bob" || !got.DecidedAt.Equal(approvedAt) || got.DecisionNote != "risk accepted" {
		t.Errorf("approved = %+v", got)
	}
	for _, to := range []store.ExceptionState{store.ExceptionApproved, store.ExceptionRejected} {
		if _, err := e.gov.DecideException(ctx, "carol", ex.ID, to, ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "approved") {
			t.Errorf("%s an approved exception: err = %v, want ErrConflict naming approved", to, err)
		}
	}
	revokedAt := e.clk.Add(time.Minute)
	// The requester may revoke: revocation only narrows what is accepted.
	got, err = e.gov.DecideException(ctx, "alice", ex.ID, store.ExceptionRevoked, "fixed")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ExceptionRevoked || got.RevokedBy != "alice" || !got.RevokedAt.Equal(revokedAt) || got.RevokeNote != "fixed" ||
		got.DecidedBy != "bob" {
		t.Errorf("revoked = %+v", got)
	}
	if _, err := e.gov.DecideException(ctx, "bob", ex.ID, store.ExceptionRevoked, ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoke twice: err = %v, want ErrConflict naming revoked", err)
	}

	// Rejection ends a request for good.
	ex2 := e.request(t, ExceptionRequest{RuleID: r.med1})
	if got, err := e.gov.DecideException(ctx, "bob", ex2.ID, store.ExceptionRejected, "no"); err != nil || got.State != store.ExceptionRejected || got.DecidedBy != "bob" {
		t.Errorf("reject: %+v %v", got, err)
	}
	if _, err := e.gov.DecideException(ctx, "carol", ex2.ID, store.ExceptionApproved, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approve a rejected exception: err = %v, want ErrConflict", err)
	}
	// A request whose expiry passed before anyone approved it cannot be
	// approved.
	ex3 := e.request(t, ExceptionRequest{RuleID: r.med2, ExpiresAt: e.clk.Now().Add(time.Hour)})
	e.clk.Add(2 * time.Hour)
	_, err = e.gov.DecideException(ctx, "bob", ex3.ID, store.ExceptionApproved, "")
	wantField(t, err, "expires_at")
}

func testAcceptedAtMoments(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	t0 := e.clk.Now()
	web1 := e.host(t, "web1", nil, "web")
	web2 := e.host(t, "web2", nil, "web")
	db1 := e.host(t, "db1", nil, "db")
	g := e.group(t, "web")
	hosts := []store.Host{web1, web2, db1}

	// revoked: host web1 / crit, approved at t0+1h, revoked at t0+3h.
	e.clk.Set(t0.Add(time.Hour))
	revoked := e.approve(t, ExceptionRequest{RuleID: r.crit, HostID: web1.ID})
	// expiring: group web / med1, approved at t0+2h, expires at t0+4h.
	e.clk.Set(t0.Add(2 * time.Hour))
	expiring := e.approve(t, ExceptionRequest{RuleID: r.med1, GroupID: g.ID, ExpiresAt: t0.Add(4 * time.Hour)})
	// pending: never approved, never applies.
	e.request(t, ExceptionRequest{RuleID: r.med2})
	e.clk.Set(t0.Add(3 * time.Hour))
	if _, err := e.gov.DecideException(ctx, "bob", revoked.ID, store.ExceptionRevoked, ""); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(t0.Add(5 * time.Hour))
	if st, err := e.gov.Evaluate(ctx); err != nil || st.Expired != 1 {
		t.Fatalf("evaluate: %+v %v, want one exception expired", st, err)
	}

	type m = map[int64]map[string]int64
	for _, tc := range []struct {
		at   time.Time
		want m
	}{
		{t0.Add(30 * time.Minute), m{}},                       // nothing approved yet
		{t0.Add(time.Hour), m{web1.ID: {r.crit: revoked.ID}}}, // approval moment counts
		{t0.Add(2*time.Hour + time.Minute), m{web1.ID: {r.crit: revoked.ID, r.med1: expiring.ID}, web2.ID: {r.med1: expiring.ID}}},
		{t0.Add(3 * time.Hour), m{web1.ID: {r.med1: expiring.ID}, web2.ID: {r.med1: expiring.ID}}}, // revoked at that moment
		{t0.Add(4*time.Hour - time.Second), m{web1.ID: {r.med1: expiring.ID}, web2.ID: {r.med1: expiring.ID}}},
		{t0.Add(4 * time.Hour), m{}}, // expired at that moment
		{time.Time{}, m{}},           // now
	} {
		got, err := e.gov.Accepted(ctx, tc.at, hosts)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Accepted at %s = %v, want %v", tc.at.Sub(t0), got, tc.want)
		}
	}

	// Precedence: host over group over fleet, then the lowest id.
	e.clk.Set(t0.Add(6 * time.Hour))
	fleet := e.approve(t, ExceptionRequest{RuleID: r.ok})
	grp := e.approve(t, ExceptionRequest{RuleID: r.ok, GroupID: g.ID})
	hostA := e.approve(t, ExceptionRequest{RuleID: r.ok, HostID: web1.ID})
	e.approve(t, ExceptionRequest{RuleID: r.ok, HostID: web1.ID}) // a later duplicate loses to hostA
	e.approve(t, ExceptionRequest{RuleID: r.ok, GroupID: g.ID})   // a later group one loses to grp
	got, err := e.gov.Accepted(ctx, time.Time{}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	want := m{web1.ID: {r.ok: hostA.ID}, web2.ID: {r.ok: grp.ID}, db1.ID: {r.ok: fleet.ID}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("precedence: Accepted = %v, want %v", got, want)
	}
	// Group membership is the host's as given: db1 moved into web now
	// takes the group exception.
	db1.Groups = []string{"db", "web"}
	got, err = e.gov.Accepted(ctx, time.Time{}, []store.Host{db1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m{db1.ID: {r.ok: grp.ID}}) {
		t.Errorf("db1 in web: Accepted = %v", got)
	}
}

func testPostureWithExceptions(t *testing.T, st store.Store, x *posture.Index) {
	e := newEnv(t, st, x, Thresholds{})
	r := pickRules(t, x)
	ctx := context.Background()
	t0 := e.clk.Now().Add(-2 * time.Hour)
	web1 := e.host(t, "web1", nil, "web")
	web2 := e.host(t, "web2", nil, "web")
	db1 := e.host(t, "db1", nil, "db")
	g := e.group(t, "web")
	crit := rule.Critical
	fail, pass := result.Fail, result.Pass
	e.scan(t, web1, t0, obs{r.crit, fail, crit}, obs{r.med1, fail, ""}, obs{r.med2, fail, ""}, obs{r.ok, pass, ""})
	e.scan(t, web2, t0, obs{r.crit, pass, crit}, obs{r.med1, fail, ""}, obs{r.med2, pass, ""}, obs{r.ok, pass, ""})
	e.scan(t, db1, t0, obs{r.crit, fail, crit}, obs{r.med1, pass, ""}, obs{r.med2, fail, ""}, obs{r.ok, pass, ""})

	before := e.clk.Now().Add(-time.Hour) // scanned, nothing approved yet
	fleetMed2 := e.approve(t, ExceptionRequest{RuleID: r.med2})
	groupMed1 := e.approve(t, ExceptionRequest{RuleID: r.med1, GroupID: g.ID})
	fleetCrit := e.request(t, ExceptionRequest{RuleID: r.crit}) // not approved (yet)
	hostCrit := e.approve(t, ExceptionRequest{RuleID: r.crit, HostID: web1.ID})
	groupMed2 := e.approve(t, ExceptionRequest{RuleID: r.med2, GroupID: g.ID}) // beats fleetMed2 on web hosts
	e.approve(t, ExceptionRequest{RuleID: r.ok, HostID: db1.ID})               // covers a passing rule: no effect
	e.clk.Add(time.Minute)

	type hp struct {
		raw, with       float64
		band, bandWith  posture.Band
		accepted, accCr int
	}
	check := func(name string, q posture.FleetQuery, hosts map[string]hp, fleetRaw, fleetWith float64) {
		t.Helper()
		for _, rules := range []bool{false, true} {
			q.Rules = rules
			fp, err := e.post.Fleet(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fp.Score != fleetRaw || fp.ScoreWithExceptions != fleetWith {
				t.Errorf("%s (rules %v): fleet score %v / with exceptions %v, want %v / %v", name, rules, fp.Score, fp.ScoreWithExceptions, fleetRaw, fleetWith)
			}
			if len(fp.Hosts) != len(hosts) {
				t.Errorf("%s: %d hosts, want %d", name, len(fp.Hosts), len(hosts))
			}
			sumAcc := 0
			for _, h := range fp.Hosts {
				w, ok := hosts[h.Name]
				if !ok {
					t.Errorf("%s: unexpected host %s", name, h.Name)
					continue
				}
				sumAcc += h.Counts.Accepted
				got := hp{h.Score, h.ScoreWithExceptions, h.Band, h.BandWithExceptions, h.Counts.Accepted, h.Counts.AcceptedCritical}
				if got != w {
					t.Errorf("%s (rules %v): %s = %+v, want %+v", name, rules, h.Name, got, w)
				}
			}
			if fp.Counts.Accepted != sumAcc {
				t.Errorf("%s: fleet accepted %d, hosts sum to %d", name, fp.Counts.Accepted, sumAcc)
			}
		}
	}
	// web1: 1 pass, 3 fail (crit critical) -> 25 critical; all three
	// failures accepted -> 100 excellent. web2: med1 fails, accepted by
	// the group. db1: crit (not covered: the fleet one is only requested)
	// and med2 (fleet) fail.
	web1P := hp{25, 100, posture.BandCritical, posture.BandExcellent, 3, 1}
	web2P := hp{75, 100, posture.BandGood, posture.BandExcellent, 1, 0}
	db1P := hp{50, 75, posture.BandCritical, posture.BandCritical, 1, 0}
	check("fleet", posture.FleetQuery{}, map[string]hp{"web1": web1P, "web2": web2P, "db1": db1P}, 50, 91.7)
	check("group web", posture.FleetQuery{Group: "web"}, map[string]hp{"web1": web1P, "web2": web2P}, 50, 100)
	check("host web1", posture.FleetQuery{HostID: web1.ID}, map[string]hp{"web1": web1P}, 25, 100)
	// The framework view counts only its rules: crit and med1 map to it.
	check("framework", posture.FleetQuery{Framework: testFramework},
		map[string]hp{"web1": {0, 100, posture.BandCritical, posture.BandExcellent, 2, 1},
			"web2": {50, 100, posture.BandFair, posture.BandExcellent, 1, 0},
			"db1":  {50, 50, posture.BandCritical, posture.BandCritical, 0, 0}}, 33.3, 83.3)
	// Before any approval the figures with exceptions are the raw ones.
	check("before approval", posture.FleetQuery{At: before},
		map[string]hp{"web1": {25, 25, posture.BandCritical, posture.BandCritical, 0, 0},
			"web2": {75, 75, posture.BandGood, posture.BandGood, 0, 0},
			"db1":  {50, 50, posture.BandCritical, posture.BandCritical, 0, 0}}, 50, 50)

	// Per-rule states say which failure which exception accepts.
	fp, err := e.post.Fleet(ctx, posture.FleetQuery{HostID: web1.ID, Rules: true})
	if err != nil {
		t.Fatal(err)
	}
	wantRules := map[string]int64{r.crit: hostCrit.ID, r.med1: groupMed1.ID, r.med2: groupMed2.ID, r.ok: 0}
	for _, rs := range fp.Hosts[0].Rules {
		if want := wantRules[rs.RuleID]; rs.ExceptionID != want || rs.Accepted != (want != 0) {
			t.Errorf("web1 %s: accepted %v exception %d, want %d", rs.RuleID, rs.Accepted, rs.ExceptionID, want)
		}
	}
	fp, err = e.post.Fleet(ctx, posture.FleetQuery{HostID: db1.ID, Rules: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range fp.Hosts[0].Rules {
		want := map[string]int64{r.med2: fleetMed2.ID}[rs.RuleID]
		if rs.ExceptionID != want {
			t.Errorf("db1 %s: exception %d, want %d (a passing rule is never accepted)", rs.RuleID, rs.ExceptionID, want)
		}
	}

	// Approving the fleet exception for crit covers db1 too; web1 keeps
	// its host exception.
	if _, err := e.gov.DecideException(ctx, "bob", fleetCrit.ID, store.ExceptionApproved, ""); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	check("fleet crit approved", posture.FleetQuery{}, map[string]hp{"web1": web1P, "web2": web2P,
		"db1": {50, 100, posture.BandCritical, posture.BandExcellent, 2, 1}}, 50, 100)
	// Raw results never change: the snapshot still holds the raw score.
	snaps, err := st.Snapshots(ctx, store.SnapshotFilter{HostIDs: []int64{web1.ID}, From: t0.Add(-48 * time.Hour), To: e.clk.Now()})
	if err != nil || len(snaps) == 0 || snaps[len(snaps)-1].Score != 25 {
		t.Errorf("web1 snapshots %+v %v: want the raw score 25", snaps, err)
	}
}
