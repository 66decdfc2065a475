package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestPermissionMatrix(t *testing.T) {
	want := map[string][]Perm{
		RoleViewer:  {PermFleetRead, PermSelf},
		RoleAuditor: {PermFleetRead, PermEvidenceRead, PermAuditRead, PermExport, PermSelf},
		RoleOperator: {PermFleetRead, PermEvidenceRead, PermHostsWrite, PermScanTrigger, PermExceptionsRequest,
			PermAlertsManage, PermExport, PermSelf},
		RoleSecurityAdmin: {PermFleetRead, PermEvidenceRead, PermAuditRead, PermHostsWrite, PermScanTrigger, PermAgentsManage,
			PermExceptionsRequest, PermExceptionsDecide, PermAlertsManage, PermChannelsManage, PermExport, PermSelf},
		RoleAdmin: allPerms(),
	}
	if got := Roles(); !slices.Equal(got, []string{"viewer", "auditor", "operator", "security_admin", "admin"}) {
		t.Fatalf("Roles() = %v", got)
	}
	for _, role := range append(Roles(), "", "root", "Admin") {
		for _, p := range allPerms() {
			if got, exp := Allowed(role, p), slices.Contains(want[role], p); got != exp {
				t.Errorf("Allowed(%q, %q) = %v, want %v", role, p, got, exp)
			}
		}
		if !Allowed(role, PermPublic) {
			t.Errorf("Allowed(%q, public) = false", role)
		}
	}
	// Every permission a route needs is in allPerms, so admin holds it.
	for _, r := range (&Server{}).routes() {
		if r.Perm != PermPublic && !slices.Contains(allPerms(), r.Perm) {
			t.Errorf("route %s %s needs %q, which no role list knows", r.Method, r.Path, r.Perm)
		}
	}
}

// walkFixture is what one request of the route walk may act on: fresh for
// every request so that deletes and revocations do not disturb the next.
type walkFixture struct {
	caller      store.User
	token       string // caller's bearer token ("" for no token)
	spareToken  int64  // another token of the caller, to revoke
	host, group int64
	scan        int64
	agent       int64      // an enrolled agent, to revoke
	victim      store.User // a user to update or delete
	ruleID      string
	n           int // unique suffix
	// Governance objects: a requested and an approved exception (requested
	// by someone else than the caller), an active alert, a webhook channel.
	requested, approved, alert, channel int64
}

