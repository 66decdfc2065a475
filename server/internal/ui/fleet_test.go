package ui

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// Real corpus rules the fleet tests report on.
const (
	fleetRuleA = "ssh-permit-root-login-disabled"
	fleetRuleB = "login-defs-pass-warn-age"
)

// fleetScan records a completed scan of host at `at` the way the
// scheduler does: results ingested, scan finished, posture recorded
// (snapshots). The host's score and band are set by fleetComplete.
func fleetScan(tb testing.TB, st store.Store, ps *posture.Service, hostID int64, at time.Time, rs []result.Result) (store.Scan, posture.Outcome) {
	tb.Helper()
	ctx := context.Background()
	for i := range rs {
		if rs[i].Time.IsZero() {
			rs[i].Time = at
		}
	}
	sc, err := st.CreateScan(ctx, store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "test-1", StartedAt: at})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: rs}); err != nil {
		tb.Fatal(err)
	}
	if err := st.FinishScan(ctx, sc.ID, store.ScanCompleted, at.Add(time.Second), result.Summarize(rs)); err != nil {
		tb.Fatal(err)
	}
	out, err := ps.RecordScan(ctx, hostID, sc.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return sc, out
}

// fleetComplete leases every due host once and completes the claims of
// the hosts in done (score, band, scan time), releasing the others.
func fleetComplete(tb testing.TB, st store.Store, done map[int64]store.Completion) {
	tb.Helper()
	ctx := context.Background()
	for id, c := range done {
		if err := st.RequestScan(ctx, id, "manual", c.ScannedAt.Add(-time.Minute)); err != nil {
			tb.Fatal(err)
		}
	}
	claims, err := st.ClaimDue(ctx, store.ClaimRequest{Owner: "fleet-test", Now: time.Now().Add(24 * time.Hour), Limit: 100000, Lease: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	held := 0
	for _, cl := range claims {
		if c, ok := done[cl.HostID]; ok {
			held++
			if err := st.CompleteClaim(ctx, cl.HostID, "fleet-test", c); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := st.ReleaseClaim(ctx, cl.HostID, "fleet-test", time.Now()); err != nil {
			tb.Fatal(err)
		}
	}
	if held != len(done) {
		tb.Fatalf("completed %d claims, want %d", held, len(done))
	}
}

// fleetResult is a corpus rule's result with the engine's fields.
func fleetResult(tb testing.TB, idx *posture.Index, ruleID string, st result.Status, ev ...result.Evidence) result.Result {
	tb.Helper()
	r := idx.Rule(ruleID)
	if r == nil {
		tb.Fatalf("rule %s is not in the corpus", ruleID)
	}
	return result.Result{RuleID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category, Status: st,
		Reason: "test " + string(st), References: r.References.Pairs(), Evidence: ev}
}

// fleetFixture is a small fleet: web-1 (rule A fails with evidence, B
// passes, in group prod, env=prod), db-2 (both fail; its latest scan then
// failed: unreachable) and new-3 (never scanned).
type fleetFixture struct {
	web, db, fresh store.Host
	webScan        store.Scan
	dbFailed       store.Scan
}

func seedFleet(t *testing.T, s *site) fleetFixture {
	t.Helper()
	ctx := context.Background()
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	ps := posture.NewService(s.st, idx, time.Now)
	if _, err := s.st.CreateGroup(ctx, store.Group{Name: "prod", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var f fleetFixture
	up := func(h store.Host) store.Host {
		out, err := s.st.UpsertHost(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	f.web = up(store.Host{Name: "web-1", Address: "127.0.0.2", OS: "Debian 12", Labels: map[string]string{"env": "prod"}, Groups: []string{"prod"}})
	f.db = up(store.Host{Name: "db-2", Address: "127.0.0.3", OS: "Ubuntu 22.04", Labels: map[string]string{"env": "test"}})
	f.fresh = up(store.Host{Name: "new-3", Address: "127.0.0.4", OS: "Debian 12"})
	exit := 0
	now := time.Now().UTC().Add(-time.Hour)
	ev := result.Evidence{Method: "sshd_effective_config", Probe: "sshd -T", Stdout: "permitrootlogin yes\n", ExitCode: &exit,
		Expected: "permitrootlogin no", Actual: "permitrootlogin yes", Time: now, Duration: 12.5}
	var webOut, dbOut posture.Outcome
	f.webScan, webOut = fleetScan(t, s.st, ps, f.web.ID, now, []result.Result{
		fleetResult(t, idx, fleetRuleA, result.Fail, ev), fleetResult(t, idx, fleetRuleB, result.Pass)})
	_, dbOut = fleetScan(t, s.st, ps, f.db.ID, now, []result.Result{
		fleetResult(t, idx, fleetRuleA, result.Fail), fleetResult(t, idx, fleetRuleB, result.Fail)})
	fleetComplete(t, s.st, map[int64]store.Completion{
		f.web.ID: {ScannedAt: now, NextScanAt: now.Add(6 * time.Hour), Score: webOut.Score, Band: string(webOut.Band)},
		f.db.ID:  {ScannedAt: now, NextScanAt: now.Add(6 * time.Hour), Score: dbOut.Score, Band: string(dbOut.Band)},
	})
	sc, err := s.st.CreateScan(ctx, store.Scan{HostID: f.db.ID, Trigger: "scheduled", StartedAt: now.Add(30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.FailScan(ctx, sc.ID, now.Add(31*time.Minute), "dial tcp 127.0.0.3:22: connection refused"); err != nil {
		t.Fatal(err)
	}
	f.dbFailed = sc
	for _, h := range []*store.Host{&f.web, &f.db, &f.fresh} {
		if *h, err = s.st.Host(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// wantPage fails unless the page has the status and every fragment.
func wantPage(t *testing.T, p page, status int, fragments ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, status, clip(p.body))
	}
	for _, f := range fragments {
		if !strings.Contains(p.body, f) {
			t.Fatalf("page lacks %q; body:\n%s", f, clip(p.body))
		}
	}
}

// wantAbsent fails if the page holds any fragment.
func wantAbsent(t *testing.T, p page, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if strings.Contains(p.body, f) {
			t.Fatalf("page holds %q; body:\n%s", f, clip(p.body))
		}
	}
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:4000] + "..."
	}
	return s
}

func TestFleetDashboard(t *testing.T) {
	s := newSite(t)
	empty := s.signIn("early", api.RoleViewer)
	wantPage(t, empty.get("/"), http.StatusOK, "<h1>Dashboard</h1>", "No hosts yet")
	f := seedFleet(t, s)
	b := s.signIn("viewer", api.RoleViewer)
	idx, _ := loadIndex()
	p := b.get("/")
	wantPage(t, p, http.StatusOK, "Fleet score", "All rules", `<svg class="chart"`,
		`href="/hosts?band=none">1</a>`, idx.Rule(fleetRuleA).Title, // the most failed rule
		`href="/hosts/`+fmt.Sprint(f.fresh.ID)+`">new-3</a>`, "never scanned",
		"unreachable", "connection refused", `href="/frameworks"`)
	// rule A fails on two hosts, B on one: A is listed first.
	if a, bb := strings.Index(p.body, idx.Rule(fleetRuleA).Title), strings.Index(p.body, idx.Rule(fleetRuleB).Title); bb >= 0 && a > bb {
		t.Fatalf("most failed rules: %s listed after %s", fleetRuleA, fleetRuleB)
	}
	// Each host was scanned once: first observations are not drift.
	wantPage(t, p, http.StatusOK, "Recent drift", "No rule changed state in the last 7 days.")
	wantPage(t, b.get("/?days=90"), http.StatusOK, "<strong>90 days</strong>")
}

func TestFleetHostsList(t *testing.T) {
	s := newSite(t)
	f := seedFleet(t, s)
	b := s.signIn("viewer", api.RoleViewer)
	p := b.get("/hosts")
	wantPage(t, p, http.StatusOK, "<h1>Hosts</h1>", ">web-1</a>", ">db-2</a>", ">new-3</a>", "agentless", "3 of 3 hosts")
	cases := []struct {
		query       string
		want, avoid []string
	}{
		{"q=web", []string{">web-1</a>"}, []string{">db-2</a>", ">new-3</a>"}},
		{"q=127.0.0.3", []string{">db-2</a>"}, []string{">web-1</a>"}},
		{"band=none", []string{">new-3</a>"}, []string{">web-1</a>", ">db-2</a>"}},
		{"band=" + f.db.Band, []string{">db-2</a>"}, []string{">new-3</a>"}},
		{"group=prod", []string{">web-1</a>"}, []string{">db-2</a>", ">new-3</a>"}},
		{"os=ubuntu", []string{">db-2</a>"}, []string{">web-1</a>", ">new-3</a>"}},
		{"label=env%3Dprod", []string{">web-1</a>"}, []string{">db-2</a>", ">new-3</a>"}},
		{"label=env", []string{">web-1</a>", ">db-2</a>"}, []string{">new-3</a>"}},
		{"band=bogus", []string{"Ignored: band must be one of", ">new-3</a>"}, nil},
	}
	for _, tc := range cases {
		p := b.get("/hosts?" + tc.query)
		wantPage(t, p, http.StatusOK, tc.want...)
		wantAbsent(t, p, tc.avoid...)
	}
	order := func(p page, names ...string) {
		t.Helper()
		last := -1
		for _, n := range names {
			i := strings.Index(p.body, ">"+n+"</a>")
			if i < last {
				t.Fatalf("%s out of order; want %v", n, names)
			}
			last = i
		}
	}
	order(b.get("/hosts"), "db-2", "new-3", "web-1")
	order(b.get("/hosts?sort=-name"), "web-1", "new-3", "db-2")
	// db-2 fails both rules (0), web-1 half (50); never scanned last.
	order(b.get("/hosts?sort=score"), "db-2", "web-1", "new-3")
	order(b.get("/hosts?sort=-score"), "web-1", "db-2", "new-3")
	wantPage(t, b.get("/hosts?sort=name"), http.StatusOK, `aria-sort="ascending"`, `href="/hosts?sort=-name"`)
}

func TestFleetHostsPagination(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	for i := range 120 {
		if _, err := s.st.UpsertHost(ctx, store.Host{Name: fmt.Sprintf("h-%03d", i), Address: "127.0.0.9"}); err != nil {
			t.Fatal(err)
		}
	}
	b := s.signIn("viewer", api.RoleViewer)
	p := b.get("/hosts")
	wantPage(t, p, http.StatusOK, ">h-000</a>", ">h-049</a>", "Page 1 of 3", `href="/hosts?page=2"`)
	wantAbsent(t, p, ">h-050</a>", "Previous")
	p = b.get("/hosts?page=3")
	wantPage(t, p, http.StatusOK, ">h-100</a>", ">h-119</a>", "Page 3 of 3", `href="/hosts?page=2"`, "showing 101–120")
	wantAbsent(t, p, ">h-099</a>", "Next")
	p = b.get("/hosts?q=h-11&page=1")
	wantPage(t, p, http.StatusOK, "10 of 120 hosts", ">h-110</a>", ">h-119</a>", "Page 1 of 1")
	// A page past the end shows the last one.
	wantPage(t, b.get("/hosts?page=99"), http.StatusOK, "Page 3 of 3")
}

func TestFleetHostPage(t *testing.T) {
	s := newSite(t)
	f := seedFleet(t, s)
	idx, _ := loadIndex()
	b := s.signIn("viewer", api.RoleViewer)
	path := fmt.Sprintf("/hosts/%d", f.web.ID)
	p := b.get(path)
	wantPage(t, p, http.StatusOK, "<h1>web-1", "Score per framework", "All rules", `<svg class="chart"`,
		idx.Rule(fleetRuleA).Title, idx.Rule(fleetRuleB).Title,
		fmt.Sprintf(`href="/rules/%s"`, fleetRuleA), fmt.Sprintf(`href="/scans/%d"`, f.webScan.ID),
		"No system inventory reported yet")
	// A viewer may neither trigger scans nor read evidence: no links to it.
	wantAbsent(t, p, "Scan now", fmt.Sprintf(`href="/scans/%d/results/%s"`, f.webScan.ID, fleetRuleA))
	// An auditor gets them; the filter checks below look at those links.
	b = s.signIn("ann", api.RoleAuditor)
	wantPage(t, b.get(path), http.StatusOK, fmt.Sprintf(`href="/scans/%d/results/%s"`, f.webScan.ID, fleetRuleA))
	// Filters.
	p = b.get(path + "?status=fail")
	wantPage(t, p, http.StatusOK, idx.Rule(fleetRuleA).Title, "1 of 2 rules")
	wantAbsent(t, p, fmt.Sprintf(`href="/scans/%d/results/%s"`, f.webScan.ID, fleetRuleB))
	p = b.get(path + "?category=" + idx.Rule(fleetRuleB).Category + "&severity=" + string(idx.Rule(fleetRuleB).Severity))
	wantPage(t, p, http.StatusOK, fmt.Sprintf(`href="/scans/%d/results/%s"`, f.webScan.ID, fleetRuleB))
	wantPage(t, b.get(path+"?framework=no-such-fw"), http.StatusOK, "Ignored: unknown framework")
	// Facts, once reported.
	if _, err := s.st.PutFacts(context.Background(), f.web.ID, store.HostFacts{OS: "Debian GNU/Linux 12", Kernel: "6.1.0-18-amd64",
		Packages:   []store.Package{{Name: "openssh-server", Version: "1:9.2p1-2"}, {Name: "bash", Version: "5.2.15-2"}},
		Ports:      []store.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"}},
		Interfaces: []store.Interface{{Name: "eth0", Addresses: []string{"127.0.0.2/8"}}}, CollectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p = b.get(path + "?pkg=openssh")
	wantPage(t, p, http.StatusOK, "6.1.0-18-amd64", "1:9.2p1-2", "sshd", "eth0")
	wantAbsent(t, p, "5.2.15-2")
	// Unknown hosts.
	wantPage(t, b.get("/hosts/999999"), http.StatusNotFound)
	wantPage(t, b.get("/hosts/nope"), http.StatusNotFound)
}

func TestFleetScanNow(t *testing.T) {
	s := newSite(t)
	f := seedFleet(t, s)
	ctx := context.Background()
	path := fmt.Sprintf("/hosts/%d", f.web.ID)
	viewer := s.signIn("viewer", api.RoleViewer)
	wantPage(t, viewer.post(path+"/scan", nil), http.StatusForbidden)
	op := s.signIn("op", api.RoleOperator)
	wantPage(t, op.get(path), http.StatusOK, "Scan now", `action="`+path+`/scan"`)
	wantPage(t, op.post(path+"/scan", url.Values{"_csrf": {"0000"}}), http.StatusForbidden)
	audits := func() int {
		es, err := s.st.Audit(ctx, store.AuditFilter{Action: "scan.request", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if n := audits(); n != 0 {
		t.Fatalf("%d scan.request entries before any scan now", n)
	}
	before := time.Now()
	r := op.post(path+"/scan", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path {
		t.Fatalf("scan now: %d to %q, want 303 to %s", r.status, r.header.Get("Location"), path)
	}
	es, err := s.st.Audit(ctx, store.AuditFilter{Action: "scan.request", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Actor != "op" || es[0].Target != fmt.Sprintf("host/%d", f.web.ID) {
		t.Fatalf("audit after scan now: %+v", es)
	}
	h, err := s.st.Host(ctx, f.web.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h.NextScanAt.After(time.Now()) || h.NextScanAt.Before(before.Add(-time.Second)) {
		t.Fatalf("next scan at %s, want due now (requested at %s)", h.NextScanAt, before)
	}
	wantPage(t, op.get(path), http.StatusOK, "Scan requested for web-1.")
	wantPage(t, op.post("/hosts/999999/scan", nil), http.StatusNotFound)
	if n := audits(); n != 1 {
		t.Fatalf("%d scan.request entries, want 1", n)
	}
}

func TestFleetScanAndEvidence(t *testing.T) {
	s := newSite(t)
	f := seedFleet(t, s)
	idx, _ := loadIndex()
	b := s.signIn("auditor", api.RoleAuditor)
	path := fmt.Sprintf("/scans/%d", f.webScan.ID)
	p := b.get(path)
	wantPage(t, p, http.StatusOK, fmt.Sprintf("Scan %d of", f.webScan.ID), `href="/hosts/`+fmt.Sprint(f.web.ID)+`">web-1</a>`,
		"completed", "test-1", fmt.Sprintf(`href="%s/results/%s"`, path, fleetRuleA), fmt.Sprintf(`href="%s/results/%s"`, path, fleetRuleB))
	p = b.get(path + "?status=pass")
	wantPage(t, p, http.StatusOK, fmt.Sprintf(`href="%s/results/%s"`, path, fleetRuleB), "1 of 2 results")
	wantAbsent(t, p, fmt.Sprintf(`href="%s/results/%s"`, path, fleetRuleA))
	wantPage(t, b.get(fmt.Sprintf("/scans/%d", f.dbFailed.ID)), http.StatusOK, "failed", "connection refused", "recorded no results")
	p = b.get(path + "/results/" + fleetRuleA)
	wantPage(t, p, http.StatusOK, idx.Rule(fleetRuleA).Title, "sshd -T", "permitrootlogin no", "permitrootlogin yes",
		"sshd_effective_config", "12.5 ms", "<dt>Exit code</dt><dd>0</dd>", "test fail", `href="/rules/`+fleetRuleA+`"`)
	wantPage(t, b.get(path+"/results/no-such-rule"), http.StatusNotFound, "did not evaluate rule")
	wantPage(t, b.get("/scans/999999"), http.StatusNotFound)
	wantPage(t, b.get("/scans/999999/results/"+fleetRuleA), http.StatusNotFound)
	// Retention: the results are pruned, the page explains.
	if _, err := s.st.PruneResults(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantPage(t, b.get(path), http.StatusOK, "pruned by retention")
	wantPage(t, b.get(path+"/results/"+fleetRuleA), http.StatusNotFound, "pruned by retention")
	// A viewer may see scans but not evidence.
	v := s.signIn("viewer", api.RoleViewer)
	wantPage(t, v.get(path+"/results/"+fleetRuleA), http.StatusForbidden)
}

func TestLineChartEscapes(t *testing.T) {
	out := string(lineChart(`a <b> & "c"`, []chartPoint{{Label: "<script>", Value: 150}, {Label: "d2", Value: -5}}))
	if strings.Contains(out, "<script>") || strings.Contains(out, "<b>") || !strings.Contains(out, "&lt;script&gt;") {
		t.Fatalf("chart does not escape its text: %s", out)
	}
	if !regexp.MustCompile(`points="40\.0,10\.0 750\.0,190\.0"`).MatchString(out) {
		t.Fatalf("values are not clamped to 0..100: %s", out)
	}
	if !strings.Contains(string(lineChart("t", nil)), "No data") {
		t.Fatal("an empty chart must say so")
	}
}

// fleetBench is the site for benchmarks: the real handler over SQLite,
// called through httptest with a session cookie.
type fleetBench struct {
	h      http.Handler
	cookie *http.Cookie
	ids    []int64
	big    int64 // the host with 300 rules
}

// newFleetBench seeds hosts hosts, each scanned with a few rules, and
// one host with bigRules rules, with evidence.
func newFleetBench(b *testing.B, hosts, bigRules int) *fleetBench {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "vigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	idx, err := loadIndex()
	if err != nil {
		b.Fatal(err)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	ps := posture.NewService(st, idx, time.Now)
	a := api.New(api.Deps{Store: st, Posture: ps, Sealer: box, AgentHeartbeat: 30 * time.Second, LoginLimit: 50})
	u, err := New(Deps{API: a, Store: st, Posture: ps})
	if err != nil {
		b.Fatal(err)
	}
	a.MountUI(u.Mount, u.NotFound)
	fb := &fleetBench{h: a.Handler()}
	rules := idx.Rules()
	now := time.Now().UTC().Add(-time.Hour)
	done := map[int64]store.Completion{}
	for i := range hosts {
		h, err := st.UpsertHost(ctx, store.Host{Name: fmt.Sprintf("host-%04d", i), Address: "127.0.0.5", OS: "Debian 12",
			Labels: map[string]string{"rack": fmt.Sprint(i % 10)}})
		if err != nil {
			b.Fatal(err)
		}
		fb.ids = append(fb.ids, h.ID)
		n := 10
		if i == 0 {
			n, fb.big = bigRules, h.ID
		}
		var rs []result.Result
		for k := range n {
			r := rules[(i*7+k)%len(rules)]
			stt := result.Pass
			if (i+k)%3 == 0 {
				stt = result.Fail
			}
			rs = append(rs, fleetResult(b, idx, r.ID, stt, result.Evidence{Method: "file", Probe: "/etc/x", Expected: "a", Actual: "b", Time: now}))
		}
		if i%10 == 9 {
			continue // never scanned
		}
		_, out := fleetScan(b, st, ps, h.ID, now, rs)
		done[h.ID] = store.Completion{ScannedAt: now, NextScanAt: now.Add(6 * time.Hour), Score: out.Score, Band: string(out.Band)}
	}
	fleetComplete(b, st, done)
	hash, err := password.HashWith(testPassword, password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Username: "bench", PasswordHash: hash, Role: api.RoleAdmin, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "https://vigil.test/login", strings.NewReader(url.Values{"username": {"bench"}, "password": {testPassword}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	fb.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			fb.cookie = c
		}
	}
	if fb.cookie == nil {
		b.Fatalf("sign in: %d %s", w.Code, w.Body.String())
	}
	return fb
}

// run renders path b.N times and reports milliseconds per page.
func (fb *fleetBench) run(b *testing.B, path string) {
	b.Helper()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "https://vigil.test"+path, nil)
		r.AddCookie(fb.cookie)
		fb.h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, w.Code, clip(w.Body.String()))
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/page")
}

func BenchmarkHostsPage1000(b *testing.B) {
	fb := newFleetBench(b, 1000, 10)
	fb.run(b, "/hosts?sort=-score&page=3")
}

func BenchmarkDashboard1000(b *testing.B) {
	fb := newFleetBench(b, 1000, 10)
	fb.run(b, "/?days=90")
}

func BenchmarkHostPage(b *testing.B) {
	fb := newFleetBench(b, 1000, 300)
	fb.run(b, fmt.Sprintf("/hosts/%d?days=90", fb.big))
}
