package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

type loginBody struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
		Role     string `json:"role"`
	} `json:"user"`
}

func TestLoginSuccess(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.SessionTTL = 2 * time.Hour })
	u := e.addUser("alice", RoleOperator)
	r := e.login(http.DefaultClient, "alice", testPassword)
	if r.status != http.StatusOK {
		t.Fatalf("login = %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), testPassword) {
		t.Fatalf("login response leaks a secret: %s", r.body)
	}
	var b loginBody
	r.json(t, &b)
	if !strings.HasPrefix(b.Token, "vgs_") || len(b.Token) != 4+43 {
		t.Errorf("session token %q is not vgs_ + 43 base64url characters", b.Token)
	}
	if b.User.ID != u.ID || b.User.Username != "alice" || b.User.Role != RoleOperator {
		t.Errorf("login user = %+v", b.User)
	}
	if want := e.clock.Now().Add(2 * time.Hour); !b.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v", b.ExpiresAt, want)
	}

	// Only the hash is stored, and it is the token's SHA-256.
	tok, owner, err := e.st.TokenByHash(context.Background(), hashToken(b.Token))
	if err != nil {
		t.Fatalf("session not stored by its hash: %v", err)
	}
	if owner.ID != u.ID || tok.Kind != store.TokenSession || tok.Hash == b.Token {
		t.Errorf("stored token %+v of user %d", tok, owner.ID)
	}
	got, err := e.st.User(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastLoginAt.Equal(e.clock.Now()) {
		t.Errorf("last login = %v, want %v", got.LastLoginAt, e.clock.Now())
	}

	me := e.do("GET", "/api/v1/auth/me", b.Token, nil)
	if me.status != http.StatusOK {
		t.Fatalf("me = %d %s", me.status, me.body)
	}
	var mb struct {
		User        userView `json:"user"`
		Permissions []Perm   `json:"permissions"`
	}
	me.json(t, &mb)
	if mb.User.Username != "alice" || mb.User.Role != RoleOperator || len(mb.Permissions) != len(permsOf(RoleOperator)) {
		t.Errorf("me = %s", me.body)
	}
	if strings.Contains(string(me.body), "argon2") {
		t.Errorf("me leaks the password hash: %s", me.body)
	}

	entries := e.auditEntries()
	if len(entries) != 1 || entries[0].Action != "auth.login" || entries[0].Actor != "alice" ||
		entries[0].Target != "user/"+strconv.FormatInt(u.ID, 10) || entries[0].Source != "127.0.0.1" || entries[0].RequestID == "" {
		t.Fatalf("audit after login = %+v", entries)
	}
	if strings.Contains(entries[0].Detail, b.Token) || strings.Contains(entries[0].Detail, testPassword) {
		t.Fatalf("audit detail holds a secret: %s", entries[0].Detail)
	}
}

// TestLoginFailuresLookAlike: an unknown user and a wrong password get
// byte-identical error bodies apart from the request id, and both are
// audited under the attempted name without the password.
func TestLoginFailuresLookAlike(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.LoginLimit = 10 })
	e.addUser("alice", RoleViewer)
	disabled := e.addUser("dora", RoleViewer)
	disabled.Disabled = true
	if err := e.st.UpdateUser(context.Background(), disabled); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ user, pw, reason string }{
		{"alice", "wrong password here", "bad_password"},
		{"nobody", testPassword, "unknown_user"},
		{"dora", testPassword, "disabled"},
	}
	var msgs []string
	for i, c := range cases {
		r := e.login(http.DefaultClient, c.user, c.pw)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("login %s = %d %s, want 401", c.user, r.status, r.body)
		}
		b := r.errorBody(t)
		msgs = append(msgs, b.Error.Code+"|"+b.Error.Message+"|"+b.Error.Field)
		entries := e.auditEntries()
		if len(entries) != i+1 {
			t.Fatalf("after %d failures the audit log has %d entries", i+1, len(entries))
		}
		last := entries[i]
		if last.Action != "auth.login_failed" || last.Actor != c.user || !strings.Contains(last.Detail, c.reason) {
			t.Errorf("audit for %s = %+v", c.user, last)
		}
		if strings.Contains(last.Detail, c.pw) {
			t.Errorf("audit detail holds the password: %s", last.Detail)
		}
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("failed logins differ: %q vs %q", m, msgs[0])
		}
	}
}

func TestLoginBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		body  string
		field string
	}{
		{`{"username":"","password":"x"}`, "username"},
		{`{"username":"alice"}`, "password"},
		{`{"username":"alice","password":"x","remember":true}`, "remember"},
		{`{"username":"` + strings.Repeat("a", 65) + `","password":"x"}`, "username"},
	} {
		r := e.do("POST", "/api/v1/auth/login", "", c.body)
		if r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != c.field {
			t.Errorf("login %s = %d %s, want 400 naming %s", c.body, r.status, r.body, c.field)
		}
	}
	if n := e.auditCount(); n != 0 {
		t.Errorf("malformed logins wrote %d audit entries", n)
	}
}

