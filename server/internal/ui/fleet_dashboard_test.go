package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
)

// TestDashboardDriftShowsRealChanges checks the recent drift panel lists a
// rule whose status changed (pass to fail on web-1, linked to the scan
// that saw it) and not first observations (db-2 was scanned once), and
// that "most failed rules" counts the change.
func TestDashboardDriftShowsRealChanges(t *testing.T) {
	s := newSite(t)
	f := seedFleet(t, s)
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	ps := posture.NewService(s.st, idx, time.Now)
	b := s.signIn("viewer", api.RoleViewer)

	calm := b.get("/")
	wantPage(t, calm, http.StatusOK, "Recent drift", "No rule changed state in the last 7 days.")

	at := time.Now().UTC().Add(-30 * time.Minute)
	sc, _ := fleetScan(t, s.st, ps, f.web.ID, at, []result.Result{
		fleetResult(t, idx, fleetRuleA, result.Fail), fleetResult(t, idx, fleetRuleB, result.Fail)})
	p := b.get("/")
	wantPage(t, p, http.StatusOK, "Recent drift")
	i := strings.Index(p.body, "Recent drift")
	drift := p.body[i:]
	for _, want := range []string{
		fmt.Sprintf(`href="/scans/%d"`, sc.ID), fmt.Sprintf(`<a href="/hosts/%d">web-1</a>`, f.web.ID),
		`href="/rules/` + fleetRuleB + `"`, `status-pass">pass</span> → <span class="badge status-fail">fail`,
	} {
		if !strings.Contains(drift, want) {
			t.Fatalf("drift panel lacks %q:\n%s", want, clip(drift))
		}
	}
	for _, avoid := range []string{">db-2</a>", `href="/rules/` + fleetRuleA + `"`, "new →"} {
		if strings.Contains(drift, avoid) {
			t.Errorf("drift panel lists a first observation or an unchanged rule (%q):\n%s", avoid, clip(drift))
		}
	}
	// Both rules now fail on both scanned hosts.
	top := p.body[strings.Index(p.body, "Most failed rules"):i]
	for _, id := range []string{fleetRuleA, fleetRuleB} {
		if !strings.Contains(top, `href="/rules/`+id+`"`) {
			t.Fatalf("most failed rules lack %s:\n%s", id, clip(top))
		}
	}
	if n := strings.Count(top, `<td class="num">2</td>`); n != 2 {
		t.Errorf("most failed rules: %d rules on 2 hosts, want 2:\n%s", n, clip(top))
	}
}
