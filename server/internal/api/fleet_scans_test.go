package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestFleetScansAndEvidence(t *testing.T) {
	f := newFleetAPI(t)
	h := f.addHost(store.Host{Name: "h1", Address: "10.0.0.1"})
	h2 := f.addHost(store.Host{Name: "h2", Address: "10.0.0.2"})
	a := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == rule.High })
	b := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == rule.Low })
	exit := 1
	ev := []result.Evidence{
		{Method: "command", Probe: "sshd -T", Stdout: "permitrootlogin yes\n", ExitCode: &exit, Expected: "permitrootlogin no", Actual: "permitrootlogin yes", Time: f.clock.Now()},
	}
	first := f.scan(h.ID, f.res(a.ID, result.Fail, ev...), f.res(b.ID, result.Pass))
	f.clock.Advance(time.Hour)
	second := f.scan(h.ID, f.res(a.ID, result.Pass))
	other := f.scan(h2.ID, f.res(b.ID, result.Skipped))
	failed, err := f.st.CreateScan(context.Background(), store.Scan{HostID: h2.ID, Trigger: "manual", StartedAt: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.FailScan(context.Background(), failed.ID, f.clock.Now().Add(time.Second), "host unreachable"); err != nil {
		t.Fatal(err)
	}

	ids := func(path string) []int64 {
		t.Helper()
		r := f.get(path)
		f.want(r, http.StatusOK, "")
		var out struct {
			Scans []scanJSON `json:"scans"`
		}
		r.json(t, &out)
		var ids []int64
		for _, s := range out.Scans {
			ids = append(ids, s.ID)
		}
		return ids
	}
	cases := map[string][]int64{
		fmt.Sprintf("/api/v1/hosts/%d/scans", h.ID):                      {second.ID, first.ID},
		fmt.Sprintf("/api/v1/hosts/%d/scans?limit=1", h.ID):              {second.ID},
		fmt.Sprintf("/api/v1/hosts/%d/scans?before=%d", h.ID, second.ID): {first.ID},
		"/api/v1/scans":               {failed.ID, other.ID, second.ID, first.ID},
		"/api/v1/scans?status=failed": {failed.ID},
		fmt.Sprintf("/api/v1/scans?host=%d&status=completed", h2.ID):        {other.ID},
		fmt.Sprintf("/api/v1/scans?before=%d&limit=2", failed.ID):           {other.ID, second.ID},
		fmt.Sprintf("/api/v1/scans?host=%d&status=running", h.ID):           nil,
		fmt.Sprintf("/api/v1/hosts/%d/scans?status=completed", h2.ID):       {other.ID},
		fmt.Sprintf("/api/v1/hosts/%d/scans?before=%d", h.ID, first.ID):     nil,
		fmt.Sprintf("/api/v1/scans?host=%d&before=%d&limit=1", h.ID, 10000): {second.ID},
	}
	for path, want := range cases {
		if got := ids(path); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
	for path, field := range map[string]string{
		"/api/v1/scans?status=done": "status", "/api/v1/scans?host=x": "host", "/api/v1/scans?before=-1": "before",
		"/api/v1/scans?limit=0": "limit", "/api/v1/scans?limit=5000": "limit", "/api/v1/hosts/1/scans?limit=abc": "limit",
	} {
		f.want(f.get(path), http.StatusBadRequest, field)
	}
	f.want(f.get("/api/v1/hosts/999/scans"), http.StatusNotFound, "-")

	// One scan, its shape.
	r := f.get(fmt.Sprintf("/api/v1/scans/%d", failed.ID))
	f.want(r, http.StatusOK, "")
	var sj map[string]any
	r.json(t, &sj)
	want := []string{"bundle_version", "counts", "finished_at", "host_id", "id", "message", "started_at", "status", "trigger"}
	if got := keysOf(sj); !slices.Equal(got, want) {
		t.Fatalf("scan keys %v, want %v", got, want)
	}
	if sj["status"] != "failed" || sj["message"] != "host unreachable" || sj["finished_at"] == nil {
		t.Fatalf("failed scan %v", sj)
	}
	var fj scanJSON
	f.get(fmt.Sprintf("/api/v1/scans/%d", first.ID)).json(t, &fj)
	if fj.Counts != (result.Summary{Total: 2, Pass: 1, Fail: 1}) || fj.BundleVersion != "test-1" || fj.Status != "completed" {
		t.Fatalf("first scan %+v", fj)
	}
	f.want(f.get("/api/v1/scans/4242"), http.StatusNotFound, "-")
	f.want(f.get("/api/v1/scans/zero"), http.StatusBadRequest, "id")

	// Results with titles.
	r = f.get(fmt.Sprintf("/api/v1/scans/%d/results", first.ID))
	f.want(r, http.StatusOK, "")
	var rs struct {
		Scan    scanJSON      `json:"scan"`
		Results []findingJSON `json:"results"`
		Pruned  bool          `json:"pruned"`
	}
	r.json(t, &rs)
	if rs.Scan.ID != first.ID || len(rs.Results) != 2 || rs.Pruned || rs.Results[0].RuleID != a.ID || rs.Results[0].Title != a.Title ||
		rs.Results[0].Status != result.Fail || len(rs.Results[0].FrameworkRefs) == 0 {
		t.Fatalf("results %s", r.body)
	}
	f.want(f.get("/api/v1/scans/4242/results"), http.StatusNotFound, "-")

	// One result with its evidence.
	r = f.get(fmt.Sprintf("/api/v1/scans/%d/results/%s", first.ID, a.ID))
	f.want(r, http.StatusOK, "")
	var one struct {
		Scan     scanJSON          `json:"scan"`
		Result   map[string]any    `json:"result"`
		Evidence []result.Evidence `json:"evidence"`
	}
	r.json(t, &one)
	for _, k := range []string{"rule_id", "status", "severity", "reason", "observed_at", "framework_refs"} {
		if _, ok := one.Result[k]; !ok {
			t.Fatalf("result lacks %q: %s", k, r.body)
		}
	}
	if one.Scan.ID != first.ID || one.Result["status"] != "fail" || len(one.Evidence) != 1 ||
		one.Evidence[0].Probe != "sshd -T" || one.Evidence[0].Actual != "permitrootlogin yes" || *one.Evidence[0].ExitCode != 1 {
		t.Fatalf("evidence view %s", r.body)
	}
	r = f.get(fmt.Sprintf("/api/v1/scans/%d/results/%s", second.ID, b.ID))
	f.want(r, http.StatusNotFound, "rule")
	if msg := r.errorBody(t).Error.Message; !strings.Contains(msg, "did not evaluate") {
		t.Fatalf("not-evaluated message %q", msg)
	}
	f.want(f.get(fmt.Sprintf("/api/v1/scans/4242/results/%s", a.ID)), http.StatusNotFound, "-")

	// An auditor may read evidence; a viewer may not.
	viewer, _ := f.tokenFor(f.addUser("viewer", RoleViewer), time.Time{})
	f.want(f.do("GET", fmt.Sprintf("/api/v1/scans/%d/results/%s", first.ID, a.ID), viewer, nil), http.StatusForbidden, "-")
	f.want(f.do("GET", fmt.Sprintf("/api/v1/scans/%d/results", first.ID), viewer, nil), http.StatusOK, "")

	// After retention pruned the per-scan rows, the answer says so.
	if _, err := f.st.PruneResults(context.Background(), f.clock.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r = f.get(fmt.Sprintf("/api/v1/scans/%d/results/%s", first.ID, a.ID))
	f.want(r, http.StatusNotFound, "rule")
	if msg := r.errorBody(t).Error.Message; !strings.Contains(msg, "pruned") {
		t.Fatalf("pruned message %q", msg)
	}
	r = f.get(fmt.Sprintf("/api/v1/scans/%d/results", first.ID))
	r.json(t, &rs)
	if !rs.Pruned || len(rs.Results) != 0 {
		t.Fatalf("pruned results %s", r.body)
	}
}

func TestFleetScanNow(t *testing.T) {
	f := newFleetAPI(t)
	h := f.addHost(store.Host{Name: "h1", Address: "10.0.0.1"})
	// Take the new host's first-scan due time out of the way so the
	// request is what makes it due.
	f.complete(h.ID, store.Completion{ScannedAt: f.clock.Now(), NextScanAt: f.clock.Now().Add(48 * time.Hour), Score: 100, Band: "excellent"})
	f.clock.Advance(time.Hour)
	before := f.wakes.Load()

	r := f.post(fmt.Sprintf("/api/v1/hosts/%d/scan", h.ID), nil)
	f.want(r, http.StatusAccepted, "")
	var out struct {
		HostID      int64     `json:"host_id"`
		RequestedAt time.Time `json:"requested_at"`
	}
	r.json(t, &out)
	if out.HostID != h.ID || !out.RequestedAt.Equal(f.clock.Now()) {
		t.Fatalf("scan now: %s", r.body)
	}
	got, err := f.st.Host(context.Background(), h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.NextScanAt.Equal(f.clock.Now()) {
		t.Fatalf("next scan %v, want %v (due now)", got.NextScanAt, f.clock.Now())
	}
	if f.wakes.Load() != before+1 {
		t.Fatalf("wakes %d, want %d", f.wakes.Load(), before+1)
	}

	f.want(f.post("/api/v1/scans", map[string]any{"host_id": h.ID}), http.StatusAccepted, "")
	f.want(f.post("/api/v1/scans", map[string]any{"host_id": 9999}), http.StatusNotFound, "host_id")
	f.want(f.post("/api/v1/scans", map[string]any{}), http.StatusBadRequest, "host_id")
	f.want(f.post("/api/v1/scans", map[string]any{"host_id": "one"}), http.StatusBadRequest, "host_id")
	f.want(f.post("/api/v1/hosts/9999/scan", nil), http.StatusNotFound, "id")
	f.want(f.post("/api/v1/hosts/x/scan", nil), http.StatusBadRequest, "id")

	n := 0
	for _, e := range f.auditEntries() {
		if e.Action == "scan.request" && e.Target == fmt.Sprintf("host/%d", h.ID) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d scan.request audit entries, want 2", n)
	}
	// A viewer cannot trigger scans.
	viewer, _ := f.tokenFor(f.addUser("viewer", RoleViewer), time.Time{})
	f.want(f.do("POST", fmt.Sprintf("/api/v1/hosts/%d/scan", h.ID), viewer, nil), http.StatusForbidden, "-")
}

func TestFleetGroups(t *testing.T) {
	f := newFleetAPI(t)
	r := f.post("/api/v1/groups", map[string]any{"name": "web", "description": "front ends"})
	f.want(r, http.StatusCreated, "")
	var g groupJSON
	r.json(t, &g)
	if g.ID == 0 || g.Name != "web" || g.Description != "front ends" || g.Hosts != 0 {
		t.Fatalf("created group %+v", g)
	}
	f.want(f.post("/api/v1/groups", map[string]any{"name": "web"}), http.StatusConflict, "name")
	f.want(f.post("/api/v1/groups", map[string]any{"name": "has space"}), http.StatusBadRequest, "name")
	f.want(f.post("/api/v1/groups", map[string]any{"name": "ok", "description": strings.Repeat("d", 2000)}), http.StatusBadRequest, "description")
	f.want(f.post("/api/v1/groups", map[string]any{"name": "ok", "owner": "x"}), http.StatusBadRequest, "owner")
	f.want(f.post("/api/v1/groups", map[string]any{"name": "db"}), http.StatusCreated, "")
	f.addHost(store.Host{Name: "a", Address: "10.0.0.1", Groups: []string{"web", "db"}})
	f.addHost(store.Host{Name: "b", Address: "10.0.0.2", Groups: []string{"web"}})

	var list struct {
		Groups []groupJSON `json:"groups"`
	}
	f.get("/api/v1/groups").json(t, &list)
	if len(list.Groups) != 2 || list.Groups[0].Name != "db" || list.Groups[0].Hosts != 1 || list.Groups[1].Hosts != 2 {
		t.Fatalf("groups %+v", list.Groups)
	}

	f.want(f.del(fmt.Sprintf("/api/v1/groups/%d", g.ID)), http.StatusNoContent, "")
	f.want(f.del(fmt.Sprintf("/api/v1/groups/%d", g.ID)), http.StatusNotFound, "-")
	f.want(f.del("/api/v1/groups/nope"), http.StatusBadRequest, "id")
	a, err := f.st.HostByName(context.Background(), "a")
	if err != nil || !slices.Equal(a.Groups, []string{"db"}) {
		t.Fatalf("host a after group delete: %v %v", a.Groups, err)
	}
	var actions []string
	for _, e := range f.auditEntries() {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "group.create") || !slices.Contains(actions, "group.delete") {
		t.Fatalf("audit actions %v", actions)
	}
}

func TestFleetAgents(t *testing.T) {
	f := newFleetAPI(t)
	ag, err := f.st.UpsertAgent(context.Background(), store.Agent{Name: "jump-1", Status: store.AgentActive, Version: "0.1.0",
		CertSerial: "0a1b", EnrolledAt: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.addHost(store.Host{Name: "behind-jump", Address: "10.1.0.1", AgentID: ag.ID})
	r := f.get("/api/v1/agents")
	f.want(r, http.StatusOK, "")
	var out struct {
		Agents []map[string]any `json:"agents"`
	}
	r.json(t, &out)
	if len(out.Agents) != 1 || out.Agents[0]["name"] != "jump-1" || out.Agents[0]["status"] != "active" ||
		out.Agents[0]["last_seen_at"] != nil || out.Agents[0]["enrolled_at"] == nil {
		t.Fatalf("agents %s", r.body)
	}
	var hosts struct{ Hosts []hostJSON }
	f.get("/api/v1/hosts").json(t, &hosts)
	if len(hosts.Hosts) != 1 || hosts.Hosts[0].Mode != "agent" || hosts.Hosts[0].AgentID == nil || *hosts.Hosts[0].AgentID != ag.ID {
		t.Fatalf("agent-owned host %+v", hosts.Hosts)
	}
	if out.Agents[0]["hosts"] != float64(1) {
		t.Fatalf("agent host count %v", out.Agents[0]["hosts"])
	}
	// An agent-owned host takes no SSH credential.
	key, known := testKey(t)
	f.want(f.put(fmt.Sprintf("/api/v1/hosts/%d", hosts.Hosts[0].ID), map[string]any{
		"ssh": map[string]any{"user": "u", "private_key": key, "known_hosts": known},
	}), http.StatusBadRequest, "ssh")
}