// TestLoginRateLimit uses the fake clock to move past the window: after
// LoginLimit failures one username is refused with 429 and Retry-After,
// even with the right password and from another address; a minute later
// it may log in again.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, nil) // 3 failures per minute
	e.addUser("alice", RoleViewer)
	here, there := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2")
	for i := range 3 {
		if r := e.login(here, "alice", "not the password"); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d %s", i+1, r.status, r.body)
		}
		e.clock.Advance(10 * time.Second)
	}
	for _, c := range []*http.Client{here, there} {
		r := e.login(c, "alice", testPassword)
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("login past the limit = %d %s, want 429", r.status, r.body)
		}
		if r.errorBody(t).Error.Code != "rate_limited" {
			t.Errorf("429 body = %s", r.body)
		}
		// The first failure was 30 s ago: it leaves the window in 30 s.
		if got := r.header.Get("Retry-After"); got != "30" {
			t.Errorf("Retry-After = %q, want 30", got)
		}
	}
	if n := e.auditCount(); n != 3 {
		t.Errorf("audit entries = %d, want the 3 audited failures (refusals are not attempts)", n)
	}
	e.clock.Advance(29 * time.Second)
	if r := e.login(here, "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("login 1 s before the window ends = %d, want 429", r.status)
	}
	e.clock.Advance(time.Second)
	if r := e.login(here, "alice", testPassword); r.status != http.StatusOK {
		t.Fatalf("login after the window = %d %s, want 200", r.status, r.body)
	}
}

// TestLoginRateLimitPerSource: failures against many usernames from one
// address block that address, not another.
func TestLoginRateLimitPerSource(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", RoleViewer)
	attacker, other := clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.4")
	for _, name := range []string{"root", "admin", "oracle"} {
		if r := e.login(attacker, name, "guess guess guess"); r.status != http.StatusUnauthorized {
			t.Fatalf("login %s = %d", name, r.status)
		}
	}
	if r := e.login(attacker, "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("4th login from the same address = %d, want 429", r.status)
	}
	if r := e.login(other, "alice", testPassword); r.status != http.StatusOK {
		t.Fatalf("login from another address = %d %s, want 200", r.status, r.body)
	}
}

func TestLimiterBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newLoginLimiter(2, time.Minute, clock.Now)
	l.max = 10
	for i := range 100 {
		if _, ok := l.attempt("k" + strconv.Itoa(i)); !ok {
			t.Fatalf("first attempt for k%d refused", i)
		}
		if len(l.fails) > l.max {
			t.Fatalf("limiter holds %d keys, max %d", len(l.fails), l.max)
		}
	}
	// The newest keys survive eviction.
	if _, ok := l.attempt("k99"); !ok {
		t.Fatal("second attempt for k99 refused")
	}
	if wait, ok := l.attempt("k99"); ok || wait != time.Minute {
		t.Errorf("third attempt for k99 = %v, %v; want refused for a minute", wait, ok)
	}
	clock.Advance(time.Minute)
	if _, ok := l.attempt("k99"); !ok {
		t.Error("k99 still refused after the window")
	}
	// A full map of expired keys makes room for fresh ones without
	// evicting any fresh key.
	clock.Advance(time.Minute)
	for i := range l.max {
		l.attempt("fresh" + strconv.Itoa(i))
	}
	for i := range l.max {
		if _, ok := l.fails["fresh"+strconv.Itoa(i)]; !ok {
			t.Errorf("fresh%d evicted while expired keys were kept", i)
		}
	}
	// Success forgives: the username entirely, the address one attempt.
	l.attempt("ip", "user")
	l.attempt("ip", "user")
	l.succeeded("user", "ip")
	if len(l.fails["ip"]) != 1 || l.fails["user"] != nil {
		t.Errorf("after success: ip %v, user %v", l.fails["ip"], l.fails["user"])
	}
}

// TestLoginBurst: parallel wrong guesses for one username cannot exceed
// the limit by racing past the check before any failure is recorded.
func TestLoginBurst(t *testing.T) {
	e := newEnv(t, nil) // 3 per minute
	e.addUser("alice", RoleViewer)
	const n = 12
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		client := clientFrom(t, fmt.Sprintf("127.0.1.%d", i+1))
		body := fmt.Sprintf(`{"username":"alice","password":"a wrong guess %d"}`, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Post(e.url+"/api/v1/auth/login", "application/json", strings.NewReader(body))
			if err != nil {
				codes <- -1 // t.Fatal must not run off the test goroutine
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized] != 3 || count[http.StatusTooManyRequests] != n-3 {
		t.Fatalf("burst of %d guesses: %v; want exactly 3 checked and the rest 429", n, count)
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	e := newEnv(t, nil)
	u := e.addUser("alice", RoleViewer)
	valid, _ := e.tokenFor(u, time.Time{})
	expiring, _ := e.tokenFor(u, e.clock.Now().Add(time.Hour))
	revoked, rt := e.tokenFor(u, time.Time{})
	if err := e.st.RevokeToken(context.Background(), rt.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	unknown, _, err := newToken(store.TokenAPI)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name, header string, want int) {
		t.Helper()
		req, err := http.NewRequest("GET", e.url+"/api/v1/auth/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: status %d, want %d", name, res.StatusCode, want)
		}
		if want == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", name, res.Header.Get("WWW-Authenticate"))
		}
	}
	check("no header", "", 401)
	check("basic auth", "Basic YWxpY2U6eA==", 401)
	check("empty bearer", "Bearer ", 401)
	check("not a vigil token", "Bearer abc", 401)
	check("unknown token", "Bearer "+unknown, 401)
	check("revoked", "Bearer "+revoked, 401)
	check("valid", "Bearer "+valid, 200)
	check("lower-case scheme", "bearer "+valid, 200)
	check("expiring, not yet", "Bearer "+expiring, 200)
	e.clock.Advance(time.Hour)
	check("expired", "Bearer "+expiring, 401)
	check("valid after an hour", "Bearer "+valid, 200)

	u.Disabled = true
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	check("disabled user", "Bearer "+valid, 401)
}

