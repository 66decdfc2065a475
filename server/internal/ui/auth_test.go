package ui

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// newSiteLoginLimit is newSite with a login limit of n failures, so the
// rate limit is reached in a few attempts rather than the harness's 50.
func newSiteLoginLimit(t *testing.T, n int) *site {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	post := posture.NewService(st, idx, time.Now)
	a := api.New(api.Deps{Store: st, Posture: post, Sealer: box, LoginLimit: n, LoginWindow: time.Hour})
	u, err := New(Deps{API: a, Store: st, Posture: post})
	if err != nil {
		t.Fatal(err)
	}
	a.MountUI(u.Mount, u.NotFound)
	ts := httptest.NewTLSServer(a.Handler())
	t.Cleanup(ts.Close)
	return &site{t: t, st: st, url: ts.URL, ts: ts}
}

// sessionCookie returns the Set-Cookie for the session, nil when none.
func sessionCookie(p page) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	return nil
}

// auditActions lists the audit log's actions, oldest first.
func auditActions(t *testing.T, st store.Store) []store.AuditEntry {
	t.Helper()
	es, err := st.Audit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestLoginSetsSecureSessionCookieAndLandsHome(t *testing.T) {
	s := newSite(t)
	s.addUser("alice", api.RoleViewer)
	b := s.browser()
	form := b.get("/login")
	if form.status != http.StatusOK || !strings.Contains(form.body, `action="/login"`) || !strings.Contains(form.body, `name="password"`) {
		t.Fatalf("GET /login: %d %s", form.status, form.body)
	}
	r := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("sign in: %d to %q, want 303 to /", r.status, r.header.Get("Location"))
	}
	ck := sessionCookie(r)
	switch {
	case ck == nil || ck.Value == "":
		t.Fatalf("no session cookie set: %v", r.header["Set-Cookie"])
	case !ck.HttpOnly || !ck.Secure:
		t.Errorf("session cookie HttpOnly=%v Secure=%v, want both", ck.HttpOnly, ck.Secure)
	case ck.SameSite != http.SameSiteLaxMode && ck.SameSite != http.SameSiteStrictMode:
		t.Errorf("session cookie SameSite=%v, want Lax or Strict", ck.SameSite)
	case ck.Path != "/":
		t.Errorf("session cookie path %q", ck.Path)
	case !ck.Expires.After(time.Now()):
		t.Errorf("session cookie expires %v, want the session's expiry", ck.Expires)
	}
	if home := b.get("/"); home.status != http.StatusOK || !strings.Contains(home.body, "alice") {
		t.Fatalf("GET / after sign in: %d", home.status)
	}
	// Signed in, the sign-in page sends the user home.
	if again := b.get("/login"); again.status != http.StatusSeeOther || again.header.Get("Location") != "/" {
		t.Errorf("GET /login signed in: %d to %q, want 303 to /", again.status, again.header.Get("Location"))
	}
	es := auditActions(t, s.st)
	if len(es) != 1 || es[0].Action != "auth.login" || es[0].Actor != "alice" {
		t.Errorf("audit after sign in: %+v", es)
	}
}

func TestLoginWrongPasswordDoesNotRevealUsers(t *testing.T) {
	s := newSite(t)
	s.addUser("alice", api.RoleViewer)
	b := s.browser()
	wrong := b.post("/login", url.Values{"username": {"alice"}, "password": {"not the password at all"}})
	unknown := b.post("/login", url.Values{"username": {"mallory"}, "password": {"not the password at all"}})
	for _, p := range []page{wrong, unknown} {
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Invalid username or password.") {
			t.Fatalf("failed sign in: %d %s", p.status, p.body)
		}
		if sessionCookie(p) != nil {
			t.Errorf("a failed sign in set a session cookie")
		}
	}
	// The two answers differ only in the username echoed into the form.
	if strings.ReplaceAll(wrong.body, "alice", "X") != strings.ReplaceAll(unknown.body, "mallory", "X") {
		t.Errorf("a wrong password and an unknown user answer differently:\n%s\n---\n%s", wrong.body, unknown.body)
	}
	if empty := b.post("/login", url.Values{"username": {"alice"}}); empty.status != http.StatusBadRequest {
		t.Errorf("sign in without a password: %d, want 400", empty.status)
	}
	es := auditActions(t, s.st)
	if len(es) != 2 || es[0].Action != "auth.login_failed" || es[1].Action != "auth.login_failed" {
		t.Errorf("audit after failed sign-ins: %+v", es)
	}
}

func TestLoginRateLimited(t *testing.T) {
	s := newSiteLoginLimit(t, 2)
	s.addUser("alice", api.RoleViewer)
	b := s.browser()
	for i := range 2 {
		if p := b.post("/login", url.Values{"username": {"alice"}, "password": {"wrong password number"}}); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i, p.status)
		}
	}
	// Past the limit even the right password is refused, with a hint.
	p := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Try again in") || p.header.Get("Retry-After") == "" {
		t.Fatalf("after the limit: %d Retry-After=%q %s", p.status, p.header.Get("Retry-After"), p.body)
	}
	if sessionCookie(p) != nil {
		t.Errorf("a rate-limited sign in set a session cookie")
	}
}

