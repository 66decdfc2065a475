package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// exceptionResp is the part of an exception view the tests read.
type exceptionResp struct {
	ID            int64      `json:"id"`
	RuleID        string     `json:"rule_id"`
	Scope         string     `json:"scope"`
	HostID        int64      `json:"host_id"`
	Host          string     `json:"host"`
	GroupID       int64      `json:"group_id"`
	Group         string     `json:"group"`
	Justification string     `json:"justification"`
	ExpiresAt     *time.Time `json:"expires_at"`
	State         string     `json:"state"`
	RequestedBy   string     `json:"requested_by"`
	DecidedBy     string     `json:"decided_by"`
	DecisionNote  string     `json:"decision_note"`
	RevokedBy     string     `json:"revoked_by"`
}

// findingsOf returns a host's findings by rule id.
func (g *govAPI) findingsOf(hostID int64) map[string]findingJSON {
	g.t.Helper()
	r := g.get(pathf("/api/v1/hosts/%d/findings", hostID))
	g.want(r, 200, "-")
	var out struct{ Findings []findingJSON }
	r.json(g.t, &out)
	m := map[string]findingJSON{}
	for _, f := range out.Findings {
		m[f.RuleID] = f
	}
	return m
}

// hostPosture returns a host's posture now.
func (g *govAPI) hostPosture(hostID int64) map[string]any {
	g.t.Helper()
	r := g.get(pathf("/api/v1/posture?host=%d", hostID))
	g.want(r, 200, "-")
	var fp struct{ Hosts []map[string]any }
	r.json(g.t, &fp)
	if len(fp.Hosts) != 1 {
		g.t.Fatalf("posture of host %d: %d hosts: %s", hostID, len(fp.Hosts), r.body)
	}
	return fp.Hosts[0]
}

