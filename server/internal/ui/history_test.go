package ui

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Two real rules of the corpus the history tests observe.
const (
	histRuleA = "ssh-permit-root-login-disabled"
	histRuleB = "login-defs-pass-warn-age"
)

// histScan records a completed scan of host at `at` with the rule states
// given as rule id -> status, through the store as the scheduler does.
func histScan(t *testing.T, st store.Store, hostID int64, at time.Time, states map[string]result.Status) store.Scan {
	t.Helper()
	ctx := context.Background()
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	var rs []result.Result
	for id, s := range states {
		r := idx.Rule(id)
		if r == nil {
			t.Fatalf("rule %s is not in the corpus", id)
		}
		rs = append(rs, result.Result{RuleID: id, Title: r.Title, Severity: r.Severity, Category: r.Category, Status: s, Time: at})
	}
	sc, err := st.CreateScan(ctx, store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "test-1", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: rs}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishScan(ctx, sc.ID, store.ScanCompleted, at.Add(time.Second), result.Summarize(rs)); err != nil {
		t.Fatal(err)
	}
	return sc
}

// histFixture is one host scanned twice: on 10 January both rules pass;
// on 20 January rule A fails.
type histFixture struct {
	host         store.Host
	first, later store.Scan
}

var (
	histDay1 = time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC)
	histDay2 = time.Date(2026, 1, 20, 10, 0, 0, 0, time.UTC)
)

func seedHistory(t *testing.T, s *site) histFixture {
	t.Helper()
	h, err := s.st.UpsertHost(context.Background(), store.Host{Name: "web-1", Address: "127.0.0.2", OS: "debian12"})
	if err != nil {
		t.Fatal(err)
	}
	f := histFixture{host: h}
	f.first = histScan(t, s.st, h.ID, histDay1, map[string]result.Status{histRuleA: result.Pass, histRuleB: result.Pass})
	f.later = histScan(t, s.st, h.ID, histDay2, map[string]result.Status{histRuleA: result.Fail, histRuleB: result.Pass})
	return f
}

// fleetScore returns the big number of the page's score card.
func fleetScore(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)score at [^<]*</h3>\s*<div class="big">([^<]*)</div>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no score card in page:\n%s", body)
	}
	return m[1]
}

func wantStatus(t *testing.T, p page, status int, what string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, p.status, status, p.body)
	}
}

func wantContains(t *testing.T, p page, what string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(p.body, s) {
			t.Fatalf("%s: page lacks %q; body:\n%s", what, s, p.body)
		}
	}
}

func TestHistoryFleetAtTwoMoments(t *testing.T) {
	s := newSite(t)
	f := seedHistory(t, s)
	b := s.signIn("vera", "viewer")

	before := b.get("/history?at=2026-01-15")
	wantStatus(t, before, http.StatusOK, "at 15 January")
	after := b.get("/history?at=2026-01-25")
	wantStatus(t, after, http.StatusOK, "at 25 January")
	wantBefore := fmt.Sprintf("%.1f", posture.Score(posture.Counts{Pass: 2}))
	wantAfter := fmt.Sprintf("%.1f", posture.Score(posture.Counts{Pass: 1, Fail: 1}))
	if got := fleetScore(t, before.body); got != wantBefore {
		t.Errorf("fleet score on 15 January = %q, want %q", got, wantBefore)
	}
	if got := fleetScore(t, after.body); got != wantAfter {
		t.Errorf("fleet score on 25 January = %q, want %q", got, wantAfter)
	}
	wantContains(t, after, "per-host row", fmt.Sprintf(`<a href="/hosts/%d">web-1</a>`, f.host.ID), `aria-current="page">Time travel`)

	// Before the first scan the host has no state.
	early := b.get("/history?at=2026-01-01")
	wantStatus(t, early, http.StatusOK, "at 1 January")
	if got := fleetScore(t, early.body); got != "–" {
		t.Errorf("fleet score before any scan = %q, want –", got)
	}
	wantContains(t, early, "unscanned host", "not scanned: 1")

	// A precise moment (datetime-local) between the scans.
	mid := b.get("/history?at=2026-01-20T09:59")
	wantStatus(t, mid, http.StatusOK, "at 20 January 09:59")
	if got := fleetScore(t, mid.body); got != wantBefore {
		t.Errorf("fleet score just before the second scan = %q, want %q", got, wantBefore)
	}
}

func TestHistoryOneHostRuleStates(t *testing.T) {
	s := newSite(t)
	f := seedHistory(t, s)
	b := s.signIn("vera", "viewer")

	p := b.get(fmt.Sprintf("/history?at=2026-01-25&host=%d", f.host.ID))
	wantStatus(t, p, http.StatusOK, "host at 25 January")
	wantContains(t, p, "rule states",
		"Rule states on web-1",
		`<a href="/rules/`+histRuleA+`">`+histRuleA+`</a>`,
		`<span class="badge status-fail">fail</span>`,
		fmt.Sprintf(`<a href="/scans/%d">`, f.later.ID),
		"2026-01-20 10:00 UTC",
	)
	old := b.get(fmt.Sprintf("/history?at=2026-01-15&host=%d", f.host.ID))
	wantStatus(t, old, http.StatusOK, "host at 15 January")
	if strings.Contains(old.body, "status-fail") {
		t.Errorf("on 15 January no rule failed yet, but the page shows a failure:\n%s", old.body)
	}
	wantContains(t, old, "first scan link", fmt.Sprintf(`<a href="/scans/%d">`, f.first.ID))
}

