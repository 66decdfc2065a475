package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// syncBuffer is a log sink several delivery goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one Notifier over a real SQLite store and a real secrets box,
// logging at debug level into logs.
type env struct {
	st   *sqlite.Store
	box  *secrets.Box
	n    *Notifier
	logs *syncBuffer
	obs  *observed
}

type observed struct {
	mu  sync.Mutex
	got map[string][]bool
}

func (o *observed) observe(ch string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[ch] = append(o.got[ch], ok)
}

func (o *observed) of(ch string) []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]bool(nil), o.got[ch]...)
}

func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.LoadOrCreateKey(filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, box: box, logs: &syncBuffer{}, obs: &observed{got: map[string][]bool{}}}
	o := Options{
		Store:        st,
		Box:          box,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMax:     2,
		RetryWaitMin: 5 * time.Millisecond,
		RetryWaitMax: 20 * time.Millisecond,
		Timeout:      5 * time.Second,
		BaseURL:      "https://vigil.example.test",
		Observe:      e.obs.observe,
	}
	if edit != nil {
		edit(&o)
	}
	e.n, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// recorded is one request a receiver saw.
type recorded struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server on 127.0.0.1 answering the scripted
// statuses in turn (the last one repeats) and recording every request.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	statuses []int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	if len(statuses) == 0 {
		statuses = []int{http.StatusOK}
	}
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{header: req.Header.Clone(), body: body, at: time.Now()})
		i := min(len(r.reqs)-1, len(r.statuses)-1)
		status := r.statuses[i]
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// secretPath is the credential part of every test webhook URL; it must
// never show up outside the sealed secret.
const secretPath = "/services/T0001/B0002/xoxSECRETpathTOKEN42"

const hmacSecret = "hmac-Secret-Value-0123456789"

func (r *receiver) url() string { return r.srv.URL + secretPath + "?token=QUERYsecret99" }

func webhookInput(name, url string) ChannelInput {
	return ChannelInput{Name: name, Kind: KindWebhook, Settings: map[string]string{"url": url, "hmac_secret": hmacSecret}}
}

// assertNoSecret fails when any of the test secrets appears in s.
func assertNoSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{"xoxSECRETpathTOKEN42", "QUERYsecret99", hmacSecret, smtpPassword} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains secret %q:\n%s", where, secret, s)
		}
	}
}

func raise(t *testing.T, st store.Store, a store.Alert) store.Alert {
	t.Helper()
	if a.At.IsZero() {
		a.At = time.Now()
	}
	got, created, err := st.RaiseAlert(context.Background(), a)
	if err != nil || !created {
		t.Fatalf("raise alert %s: created %v, %v", a.Key, created, err)
	}
	return got
}

func sampleAlert() store.Alert {
	return store.Alert{
		Kind: "rule_failing", Key: "rule_failing/host/7/sshd_permit_root", Severity: "high",
		RuleID: "sshd_permit_root", Labels: map[string]string{"env": "prod", "team": "core"},
		Title: "sshd_permit_root started failing on web-1", Detail: `{"host":"web-1","rule":"sshd_permit_root"}`,
	}
}

func TestValidationNamesTheSetting(t *testing.T) {
	e := newEnv(t, nil)
	email := func(m map[string]string) map[string]string {
		s := map[string]string{"smtp_host": "127.0.0.1", "from": "vigil@example.test", "to": "ops@example.test"}
		for k, v := range m {
			s[k] = v
		}
		return s
	}
	cases := []struct {
		name  string
		in    ChannelInput
		field string
	}{
		{"no name", ChannelInput{Kind: KindSlack, Settings: map[string]string{"url": "https://h/x"}}, "name"},
		{"bad kind", ChannelInput{Name: "x", Kind: "pager"}, "kind"},
		{"no url", ChannelInput{Name: "x", Kind: KindWebhook}, "settings.url"},
		{"ftp url", ChannelInput{Name: "x", Kind: KindWebhook, Settings: map[string]string{"url": "ftp://h/x"}}, "settings.url"},
		{"not a url", ChannelInput{Name: "x", Kind: KindSlack, Settings: map[string]string{"url": "hooks.slack.com/x"}}, "settings.url"},
		{"metadata url", ChannelInput{Name: "x", Kind: KindWebhook, Settings: map[string]string{"url": "http://169.254.169.254/latest/meta-data/"}}, "settings.url"},
		{"link-local v6 url", ChannelInput{Name: "x", Kind: KindWebhook, Settings: map[string]string{"url": "http://[fe80::1]/hook"}}, "settings.url"},
		{"short hmac", ChannelInput{Name: "x", Kind: KindWebhook, Settings: map[string]string{"url": "https://h/x", "hmac_secret": "short"}}, "settings.hmac_secret"},
		{"unknown setting", ChannelInput{Name: "x", Kind: KindSlack, Settings: map[string]string{"url": "https://h/x", "channel": "#ops"}}, "settings.channel"},
		{"header injection", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"to": "a@example.test\r\nBcc: evil@example.test"})}, "settings.to"},
		{"no to", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"to": " , "})}, "settings.to"},
		{"bad to", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"to": "ops@example.test, not an address"})}, "settings.to"},
		{"no from", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"from": ""})}, "settings.from"},
		{"no host", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"smtp_host": ""})}, "settings.smtp_host"},
		{"bad port", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"smtp_port": "70000"})}, "settings.smtp_port"},
		{"plain remote", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"smtp_host": "mail.example.test", "starttls": "none"})}, "settings.starttls"},
		{"auth in clear", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"starttls": "none", "username": "u", "password": "p"})}, "settings.username"},
		{"password alone", ChannelInput{Name: "x", Kind: KindEmail, Settings: email(map[string]string{"password": "p"})}, "settings.username"},
		{"bad severity", ChannelInput{Name: "x", Kind: KindSlack, Settings: map[string]string{"url": "https://h/x"}, MinSeverity: "urgent"}, "min_severity"},
		{"bad alert kind", ChannelInput{Name: "x", Kind: KindSlack, Settings: map[string]string{"url": "https://h/x"}, Kinds: []string{"disk_full"}}, "kinds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.n.Create(context.Background(), c.in, "admin")
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Create: want *FieldError for %s, got %v", c.field, err)
			}
			if fe.Field != c.field {
				t.Fatalf("FieldError names %q (%v), want %q", fe.Field, fe, c.field)
			}
		})
	}
	if chans, err := e.st.Channels(context.Background()); err != nil || len(chans) != 0 {
		t.Fatalf("refused channels were stored: %d, %v", len(chans), err)
	}
	_, err := e.n.Create(context.Background(), ChannelInput{Name: "x", Kind: KindWebhook, Settings: map[string]string{"url": "ftp://h/x"}}, "admin")
	if err == nil || err.Error() != "settings.url: must be an http or https URL" {
		t.Fatalf("message: %v", err)
	}
}

