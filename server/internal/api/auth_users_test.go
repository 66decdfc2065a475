package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestUsersLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	root := e.addUser("root", RoleAdmin)
	tok, _ := e.tokenFor(root, time.Time{})

	for _, c := range []struct {
		body  map[string]string
		field string
	}{
		{map[string]string{"username": "Bob", "password": "a long enough password", "role": RoleViewer}, "username"},
		{map[string]string{"username": "bob", "password": "a long enough password", "role": "superuser"}, "role"},
		{map[string]string{"username": "bob", "password": "short", "role": RoleViewer}, "password"},
	} {
		r := e.do("POST", "/api/v1/users", tok, c.body)
		if r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != c.field {
			t.Errorf("create %v = %d %s, want 400 naming %s", c.body, r.status, r.body, c.field)
		}
	}
	r := e.do("POST", "/api/v1/users", tok, map[string]string{"username": "bob", "password": "a long enough password", "role": RoleOperator})
	if r.status != http.StatusCreated {
		t.Fatalf("create bob = %d %s", r.status, r.body)
	}
	var bob userView
	r.json(t, &bob)
	stored, err := e.st.User(context.Background(), bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := password.ParamsOf(stored.PasswordHash); err != nil || p != password.DefaultParams() {
		t.Errorf("bob's stored hash %q: %+v, %v", stored.PasswordHash, p, err)
	}
	if r := e.do("POST", "/api/v1/users", tok, map[string]string{"username": "bob", "password": "a long enough password", "role": RoleViewer}); r.status != http.StatusConflict {
		t.Errorf("duplicate bob = %d, want 409", r.status)
	}
	if r := e.login(http.DefaultClient, "bob", "a long enough password"); r.status != http.StatusOK {
		t.Fatalf("bob logs in = %d %s", r.status, r.body)
	}

	list := e.do("GET", "/api/v1/users", tok, nil)
	if list.status != http.StatusOK || strings.Contains(string(list.body), "argon2") || strings.Contains(string(list.body), "password") {
		t.Fatalf("list users = %d %s (must not show hashes)", list.status, list.body)
	}
	var lb struct{ Users []userView }
	list.json(t, &lb)
	if len(lb.Users) != 2 || lb.Users[0].Username != "bob" || lb.Users[1].Username != "root" {
		t.Errorf("users = %+v", lb.Users)
	}

	// A new password works and ends bob's sessions.
	path := fmt.Sprintf("/api/v1/users/%d", bob.ID)
	if r := e.do("PUT", path, tok, map[string]string{"password": "short"}); r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != "password" {
		t.Errorf("weak new password = %d %s", r.status, r.body)
	}
	if r := e.do("PUT", path, tok, map[string]any{}); r.status != http.StatusBadRequest {
		t.Errorf("empty update = %d, want 400", r.status)
	}
	var sess loginBody
	e.login(http.DefaultClient, "bob", "a long enough password").json(t, &sess)
	if r := e.do("PUT", path, tok, map[string]any{"password": "another long password", "role": RoleAuditor}); r.status != http.StatusOK {
		t.Fatalf("update bob = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", sess.Token, nil); r.status != http.StatusUnauthorized {
		t.Errorf("bob's session after a password change = %d, want 401", r.status)
	}
	if r := e.login(http.DefaultClient, "bob", "another long password"); r.status != http.StatusOK {
		t.Errorf("login with the new password = %d", r.status)
	}
	if r := e.do("PUT", path, tok, map[string]bool{"disabled": true}); r.status != http.StatusOK {
		t.Fatalf("disable bob = %d %s", r.status, r.body)
	}
	if r := e.login(http.DefaultClient, "bob", "another long password"); r.status != http.StatusUnauthorized {
		t.Errorf("disabled bob logs in = %d, want 401", r.status)
	}
	if r := e.do("DELETE", path, tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete bob = %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", path, tok, nil); r.status != http.StatusNotFound {
		t.Errorf("delete bob again = %d, want 404", r.status)
	}

	var actions []string
	for _, a := range e.auditEntries() {
		actions = append(actions, a.Action)
		for _, secret := range []string{"a long enough password", "another long password", "argon2"} {
			if strings.Contains(a.Detail, secret) {
				t.Errorf("audit %s holds a secret: %s", a.Action, a.Detail)
			}
		}
	}
	want := "user.create auth.login auth.login user.update auth.login user.update auth.login_failed user.delete"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit actions\n got %s\nwant %s", got, want)
	}
}

