package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// raiseAlert opens an alert about host h directly in the store, as the
// governance evaluator would.
func raiseAlert(t *testing.T, st store.Store, kind, severity string, h store.Host, title string) store.Alert {
	t.Helper()
	a, created, err := st.RaiseAlert(context.Background(), store.Alert{Kind: kind, Key: fmt.Sprintf("%s/host/%d", kind, h.ID),
		Severity: severity, HostID: h.ID, Labels: h.Labels, Title: title, Detail: "{}", At: time.Now().UTC()})
	if err != nil || !created {
		t.Fatalf("raise %s: created %v, %v", kind, created, err)
	}
	return a
}

func TestGovAlertsLifecycle(t *testing.T) {
	s := newGovSite(t)
	f := seedFleet(t, s.site)
	op := s.signIn("olga", api.RoleOperator)
	viewer := s.signIn("vic", api.RoleViewer)
	a := raiseAlert(t, s.st, "band_drop", "critical", f.db, "db-2 fell into band critical")
	b := raiseAlert(t, s.st, "scan_overdue", "medium", f.web, "web-1 has not completed a scan for 3 days")

	p := viewer.get("/alerts")
	wantPage(t, p, http.StatusOK, "db-2 fell into band critical", "web-1 has not completed a scan", fmt.Sprintf(`href="/hosts/%d"`, f.db.ID),
		`<span class="count" title="active alerts">2<`)
	wantAbsent(t, p, "/acknowledge", "/silence", "/resolve")
	wantPage(t, viewer.post(fmt.Sprintf("/alerts/%d/acknowledge", a.ID), nil), http.StatusForbidden, "alerts.manage")
	// The dashboard counts the active alerts and links to them.
	wantPage(t, viewer.get("/"), http.StatusOK, `href="/alerts?state=active"`, "2</span> active alerts")

	p = op.get("/alerts")
	wantPage(t, p, http.StatusOK, fmt.Sprintf(`action="/alerts/%d/acknowledge"`, a.ID), fmt.Sprintf(`action="/alerts/%d/silence"`, a.ID))
	if p := op.post(fmt.Sprintf("/alerts/%d/acknowledge", a.ID), nil); p.status != http.StatusSeeOther {
		t.Fatalf("acknowledge: %d\n%s", p.status, clip(p.body))
	}
	got, err := s.st.Alert(context.Background(), a.ID)
	if err != nil || got.State != store.AlertAcknowledged || got.AckBy != "olga" {
		t.Fatalf("after acknowledge: %+v %v", got, err)
	}
	p = op.get("/alerts?state=acknowledged")
	wantPage(t, p, http.StatusOK, "db-2 fell into band critical", "by olga", fmt.Sprintf(`action="/alerts/%d/reactivate"`, a.ID))
	wantAbsent(t, p, "web-1 has not completed")
	wantPage(t, op.get("/alerts"), http.StatusOK, `<span class="count" title="active alerts">1<`)

	// Silence: a malformed or past time is refused next to the field.
	p = op.post(fmt.Sprintf("/alerts/%d/silence", b.ID), url.Values{"until": {"tomorrow"}})
	wantPage(t, p, http.StatusBadRequest)
	if msg := fieldError(p.body, fmt.Sprintf("until-%d", b.ID)); !strings.Contains(msg, "tomorrow") {
		t.Fatalf("message next to until: %q\n%s", msg, clip(p.body))
	}
	p = op.post(fmt.Sprintf("/alerts/%d/silence", b.ID), url.Values{"until": {time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")}})
	if p.status < 400 || p.status >= 500 {
		t.Fatalf("silence in the past: %d\n%s", p.status, clip(p.body))
	}
	if !strings.Contains(p.body, `class="field-error"`) {
		t.Fatalf("the refusal of a past silence is not shown in the row\n%s", clip(p.body))
	}
	until := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Minute)
	if p := op.post(fmt.Sprintf("/alerts/%d/silence", b.ID), url.Values{"until": {until.Format("2006-01-02T15:04")}}); p.status != http.StatusSeeOther {
		t.Fatalf("silence: %d\n%s", p.status, clip(p.body))
	}
	got, _ = s.st.Alert(context.Background(), b.ID)
	if got.State != store.AlertSilenced || !got.SilencedUntil.Equal(until) {
		t.Fatalf("after silence: %s until %v, want silenced until %v", got.State, got.SilencedUntil, until)
	}
	wantPage(t, op.get("/alerts?state=silenced"), http.StatusOK, "until "+until.Format("2006-01-02 15:04 UTC"))
	wantAbsent(t, op.get("/alerts"), `<span class="count"`)

	// Resolve leaves the open list; reactivating a resolved alert is refused.
	if p := op.post(fmt.Sprintf("/alerts/%d/resolve", a.ID), nil); p.status != http.StatusSeeOther {
		t.Fatalf("resolve: %d\n%s", p.status, clip(p.body))
	}
	wantAbsent(t, op.get("/alerts"), "db-2 fell into band critical")
	p = op.get("/alerts?state=resolved")
	wantPage(t, p, http.StatusOK, "db-2 fell into band critical", "by olga")
	wantAbsent(t, p, fmt.Sprintf(`/alerts/%d/reactivate`, a.ID))
	wantPage(t, op.post(fmt.Sprintf("/alerts/%d/reactivate", a.ID), nil), http.StatusConflict, `<p class="error" role="alert">`, "is resolved")

	// Filters: kind, and an unknown value is ignored with a notice.
	p = op.get("/alerts?state=all&kind=band_drop")
	wantPage(t, p, http.StatusOK, "db-2 fell into band critical")
	wantAbsent(t, p, "web-1 has not completed")
	wantPage(t, op.get("/alerts?kind=nonsense"), http.StatusOK, "Ignored: unknown kind")

	actions := map[string]int{}
	for _, e := range auditActions(t, s.st) {
		actions[e.Action]++
	}
	for _, act := range []string{"alert.acknowledge", "alert.silence", "alert.resolve"} {
		if actions[act] != 1 {
			t.Errorf("audit %s: %d entries, want 1 (%v)", act, actions[act], actions)
		}
	}
}

func TestGovAlertsEmpty(t *testing.T) {
	s := newGovSite(t)
	viewer := s.signIn("vic", api.RoleViewer)
	p := viewer.get("/alerts")
	wantPage(t, p, http.StatusOK, "No open alert")
	wantAbsent(t, p, `<span class="count"`)
	wantPage(t, viewer.get("/exceptions"), http.StatusOK, "No exception has been requested yet.")
	wantAbsent(t, viewer.get("/exceptions"), "Request an exception")
}
