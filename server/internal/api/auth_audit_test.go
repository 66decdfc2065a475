package api

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

type auditList struct {
	Entries []auditView `json:"entries"`
}

type verifyBody struct {
	OK      bool   `json:"ok"`
	Entries int    `json:"entries"`
	Error   string `json:"error"`
}

// TestAuditChainThroughAPI: several actions by several people, then the
// log lists, filters and verifies; tampering with one row is detected.
func TestAuditChainThroughAPI(t *testing.T) {
	e := newEnv(t, nil)
	root := e.addUser("root", RoleAdmin)
	rootTok, _ := e.tokenFor(root, time.Time{})
	aud := e.addUser("audrey", RoleAuditor)
	audTok, _ := e.tokenFor(aud, time.Time{})

	start := e.clock.Now()
	steps := []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"POST", "/api/v1/users", rootTok, map[string]string{"username": "bob", "password": "a long enough password", "role": RoleViewer}, 201},
		{"POST", "/api/v1/auth/login", "", map[string]string{"username": "bob", "password": "wrong password!"}, 401},
		{"POST", "/api/v1/auth/login", "", map[string]string{"username": "bob", "password": "a long enough password"}, 200},
		{"POST", "/api/v1/tokens", audTok, map[string]string{"name": "reports"}, 201},
		{"PUT", "/api/v1/users/3", rootTok, map[string]string{"role": RoleOperator}, 200},
	}
	for i, s := range steps {
		e.clock.Advance(time.Minute)
		if r := e.do(s.method, s.path, s.token, s.body); r.status != s.want {
			t.Fatalf("step %d %s %s = %d %s, want %d", i, s.method, s.path, r.status, r.body, s.want)
		}
	}

	var v verifyBody
	r := e.do("GET", "/api/v1/audit/verify", audTok, nil)
	r.json(t, &v)
	if r.status != http.StatusOK || !v.OK || v.Entries != 5 {
		t.Fatalf("verify = %d %s", r.status, r.body)
	}

	list := func(q string) []auditView {
		t.Helper()
		r := e.do("GET", "/api/v1/audit?"+q, audTok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("audit?%s = %d %s", q, r.status, r.body)
		}
		var l auditList
		r.json(t, &l)
		return l.Entries
	}
	actions := func(es []auditView) string {
		var a []string
		for _, e := range es {
			a = append(a, e.Action)
		}
		return strings.Join(a, " ")
	}
	cases := []struct{ q, want string }{
		{"", "user.update token.create auth.login auth.login_failed user.create"},
		{"order=asc", "user.create auth.login_failed auth.login token.create user.update"},
		{"order=asc&limit=2", "user.create auth.login_failed"},
		{"order=asc&after=2", "auth.login token.create user.update"},
		{"actor=bob", "auth.login auth.login_failed"},
		{"actor=root&action=user.update", "user.update"},
		{"from=" + url.QueryEscape(start.Add(2*time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(start.Add(4*time.Minute).Format(time.RFC3339)) + "&order=asc",
			"auth.login_failed auth.login"},
	}
	for _, c := range cases {
		if got := actions(list(c.q)); got != c.want {
			t.Errorf("audit?%s = %q, want %q", c.q, got, c.want)
		}
	}
	first := list("order=asc&limit=1")[0]
	if first.Actor != "root" || first.Target != "user/3" || first.Source != "127.0.0.1" || first.PrevHash != store.AuditGenesis ||
		first.Hash == "" || string(first.Detail) != `{"role":"viewer","username":"bob"}` {
		t.Errorf("first entry = %+v detail %s", first, first.Detail)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=-1", "order=up", "from=yesterday", "to=2026-13-01T00:00:00Z",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		r := e.do("GET", "/api/v1/audit?"+q, audTok, nil)
		field := strings.SplitN(q, "=", 2)[0]
		if strings.HasPrefix(q, "from=2026-02") {
			field = "to"
		}
		if r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != field {
			t.Errorf("audit?%s = %d %s, want 400 naming %s", q, r.status, r.body, field)
		}
	}

	// Rewrite who did step 4 straight in the database: verify names it.
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `UPDATE audit_log SET actor = 'someone' WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/api/v1/audit/verify", audTok, nil)
	v = verifyBody{}
	r.json(t, &v)
	if r.status != http.StatusOK || v.OK || !strings.Contains(v.Error, "audit entry 4") {
		t.Fatalf("verify after tampering = %d %s", r.status, r.body)
	}
}

// TestAuditVerifyPages: a log longer than one verification page is read
// whole, and a deleted entry in the second page is found.
func TestAuditVerifyPages(t *testing.T) {
	e := newEnv(t, nil)
	root := e.addUser("root", RoleAdmin)
	tok, _ := e.tokenFor(root, time.Time{})
	n := verifyPage + verifyPage/2
	for i := range n {
		_, err := e.st.AppendAudit(context.Background(), store.AuditEntry{
			At: e.clock.Now(), Actor: "system", Action: "test.fill", Target: fmt.Sprintf("n/%d", i), Detail: "{}",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var v verifyBody
	e.do("GET", "/api/v1/audit/verify", tok, nil).json(t, &v)
	if !v.OK || v.Entries != n {
		t.Fatalf("verify = %+v, want ok with %d entries", v, n)
	}
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `DELETE FROM audit_log WHERE id = ?`, verifyPage+10); err != nil {
		t.Fatal(err)
	}
	v = verifyBody{}
	e.do("GET", "/api/v1/audit/verify", tok, nil).json(t, &v)
	if v.OK || v.Entries != n-1 || !strings.Contains(v.Error, fmt.Sprint(verifyPage+11)) {
		t.Fatalf("verify after deleting entry %d = %+v", verifyPage+10, v)
	}
}

func TestAuditDetailMustBeObject(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
		ok   bool
	}{
		{nil, "{}", true},
		{map[string]int{"a": 1}, `{"a":1}`, true},
		{struct {
			X string `json:"x"`
		}{"y"}, `{"x":"y"}`, true},
		{"text", "", false},
		{[]int{1}, "", false},
		{make(chan int), "", false},
	} {
		got, err := detailJSON(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("detailJSON(%v) = %q, %v", c.in, got, err)
		}
	}
}

// TestAuditFailureRefusesAction: when the audit log cannot be written the
// action is answered 500 and a login's token is not handed out.
func TestAuditFailureRefusesAction(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", RoleViewer)
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(),
		`CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit disk full'); END`); err != nil {
		t.Fatal(err)
	}
	r := e.login(http.DefaultClient, "alice", testPassword)
	if r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "vgs_") {
		t.Fatalf("login with a broken audit log = %d %s, want 500 without a token", r.status, r.body)
	}
	toks, err := e.st.Tokens(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.RevokedAt.IsZero() {
			t.Errorf("token %d left usable after its login failed to audit", tk.ID)
		}
	}
}