func TestExceptionRequestApproveRevoke(t *testing.T) {
	g := newGovAPI(t)
	failing := g.ruleWhere(func(r *rule.Rule) bool { return r.Severity == rule.High })
	passing := g.ruleWhere(func(r *rule.Rule) bool { return r.ID != failing.ID })
	h := g.addHost(store.Host{Name: "web1", Address: "127.0.0.9"})
	g.scan(h.ID, g.res(failing.ID, result.Fail), g.res(passing.ID, result.Pass))
	if f := g.findingsOf(h.ID)[failing.ID]; f.Accepted || f.ExceptionID != 0 {
		t.Fatalf("finding accepted before any exception: %+v", f)
	}
	rawScore := g.hostPosture(h.ID)["score"].(float64)

	body := map[string]any{"host_id": h.ID, "rule_id": failing.ID,
		"justification": "Compensating control: bastion-only SSH", "expires_at": "2026-03-01"}
	if r := g.as(g.viewer, "POST", "/api/v1/exceptions", body); r.status != http.StatusForbidden {
		t.Fatalf("viewer request: %d %s", r.status, r.body)
	}
	r := g.as(g.operator, "POST", "/api/v1/exceptions", body)
	g.want(r, http.StatusCreated, "-")
	var ex exceptionResp
	r.json(t, &ex)
	if ex.State != "requested" || ex.Scope != "host" || ex.HostID != h.ID || ex.Host != "web1" || ex.RequestedBy != "olive" ||
		ex.ExpiresAt == nil || ex.ExpiresAt.Truncate(time.Second) != time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC) {
		t.Fatalf("requested exception = %+v", ex)
	}
	reqID := r.header.Get("X-Request-ID")
	if f := g.findingsOf(h.ID)[failing.ID]; f.Accepted {
		t.Fatal("a requested (not approved) exception accepts the failure")
	}

	// Anyone may read; the operator may not decide; the requester may not
	// approve their own request (a security admin's own, here).
	if r := g.as(g.viewer, "GET", "/api/v1/exceptions", nil); r.status != 200 || !strings.Contains(string(r.body), failing.ID) {
		t.Fatalf("viewer list: %d %s", r.status, r.body)
	}
	if r := g.as(g.viewer, "GET", pathf("/api/v1/exceptions/%d", ex.ID), nil); r.status != 200 {
		t.Fatalf("viewer get: %d %s", r.status, r.body)
	}
	if r := g.as(g.operator, "POST", pathf("/api/v1/exceptions/%d/approve", ex.ID), nil); r.status != http.StatusForbidden {
		t.Fatalf("operator approve: %d %s", r.status, r.body)
	}
	own := g.as(g.secAdmin, "POST", "/api/v1/exceptions", map[string]any{"rule_id": passing.ID, "justification": "fleet-wide waiver for testing"})
	g.want(own, http.StatusCreated, "-")
	var ownEx exceptionResp
	own.json(t, &ownEx)
	if ownEx.Scope != "fleet" || ownEx.HostID != 0 || ownEx.GroupID != 0 {
		t.Fatalf("fleet exception = %s", own.body)
	}
	before := g.auditCount()
	self := g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/approve", ownEx.ID), nil)
	if self.status != http.StatusForbidden || self.errorBody(t).Error.Code != "self_approval" {
		t.Fatalf("self approval: %d %s", self.status, self.body)
	}
	if g.auditCount() != before {
		t.Fatal("a refused self-approval wrote an audit entry")
	}

	// Approve: the failure shows accepted, the raw score stays.
	r = g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/approve", ex.ID), map[string]string{"note": "ok until the migration"})
	g.want(r, 200, "-")
	r.json(t, &ex)
	if ex.State != "approved" || ex.DecidedBy != "sam" || ex.DecisionNote != "ok until the migration" {
		t.Fatalf("approved exception = %s", r.body)
	}
	f := g.findingsOf(h.ID)[failing.ID]
	if !f.Accepted || f.ExceptionID != ex.ID || f.Status != result.Fail {
		t.Fatalf("finding after approval = %+v, want fail accepted by %d", f, ex.ID)
	}
	if p := g.findingsOf(h.ID)[passing.ID]; p.Accepted {
		t.Fatalf("a passing rule shows accepted: %+v", p)
	}
	hp := g.hostPosture(h.ID)
	counts, _ := hp["counts"].(map[string]any)
	if hp["score"].(float64) != rawScore || counts["accepted"] != float64(1) || hp["score_with_exceptions"].(float64) <= rawScore {
		t.Fatalf("posture after approval = %v (raw score before %v)", hp, rawScore)
	}

	// Wrong-state moves are 409 naming the state.
	for _, action := range []string{"approve", "reject"} {
		r := g.as(g.secAdmin2, "POST", pathf("/api/v1/exceptions/%d/%s", ex.ID, action), nil)
		if r.status != http.StatusConflict || !strings.Contains(r.errorBody(t).Error.Message, "approved") {
			t.Fatalf("%s an approved exception: %d %s", action, r.status, r.body)
		}
	}

	// Revoke: accepted no more.
	r = g.as(g.secAdmin2, "POST", pathf("/api/v1/exceptions/%d/revoke", ex.ID), map[string]string{"note": "migration done"})
	g.want(r, 200, "-")
	r.json(t, &ex)
	if ex.State != "revoked" || ex.RevokedBy != "sasha" {
		t.Fatalf("revoked exception = %s", r.body)
	}
	if f := g.findingsOf(h.ID)[failing.ID]; f.Accepted {
		t.Fatalf("finding still accepted after revocation: %+v", f)
	}
	if r := g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/revoke", ex.ID), nil); r.status != http.StatusConflict ||
		!strings.Contains(r.errorBody(t).Error.Message, "revoked") {
		t.Fatalf("revoke twice: %d %s", r.status, r.body)
	}

	// Reject path.
	rj := g.as(g.operator, "POST", "/api/v1/exceptions", map[string]any{"host_id": h.ID, "rule_id": failing.ID, "justification": "second try, please"})
	g.want(rj, http.StatusCreated, "-")
	var rejected exceptionResp
	rj.json(t, &rejected)
	r = g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/reject", rejected.ID), map[string]string{"note": "no compensating control"})
	g.want(r, 200, "-")
	r.json(t, &rejected)
	if rejected.State != "rejected" || rejected.DecidedBy != "sam" {
		t.Fatalf("rejected = %s", r.body)
	}
	for _, action := range []string{"approve", "revoke"} {
		r := g.as(g.secAdmin2, "POST", pathf("/api/v1/exceptions/%d/%s", rejected.ID, action), nil)
		if r.status != http.StatusConflict || !strings.Contains(r.errorBody(t).Error.Message, "rejected") {
			t.Fatalf("%s a rejected exception: %d %s", action, r.status, r.body)
		}
	}
	if r := g.as(g.secAdmin, "POST", "/api/v1/exceptions/99999/approve", nil); r.status != http.StatusNotFound {
		t.Fatalf("approve a missing exception: %d %s", r.status, r.body)
	}
	if r := g.get("/api/v1/exceptions/99999"); r.status != http.StatusNotFound {
		t.Fatalf("get a missing exception: %d %s", r.status, r.body)
	}

	// Filters.
	var list struct{ Exceptions []exceptionResp }
	r = g.get("/api/v1/exceptions?state=revoked,rejected")
	g.want(r, 200, "-")
	r.json(t, &list)
	if len(list.Exceptions) != 2 || list.Exceptions[0].ID != rejected.ID || list.Exceptions[1].ID != ex.ID {
		t.Fatalf("state=revoked,rejected = %s", r.body)
	}
	r = g.get(pathf("/api/v1/exceptions?host=%d&rule=%s", h.ID, failing.ID))
	r.json(t, &list)
	if len(list.Exceptions) != 2 {
		t.Fatalf("host filter = %s", r.body)
	}
	g.want(g.get("/api/v1/exceptions?state=pending"), 400, "state")
	g.want(g.get("/api/v1/exceptions?host=web1"), 400, "host")
	g.want(g.get("/api/v1/exceptions?limit=0"), 400, "limit")

	// Audit: one entry per change, with the caller's request id, rule and scope.
	checks := map[string]int{"exception.request": 3, "exception.approve": 1, "exception.reject": 1, "exception.revoke": 1}
	for action, n := range checks {
		es := g.auditWith(action)
		if len(es) != n {
			t.Fatalf("%d %s entries, want %d", len(es), action, n)
		}
		for _, e := range es {
			var d map[string]any
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || d["rule_id"] == nil || d["scope"] == nil ||
				!strings.HasPrefix(e.Target, "exception/") {
				t.Fatalf("%s entry %+v lacks rule_id/scope", action, e)
			}
		}
	}
	if first := g.auditWith("exception.request")[0]; first.RequestID != reqID || first.Actor != "olive" {
		t.Fatalf("request audit = %+v, want request id %s by olive", first, reqID)
	}
}