func TestLoginNextStaysOnSite(t *testing.T) {
	s := newSite(t)
	s.addUser("alice", api.RoleViewer)
	for _, tc := range []struct{ next, want string }{
		{"//evil.example", "/"},
		{"https://evil.example", "/"},
		{"/\\evil.example", "/"},
		{"//evil.example/agents", "/"},
		{"javascript:alert(1)", "/"},
		{"/agents?x=1", "/agents?x=1"},
		{"", "/"},
	} {
		b := s.browser()
		// The hidden field never carries a foreign target either.
		if p := b.get("/login?next=" + url.QueryEscape(tc.next)); !strings.Contains(p.body, `name="next" value="`+attrEscape(tc.want)+`"`) {
			t.Errorf("GET /login?next=%s: the form does not carry next=%q", tc.next, tc.want)
		}
		r := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}, "next": {tc.next}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != tc.want {
			t.Errorf("next=%q: %d to %q, want %q", tc.next, r.status, r.header.Get("Location"), tc.want)
		}
	}
}

// attrEscape is how html/template writes a value into an attribute
// for the few characters the cases above use.
func attrEscape(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }

func TestLoginRefusesCrossSitePost(t *testing.T) {
	s := newSite(t)
	s.addUser("alice", api.RoleViewer)
	b := s.browser()
	for _, h := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Referer": "https://evil.example/login"},
	} {
		req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {testPassword}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		p := b.do(req)
		if p.status != http.StatusForbidden || sessionCookie(p) != nil {
			t.Errorf("cross-site sign in with %v: %d, cookie %v; want 403 and no session", h, p.status, sessionCookie(p))
		}
	}
	if es := auditActions(t, s.st); len(es) != 0 {
		t.Errorf("refused cross-site sign-ins reached SignIn: %+v", es)
	}
}

func TestLogoutRevokesSession(t *testing.T) {
	s := newSite(t)
	b := s.signIn("alice", api.RoleViewer)
	u, _ := url.Parse(s.url)
	var old *http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == SessionCookie {
			old = c
		}
	}
	if old == nil {
		t.Fatal("no session cookie after sign in")
	}
	if p := b.post("/logout", url.Values{"_csrf": {"0000"}}); p.status != http.StatusForbidden {
		t.Fatalf("logout with a wrong CSRF token: %d, want 403", p.status)
	}
	p := b.post("/logout", nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", p.status, p.header.Get("Location"))
	}
	if ck := sessionCookie(p); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("logout did not clear the cookie: %v", p.header["Set-Cookie"])
	}
	if lp := b.get("/login"); lp.status != http.StatusOK || !strings.Contains(lp.body, "You have signed out.") {
		t.Errorf("after logout: %d %s", lp.status, lp.body)
	}
	// The old cookie, replayed, no longer opens anything.
	replay := s.browser()
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: SessionCookie, Value: old.Value, Path: "/"}})
	if r := replay.get("/agents"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Errorf("old session cookie after logout: %d to %q, want a redirect to sign in", r.status, r.header.Get("Location"))
	}
	user, err := s.st.UserByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	toks, err := s.st.Tokens(context.Background(), user.ID)
	if err != nil || len(toks) != 1 || toks[0].RevokedAt.IsZero() {
		t.Errorf("session token after logout: %+v %v", toks, err)
	}
	es := auditActions(t, s.st)
	if last := es[len(es)-1]; last.Action != "auth.logout" || last.Actor != "alice" {
		t.Errorf("last audit entry %+v, want auth.logout by alice", last)
	}
}

func TestGuardedPageRedirectsToLoginAndBack(t *testing.T) {
	s := newSite(t)
	s.addUser("ann", api.RoleAuditor)
	b := s.browser()
	r := b.get("/audit?actor=ann")
	want := "/login?next=" + url.QueryEscape("/audit?actor=ann")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("unauthenticated GET /audit: %d to %q, want %q", r.status, r.header.Get("Location"), want)
	}
	lp := b.get(want)
	if !strings.Contains(lp.body, `name="next" value="/audit?actor=ann"`) {
		t.Fatalf("sign-in page does not carry next: %s", lp.body)
	}
	in := b.post("/login", url.Values{"username": {"ann"}, "password": {testPassword}, "next": {"/audit?actor=ann"}})
	if in.status != http.StatusSeeOther || in.header.Get("Location") != "/audit?actor=ann" {
		t.Fatalf("sign in with next: %d to %q", in.status, in.header.Get("Location"))
	}
	if p := b.get("/audit?actor=ann"); p.status != http.StatusOK {
		t.Errorf("GET /audit after sign in: %d", p.status)
	}
}