// knownHostsLine is a syntactically valid known_hosts line with a fresh key.
func knownHostsLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.9 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func (e *env) fixture(role string, n int) walkFixture {
	e.t.Helper()
	ctx := context.Background()
	f := walkFixture{n: n, ruleID: e.s.d.Posture.Index().Rules()[0].ID}
	if role != "" {
		f.caller = e.addUser(fmt.Sprintf("caller%d", n), role)
		f.token, _ = e.tokenFor(f.caller, time.Time{})
		_, spare := e.tokenFor(f.caller, time.Time{})
		f.spareToken = spare.ID
	}
	f.victim = e.addUser(fmt.Sprintf("victim%d", n), RoleViewer)
	h, err := e.st.UpsertHost(ctx, store.Host{Name: fmt.Sprintf("host%d", n), Address: "127.0.0.9"})
	if err != nil {
		e.t.Fatal(err)
	}
	f.host = h.ID
	g, err := e.st.CreateGroup(ctx, store.Group{Name: fmt.Sprintf("group%d", n), CreatedAt: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	f.group = g.ID
	sc, err := e.st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "manual", Status: store.ScanRunning, StartedAt: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	f.scan = sc.ID
	a, err := e.st.CreateAgent(ctx, store.Agent{Name: fmt.Sprintf("agent%d", n), EnrolledAt: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	f.agent = a.ID
	if e.s.d.Governance != nil {
		e.govFixture(&f)
	}
	return f
}

// govFixture adds the governance objects to a fixture, straight into the
// store (and the notifier, which seals the channel's URL).
func (e *env) govFixture(f *walkFixture) {
	e.t.Helper()
	ctx := context.Background()
	now := e.clock.Now()
	ex := store.Exception{RuleID: f.ruleID, HostID: f.host, Justification: "walk fixture exception",
		State: store.ExceptionRequested, RequestedBy: "requester", RequestedAt: now}
	req, err := e.st.CreateException(ctx, ex)
	if err != nil {
		e.t.Fatal(err)
	}
	f.requested = req.ID
	appr, err := e.st.CreateException(ctx, ex)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.DecideException(ctx, store.ExceptionDecision{ID: appr.ID, From: []store.ExceptionState{store.ExceptionRequested},
		To: store.ExceptionApproved, By: "approver", At: now}); err != nil {
		e.t.Fatal(err)
	}
	f.approved = appr.ID
	al, _, err := e.st.RaiseAlert(ctx, store.Alert{Kind: "scan_overdue", Key: fmt.Sprintf("scan_overdue/host/%d", f.host),
		Severity: "medium", HostID: f.host, Title: "overdue", Detail: "{}", At: now})
	if err != nil {
		e.t.Fatal(err)
	}
	f.alert = al.ID
	ch, err := e.s.d.Notifier.Create(ctx, notify.ChannelInput{Name: fmt.Sprintf("chan%d", f.n), Kind: notify.KindWebhook,
		Settings: map[string]string{"url": walkHookURL}}, "fixture")
	if err != nil {
		e.t.Fatal(err)
	}
	f.channel = ch.ID
}

// walkHookURL is where the walk's channels point: the discard port on
// loopback, where nothing listens, so a test message fails fast (the
// route still answers 200 with ok false).
const walkHookURL = "http://127.0.0.1:9/hooks/walk"

// path fills a route's parameters from the fixture.
func (f walkFixture) path(route string) string {
	id := ""
	switch {
	case strings.HasPrefix(route, "/api/v1/hosts/"):
		id = strconv.FormatInt(f.host, 10)
	case strings.HasPrefix(route, "/api/v1/groups/"):
		id = strconv.FormatInt(f.group, 10)
	case strings.HasPrefix(route, "/api/v1/scans/"):
		id = strconv.FormatInt(f.scan, 10)
	case strings.HasPrefix(route, "/api/v1/users/"):
		id = strconv.FormatInt(f.victim.ID, 10)
	case strings.HasPrefix(route, "/api/v1/tokens/"):
		id = strconv.FormatInt(f.spareToken, 10)
	case strings.HasPrefix(route, "/api/v1/rules/"):
		id = f.ruleID
	case strings.HasPrefix(route, "/api/v1/agents/"):
		id = strconv.FormatInt(f.agent, 10)
	case strings.HasPrefix(route, "/api/v1/exceptions/") && strings.HasSuffix(route, "/revoke"):
		id = strconv.FormatInt(f.approved, 10)
	case strings.HasPrefix(route, "/api/v1/exceptions/"):
		id = strconv.FormatInt(f.requested, 10)
	case strings.HasPrefix(route, "/api/v1/alerts/"):
		id = strconv.FormatInt(f.alert, 10)
	case strings.HasPrefix(route, "/api/v1/notification-channels/"):
		id = strconv.FormatInt(f.channel, 10)
	}
	p := strings.Replace(route, ":id", id, 1)
	if isExportRoute(route) {
		p += "?format=json"
	}
	return strings.Replace(p, ":rule", f.ruleID, 1)
}

// isExportRoute reports whether a route renders an export: a GET that
// writes an audit entry (export.create).
func isExportRoute(route string) bool {
	return strings.HasSuffix(route, "/export") || route == "/api/v1/export"
}

// body is a request body the route accepts for this fixture.
func (f walkFixture) body(t *testing.T, method, route string) any {
	switch method + " " + route {
	case "POST /api/v1/auth/login":
		return map[string]string{"username": f.victim.Username, "password": testPassword}
	case "POST /api/v1/hosts":
		return map[string]any{"name": fmt.Sprintf("new%d", f.n), "address": "127.0.0.9",
			"ssh": map[string]string{"user": "vigil", "password": "ssh secret", "known_hosts": knownHostsLine(t)}}
	case "PUT /api/v1/hosts/:id":
		return map[string]string{"address": "127.0.0.10"}
	case "POST /api/v1/groups":
		return map[string]string{"name": fmt.Sprintf("newgroup%d", f.n)}
	case "POST /api/v1/scans":
		return map[string]int64{"host_id": f.host}
	case "POST /api/v1/users":
		return map[string]string{"username": fmt.Sprintf("new%d", f.n), "password": "a long enough password", "role": RoleViewer}
	case "PUT /api/v1/users/:id":
		return map[string]string{"role": RoleAuditor}
	case "POST /api/v1/tokens":
		return map[string]string{"name": "ci"}
	case "POST /api/v1/enrollment-tokens":
		return map[string]any{"ttl": "1h", "uses": 1}
	case "POST /api/v1/exceptions":
		return map[string]any{"host_id": f.host, "rule_id": f.ruleID, "justification": "walk: accepted for the test"}
	case "POST /api/v1/alerts/:id/silence":
		return map[string]string{"until": "2026-01-16T00:00:00Z"}
	case "POST /api/v1/notification-channels":
		return map[string]any{"name": fmt.Sprintf("newchan%d", f.n), "kind": "webhook", "settings": map[string]string{"url": walkHookURL}}
	case "PUT /api/v1/notification-channels/:id":
		return map[string]any{"name": fmt.Sprintf("renamed%d", f.n), "kind": "webhook", "settings": map[string]string{}}
	}
	return nil
}

// TestRouteAuthorization walks every route of the table as every role and
// as nobody: no token is 401, a role without the route's permission is
// 403, any other caller gets past authorisation (404 or 400 are fine; 5xx
// is not). A state-changing call that succeeds writes exactly one audit
// entry and one that fails writes none; every state-changing route must
// succeed for some role, so that check is never vacuous.
func TestRouteAuthorization(t *testing.T) {
	e := startEnv(t, false, func(d *Deps) { wireGovernance(t, d, d.Sealer.(*secrets.Box)) })
	// One admin stays enabled throughout so admin victims may be demoted.
	e.addUser("keeper", RoleAdmin)
	succeeded := map[string]bool{}
	n := 0
	for _, r := range e.s.routes() {
		key := r.Method + " " + r.Path
		for _, role := range append(Roles(), "") {
			n++
			f := e.fixture(role, n)
			before := e.auditCount()
			res := e.do(r.Method, f.path(r.Path), f.token, f.body(t, r.Method, r.Path))
			after := e.auditCount()
			who := role
			if who == "" {
				who = "no token"
			}
			switch {
			case role == "" && r.Perm != PermPublic:
				if res.status != http.StatusUnauthorized || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s as %s = %d (WWW-Authenticate %q), want 401", key, who, res.status, res.header.Get("WWW-Authenticate"))
				}
				res.errorBody(t)
			case !Allowed(role, r.Perm):
				if res.status != http.StatusForbidden {
					t.Errorf("%s as %s = %d %s, want 403", key, who, res.status, res.body)
				} else if b := res.errorBody(t); !strings.Contains(b.Error.Message, string(r.Perm)) {
					t.Errorf("%s as %s: 403 message %q does not name %q", key, who, b.Error.Message, r.Perm)
				}
			default:
				if res.status == http.StatusUnauthorized || res.status == http.StatusForbidden || res.status >= 500 {
					t.Errorf("%s as %s = %d %s, want authorised and no server error", key, who, res.status, res.body)
				}
			}
			ok := res.status >= 200 && res.status < 300
			audited := r.Method != "GET" || isExportRoute(r.Path)
			switch {
			case !audited && after != before:
				t.Errorf("%s as %s wrote %d audit entries; reads write none", key, who, after-before)
			case audited && ok && after != before+1:
				t.Errorf("%s as %s succeeded (%d) with %d audit entries, want 1", key, who, res.status, after-before)
			case audited && !ok && after != before:
				t.Errorf("%s as %s failed (%d %s) yet wrote %d audit entries", key, who, res.status, res.body, after-before)
			}
			if ok {
				succeeded[key] = true
			}
		}
		if (r.Method != "GET" || isExportRoute(r.Path)) && !succeeded[key] {
			t.Errorf("%s never succeeded, so its audit entry was never checked", key)
		}
	}
	if v := e.do("GET", "/api/v1/audit/verify", e.adminToken(), nil); !strings.Contains(string(v.body), `"ok":true`) {
		t.Errorf("audit chain after the walk: %d %s", v.status, v.body)
	}
}

// adminToken returns a token of a fresh admin.
func (e *env) adminToken() string {
	e.t.Helper()
	u := e.addUser(fmt.Sprintf("admin%d", time.Now().UnixNano()), RoleAdmin)
	tok, _ := e.tokenFor(u, time.Time{})
	return tok
}