func TestExceptionGroupScope(t *testing.T) {
	g := newGovAPI(t)
	failing := g.idx.Rules()[0]
	grp := g.addGroup("dmz")
	in := g.addHost(store.Host{Name: "edge1", Address: "127.0.0.9", Groups: []string{"dmz"}})
	out := g.addHost(store.Host{Name: "core1", Address: "127.0.0.10"})
	g.scan(in.ID, g.res(failing.ID, result.Fail))
	g.scan(out.ID, g.res(failing.ID, result.Fail))
	r := g.as(g.operator, "POST", "/api/v1/exceptions", map[string]any{"group_id": grp.ID, "rule_id": failing.ID,
		"justification": "DMZ hosts use a different control"})
	g.want(r, http.StatusCreated, "-")
	var ex exceptionResp
	r.json(t, &ex)
	if ex.Scope != "group" || ex.GroupID != grp.ID || ex.Group != "dmz" {
		t.Fatalf("group exception = %s", r.body)
	}
	g.want(g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/approve", ex.ID), nil), 200, "-")
	if f := g.findingsOf(in.ID)[failing.ID]; !f.Accepted || f.ExceptionID != ex.ID {
		t.Fatalf("member's finding = %+v, want accepted", f)
	}
	if f := g.findingsOf(out.ID)[failing.ID]; f.Accepted {
		t.Fatalf("non-member's finding = %+v, want not accepted", f)
	}
}

func TestExceptionValidation(t *testing.T) {
	g := newGovAPI(t)
	h := g.addHost(store.Host{Name: "web1", Address: "127.0.0.9"})
	grp := g.addGroup("web")
	ruleID := g.idx.Rules()[0].ID
	ok := func() map[string]any {
		return map[string]any{"host_id": h.ID, "rule_id": ruleID, "justification": "a good enough reason"}
	}
	with := func(k string, v any) map[string]any { b := ok(); b[k] = v; return b }
	without := func(k string) map[string]any { b := ok(); delete(b, k); return b }
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"no rule", without("rule_id"), "rule_id"},
		{"unknown rule", with("rule_id", "no_such_rule"), "rule_id"},
		{"short justification", with("justification", "  because  "), "justification"},
		{"long justification", with("justification", strings.Repeat("x", 4001)), "justification"},
		{"unknown host", with("host_id", 9999), "host_id"},
		{"host and group", with("group_id", grp.ID), "group_id"},
		{"unknown group", map[string]any{"group_id": 9999, "rule_id": ruleID, "justification": "a good enough reason"}, "group_id"},
		{"past expiry", with("expires_at", "2026-01-14T00:00:00Z"), "expires_at"},
		{"bad expiry", with("expires_at", "next tuesday"), "expires_at"},
		{"unknown field", with("reason", "x"), "reason"},
		{"wrong type", with("host_id", "web1"), "host_id"},
	}
	before := g.auditCount()
	for _, c := range cases {
		r := g.as(g.operator, "POST", "/api/v1/exceptions", c.body)
		if r.status != 400 || r.errorBody(t).Error.Field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", c.name, r.status, r.body, c.field)
		}
	}
	if g.auditCount() != before {
		t.Fatal("refused requests wrote audit entries")
	}
	r := g.as(g.operator, "POST", "/api/v1/exceptions", ok())
	g.want(r, http.StatusCreated, "-")
	var ex exceptionResp
	r.json(t, &ex)
	long := map[string]string{"note": strings.Repeat("n", 2001)}
	g.want(g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/approve", ex.ID), long), 400, "note")
	g.want(g.as(g.secAdmin, "POST", pathf("/api/v1/exceptions/%d/approve", ex.ID), map[string]int{"note": 1}), 400, "note")
	g.want(g.as(g.secAdmin, "POST", "/api/v1/exceptions/abc/approve", nil), 400, "id")
}