func TestAdminCannotLockOut(t *testing.T) {
	e := newEnv(t, nil)
	root := e.addUser("root", RoleAdmin)
	tok, _ := e.tokenFor(root, time.Time{})
	self := fmt.Sprintf("/api/v1/users/%d", root.ID)
	for _, c := range []struct {
		method string
		body   any
	}{
		{"PUT", map[string]string{"role": RoleViewer}},
		{"PUT", map[string]bool{"disabled": true}},
		{"DELETE", nil},
	} {
		if r := e.do(c.method, self, tok, c.body); r.status != http.StatusConflict {
			t.Errorf("%s self %v = %d %s, want 409", c.method, c.body, r.status, r.body)
		}
	}
	// Changing one's own password is fine and keeps the current token.
	if r := e.do("PUT", self, tok, map[string]string{"password": "root's new password"}); r.status != http.StatusOK {
		t.Errorf("own password change = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", tok, nil); r.status != http.StatusOK {
		t.Errorf("own token after own password change = %d", r.status)
	}
	// With two enabled admins, one may demote the other.
	other := e.addUser("other", RoleAdmin)
	if r := e.do("PUT", fmt.Sprintf("/api/v1/users/%d", other.ID), tok, map[string]string{"role": RoleOperator}); r.status != http.StatusOK {
		t.Errorf("demote the second admin = %d %s", r.status, r.body)
	}
}

// TestLastAdminKept covers the race the API alone cannot produce: the
// caller was disabled after authenticating (by another admin, a moment
// ago), so the admin they now try to demote or delete is the last enabled
// one and must stay.
func TestLastAdminKept(t *testing.T) {
	e := newEnv(t, nil)
	caller := e.addUser("caller", RoleAdmin)
	last := e.addUser("last", RoleAdmin)
	disabled := caller
	disabled.Disabled = true
	if err := e.st.UpdateUser(context.Background(), disabled); err != nil {
		t.Fatal(err)
	}
	for _, to := range []store.User{
		{ID: last.ID, Role: RoleOperator},
		{ID: last.ID, Role: RoleAdmin, Disabled: true},
	} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest("PUT", "/", nil)
		c.Set(ctxPrincipal, &Principal{User: caller})
		if e.s.keepsAdmin(c, last, to, "demote or disable") {
			t.Errorf("keepsAdmin let the last enabled admin become %+v", to)
		}
		if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "last enabled admin") {
			t.Errorf("answer = %d %s, want 409 naming the last enabled admin", w.Code, w.Body)
		}
	}
	// Re-enabled, the caller makes two admins: demoting "last" is allowed.
	if err := e.st.UpdateUser(context.Background(), caller); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest("PUT", "/", nil)
	c.Set(ctxPrincipal, &Principal{User: caller})
	if !e.s.keepsAdmin(c, last, store.User{ID: last.ID, Role: RoleViewer}, "demote or disable") {
		t.Errorf("keepsAdmin refused with two enabled admins: %d %s", w.Code, w.Body)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.addUser("alice", RoleViewer)
	bob := e.addUser("bob", RoleOperator)
	root := e.addUser("root", RoleAdmin)
	aliceTok, aliceCur := e.tokenFor(alice, time.Time{})
	bobTok, _ := e.tokenFor(bob, time.Time{})
	rootTok, _ := e.tokenFor(root, time.Time{})

	for _, c := range []struct {
		body  string
		field string
	}{
		{`{}`, "name"},
		{`{"name":"  "}`, "name"},
		{`{"name":"ci","expires_in_days":0}`, "expires_in_days"},
		{`{"name":"ci","expires_in_days":4000}`, "expires_in_days"},
		{`{"name":"ci","expires_in_days":"7"}`, "expires_in_days"},
	} {
		r := e.do("POST", "/api/v1/tokens", aliceTok, c.body)
		if r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != c.field {
			t.Errorf("create token %s = %d %s, want 400 naming %s", c.body, r.status, r.body, c.field)
		}
	}
	r := e.do("POST", "/api/v1/tokens", aliceTok, map[string]any{"name": "ci", "expires_in_days": 7})
	if r.status != http.StatusCreated {
		t.Fatalf("create token = %d %s", r.status, r.body)
	}
	var created struct {
		tokenView
		Token string `json:"token"`
	}
	r.json(t, &created)
	if !strings.HasPrefix(created.Token, "vga_") || created.Kind != "api" || created.UserID != alice.ID ||
		created.ExpiresAt == nil || !created.ExpiresAt.Equal(e.clock.Now().Add(7*24*time.Hour)) {
		t.Fatalf("created token = %s", r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", created.Token, nil); r.status != http.StatusOK {
		t.Fatalf("new API token does not work: %d", r.status)
	}

	// Alice sees her tokens, never a token value or hash.
	list := e.do("GET", "/api/v1/tokens", aliceTok, nil)
	if list.status != http.StatusOK || strings.Contains(string(list.body), created.Token) || strings.Contains(string(list.body), hashToken(created.Token)) {
		t.Fatalf("list tokens = %d %s", list.status, list.body)
	}
	var lb struct{ Tokens []tokenView }
	list.json(t, &lb)
	if len(lb.Tokens) != 2 {
		t.Fatalf("alice has %d tokens, want 2: %s", len(lb.Tokens), list.body)
	}
	for _, tv := range lb.Tokens {
		if tv.UserID != alice.ID || tv.Current != (tv.ID == aliceCur.ID) {
			t.Errorf("token %+v", tv)
		}
	}
	for _, q := range []string{fmt.Sprint(bob.ID), "all"} {
		if r := e.do("GET", "/api/v1/tokens?user="+q, aliceTok, nil); r.status != http.StatusForbidden {
			t.Errorf("alice lists ?user=%s = %d, want 403", q, r.status)
		}
	}
	if r := e.do("GET", "/api/v1/tokens?user=x", aliceTok, nil); r.status != http.StatusBadRequest {
		t.Errorf("?user=x = %d, want 400", r.status)
	}
	if r := e.do("GET", fmt.Sprintf("/api/v1/tokens?user=%d", alice.ID), aliceTok, nil); r.status != http.StatusOK {
		t.Errorf("alice lists her own by id = %d", r.status)
	}
	all := e.do("GET", "/api/v1/tokens?user=all", rootTok, nil)
	all.json(t, &lb)
	if all.status != http.StatusOK || len(lb.Tokens) != 4 {
		t.Errorf("root lists all = %d, %d tokens, want 4", all.status, len(lb.Tokens))
	}

	// Bob cannot see or revoke alice's token: 404, as for a missing one.
	path := fmt.Sprintf("/api/v1/tokens/%d", created.ID)
	if r := e.do("DELETE", path, bobTok, nil); r.status != http.StatusNotFound {
		t.Errorf("bob revokes alice's token = %d, want 404", r.status)
	}
	if r := e.do("DELETE", path, aliceTok, nil); r.status != http.StatusNoContent {
		t.Fatalf("alice revokes her token = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", created.Token, nil); r.status != http.StatusUnauthorized {
		t.Errorf("revoked token still works: %d", r.status)
	}
	// Root (users.manage) may revoke anyone's token.
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", aliceCur.ID), rootTok, nil); r.status != http.StatusNoContent {
		t.Errorf("root revokes alice's token = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", aliceTok, nil); r.status != http.StatusUnauthorized {
		t.Errorf("alice's token after root revoked it = %d", r.status)
	}
	for _, a := range e.auditEntries() {
		if strings.Contains(a.Detail, created.Token) || strings.Contains(a.Detail, hashToken(created.Token)) {
			t.Errorf("audit %s holds the token: %s", a.Action, a.Detail)
		}
	}
}
