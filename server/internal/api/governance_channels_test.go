package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// hookCall is one request a test receiver got.
type hookCall struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on 127.0.0.1 that records what it gets.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	calls []hookCall
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rc.mu.Lock()
		rc.calls = append(rc.calls, hookCall{path: r.URL.Path, header: r.Header.Clone(), body: b})
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hookCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookCall(nil), rc.calls...)
}

// noSecrets fails when any of the secrets appears in text.
func noSecrets(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("%s reveals secret %q: %s", where, s, text)
		}
	}
}

type channelResp struct {
	ID          int64             `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Settings    map[string]string `json:"settings"`
	MinSeverity string            `json:"min_severity"`
	Enabled     bool              `json:"enabled"`
	CreatedBy   string            `json:"created_by"`
}

type deliveryResp struct {
	ID       int64  `json:"id"`
	Event    string `json:"event"`
	OK       bool   `json:"ok"`
	Attempts int    `json:"attempts"`
	Status   string `json:"status"`
}

func TestWebhookChannelDeliversAndKeepsSecrets(t *testing.T) {
	g := newGovAPI(t)
	rc := newReceiver(t, http.StatusNoContent)
	const pathSecret, hmacSecret = "T0KEN-in-the-path-9f8e7d", "hmac-key-5ac7f1e2"
	hookURL := rc.URL + "/hooks/" + pathSecret
	var seen []string // every response body, for the secret check
	do := func(token, method, path string, body any) resp {
		t.Helper()
		r := g.as(token, method, path, body)
		seen = append(seen, method+" "+path+": "+string(r.body))
		return r
	}

	in := map[string]any{"name": "ops-hook", "kind": "webhook", "min_severity": "high",
		"settings": map[string]string{"url": hookURL, "hmac_secret": hmacSecret}}
	if r := do(g.operator, "POST", "/api/v1/notification-channels", in); r.status != http.StatusForbidden {
		t.Fatalf("operator creates a channel: %d %s", r.status, r.body)
	}
	r := do(g.secAdmin, "POST", "/api/v1/notification-channels", in)
	g.want(r, http.StatusCreated, "-")
	var ch channelResp
	r.json(t, &ch)
	if ch.Name != "ops-hook" || ch.Kind != "webhook" || ch.MinSeverity != "high" || !ch.Enabled || ch.CreatedBy != "sam" {
		t.Fatalf("created channel = %s", r.body)
	}
	if u := ch.Settings["url"]; !strings.Contains(u, "127.0.0.1") {
		t.Fatalf("masked url %q does not show the host", u)
	}
	g.want(do(g.secAdmin, "POST", "/api/v1/notification-channels", in), http.StatusConflict, "name")

	// A test message reaches the receiver, signed with the HMAC key.
	r = do(g.secAdmin, "POST", pathf("/api/v1/notification-channels/%d/test", ch.ID), nil)
	g.want(r, 200, "-")
	var dl deliveryResp
	r.json(t, &dl)
	if !dl.OK || dl.Event != "test" || dl.Attempts != 1 {
		t.Fatalf("test delivery = %s", r.body)
	}
	calls := rc.got()
	if len(calls) != 1 || calls[0].path != "/hooks/"+pathSecret {
		t.Fatalf("receiver got %d calls: %+v", len(calls), calls)
	}
	c := calls[0]
	mac := hmac.New(sha256.New, []byte(hmacSecret))
	mac.Write([]byte(c.header.Get("X-Vigil-Timestamp") + "."))
	mac.Write(c.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); c.header.Get("X-Vigil-Signature") != want {
		t.Fatalf("signature %q, want %q", c.header.Get("X-Vigil-Signature"), want)
	}
	var msg map[string]any
	if err := json.Unmarshal(c.body, &msg); err != nil || msg["event"] != "test" || c.header.Get("X-Vigil-Event") != "test" {
		t.Fatalf("webhook body %s (%v), event header %q", c.body, err, c.header.Get("X-Vigil-Event"))
	}

	// Update without the secrets keeps them: the next test goes to the same URL.
	up := map[string]any{"name": "ops-hook", "kind": "webhook", "min_severity": "critical", "settings": map[string]string{}}
	r = do(g.secAdmin, "PUT", pathf("/api/v1/notification-channels/%d", ch.ID), up)
	g.want(r, 200, "-")
	r.json(t, &ch)
	if ch.MinSeverity != "critical" {
		t.Fatalf("updated channel = %s", r.body)
	}
	g.want(do(g.secAdmin, "POST", pathf("/api/v1/notification-channels/%d/test", ch.ID), nil), 200, "-")
	if calls := rc.got(); len(calls) != 2 || calls[1].path != "/hooks/"+pathSecret {
		t.Fatalf("after update the receiver got %+v", calls)
	}

	// A receiver that is not there: ok false, and the error does not quote the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String() + "/hooks/" + pathSecret + "-dead"
	_ = ln.Close()
	r = do(g.secAdmin, "POST", "/api/v1/notification-channels", map[string]any{"name": "dead-hook", "kind": "webhook",
		"settings": map[string]string{"url": deadURL}})
	g.want(r, http.StatusCreated, "-")
	var dead channelResp
	r.json(t, &dead)
	r = do(g.secAdmin, "POST", pathf("/api/v1/notification-channels/%d/test", dead.ID), nil)
	g.want(r, 200, "-")
	r.json(t, &dl)
	if dl.OK || dl.Status == "" {
		t.Fatalf("test of a dead receiver = %s", r.body)
	}

	r = do(g.secAdmin, "GET", "/api/v1/notification-channels", nil)
	g.want(r, 200, "-")
	var list struct{ Channels []channelResp }
	r.json(t, &list)
	if len(list.Channels) != 2 {
		t.Fatalf("channels = %s", r.body)
	}
	r = do(g.secAdmin, "GET", pathf("/api/v1/notification-channels/%d/deliveries", ch.ID), nil)
	g.want(r, 200, "-")
	var dls struct{ Deliveries []deliveryResp }
	r.json(t, &dls)
	if len(dls.Deliveries) != 2 || !dls.Deliveries[0].OK {
		t.Fatalf("deliveries = %s", r.body)
	}
	do(g.secAdmin, "GET", pathf("/api/v1/notification-channels/%d/deliveries", dead.ID), nil)

	// Validation names the field; a missing channel is 404.
	bad := map[string]any{"name": "x", "kind": "pager", "settings": map[string]string{}}
	if r := do(g.secAdmin, "POST", "/api/v1/notification-channels", bad); r.status != 400 || r.errorBody(t).Error.Field == "" {
		t.Fatalf("unknown kind: %d %s", r.status, r.body)
	}
	noURL := map[string]any{"name": "no-url", "kind": "webhook", "settings": map[string]string{}}
	if r := do(g.secAdmin, "POST", "/api/v1/notification-channels", noURL); r.status != 400 || r.errorBody(t).Error.Field == "" {
		t.Fatalf("webhook without url: %d %s", r.status, r.body)
	}
	g.want(do(g.secAdmin, "POST", "/api/v1/notification-channels", map[string]any{"name": "y", "colour": "red"}), 400, "colour")

	r = do(g.secAdmin, "DELETE", pathf("/api/v1/notification-channels/%d", dead.ID), nil)
	g.want(r, http.StatusNoContent, "-")
	g.want(do(g.secAdmin, "POST", pathf("/api/v1/notification-channels/%d/test", dead.ID), nil), 404, "-")
	g.want(do(g.secAdmin, "DELETE", pathf("/api/v1/notification-channels/%d", dead.ID), nil), 404, "-")
	g.want(do(g.secAdmin, "GET", pathf("/api/v1/notification-channels/%d/deliveries", dead.ID), nil), 404, "-")

	// No response and no audit entry ever repeats a secret.
	for _, s := range seen {
		noSecrets(t, "response", s, pathSecret, hmacSecret)
	}
	n := 0
	for _, e := range g.auditEntries() {
		noSecrets(t, "audit entry "+e.Action, e.Detail+e.Target, pathSecret, hmacSecret)
		if strings.HasPrefix(e.Action, "channel.") {
			n++
		}
	}
	// create x2, update, test x3, delete.
	if n != 7 {
		t.Fatalf("%d channel.* audit entries, want 7", n)
	}
}

func TestScrubURLs(t *testing.T) {
	for in, want := range map[string]string{
		`Post "https://hooks.slack.com/services/T0/B1/xyz": dial tcp: refused`: `Post "https://hooks.slack.com/••••": dial tcp: refused`,
		"200 OK": "200 OK",
		"http://127.0.0.1:9/a?token=s then ftp://x": "http://127.0.0.1:9/•••• then ftp://x/••••",
		"smtp 535 auth failed":                      "smtp 535 auth failed",
	} {
		if got := scrubURLs(in); got != want {
			t.Errorf("scrubURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGovernanceRoutesWithoutServices: a server built without the
// governance services answers 503 naming what is missing, never a panic.
func TestGovernanceRoutesWithoutServices(t *testing.T) {
	f := newFleetAPI(t)
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/notification-channels/1/test"},
		{"GET", "/api/v1/notification-channels"},
		{"GET", "/api/v1/export?format=json"},
		{"GET", "/api/v1/export/public-key"},
		{"POST", "/api/v1/alerts/1/acknowledge"},
		{"POST", "/api/v1/exceptions/1/approve"},
	} {
		r := f.do(c.method, c.path, f.token, nil)
		if r.status != http.StatusServiceUnavailable || r.errorBody(t).Error.Code != "unavailable" {
			t.Errorf("%s %s without services = %d %s, want 503", c.method, c.path, r.status, r.body)
		}
	}
}
