package ui

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// addAgent enrols an agent straight in the store, scanning the hosts
// named.
func (s *site) addAgent(name string, lastSeen time.Time, hosts ...string) store.Agent {
	s.t.Helper()
	ctx := context.Background()
	a, err := s.st.CreateAgent(ctx, store.Agent{Name: name, Status: store.AgentActive, CertSerial: "serial-" + name,
		EnrolledAt: time.Now().Add(-time.Hour), Hostname: name + ".lab"})
	if err != nil {
		s.t.Fatal(err)
	}
	if !lastSeen.IsZero() {
		if err := s.st.TouchAgent(ctx, a.ID, store.AgentHeartbeat{At: lastSeen, Version: "1.2.3", OS: "debian 12",
			SpoolBatches: 4, SpoolBytes: 2048, BundleDigest: "sha256:0123456789abcdef0123"}); err != nil {
			s.t.Fatal(err)
		}
	}
	for _, h := range hosts {
		if _, err := s.st.UpsertHost(ctx, store.Host{Name: h, Address: "127.0.0.9", OS: "debian12", AgentID: a.ID}); err != nil {
			s.t.Fatal(err)
		}
	}
	return a
}

func TestAgentsPageViewerSeesNoActions(t *testing.T) {
	s := newSite(t)
	online := s.addAgent("edge-1", time.Now(), "web-1", "web-2")
	s.addAgent("edge-2", time.Now().Add(-time.Hour))
	b := s.signIn("vic", api.RoleViewer)
	p := b.get("/agents")
	if p.status != http.StatusOK {
		t.Fatalf("GET /agents: %d %s", p.status, p.body)
	}
	for _, want := range []string{"<h1>Agents</h1>", "edge-1", "edge-2", ">online<", ">offline<", ">web-1</a>", "1.2.3", "debian 12", "0123456789ab", `aria-current="page"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if strings.Contains(p.body, `action="/agents/tokens"`) || strings.Contains(p.body, "/revoke") {
		t.Errorf("a viewer sees agent actions")
	}
	if r := b.post("/agents/tokens", url.Values{"ttl": {"1h"}, "uses": {"1"}}); r.status != http.StatusForbidden {
		t.Errorf("viewer POST /agents/tokens: %d, want 403", r.status)
	}
	if r := b.post(fmt.Sprintf("/agents/%d/revoke", online.ID), nil); r.status != http.StatusForbidden {
		t.Errorf("viewer POST revoke: %d, want 403", r.status)
	}
	if toks, _ := s.st.JoinTokens(context.Background()); len(toks) != 0 {
		t.Errorf("a refused request minted %d join tokens", len(toks))
	}
	if a, _ := s.st.Agent(context.Background(), online.ID); a.Status != store.AgentActive {
		t.Errorf("a refused request revoked the agent")
	}
}

func TestAgentsPageEmpty(t *testing.T) {
	s := newSite(t)
	b := s.signIn("sec", api.RoleSecurityAdmin)
	p := b.get("/agents")
	if p.status != http.StatusOK || !strings.Contains(p.body, "No agents yet") || !strings.Contains(p.body, "create a join token below") {
		t.Fatalf("empty agents page: %d %s", p.status, p.body)
	}
}

var tokenRE = regexp.MustCompile(`<code id="join-token">(vjt_[A-Za-z0-9_-]+)</code>`)

func TestJoinTokenShownOnce(t *testing.T) {
	s := newSite(t)
	b := s.signIn("sec", api.RoleSecurityAdmin)
	if p := b.get("/agents"); !strings.Contains(p.body, `action="/agents/tokens"`) {
		t.Fatalf("security admin sees no token form")
	}
	if p := b.post("/agents/tokens", url.Values{"_csrf": {""}, "ttl": {"1h"}, "uses": {"1"}}); p.status != http.StatusForbidden {
		t.Errorf("token form without CSRF token: %d, want 403", p.status)
	}
	for _, bad := range []url.Values{
		{"ttl": {"5h"}, "uses": {"1"}},
		{"ttl": {"1h"}, "uses": {"0"}},
		{"ttl": {"1h"}, "uses": {"101"}},
		{"ttl": {"1h"}, "uses": {"1"}, "labels": {"site"}},
	} {
		if p := b.post("/agents/tokens", bad); p.status != http.StatusBadRequest || !strings.Contains(p.body, `class="error"`) {
			t.Errorf("token form %v: %d, want 400 with an error", bad, p.status)
		}
	}
	p := b.post("/agents/tokens", url.Values{"ttl": {"24h"}, "uses": {"3"}, "labels": {"site=lab, env=prod"}})
	if p.status != http.StatusCreated {
		t.Fatalf("create token: %d %s", p.status, p.body)
	}
	m := tokenRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no token on the page: %s", p.body)
	}
	tok := m[1]
	pin := "sha256:" + strings.Repeat("ab", 32)
	cmd := "vigil-agent enroll --server 127.0.0.1:8444 --token " + tok + " --ca-pin " + pin + " --state-dir /var/lib/vigil-agent"
	if !strings.Contains(p.body, cmd) || !strings.Contains(p.body, `data-copy="enrol-command"`) {
		t.Errorf("page lacks the enrol command %q with a copy button", cmd)
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token page Cache-Control %q, want no-store", cc)
	}
	if strings.Contains(p.header.Get("Location"), tok) || strings.Contains(strings.Join(p.header["Set-Cookie"], ";"), tok) {
		t.Errorf("token leaked into a header")
	}
	toks, err := s.st.JoinTokens(context.Background())
	if err != nil || len(toks) != 1 {
		t.Fatalf("join tokens in the store: %+v %v", toks, err)
	}
	jt := toks[0]
	if jt.Hash != agentapi.HashJoinToken(tok) || strings.Contains(fmt.Sprintf("%+v", jt), tok) {
		t.Errorf("store holds %+v, want only the token's hash", jt)
	}
	if jt.Uses != 3 || jt.Labels["site"] != "lab" || jt.Labels["env"] != "prod" || jt.CreatedBy != "sec" {
		t.Errorf("stored token %+v", jt)
	}
	if d := jt.ExpiresAt.Sub(jt.CreatedAt); d != 24*time.Hour {
		t.Errorf("token lifetime %v, want 24h", d)
	}
	if again := b.get("/agents"); strings.Contains(again.body, tok) {
		t.Errorf("the token is shown a second time")
	}
	es := auditActions(t, s.st)
	if last := es[len(es)-1]; last.Action != "enrollment_token.create" || last.Actor != "sec" || last.Target != fmt.Sprintf("join_token/%d", jt.ID) {
		t.Errorf("last audit entry %+v", last)
	}
	if n := countActions(es, "enrollment_token.create"); n != 1 {
		t.Errorf("%d enrollment_token.create entries, want 1", n)
	}
}

func countActions(es []store.AuditEntry, action string) int {
	n := 0
	for _, e := range es {
		if e.Action == action {
			n++
		}
	}
	return n
}

func TestRevokeAgent(t *testing.T) {
	s := newSite(t)
	a := s.addAgent("edge-1", time.Now(), "web-1")
	b := s.signIn("sec", api.RoleSecurityAdmin)
	if p := b.get("/agents"); !strings.Contains(p.body, fmt.Sprintf(`action="/agents/%d/revoke"`, a.ID)) || !strings.Contains(p.body, "data-confirm=") {
		t.Fatalf("no revoke form with a confirmation")
	}
	r := b.post(fmt.Sprintf("/agents/%d/revoke", a.ID), nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/agents" {
		t.Fatalf("revoke: %d to %q", r.status, r.header.Get("Location"))
	}
	got, err := s.st.Agent(context.Background(), a.ID)
	if err != nil || got.Status != store.AgentRevoked || got.RevokedAt.IsZero() {
		t.Fatalf("agent after revoke: %+v %v", got, err)
	}
	p := b.get("/agents")
	if !strings.Contains(p.body, "edge-1 is revoked") || !strings.Contains(p.body, ">revoked<") || strings.Contains(p.body, "/revoke") {
		t.Errorf("agents page after revoke lacks the flash or the revoked state, or still offers revoke")
	}
	es := auditActions(t, s.st)
	if n := countActions(es, "agent.revoke"); n != 1 {
		t.Errorf("%d agent.revoke entries, want 1", n)
	}
	if last := es[len(es)-1]; last.Action != "agent.revoke" || last.Target != fmt.Sprintf("agent/%d", a.ID) || last.Actor != "sec" {
		t.Errorf("audit entry %+v", last)
	}
	if r := b.post("/agents/9999/revoke", nil); r.status != http.StatusNotFound {
		t.Errorf("revoke an unknown agent: %d, want 404", r.status)
	}
}

func TestUsersPageAdminOnly(t *testing.T) {
	s := newSite(t)
	op := s.signIn("otto", api.RoleOperator)
	if p := op.get("/users"); p.status != http.StatusForbidden {
		t.Errorf("operator GET /users: %d, want 403", p.status)
	}
	if p := op.post("/users", url.Values{"username": {"eve"}, "password": {testPassword}, "role": {"admin"}}); p.status != http.StatusForbidden {
		t.Errorf("operator POST /users: %d, want 403", p.status)
	}
	if p := op.get("/agents"); strings.Contains(p.body, `href="/users"`) || strings.Contains(p.body, `href="/audit"`) {
		t.Errorf("operator's navigation offers users or the audit log")
	}
	if _, err := s.st.UserByName(context.Background(), "eve"); err == nil {
		t.Errorf("a refused request created a user")
	}
}

func TestUsersCreateUpdateDelete(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	ad := s.signIn("root", api.RoleAdmin)
	p := ad.get("/users")
	if p.status != http.StatusOK || !strings.Contains(p.body, "<h1>Users</h1>") || !strings.Contains(p.body, "root") {
		t.Fatalf("GET /users: %d %s", p.status, p.body)
	}
	if strings.Contains(p.body, "/delete") {
		t.Errorf("the admin is offered to delete themselves")
	}
	// Policy errors are shown and nothing is created.
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"username": {"bob"}, "password": {"short"}, "role": {"operator"}}, 400, "at least 12 characters"},
		{url.Values{"username": {"Bob"}, "password": {testPassword}, "role": {"operator"}}, 400, "a-z 0-9"},
		{url.Values{"username": {"bob"}, "password": {testPassword}, "role": {"god"}}, 400, "Role must be one of"},
		{url.Values{"username": {"root"}, "password": {testPassword}, "role": {"viewer"}}, 409, "already exists"},
	} {
		r := ad.post("/users", tc.form)
		if r.status != tc.status || !strings.Contains(r.body, tc.msg) {
			t.Errorf("create %v: %d, want %d with %q", tc.form, r.status, tc.status, tc.msg)
		}
	}
	if n := countActions(auditActions(t, s.st), "user.create"); n != 0 {
		t.Fatalf("%d user.create entries after refusals", n)
	}
	r := ad.post("/users", url.Values{"username": {"bob"}, "password": {testPassword}, "role": {"operator"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/users" {
		t.Fatalf("create bob: %d %s", r.status, r.body)
	}
	bob, err := s.st.UserByName(ctx, "bob")
	if err != nil || bob.Role != api.RoleOperator {
		t.Fatalf("bob: %+v %v", bob, err)
	}
	if p := ad.get("/users"); !strings.Contains(p.body, "User bob created") || !strings.Contains(p.body, fmt.Sprintf(`action="/users/%d/delete"`, bob.ID)) {
		t.Errorf("users page after create lacks the flash or bob's delete form")
	}

	// Bob signs in; a new password ends his session.
	bb := s.browser()
	if r := bb.post("/login", url.Values{"username": {"bob"}, "password": {testPassword}}); r.status != http.StatusSeeOther {
		t.Fatalf("bob signs in: %d", r.status)
	}
	r = ad.post(fmt.Sprintf("/users/%d", bob.ID), url.Values{"role": {"security_admin"}, "password": {"a brand new long password"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("update bob: %d %s", r.status, r.body)
	}
	if bob, _ = s.st.UserByName(ctx, "bob"); bob.Role != api.RoleSecurityAdmin {
		t.Errorf("bob's role %q after update", bob.Role)
	}
	if p := bb.get("/agents"); p.status != http.StatusSeeOther {
		t.Errorf("bob's session after a password change: %d, want a redirect to sign in", p.status)
	}
	es := auditActions(t, s.st)
	last := es[len(es)-1]
	if last.Action != "user.update" || !strings.Contains(last.Detail, `"to":"security_admin"`) || !strings.Contains(last.Detail, `"password_changed":true`) {
		t.Errorf("audit after update: %+v", last)
	}
	// An unchanged form is not a change; a weak new password is refused.
	if r := ad.post(fmt.Sprintf("/users/%d", bob.ID), url.Values{"role": {"security_admin"}}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "Nothing to update") {
		t.Errorf("unchanged update: %d", r.status)
	}
	if r := ad.post(fmt.Sprintf("/users/%d", bob.ID), url.Values{"role": {"security_admin"}, "password": {"weak"}}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "at least 12 characters") {
		t.Errorf("weak new password: %d", r.status)
	}
	// The admin cannot demote or disable themselves, nor delete themselves.
	root, _ := s.st.UserByName(ctx, "root")
	if r := ad.post(fmt.Sprintf("/users/%d", root.ID), url.Values{"role": {"viewer"}}); r.status != http.StatusConflict || !strings.Contains(r.body, "your own account") {
		t.Errorf("self demotion: %d", r.status)
	}
	if r := ad.post(fmt.Sprintf("/users/%d", root.ID), url.Values{"role": {"admin"}, "disabled": {"1"}}); r.status != http.StatusConflict {
		t.Errorf("self disable: %d", r.status)
	}
	if r := ad.post(fmt.Sprintf("/users/%d/delete", root.ID), nil); r.status != http.StatusConflict {
		t.Errorf("self delete: %d", r.status)
	}
	if root, _ = s.st.UserByName(ctx, "root"); root.Role != api.RoleAdmin || root.Disabled {
		t.Errorf("root changed by refused requests: %+v", root)
	}
	// Disable bob, then delete him.
	if r := ad.post(fmt.Sprintf("/users/%d", bob.ID), url.Values{"role": {"security_admin"}, "disabled": {"1"}}); r.status != http.StatusSeeOther {
		t.Errorf("disable bob: %d %s", r.status, r.body)
	}
	if bob, _ = s.st.UserByName(ctx, "bob"); !bob.Disabled {
		t.Errorf("bob not disabled")
	}
	if r := ad.post(fmt.Sprintf("/users/%d/delete", bob.ID), url.Values{"_csrf": {"nope"}}); r.status != http.StatusForbidden {
		t.Errorf("delete without the CSRF token: %d, want 403", r.status)
	}
	if r := ad.post(fmt.Sprintf("/users/%d/delete", bob.ID), nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete bob: %d %s", r.status, r.body)
	}
	if _, err := s.st.UserByName(ctx, "bob"); err == nil {
		t.Errorf("bob still exists")
	}
	if r := ad.post(fmt.Sprintf("/users/%d/delete", bob.ID), nil); r.status != http.StatusNotFound {
		t.Errorf("delete a deleted user: %d, want 404", r.status)
	}
	es = auditActions(t, s.st)
	for action, want := range map[string]int{"user.create": 1, "user.update": 2, "user.delete": 1} {
		if n := countActions(es, action); n != want {
			t.Errorf("%d %s entries, want %d", n, action, want)
		}
	}
}

func TestAuditPageFiltersPagesAndVerifies(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	if p := s.signIn("vic", api.RoleViewer).get("/audit"); p.status != http.StatusForbidden {
		t.Errorf("viewer GET /audit: %d, want 403", p.status)
	}
	b := s.signIn("ann", api.RoleAuditor)
	day := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	for i := range 250 {
		actor := "alice"
		if i%50 == 7 {
			actor = "rare"
		}
		at := day.Add(time.Duration(i) * time.Minute)
		if i >= 200 {
			at = day.Add(48 * time.Hour)
		}
		if _, err := s.st.AppendAudit(ctx, store.AuditEntry{At: at, Actor: actor, Action: fmt.Sprintf("test.act%d", i%3),
			Target: fmt.Sprintf("host/%d", i), Detail: `{"i":` + fmt.Sprint(i) + `}`, Source: "127.0.0.1", RequestID: fmt.Sprintf("req%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	total := len(auditActions(t, s.st))

	// Paging newest first through everything, 100 a page, each id once.
	seen := map[int64]bool{}
	var last int64 = 1 << 62
	path := "/audit"
	for n := 0; path != "" && n < 10; n++ {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, p.status)
		}
		ids := idsOn(p.body)
		if len(ids) > 100 {
			t.Fatalf("%s shows %d entries", path, len(ids))
		}
		for _, id := range ids {
			if id >= last || seen[id] {
				t.Fatalf("%s: id %d out of order or repeated", path, id)
			}
			seen[id], last = true, id
		}
		path = olderLink(p.body)
	}
	if len(seen) != total {
		t.Errorf("paging showed %d entries of %d", len(seen), total)
	}

	// A sparse filter pages the same way.
	p := b.get("/audit?actor=rare")
	if ids := idsOn(p.body); len(ids) != 5 || !strings.Contains(p.body, "req207") {
		t.Errorf("actor=rare: %d entries", len(ids))
	}
	if p := b.get("/audit?actor=rare&before=110"); len(idsOn(p.body)) != 2 || olderLink(p.body) != "" {
		t.Errorf("actor=rare before 110: %v, older %q", idsOn(p.body), olderLink(p.body))
	}
	if p := b.get("/audit?action=test.act1&from=2026-01-15&to=2026-01-15"); len(idsOn(p.body)) != 67 || strings.Contains(p.body, "req201") {
		t.Errorf("action and day filter: %d entries", len(idsOn(p.body)))
	}
	if p := b.get("/audit?from=yesterday"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "is not a date") {
		t.Errorf("bad from: %d", p.status)
	}
	if p := b.get("/audit?actor=nobody"); !strings.Contains(p.body, "No entries match") {
		t.Errorf("empty filter result lacks its empty state")
	}

	// The chain check runs only on request.
	if p := b.get("/audit"); strings.Contains(p.body, "chain intact") {
		t.Errorf("the chain was verified without being asked")
	}
	p = b.get("/audit?verify=1")
	if p.status != http.StatusOK || !strings.Contains(p.body, "chain intact") || !strings.Contains(p.body, fmt.Sprintf("All %d entries verified", total)) {
		t.Fatalf("verify: %d %s", p.status, p.body)
	}
	// Alter one entry behind the store's back: the check names it.
	tamper(t, 5)
	if p := b.get("/audit?verify=1"); !strings.Contains(p.body, "chain broken") || !strings.Contains(p.body, "audit entry 5") {
		t.Errorf("verify after tampering: %s", p.body)
	}
}

var idRE = regexp.MustCompile(`<td class="num">(\d+)</td>\s*<td class="nowrap">`)

// idsOn lists the audit entry ids on a page, in order.
func idsOn(body string) []int64 {
	var ids []int64
	for _, m := range idRE.FindAllStringSubmatch(body, -1) {
		var id int64
		fmt.Sscan(m[1], &id)
		ids = append(ids, id)
	}
	return ids
}

var olderRE = regexp.MustCompile(`<a href="(/audit\?[^"]*)">Older entries</a>`)

// olderLink is the page's "older" link, "" when none.
func olderLink(body string) string {
	m := olderRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// tamper rewrites audit entry id's detail in the test's SQLite file.
func tamper(t *testing.T, id int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "vigil.db"))
	if len(files) != 1 {
		t.Fatalf("cannot find the site's database: %v", files)
	}
	db, err := sql.Open("sqlite", files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET detail = '{"i":"forged"}' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
}
