package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/testtarget"
)

// loginAs signs in as username and returns the session token.
func (s *server) loginAs(t *testing.T, username, password string) string {
	t.Helper()
	var r struct{ Token string }
	if code := s.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": password}, &r); code != 200 || r.Token == "" {
		t.Fatalf("login %s: %d", username, code)
	}
	return r.Token
}

// download GETs path with token and saves the body under dir.
func (s *server) download(t *testing.T, path, token, file string) (http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return resp.Header, b
}

// TestGovernanceEndToEnd drives issue 7's contract through the real
// binary: a real agentless scan of a real sshd target opens rule_failing
// alerts that reach a real webhook receiver with a valid HMAC; an operator
// requests an exception, may not approve it, a security admin approves;
// posture then shows the raw and the accepted score, the finding is
// "failed, accepted", its alert resolves with a "resolved" notification;
// every export format downloads, `vigil-server verify` accepts it with the
// data directory's key and with the published public key, and refuses a
// changed copy; the audit log names who did what.
func TestGovernanceEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	dir := t.TempDir()
	setupAdmin(t, dir)
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("alerts:\n  interval: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recv := newWebhookReceiver(t)
	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	s := opsServer(t, dir, nil, nil, "--config", cfg)
	admin := s.login(t)

	const hmacKey = "e2e-hmac-secret-0123456789"
	var ch struct {
		ID       int64             `json:"id"`
		Settings map[string]string `json:"settings"`
	}
	if code := s.call(t, "POST", "/api/v1/notification-channels", admin, map[string]any{
		"name": "soc-webhook", "kind": "webhook", "min_severity": "high",
		"settings": map[string]string{"url": recv.srv.URL + "/hook", "hmac_secret": hmacKey},
	}, &ch); code != 201 || ch.ID == 0 {
		t.Fatalf("create channel: %d %+v", code, ch)
	}
	for k, v := range ch.Settings {
		if strings.Contains(v, hmacKey) || strings.Contains(v, "/hook") {
			t.Fatalf("channel response shows secret setting %s = %q", k, v)
		}
	}

	for _, u := range []struct{ name, role string }{{"olivia", "operator"}, {"sam", "security_admin"}} {
		if code := s.call(t, "POST", "/api/v1/users", admin, map[string]string{"username": u.name, "password": adminPassword, "role": u.role}, nil); code != 201 {
			t.Fatalf("create user %s: %d", u.name, code)
		}
	}
	op, sec := s.loginAs(t, "olivia", adminPassword), s.loginAs(t, "sam", adminPassword)

	hostID := addTarget(t, s, admin, tgt)
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", hostID), admin, nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	waitScan(t, s, admin, hostID)

	// A critical or high rule failing on the fresh target opens an alert
	// that reaches the receiver, signed with the channel's HMAC key.
	hit, opened := recv.wait(t, 90*time.Second, "opening a rule_failing alert", func(a webhookAlert) bool {
		return a.Event == "opened" && a.Alert.Kind == "rule_failing" && a.Alert.HostID == hostID
	})
	if hit.event != "opened" && hit.event != "digest" {
		t.Fatalf("X-Vigil-Event = %q, want opened or digest", hit.event)
	}
	if want := hit.wantSignature(hmacKey); hit.signature != want {
		t.Fatalf("X-Vigil-Signature = %q, want %q", hit.signature, want)
	}
	rule := opened.Alert.RuleID
	if opened.Alert.Severity != "critical" && opened.Alert.Severity != "high" {
		t.Fatalf("alert severity %q passed a min_severity=high channel", opened.Alert.Severity)
	}
	var alerts struct {
		Alerts []struct {
			ID     int64  `json:"id"`
			Key    string `json:"key"`
			State  string `json:"state"`
			RuleID string `json:"rule_id"`
		} `json:"alerts"`
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/alerts?kind=rule_failing&host=%d", hostID), op, nil, &alerts); code != 200 {
		t.Fatalf("list alerts: %d", code)
	}
	keys := map[string]int{}
	for _, a := range alerts.Alerts {
		keys[a.Key]++
	}
	for k, n := range keys {
		if n > 1 {
			t.Fatalf("alert key %s listed %d times: deduplication broken", k, n)
		}
	}
	if keys[opened.Alert.Key] != 1 {
		t.Fatalf("notified alert %s not listed: %+v", opened.Alert.Key, alerts.Alerts)
	}

	// The operator asks for an exception and cannot approve it; the
	// security admin can.
	var exc struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	expires := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")
	if code := s.call(t, "POST", "/api/v1/exceptions", op, map[string]any{"host_id": hostID, "rule_id": rule,
		"justification": "Lab target for the end-to-end test; accepted for 30 days", "expires_at": expires}, &exc); code != 201 || exc.State != "requested" {
		t.Fatalf("request exception: %d %+v", code, exc)
	}
	var refusal struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/exceptions/%d/approve", exc.ID), op, map[string]string{}, &refusal); code != 403 || refusal.Error.Code != "forbidden" {
		t.Fatalf("operator approving (no exceptions.decide): %d %q, want 403 forbidden", code, refusal.Error.Code)
	}
	// A security admin may decide, but never on their own request.
	var own struct {
		ID int64 `json:"id"`
	}
	if code := s.call(t, "POST", "/api/v1/exceptions", sec, map[string]any{"host_id": hostID, "rule_id": rule,
		"justification": "Security admin asking for the same acceptance"}, &own); code != 201 {
		t.Fatalf("security admin request: %d", code)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/exceptions/%d/approve", own.ID), sec, map[string]string{}, &refusal); code != 403 || refusal.Error.Code != "self_approval" {
		t.Fatalf("self-approval: %d %q, want 403 self_approval", code, refusal.Error.Code)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/exceptions/%d/reject", own.ID), admin, map[string]string{"note": "duplicate"}, nil); code != 200 {
		t.Fatalf("admin rejecting: %d", code)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/exceptions/%d/approve", exc.ID), sec, map[string]string{"note": "risk owner sign-off"}, &exc); code != 200 || exc.State != "approved" {
		t.Fatalf("approve: %d %+v", code, exc)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/exceptions/%d/approve", exc.ID), sec, map[string]string{}, nil); code != 409 {
		t.Fatalf("approving twice: %d, want 409", code)
	}

	// Raw results stay; posture reports both figures.
	var findings struct {
		Findings []struct {
			RuleID      string `json:"rule_id"`
			Status      string `json:"status"`
			Accepted    bool   `json:"accepted"`
			ExceptionID int64  `json:"exception_id"`
		} `json:"findings"`
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/findings?rule=%s", hostID, rule), op, nil, &findings); code != 200 || len(findings.Findings) != 1 {
		t.Fatalf("findings of %s: %d %+v", rule, code, findings)
	}
	if f := findings.Findings[0]; f.Status != "fail" || !f.Accepted || f.ExceptionID != exc.ID {
		t.Fatalf("finding under exception = %+v, want status fail, accepted, exception %d", f, exc.ID)
	}
	var post struct {
		Hosts []struct {
			Score               float64 `json:"score"`
			ScoreWithExceptions float64 `json:"score_with_exceptions"`
			Counts              struct {
				Fail     int `json:"fail"`
				Accepted int `json:"accepted"`
			} `json:"counts"`
		} `json:"hosts"`
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/posture?host=%d", hostID), op, nil, &post); code != 200 || len(post.Hosts) != 1 {
		t.Fatalf("posture: %d %+v", code, post)
	}
	if hp := post.Hosts[0]; hp.Counts.Accepted != 1 || hp.ScoreWithExceptions <= hp.Score {
		t.Fatalf("host posture %+v: want 1 accepted failure and a higher score with exceptions", hp)
	}

	// The accepted failure's alert clears on the next evaluation.
	recv.wait(t, 60*time.Second, "resolving the accepted rule's alert", func(a webhookAlert) bool {
		return a.Event == "resolved" && a.Alert.Key == opened.Alert.Key
	})

	// Exports: every format, verified with the server's key and offline
	// with the published public key; a changed byte is caught.
	pub := filepath.Join(t.TempDir(), "export.pub")
	if code, body := s.get(t, "/api/v1/export/public-key", op); code != 200 || !strings.Contains(body, "PUBLIC KEY") {
		t.Fatalf("public key: %d %q", code, body)
	} else if err := os.WriteFile(pub, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, f := range []string{"json", "csv", "pdf", "arf", "oscal"} {
		file := filepath.Join(out, "host."+f)
		hdr, body := s.download(t, fmt.Sprintf("/api/v1/hosts/%d/export?format=%s", hostID, f), sec, file)
		if hdr.Get("X-Vigil-Export-SHA256") == "" || !strings.Contains(hdr.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s export headers: %v", f, hdr)
		}
		if f == "pdf" && !strings.HasPrefix(string(body), "%PDF-") {
			t.Errorf("pdf export does not start with %%PDF-: %q", body[:min(len(body), 20)])
		}
		if f != "pdf" && !strings.Contains(string(body), rule) { // PDF text is in compressed streams
			t.Errorf("%s export does not mention the accepted rule %s", f, rule)
		}
		if o, err := vs(t, "", "verify", "--data-dir", dir, file); err != nil || !strings.HasPrefix(o, "OK ") {
			t.Errorf("verify %s with the data dir: %v %s", f, err, o)
		}
		if o, err := vs(t, "", "verify", "--public-key", pub, file); err != nil || !strings.HasPrefix(o, "OK ") {
			t.Errorf("verify %s with the public key: %v %s", f, err, o)
		}
		// Flip one byte of the report outside the signature and expect a
		// refusal.
		changed := append([]byte(nil), body...)
		i := len(changed) / 2
		if sig := strings.Index(string(changed), "vigil-sig:v1:"); sig < 0 {
			t.Fatalf("%s export carries no signature token", f)
		} else if i >= sig && i < sig+300 {
			i = sig + 300
		}
		changed[i] ^= 0x01
		bad := filepath.Join(out, "changed."+f)
		if err := os.WriteFile(bad, changed, 0o600); err != nil {
			t.Fatal(err)
		}
		if o, err := vs(t, "", "verify", "--public-key", pub, bad); err == nil || strings.HasPrefix(o, "OK ") {
			t.Errorf("verify accepted a changed %s export: %s", f, o)
		}
	}
	if code := s.call(t, "GET", "/api/v1/export?format=csv", op, nil, nil); code != 200 {
		t.Errorf("fleet export as operator: %d", code)
	}

	// The audit log names who requested, approved and exported.
	for _, want := range []struct{ action, actor string }{
		{"exception.request", "olivia"}, {"exception.approve", "sam"}, {"export.create", "sam"}, {"channel.create", "admin"},
	} {
		var audit struct {
			Entries []struct {
				Actor  string `json:"actor"`
				Target string `json:"target"`
			} `json:"entries"`
		}
		if code := s.call(t, "GET", "/api/v1/audit?action="+want.action, admin, nil, &audit); code != 200 {
			t.Fatalf("audit %s: %d", want.action, code)
		}
		found := false
		for _, e := range audit.Entries {
			found = found || e.Actor == want.actor
		}
		if !found {
			t.Errorf("no %s audit entry by %s: %+v", want.action, want.actor, audit.Entries)
		}
	}
}
