package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestFleetPostureDriftTrend(t *testing.T) {
	f := newFleetAPI(t)
	f.addGroup("web")
	f.addGroup("empty")
	web := f.addHost(store.Host{Name: "web-1", Address: "10.0.0.1", Groups: []string{"web"}})
	db := f.addHost(store.Host{Name: "db-1", Address: "10.0.0.2"})
	a := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == rule.Medium })
	b := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == rule.Low })

	// Day 1 (2026-01-15): web passes both; db fails a.
	day1 := f.clock.Now()
	f.scan(web.ID, f.res(a.ID, result.Pass), f.res(b.ID, result.Pass))
	f.scan(db.ID, f.res(a.ID, result.Fail), f.res(b.ID, result.Pass))
	// Day 3 (2026-01-17): web starts failing a.
	f.clock.Advance(48 * time.Hour)
	f.scan(web.ID, f.res(a.ID, result.Fail), f.res(b.ID, result.Pass))
	day3 := f.clock.Now()
	f.clock.Advance(time.Hour)

	fleet := func(q string) posture.FleetPosture {
		t.Helper()
		r := f.get("/api/v1/posture" + q)
		f.want(r, http.StatusOK, "")
		var fp posture.FleetPosture
		r.json(t, &fp)
		return fp
	}
	now := fleet("")
	if len(now.Hosts) != 2 || now.Counts.Pass != 2 || now.Counts.Fail != 2 || now.Score != 50 {
		t.Fatalf("posture now %+v", now)
	}
	then := fleet("?at=2026-01-15")
	if then.Counts.Pass != 3 || then.Counts.Fail != 1 || !then.At.Equal(time.Date(2026, 1, 15, 23, 59, 59, 999999000, time.UTC)) {
		t.Fatalf("posture on 2026-01-15 %+v", then)
	}
	exact := fleet("?at=" + url.QueryEscape(day1.Add(-time.Minute).Format(time.RFC3339)))
	if exact.Counts != (posture.Counts{}) {
		t.Fatalf("posture before any scan %+v", exact.Counts)
	}
	today := fleet("?at=" + f.clock.Now().Format("2006-01-02"))
	if !today.At.Equal(f.clock.Now()) {
		t.Fatalf("today's date means now: at %v, want %v", today.At, f.clock.Now())
	}
	grp := fleet("?group=web&rules=true")
	if len(grp.Hosts) != 1 || grp.Hosts[0].Name != "web-1" || len(grp.Hosts[0].Rules) != 2 {
		t.Fatalf("group posture %+v", grp)
	}
	if h := fleet(fmt.Sprintf("?host=%d", db.ID)); len(h.Hosts) != 1 || h.Hosts[0].HostID != db.ID {
		t.Fatalf("host posture %+v", h)
	}
	if e := fleet("?group=empty"); len(e.Hosts) != 0 || e.Hosts == nil {
		t.Fatalf("empty group posture %+v", e)
	}
	fw := f.idx.Refs(a.ID)[0].Framework
	if p := fleet("?framework=" + fw); p.Framework != fw {
		t.Fatalf("framework posture %+v", p)
	}
	for q, field := range map[string]string{
		"?at=yesterday": "at", "?at=2026-13-01": "at", "?at=2027-01-01": "at", "?at=2030-01-01T00:00:00Z": "at",
		"?framework=nope": "framework", "?group=nope": "group", "?host=-3": "host", "?rules=maybe": "rules",
	} {
		f.want(f.get("/api/v1/posture"+q), http.StatusBadRequest, field)
	}
	f.want(f.get("/api/v1/posture?host=9999"), http.StatusNotFound, "-")

	// Drift between day 1 and day 3: web's rule a went pass -> fail.
	r := f.get("/api/v1/drift?from=2026-01-15&to=2026-01-17")
	f.want(r, http.StatusOK, "")
	var dr struct {
		From  time.Time       `json:"from"`
		To    time.Time       `json:"to"`
		Drift []posture.Drift `json:"drift"`
	}
	r.json(t, &dr)
	if !dr.From.Equal(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)) || !dr.To.Equal(time.Date(2026, 1, 17, 23, 59, 59, 999999000, time.UTC)) {
		t.Fatalf("drift window %v..%v", dr.From, dr.To)
	}
	// From the start of day 1, every first observation is a change too;
	// from just after day 1's scans only web's a moved.
	r = f.get("/api/v1/drift?from=" + url.QueryEscape(day1.Add(time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(day3.Format(time.RFC3339Nano)))
	f.want(r, http.StatusOK, "")
	r.json(t, &dr)
	if len(dr.Drift) != 1 || dr.Drift[0].HostID != web.ID || dr.Drift[0].RuleID != a.ID || dr.Drift[0].Before != result.Pass || dr.Drift[0].After != result.Fail {
		t.Fatalf("drift %s", r.body)
	}
	r = f.get(fmt.Sprintf("/api/v1/drift?from=2026-01-16&to=2026-01-18&host=%d", db.ID))
	r.json(t, &dr)
	if dr.Drift == nil || len(dr.Drift) != 0 {
		t.Fatalf("db drift %s", r.body)
	}
	for q, field := range map[string]string{
		"?to=2026-01-17": "from", "?from=2026-01-15": "to", "?from=bad&to=2026-01-17": "from",
		"?from=2026-01-15&to=17.01.2026": "to", "?from=2026-01-17T00:00:00Z&to=2026-01-16T00:00:00Z": "from",
		"?from=2026-01-16T00:00:00Z&to=2026-01-16T00:00:00Z": "from", "?from=2026-01-15&to=2026-01-17&host=0": "host",
	} {
		f.want(f.get("/api/v1/drift"+q), http.StatusBadRequest, field)
	}

	// Trend: day 1 scanned, day 2 carried, day 3 scanned.
	r = f.get(fmt.Sprintf("/api/v1/hosts/%d/trend?days=5", web.ID))
	f.want(r, http.StatusOK, "")
	var tr struct {
		HostID    int64                `json:"host_id"`
		Framework string               `json:"framework"`
		Points    []posture.TrendPoint `json:"points"`
	}
	r.json(t, &tr)
	if tr.HostID != web.ID || len(tr.Points) != 3 || tr.Points[0].Score != 100 || !tr.Points[1].Carried || tr.Points[2].Score != 50 {
		t.Fatalf("trend %s", r.body)
	}
	r = f.get(fmt.Sprintf("/api/v1/hosts/%d/trend?framework=%s", web.ID, fw))
	f.want(r, http.StatusOK, "")
	r.json(t, &tr)
	if tr.Framework != fw || len(tr.Points) == 0 {
		t.Fatalf("framework trend %s", r.body)
	}
	for q, field := range map[string]string{"?days=0": "days", "?days=400": "days", "?days=x": "days", "?framework=nope": "framework"} {
		f.want(f.get(fmt.Sprintf("/api/v1/hosts/%d/trend%s", web.ID, q)), http.StatusBadRequest, field)
	}
	f.want(f.get("/api/v1/hosts/9999/trend"), http.StatusNotFound, "-")
}

func TestFleetRulesAndFrameworks(t *testing.T) {
	f := newFleetAPI(t)
	list := func(q string) []ruleSummary {
		t.Helper()
		r := f.get("/api/v1/rules" + q)
		f.want(r, http.StatusOK, "")
		var out struct {
			Rules []ruleSummary `json:"rules"`
		}
		r.json(t, &out)
		return out.Rules
	}
	all := list("")
	if len(all) != len(f.idx.Rules()) || len(all) < 100 {
		t.Fatalf("%d rules listed, corpus has %d", len(all), len(f.idx.Rules()))
	}
	for _, r := range list("?severity=critical") {
		if r.Severity != rule.Critical {
			t.Fatalf("severity filter let %s (%s) through", r.ID, r.Severity)
		}
	}
	kernel := list("?category=kernel")
	if len(kernel) == 0 || len(kernel) >= len(all) {
		t.Fatalf("category filter kept %d of %d", len(kernel), len(all))
	}
	fws := f.idx.Frameworks()
	var fw posture.Framework
	for _, x := range fws {
		if x.Rules > 0 && x.Rules < len(all) {
			fw = x
			break
		}
	}
	inFw := list("?framework=" + fw.ID)
	if len(inFw) != fw.Rules {
		t.Fatalf("framework %s: %d rules listed, index says %d", fw.ID, len(inFw), fw.Rules)
	}
	for _, r := range inFw {
		if !slices.ContainsFunc(r.Frameworks, func(x refJSON) bool { return x.Framework == fw.ID }) {
			t.Fatalf("rule %s in %s lists no ref of it: %v", r.ID, fw.ID, r.Frameworks)
		}
	}
	probe := all[len(all)/2]
	if q := list("?q=" + url.QueryEscape(strings.ToUpper(probe.ID))); !slices.ContainsFunc(q, func(x ruleSummary) bool { return x.ID == probe.ID }) {
		t.Fatalf("q=%s did not find the rule", probe.ID)
	}
	for q, field := range map[string]string{"?severity=urgent": "severity", "?category=misc": "category", "?framework=nope": "framework"} {
		f.want(f.get("/api/v1/rules"+q), http.StatusBadRequest, field)
	}

	// Detail of a rule with variables shows them as written.
	withVar := f.ruleWhere(func(r *rule.Rule) bool { return len(r.Variables()) > 0 })
	r := f.get("/api/v1/rules/" + withVar.ID)
	f.want(r, http.StatusOK, "")
	if strings.Contains(string(r.body), "__vigilvar_") {
		t.Fatalf("rule detail leaks loader tokens: %s", r.body)
	}
	if !strings.Contains(string(r.body), "{{ "+withVar.Variables()[0]+" }}") {
		t.Fatalf("rule detail lacks the placeholder {{ %s }}: %s", withVar.Variables()[0], r.body)
	}
	var d map[string]any
	r.json(t, &d)
	for _, k := range []string{"id", "title", "description", "rationale", "severity", "category", "platforms", "implementations", "framework_refs", "depends_on", "variables"} {
		if _, ok := d[k]; !ok {
			t.Fatalf("rule detail lacks %q", k)
		}
	}
	// Every rule renders, and a rule whose remediation has a note shows it.
	sawNote := false
	for _, x := range f.idx.Rules() {
		r := f.get("/api/v1/rules/" + x.ID)
		f.want(r, http.StatusOK, "")
		if strings.Contains(string(r.body), "__vigilvar_") {
			t.Fatalf("rule %s detail leaks loader tokens", x.ID)
		}
		var rd ruleDetail
		r.json(t, &rd)
		if len(rd.Implementations) != len(x.Implementations) || len(rd.FrameworkRefs) != len(f.idx.Refs(x.ID)) {
			t.Fatalf("rule %s detail %s", x.ID, r.body)
		}
		for _, im := range rd.Implementations {
			if im.Check.Method == "" && im.Check.All == nil && im.Check.Any == nil && im.Check.Not == nil {
				t.Fatalf("rule %s: empty check in %s", x.ID, r.body)
			}
			if im.Remediation != nil && im.Remediation.Note != "" {
				sawNote = true
			}
		}
	}
	if !sawNote {
		t.Error("no rule detail showed a remediation note")
	}
	f.want(f.get("/api/v1/rules/no-such-rule"), http.StatusNotFound, "id")

	r = f.get("/api/v1/frameworks")
	f.want(r, http.StatusOK, "")
	var out struct {
		Frameworks []posture.Framework `json:"frameworks"`
	}
	r.json(t, &out)
	if !slices.Equal(out.Frameworks, fws) || len(fws) == 0 {
		t.Fatalf("frameworks %v, want %v", out.Frameworks, fws)
	}
}