func TestHistoryDrift(t *testing.T) {
	s := newSite(t)
	f := seedHistory(t, s)
	b := s.signIn("vera", "viewer")

	p := b.get("/history?from=2026-01-12&to=2026-01-25")
	wantStatus(t, p, http.StatusOK, "drift")
	wantContains(t, p, "drift row",
		`<a href="/rules/`+histRuleA+`">`+histRuleA+`</a>`,
		`<span class="badge status-pass">pass</span> → <span class="badge status-fail">fail</span>`,
		fmt.Sprintf(`<a href="/scans/%d">scan %d</a>`, f.later.ID, f.later.ID),
		"2026-01-20 10:00 UTC: pass → fail",
	)
	if strings.Contains(p.body, `<a href="/rules/`+histRuleB+`">`) {
		t.Errorf("rule %s never changed but is listed as drift:\n%s", histRuleB, p.body)
	}
	// The same window on one host; and a window with no change.
	one := b.get(fmt.Sprintf("/history?from=2026-01-12&to=2026-01-25&drift_host=%d", f.host.ID))
	wantStatus(t, one, http.StatusOK, "drift of one host")
	wantContains(t, one, "drift of one host", `<a href="/rules/`+histRuleA+`">`)
	calm := b.get("/history?from=2026-01-21&to=2026-01-25")
	wantStatus(t, calm, http.StatusOK, "calm window")
	wantContains(t, calm, "empty drift", "No rule changed state between 2026-01-21 00:00 UTC and 2026-01-25 23:59 UTC")
}

func TestHistoryRefusesBadInput(t *testing.T) {
	s := newSite(t)
	seedHistory(t, s)
	b := s.signIn("vera", "viewer")
	for _, tc := range []struct {
		query, field, msg string
	}{
		{"at=2026-13-45", "at", "neither an RFC 3339 time"},
		{"at=yesterday", "at", "neither an RFC 3339 time"},
		{"at=2999-01-01", "at", "in the future"},
		{"host=abc", "host", "must be a host id"},
		{"host=999", "host", "no host with id 999"},
		{"framework=nope", "framework", "unknown framework"},
		{"group=nope", "group", "no group named"},
		{"from=bogus&to=2026-01-25", "from", "neither an RFC 3339 time"},
		{"from=2026-01-12&to=bogus", "to", "neither an RFC 3339 time"},
		{"from=2026-01-12&to=2999-01-01", "to", "in the future"},
		{"from=2999-01-01&to=2026-01-25", "from", "in the future"},
		{"from=2026-01-25&to=2026-01-12", "from", "must be before"},
	} {
		p := b.get("/history?" + tc.query)
		wantStatus(t, p, http.StatusBadRequest, tc.query)
		wantContains(t, p, tc.query, `<p class="error" role="alert">`+tc.field+": ", tc.msg, "<h1>Time travel</h1>")
	}
}

func TestHistoryEmptyFleetAndSignIn(t *testing.T) {
	s := newSite(t)
	p := s.browser().get("/history")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/login") {
		t.Fatalf("anonymous /history: %d %s, want 303 to /login", p.status, p.header.Get("Location"))
	}
	b := s.signIn("vera", "viewer")
	p = b.get("/history")
	wantStatus(t, p, http.StatusOK, "empty fleet")
	wantContains(t, p, "empty fleet", "No hosts yet", `name="at" value="`+time.Now().UTC().Format("2006-01-02")+`"`)
}

func TestHistoryPaginatesHosts(t *testing.T) {
	s := newSite(t)
	for i := 0; i < historyPageSize+1; i++ {
		if _, err := s.st.UpsertHost(context.Background(), store.Host{Name: fmt.Sprintf("h%04d", i), Address: "127.0.0.2", OS: "debian12"}); err != nil {
			t.Fatal(err)
		}
	}
	b := s.signIn("vera", "viewer")
	rows := regexp.MustCompile(`<tr><td><a href="/hosts/\d+">(h\d+)</a>`)
	first := b.get("/history?at=2026-01-15")
	wantStatus(t, first, http.StatusOK, "page 1")
	wantContains(t, first, "page 1", "Page 1 of 2", `<a href="/history?at=2026-01-15&amp;page=2" rel="next">`)
	if got := len(rows.FindAllString(first.body, -1)); got != historyPageSize {
		t.Errorf("page 1 shows %d hosts, want %d", got, historyPageSize)
	}
	second := b.get("/history?at=2026-01-15&page=2")
	wantStatus(t, second, http.StatusOK, "page 2")
	m := rows.FindAllStringSubmatch(second.body, -1)
	if len(m) != 1 || m[0][1] != fmt.Sprintf("h%04d", historyPageSize) {
		t.Errorf("page 2 shows %v, want only the last host", m)
	}
	wantContains(t, second, "page 2", "Page 2 of 2", `rel="prev"`)
}