func TestTouchTokenThrottled(t *testing.T) {
	e := newEnv(t, nil)
	u := e.addUser("alice", RoleViewer)
	plain, tok := e.tokenFor(u, time.Time{})
	lastUsed := func() time.Time {
		t.Helper()
		got, _, err := e.st.TokenByHash(context.Background(), tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	start := e.clock.Now()
	e.do("GET", "/api/v1/auth/me", plain, nil)
	if !lastUsed().Equal(start) {
		t.Fatalf("first use not recorded: %v", lastUsed())
	}
	e.clock.Advance(59 * time.Second)
	e.do("GET", "/api/v1/auth/me", plain, nil)
	if !lastUsed().Equal(start) {
		t.Fatalf("use within a minute recorded: %v", lastUsed())
	}
	e.clock.Advance(time.Second)
	e.do("GET", "/api/v1/auth/me", plain, nil)
	if want := start.Add(time.Minute); !lastUsed().Equal(want) {
		t.Fatalf("use after a minute: last used %v, want %v", lastUsed(), want)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", RoleViewer)
	var b loginBody
	r := e.login(http.DefaultClient, "alice", testPassword)
	r.json(t, &b)
	if r := e.do("POST", "/api/v1/auth/logout", b.Token, nil); r.status != http.StatusNoContent {
		t.Fatalf("logout = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", b.Token, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("me after logout = %d, want 401", r.status)
	}
	if r := e.do("POST", "/api/v1/auth/logout", b.Token, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("second logout = %d, want 401", r.status)
	}
	entries := e.auditEntries()
	if len(entries) != 2 || entries[1].Action != "auth.logout" || entries[1].Actor != "alice" {
		t.Fatalf("audit = %+v", entries)
	}
}

// TestDummyHashMatchesDefaults keeps unknown-user logins as slow as real
// ones: the dummy hash must use the parameters real hashes get.
func TestDummyHashMatchesDefaults(t *testing.T) {
	p, err := password.ParamsOf(dummyHash)
	if err != nil {
		t.Fatal(err)
	}
	if p != password.DefaultParams() {
		t.Fatalf("dummy hash parameters %+v differ from the defaults %+v", p, password.DefaultParams())
	}
}

// BenchmarkLoginFailure compares the cost of a login for an unknown user
// with a wrong password for a real one (default argon2id parameters): they
// should be close, so timing does not reveal which usernames exist.
func BenchmarkLoginFailure(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "vigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hash, err := password.Hash(testPassword)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), store.User{Username: "alice", PasswordHash: hash, Role: RoleViewer, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	h := New(Deps{Store: st, LoginLimit: 1 << 30}).Handler()
	for _, c := range []struct{ name, user string }{{"bad_password", "alice"}, {"unknown_user", "nobody"}} {
		body := `{"username":"` + c.user + `","password":"not the password"}`
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/auth/login", strings.NewReader(body)))
				if w.Code != http.StatusUnauthorized {
					b.Fatalf("login = %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// forwardedTransport adds a forged X-Forwarded-For to every request.
type forwardedTransport struct {
	base http.RoundTripper
	n    int
}

func (f *forwardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.n++
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", f.n))
	return f.base.RoundTrip(r)
}

// A client cannot dodge the per-address limit, nor write a fake source
// into the audit log, by sending X-Forwarded-For.
func TestForwardedForNotTrusted(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", RoleViewer)
	c := clientFrom(t, "127.0.0.5")
	c.Transport = &forwardedTransport{base: c.Transport}
	for _, name := range []string{"root", "admin", "oracle"} {
		if r := e.login(c, name, "guess guess guess"); r.status != http.StatusUnauthorized {
			t.Fatalf("login %s = %d", name, r.status)
		}
	}
	if r := e.login(c, "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("4th login with a forged X-Forwarded-For = %d, want 429", r.status)
	}
	for _, a := range e.auditEntries() {
		if a.Source != "127.0.0.5" {
			t.Errorf("audit entry %d source = %q, want the TCP peer 127.0.0.5", a.ID, a.Source)
		}
	}
}
