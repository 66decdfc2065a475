package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// alertResp is the part of an alert view the tests read.
type alertResp struct {
	ID            int64             `json:"id"`
	Kind          string            `json:"kind"`
	Key           string            `json:"key"`
	State         string            `json:"state"`
	HostID        int64             `json:"host_id"`
	Host          string            `json:"host"`
	Labels        map[string]string `json:"labels"`
	Detail        map[string]any    `json:"detail"`
	AckBy         string            `json:"ack_by"`
	SilencedUntil *time.Time        `json:"silenced_until"`
	ResolvedBy    string            `json:"resolved_by"`
}

func (g *govAPI) alert(token, method, path string, body any, status int) alertResp {
	g.t.Helper()
	r := g.as(token, method, path, body)
	g.want(r, status, "-")
	var a alertResp
	if status == 200 {
		r.json(g.t, &a)
	}
	return a
}

func (g *govAPI) alertList(query string) []alertResp {
	g.t.Helper()
	r := g.as(g.viewer, "GET", "/api/v1/alerts"+query, nil)
	g.want(r, 200, "-")
	var out struct{ Alerts []alertResp }
	r.json(g.t, &out)
	return out.Alerts
}

func TestAlertLifecycle(t *testing.T) {
	g := newGovAPI(t)
	h := g.addHost(store.Host{Name: "db1", Address: "127.0.0.9", Labels: map[string]string{"env": "prod"}})
	a := g.raiseAlert(store.Alert{Kind: "band_drop", Key: pathf("band_drop/host/%d", h.ID), Severity: "critical",
		HostID: h.ID, Labels: map[string]string{"env": "prod"}, Title: "db1 is in band critical", Detail: `{"band":"critical"}`})
	other := g.raiseAlert(store.Alert{Kind: "agent_offline", Key: "agent_offline/agent/7", Severity: "high", AgentID: 7,
		Title: "agent 7 silent", Detail: `{}`})

	list := g.alertList("")
	if len(list) != 2 {
		t.Fatalf("alerts = %+v", list)
	}
	got := g.alert(g.viewer, "GET", pathf("/api/v1/alerts/%d", a.ID), nil, 200)
	if got.State != "active" || got.Host != "db1" || got.Labels["env"] != "prod" || got.Detail["band"] != "critical" {
		t.Fatalf("alert = %+v", got)
	}
	if l := g.alertList(pathf("?kind=band_drop&host=%d", h.ID)); len(l) != 1 || l[0].ID != a.ID {
		t.Fatalf("kind+host filter = %+v", l)
	}

	// The viewer reads but may not act.
	if r := g.as(g.viewer, "POST", pathf("/api/v1/alerts/%d/acknowledge", a.ID), nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer acknowledge: %d %s", r.status, r.body)
	}
	ack := g.alert(g.operator, "POST", pathf("/api/v1/alerts/%d/acknowledge", a.ID), nil, 200)
	if ack.State != "acknowledged" || ack.AckBy != "olive" {
		t.Fatalf("acknowledged = %+v", ack)
	}

	// Silence: until is required, in the future and within 30 days.
	silence := pathf("/api/v1/alerts/%d/silence", a.ID)
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]string{}, "until"},
		{map[string]string{"until": "soon"}, "until"},
		{map[string]string{"until": "2026-01-15T08:00:00Z"}, "until"},
		{map[string]string{"until": "2026-03-01T00:00:00Z"}, "until"},
		{map[string]int{"until": 5}, "until"},
		{map[string]string{"until": "2026-01-16T00:00:00Z", "why": "x"}, "why"},
	} {
		g.want(g.as(g.operator, "POST", silence, c.body), 400, c.field)
	}
	until := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	sil := g.alert(g.operator, "POST", silence, map[string]string{"until": until.Format(time.RFC3339)}, 200)
	if sil.State != "silenced" || sil.SilencedUntil == nil || !sil.SilencedUntil.Equal(until) {
		t.Fatalf("silenced = %+v", sil)
	}
	if l := g.alertList("?state=silenced"); len(l) != 1 || l[0].ID != a.ID {
		t.Fatalf("state=silenced = %+v", l)
	}
	// Once the silence runs out the alert shows active, also to the filter.
	g.clock.Advance(4 * time.Hour)
	if got := g.alert(g.viewer, "GET", pathf("/api/v1/alerts/%d", a.ID), nil, 200); got.State != "active" || got.SilencedUntil != nil {
		t.Fatalf("after the silence = %+v", got)
	}
	if l := g.alertList("?state=active"); len(l) != 2 {
		t.Fatalf("state=active after the silence = %+v", l)
	}
	if l := g.alertList("?state=silenced"); len(l) != 0 {
		t.Fatalf("state=silenced after the silence = %+v", l)
	}

	g.want(g.as(g.operator, "POST", pathf("/api/v1/alerts/%d/acknowledge", other.ID), map[string]string{"until": "2026-01-16"}), 400, "until")
	re := g.alert(g.operator, "POST", pathf("/api/v1/alerts/%d/reactivate", a.ID), nil, 200)
	if re.State != "active" || re.AckBy != "" {
		t.Fatalf("reactivated = %+v", re)
	}
	res := g.alert(g.secAdmin, "POST", pathf("/api/v1/alerts/%d/resolve", a.ID), nil, 200)
	if res.State != "resolved" || res.ResolvedBy != "sam" {
		t.Fatalf("resolved = %+v", res)
	}
	for _, action := range []string{"acknowledge", "reactivate", "resolve"} {
		r := g.as(g.operator, "POST", pathf("/api/v1/alerts/%d/%s", a.ID, action), nil)
		if r.status != http.StatusConflict || !strings.Contains(r.errorBody(t).Error.Message, "resolved") {
			t.Fatalf("%s a resolved alert: %d %s", action, r.status, r.body)
		}
	}
	if l := g.alertList("?state=resolved"); len(l) != 1 || l[0].ID != a.ID {
		t.Fatalf("state=resolved = %+v", l)
	}

	g.want(g.as(g.viewer, "GET", "/api/v1/alerts?state=open", nil), 400, "state")
	g.want(g.as(g.viewer, "GET", "/api/v1/alerts?kind=disk_full", nil), 400, "kind")
	g.want(g.as(g.viewer, "GET", "/api/v1/alerts?host=-1", nil), 400, "host")
	g.want(g.as(g.viewer, "GET", "/api/v1/alerts/99999", nil), 404, "id")
	g.want(g.as(g.operator, "POST", "/api/v1/alerts/99999/acknowledge", nil), 404, "-")

	for action, n := range map[string]int{"alert.acknowledge": 1, "alert.silence": 1, "alert.reactivate": 1, "alert.resolve": 1} {
		es := g.auditWith(action)
		if len(es) != n {
			t.Fatalf("%d %s audit entries, want %d", len(es), action, n)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(es[0].Detail), &d); err != nil || d["key"] != a.Key || es[0].Target != pathf("alert/%d", a.ID) {
			t.Fatalf("%s audit = %+v", action, es[0])
		}
	}
}
