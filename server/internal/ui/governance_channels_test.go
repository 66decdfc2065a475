package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vigilfleet/vigil/server/internal/api"
)

// hookReceiver is a real webhook endpoint on 127.0.0.1 that records what
// it receives.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []receivedHook
	code int
}

// receivedHook is one request the receiver saw.
type receivedHook struct {
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	r := &hookReceiver{code: http.StatusNoContent}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		r.got = append(r.got, receivedHook{header: req.Header.Clone(), body: b})
		code := r.code
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) received() []receivedHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedHook(nil), r.got...)
}

// channelIDs lists the channel sections a page shows.
func channelIDs(body string) []int64 {
	var out []int64
	for _, m := range regexp.MustCompile(`<section class="card channel" id="channel-(\d+)"`).FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

func TestGovChannelsCreateTestDelete(t *testing.T) {
	s := newGovSite(t)
	admin := s.signIn("ada", api.RoleSecurityAdmin)
	op := s.signIn("olga", api.RoleOperator)
	recv := newHookReceiver(t)
	hookURL := recv.srv.URL + "/hooks/vigil-secret-path"
	const secret = "hmac-shared-secret-0123456789"

	// Only channels.manage sees the page and its navigation entry.
	wantAbsent(t, op.get("/"), `href="/notifications"`)
	wantPage(t, op.get("/notifications"), http.StatusForbidden, "channels.manage")
	wantPage(t, op.post("/notifications", url.Values{"kind": {"webhook"}, "name": {"x"}, "url": {hookURL}}), http.StatusForbidden)
	p := admin.get("/notifications")
	wantPage(t, p, http.StatusOK, `href="/notifications"`, "No notification channel yet", `id="webhook-url"`, `id="slack-url"`, `id="email-smtp_host"`)

	p = admin.post("/notifications", url.Values{"kind": {"webhook"}, "name": {"ops-hook"}, "url": {hookURL}, "hmac_secret": {secret},
		"min_severity": {"medium"}, "labels": {"env=prod"}, "kinds": {"band_drop", "rule_failing"}, "enabled": {"1"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", p.status, clip(p.body))
	}
	p = admin.get("/notifications")
	ids := channelIDs(p.body)
	if len(ids) != 1 {
		t.Fatalf("channels: %v\n%s", ids, clip(p.body))
	}
	id := ids[0]
	wantPage(t, p, http.StatusOK, "ops-hook", "env=prod", "Nothing sent yet.", `value="band_drop" checked`, "created. Send it a test")
	// Secrets are masked: neither the URL's path nor the HMAC secret is on the page.
	wantAbsent(t, p, "vigil-secret-path", secret)

	// Send test: the receiver gets a signed request, the page the result.
	p = admin.post(fmt.Sprintf("/notifications/%d/test", id), nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("test: %d\n%s", p.status, clip(p.body))
	}
	got := recv.received()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d requests, want 1", len(got))
	}
	h := got[0].header
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(h.Get("X-Vigil-Timestamp") + "." + string(got[0].body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); h.Get("X-Vigil-Signature") != want {
		t.Errorf("signature %q, want %q", h.Get("X-Vigil-Signature"), want)
	}
	p = admin.get("/notifications")
	wantPage(t, p, http.StatusOK, "Test message delivered", "delivered</span>", "204")
	wantAbsent(t, p, "Nothing sent yet.")

	// A failing receiver: the result says so and the log records it.
	recv.mu.Lock()
	recv.code = http.StatusBadRequest
	recv.mu.Unlock()
	admin.post(fmt.Sprintf("/notifications/%d/test", id), nil)
	p = admin.get("/notifications")
	wantPage(t, p, http.StatusOK, "Test message NOT delivered", "failed</span>", "400")

	// Update: disable and widen the filter; the secrets stay.
	p = admin.post(fmt.Sprintf("/notifications/%d", id), url.Values{"min_severity": {"low"}, "labels": {""}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("update: %d\n%s", p.status, clip(p.body))
	}
	ch, err := s.st.Channel(context.Background(), id)
	if err != nil || ch.Enabled || ch.MinSeverity != "low" || len(ch.Labels) != 0 || len(ch.Kinds) != 0 {
		t.Fatalf("after update: %+v %v", ch, err)
	}
	recv.mu.Lock()
	recv.code = http.StatusOK
	recv.mu.Unlock()
	admin.post(fmt.Sprintf("/notifications/%d/test", id), nil)
	got = recv.received()
	if n := len(got); n < 3 || got[n-1].header.Get("X-Vigil-Signature") == "" {
		t.Fatalf("after an update the secret is lost: %d requests, last signature %q", n, got[n-1].header.Get("X-Vigil-Signature"))
	}

	// Delete removes the channel and its log.
	p = admin.post(fmt.Sprintf("/notifications/%d/delete", id), nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", p.status, clip(p.body))
	}
	if _, err := s.st.Channel(context.Background(), id); err == nil {
		t.Fatal("the channel is still stored after delete")
	}
	wantPage(t, admin.get("/notifications"), http.StatusOK, "No notification channel yet")

	actions := map[string]int{}
	for _, e := range auditActions(t, s.st) {
		actions[e.Action]++
	}
	for act, n := range map[string]int{"channel.create": 1, "channel.update": 1, "channel.test": 3, "channel.delete": 1} {
		if actions[act] != n {
			t.Errorf("audit %s: %d entries, want %d (%v)", act, actions[act], n, actions)
		}
	}
}

func TestGovChannelFormErrorsNextToFields(t *testing.T) {
	s := newGovSite(t)
	admin := s.signIn("ada", api.RoleAdmin)
	cases := []struct {
		name, field string
		form        url.Values
		want        string
	}{
		{"no name", "webhook-name", url.Values{"kind": {"webhook"}, "url": {"http://127.0.0.1:9/h"}}, "name"},
		{"no url", "slack-url", url.Values{"kind": {"slack"}, "name": {"s"}}, "Required"},
		{"bad labels", "webhook-labels", url.Values{"kind": {"webhook"}, "name": {"w"}, "url": {"http://127.0.0.1:9/h"}, "labels": {"env"}}, "key=value"},
		{"bad scheme", "webhook-url", url.Values{"kind": {"webhook"}, "name": {"w"}, "url": {"ftp://127.0.0.1/h"}}, ""},
		{"no smtp host", "email-smtp_host", url.Values{"kind": {"email"}, "name": {"m"}, "from": {"vigil@example.org"}, "to": {"ops@example.org"}}, "Required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := admin.post("/notifications", tc.form)
			if p.status < 400 || p.status >= 500 {
				t.Fatalf("status %d, want 4xx\n%s", p.status, clip(p.body))
			}
			if msg := fieldError(p.body, tc.field); msg == "" || !strings.Contains(msg, tc.want) {
				t.Fatalf("message next to %s: %q, want one containing %q\n%s", tc.field, msg, tc.want, clip(p.body))
			}
		})
	}
	// A refused form never echoes a secret.
	p := admin.post("/notifications", url.Values{"kind": {"email"}, "name": {"m"}, "password": {"smtp-pass-secret"}, "from": {"a@example.org"}, "to": {"b@example.org"}})
	wantPage(t, p, http.StatusBadRequest, `value="a@example.org"`)
	wantAbsent(t, p, "smtp-pass-secret")
	if chs, _ := s.st.Channels(context.Background()); len(chs) != 0 {
		t.Fatalf("refused channels stored: %+v", chs)
	}
	// An unknown kind is refused above the forms.
	wantPage(t, admin.post("/notifications", url.Values{"kind": {"pager"}, "name": {"p"}}), http.StatusBadRequest, "Unknown channel kind")
}