func TestSecretsSealedMaskedAndKeptOnUpdate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	rcv := newReceiver(t)
	ch, err := e.n.Create(ctx, webhookInput("ops hook", rcv.url()), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.Create(ctx, webhookInput("ops hook", rcv.url()), "alice"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate name: want ErrConflict, got %v", err)
	}
	stored, err := e.st.Channel(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(stored.Config)
	assertNoSecret(t, "Channel.Config", string(cfg))
	assertNoSecret(t, "Channel.Secret", string(stored.Secret))
	if stored.CreatedBy != "alice" || !stored.Enabled || stored.MinSeverity != "low" {
		t.Fatalf("stored channel: %+v", stored)
	}
	// The sealed secret is bound to the channel's name.
	if _, err := e.box.Open(stored.Secret, []byte("channel:other")); err == nil {
		t.Fatal("secret opened under another channel's name")
	}

	v := e.n.View(stored)
	vj, _ := json.Marshal(v)
	assertNoSecret(t, "View", string(vj))
	if want := rcv.srv.URL + "/" + Mask; v.Settings["url"] != want {
		t.Fatalf("masked url %q, want %q", v.Settings["url"], want)
	}
	if v.Settings["hmac_secret"] != Mask {
		t.Fatalf("masked hmac %q", v.Settings["hmac_secret"])
	}
	if _, leaked := v.Settings[configURLHost]; leaked {
		t.Fatal("internal config key shown")
	}

	// Rename, sending the masked values back as a form would: secrets are
	// kept and re-sealed under the new name.
	off := false
	up, err := e.n.Update(ctx, ch.ID, ChannelInput{Name: "ops hook 2", Kind: KindWebhook, Enabled: &off,
		Settings: map[string]string{"url": v.Settings["url"], "hmac_secret": ""}, MinSeverity: "HIGH"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err = e.st.Channel(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Name != "ops hook 2" || stored.Enabled || stored.MinSeverity != "high" || up.CreatedBy != "alice" {
		t.Fatalf("updated channel: %+v", stored)
	}
	if _, err := e.box.Open(stored.Secret, []byte("channel:ops hook")); err == nil {
		t.Fatal("secret still sealed under the old name")
	}
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil || !d.OK {
		t.Fatalf("test after rename: %+v, %v", d, err)
	}
	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d requests", len(got))
	}
	if sig := got[0].header.Get("X-Vigil-Signature"); sig != Sign([]byte(hmacSecret), got[0].header.Get("X-Vigil-Timestamp"), got[0].body) {
		t.Fatalf("kept hmac secret not used: %q", sig)
	}
	// A new URL replaces the old one.
	rcv2 := newReceiver(t)
	if _, err := e.n.Update(ctx, ch.ID, ChannelInput{Name: "ops hook 2", Kind: KindWebhook, Settings: map[string]string{"url": rcv2.url()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.Test(ctx, ch.ID); err != nil {
		t.Fatal(err)
	}
	if len(rcv2.got()) != 1 || len(rcv.got()) != 1 {
		t.Fatalf("after url change: old %d, new %d requests", len(rcv.got()), len(rcv2.got()))
	}
	assertNoSecret(t, "logs", e.logs.String())
	ds, err := e.st.Deliveries(ctx, ch.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		assertNoSecret(t, "delivery status", d.Status)
	}
}

func TestMatches(t *testing.T) {
	a := sampleAlert() // high, rule_failing, env=prod team=core
	cases := []struct {
		name string
		ch   store.Channel
		want bool
	}{
		{"no filters", store.Channel{}, true},
		{"min low", store.Channel{MinSeverity: "low"}, true},
		{"min high", store.Channel{MinSeverity: "high"}, true},
		{"min critical", store.Channel{MinSeverity: "critical"}, false},
		{"label match", store.Channel{Labels: map[string]string{"env": "prod"}}, true},
		{"all labels", store.Channel{Labels: map[string]string{"env": "prod", "team": "core"}}, true},
		{"label value differs", store.Channel{Labels: map[string]string{"env": "dev"}}, false},
		{"label missing", store.Channel{Labels: map[string]string{"env": "prod", "region": "eu"}}, false},
		{"kind listed", store.Channel{Kinds: []string{"score_drop", "rule_failing"}}, true},
		{"kind not listed", store.Channel{Kinds: []string{"agent_offline"}}, false},
		{"all filters", store.Channel{MinSeverity: "medium", Labels: map[string]string{"team": "core"}, Kinds: []string{"rule_failing"}}, true},
	}
	for _, c := range cases {
		if got := Matches(c.ch, a); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
	low := a
	low.Severity = "low"
	if Matches(store.Channel{MinSeverity: "medium"}, low) {
		t.Error("low alert passed a medium channel")
	}
}

func TestNotifyFansOutDeadAndLive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	live := newReceiver(t)
	filtered := newReceiver(t)
	// A port nothing listens on: bind, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String() + secretPath
	l.Close()

	dead, err := e.n.Create(ctx, ChannelInput{Name: "dead", Kind: KindWebhook, Settings: map[string]string{"url": deadURL}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	liveCh, err := e.n.Create(ctx, ChannelInput{Name: "live", Kind: KindSlack, Settings: map[string]string{"url": live.url()}, Labels: map[string]string{"env": "prod"}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.Create(ctx, ChannelInput{Name: "critical only", Kind: KindSlack, Settings: map[string]string{"url": filtered.url()}, MinSeverity: "critical"}, "admin"); err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := e.n.Create(ctx, ChannelInput{Name: "disabled", Kind: KindSlack, Settings: map[string]string{"url": filtered.url()}, Enabled: &off}, "admin"); err != nil {
		t.Fatal(err)
	}

	a := raise(t, e.st, sampleAlert())
	e.n.Notify(ctx, EventOpened, a)

	if got := live.got(); len(got) != 1 {
		t.Fatalf("live channel received %d requests, want 1", len(got))
	}
	if got := filtered.got(); len(got) != 0 {
		t.Fatalf("filtered/disabled channels received %d requests", len(got))
	}
	ld, err := e.st.Deliveries(ctx, liveCh.ID, 0)
	if err != nil || len(ld) != 1 || !ld[0].OK || ld[0].Attempts != 1 || ld[0].AlertID != a.ID || ld[0].Event != EventOpened || ld[0].Status != "200 OK" {
		t.Fatalf("live deliveries: %+v, %v", ld, err)
	}
	dd, err := e.st.Deliveries(ctx, dead.ID, 0)
	if err != nil || len(dd) != 1 || dd[0].OK || dd[0].Attempts != 3 || dd[0].AlertID != a.ID {
		t.Fatalf("dead deliveries: %+v, %v", dd, err)
	}
	if !strings.Contains(dd[0].Status, "connection refused") {
		t.Errorf("dead status %q does not say why", dd[0].Status)
	}
	if o := e.obs.of("live"); len(o) != 1 || !o[0] {
		t.Errorf("observe live: %v", o)
	}
	if o := e.obs.of("dead"); len(o) != 1 || o[0] {
		t.Errorf("observe dead: %v", o)
	}
	all, err := e.st.Deliveries(ctx, 0, 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("all deliveries: %d, %v", len(all), err)
	}
	for _, d := range all {
		assertNoSecret(t, "delivery status", d.Status)
	}
	logs := e.logs.String()
	assertNoSecret(t, "logs", logs)
	if !strings.Contains(logs, "notification failed") || !strings.Contains(logs, "channel=dead") {
		t.Errorf("dead channel failure not logged:\n%s", logs)
	}
}

func TestNotifyCancelledReturns(t *testing.T) {
	e := newEnv(t, nil)
	// A receiver that never answers until the test ends.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ch, err := e.n.Create(context.Background(), ChannelInput{Name: "stuck", Kind: KindWebhook, Settings: map[string]string{"url": srv.URL + "/h"}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a := raise(t, e.st, sampleAlert())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { e.n.Notify(ctx, EventOpened, a); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Notify did not return after its context ended")
	}
	ds, err := e.st.Deliveries(context.Background(), ch.ID, 0)
	if err != nil || len(ds) != 1 || ds[0].OK {
		t.Fatalf("stuck delivery not recorded as failed: %+v, %v", ds, err)
	}
}
