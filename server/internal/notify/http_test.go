package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWebhookBodyAndSignature(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	rcv := newReceiver(t)
	ch, err := e.n.Create(ctx, webhookInput("hook", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	a := raise(t, e.st, sampleAlert())
	e.n.Notify(ctx, EventOpened, a)

	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d requests", len(got))
	}
	h, body := got[0].header, got[0].body
	for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "vigil-server", "X-Vigil-Event": "opened"} {
		if h.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	ts := h.Get("X-Vigil-Timestamp")
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		t.Fatalf("X-Vigil-Timestamp %q: %v", ts, err)
	}
	// Verify the signature independently of Sign.
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write([]byte(ts + "." + string(body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); h.Get("X-Vigil-Signature") != want {
		t.Fatalf("X-Vigil-Signature %q, want %q", h.Get("X-Vigil-Signature"), want)
	}

	var msg struct {
		Event  string `json:"event"`
		SentAt string `json:"sent_at"`
		Alert  map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if msg.Event != "opened" {
		t.Errorf("event %q", msg.Event)
	}
	if _, err := time.Parse(time.RFC3339, msg.SentAt); err != nil {
		t.Errorf("sent_at %q: %v", msg.SentAt, err)
	}
	for _, k := range []string{"id", "kind", "key", "severity", "state", "title", "detail", "host_id", "rule_id", "agent_id", "exception_id", "labels", "opened_at", "last_seen_at", "count", "url"} {
		if _, ok := msg.Alert[k]; !ok {
			t.Errorf("alert.%s missing from %s", k, body)
		}
	}
	var detail map[string]string
	if err := json.Unmarshal(msg.Alert["detail"], &detail); err != nil || detail["host"] != "web-1" {
		t.Errorf("detail is not the object: %s, %v", msg.Alert["detail"], err)
	}
	var labels map[string]string
	_ = json.Unmarshal(msg.Alert["labels"], &labels)
	if labels["env"] != "prod" {
		t.Errorf("labels %s", msg.Alert["labels"])
	}
	if want := `"https://vigil.example.test/alerts/` + strconv.FormatInt(a.ID, 10) + `"`; string(msg.Alert["url"]) != want {
		t.Errorf("url %s, want %s", msg.Alert["url"], want)
	}
	if string(msg.Alert["id"]) != strconv.FormatInt(a.ID, 10) || string(msg.Alert["severity"]) != `"high"` || string(msg.Alert["count"]) != "1" {
		t.Errorf("alert fields: %s", body)
	}

	// The test message is recorded with event test and no alert.
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil || !d.OK || d.Event != EventTest || d.AlertID != 0 || d.Attempts != 1 {
		t.Fatalf("test delivery %+v, %v", d, err)
	}
	if got := rcv.got(); len(got) != 2 || got[1].header.Get("X-Vigil-Event") != "test" {
		t.Fatalf("test message not received")
	}
	assertNoSecret(t, "logs", e.logs.String())
}

func TestSlackBody(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	rcv := newReceiver(t)
	if _, err := e.n.Create(ctx, ChannelInput{Name: "slack", Kind: KindSlack, Settings: map[string]string{"url": rcv.url()}}, "admin"); err != nil {
		t.Fatal(err)
	}
	al := sampleAlert()
	al.Title = "a <b> & c failing"
	a := raise(t, e.st, al)
	e.n.Notify(ctx, EventResolved, a)
	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d requests", len(got))
	}
	if got[0].header.Get("Content-Type") != "application/json" || got[0].header.Get("X-Vigil-Signature") != "" {
		t.Errorf("headers %v", got[0].header)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Fields []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"fields"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(got[0].body, &msg); err != nil {
		t.Fatalf("%s: %v", got[0].body, err)
	}
	if !strings.HasPrefix(msg.Text, "HIGH resolved: a &lt;b&gt; &amp; c failing") {
		t.Errorf("text %q", msg.Text)
	}
	if len(msg.Blocks) < 2 || msg.Blocks[0].Type != "header" || msg.Blocks[0].Text.Type != "plain_text" || msg.Blocks[0].Text.Text != "HIGH resolved: a <b> & c failing" {
		t.Fatalf("blocks %s", got[0].body)
	}
	if msg.Blocks[1].Type != "section" || len(msg.Blocks[1].Fields) == 0 || !strings.Contains(string(got[0].body), "sshd_permit_root") {
		t.Errorf("facts section %s", got[0].body)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	e := newEnv(t, nil)
	rcv := newReceiver(t, http.StatusServiceUnavailable, http.StatusOK)
	ch, err := e.n.Create(context.Background(), webhookInput("flaky", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(context.Background(), ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !d.OK || d.Attempts != 2 || d.Status != "200 OK" {
		t.Fatalf("delivery %+v, want ok after 2 attempts", d)
	}
	got := rcv.got()
	if len(got) != 2 {
		t.Fatalf("receiver saw %d requests", len(got))
	}
	if string(got[0].body) != string(got[1].body) {
		t.Error("retry sent a different body")
	}
	if !strings.Contains(e.logs.String(), "notification retry") {
		t.Error("retry not logged at debug")
	}
	assertNoSecret(t, "logs", e.logs.String())
}

func TestNoRetryOn4xx(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusFound} {
		e := newEnv(t, nil)
		rcv := newReceiver(t, status, http.StatusOK)
		ch, err := e.n.Create(context.Background(), webhookInput("strict", rcv.url()), "admin")
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.n.Test(context.Background(), ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.OK || d.Attempts != 1 || !strings.HasPrefix(d.Status, strconv.Itoa(status)) || len(rcv.got()) != 1 {
			t.Fatalf("status %d: delivery %+v, %d requests; want one failed attempt", status, d, len(rcv.got()))
		}
	}
}

func TestRetryOn429(t *testing.T) {
	e := newEnv(t, nil)
	rcv := newReceiver(t, http.StatusTooManyRequests, http.StatusNoContent)
	ch, err := e.n.Create(context.Background(), webhookInput("limited", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(context.Background(), ch.ID)
	if err != nil || !d.OK || d.Attempts != 2 {
		t.Fatalf("delivery %+v, %v", d, err)
	}
}

func TestRetriesBounded(t *testing.T) {
	e := newEnv(t, nil) // RetryMax 2
	rcv := newReceiver(t, http.StatusInternalServerError)
	ch, err := e.n.Create(context.Background(), webhookInput("down", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.n.Test(context.Background(), ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := rcv.got()
	if d.OK || d.Attempts != 3 || len(got) != 3 || d.Status != "500 Internal Server Error" {
		t.Fatalf("delivery %+v, %d requests; want 3 failed attempts", d, len(got))
	}
	stored, err := e.st.Deliveries(context.Background(), ch.ID, 0)
	if err != nil || len(stored) != 1 || stored[0].OK || stored[0].Attempts != 3 {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	for i := 1; i < len(got); i++ {
		t.Logf("measured wait before attempt %d: %v (bounds 5ms..20ms)", i+1, got[i].at.Sub(got[i-1].at))
	}
}

func TestBackoffBounds(t *testing.T) {
	lo, hi := 500*time.Millisecond, 5*time.Second
	for attempt := 0; attempt < 40; attempt++ {
		for i := 0; i < 50; i++ {
			w := Backoff(lo, hi, attempt, nil)
			if w < lo || w > hi {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, w, lo, hi)
			}
			if attempt == 0 && w != lo {
				t.Fatalf("first retry waits %v, want %v", w, lo)
			}
		}
	}
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}}
	if w := Backoff(lo, hi, 0, resp); w != hi {
		t.Fatalf("Retry-After 3600 gave %v, want capped to %v", w, hi)
	}
	resp.Header.Set("Retry-After", "2")
	if w := Backoff(lo, hi, 0, resp); w != 2*time.Second {
		t.Fatalf("Retry-After 2 gave %v", w)
	}
}

func TestGuardRefusesWithoutConnecting(t *testing.T) {
	e := newEnv(t, nil)
	for u, addr := range map[string]string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/": "169.254.169.254",
		"http://169.254.10.20:8080" + secretPath:                            "169.254.10.20",
		"http://[fe80::1]:80/hook":                                          "fe80::1",
		"http://[fd00:ec2::254]/latest":                                     "fd00:ec2::254",
		"http://100.100.100.200/latest/meta-data":                           "100.100.100.200",
		"http://0.0.0.0:9/x":                                                "0.0.0.0",
		"http://224.0.0.1/x":                                                "224.0.0.1",
	} {
		r := e.n.post(context.Background(), u, []byte("{}"), http.Header{})
		// The refusal comes from Control, before connect(2): a GuardError,
		// not a timeout or "network unreachable" from a packet sent.
		var ge *GuardError
		if r.ok || !errors.As(r.err, &ge) || ge.Addr.String() != addr {
			t.Fatalf("%s: want GuardError for %s, got %+v", u, addr, r)
		}
		if r.attempts != 1 {
			t.Errorf("%s: %d attempts; a refused address must not be retried", u, r.attempts)
		}
		if !strings.Contains(r.status, "allow_networks") || !strings.Contains(r.status, "outbound connection to") {
			t.Errorf("%s: status %q does not name the address and how to allow it", u, r.status)
		}
		if strings.Contains(r.status, "xoxSECRETpathTOKEN42") {
			t.Errorf("status leaks the URL: %q", r.status)
		}
	}
}

func TestCheckAddrAndDialControl(t *testing.T) {
	allowLL := []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}
	cases := []struct {
		addr   string
		allow  []netip.Prefix
		reason string // "" allowed
	}{
		{"127.0.0.1", nil, ""},
		{"127.9.9.9", nil, ""},
		{"::1", nil, ""},
		{"10.1.2.3", nil, ""},
		{"192.168.1.10", nil, ""},
		{"172.16.0.5", nil, ""},
		{"fd12:3456::1", nil, ""},
		{"100.100.100.201", nil, ""},
		{"8.8.8.8", nil, ""},
		{"169.254.169.254", nil, "cloud metadata"},
		{"::ffff:169.254.169.254", nil, "cloud metadata"},
		{"fd00:ec2::254", nil, "cloud metadata"},
		{"100.100.100.200", nil, "cloud metadata"},
		{"169.254.1.1", nil, "link-local"},
		{"fe80::1", nil, "link-local"},
		{"0.0.0.0", nil, "unspecified"},
		{"::", nil, "unspecified"},
		{"239.1.1.1", nil, "multicast"},
		{"ff02::1", nil, "multicast"},
		{"169.254.1.1", allowLL, ""},
		{"169.254.169.254", allowLL, ""},
		{"169.254.169.254", []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}, ""},
		{"fe80::1", allowLL, "link-local"},
	}
	for _, c := range cases {
		err := CheckAddr(netip.MustParseAddr(c.addr), c.allow)
		var ge *GuardError
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%s (allow %v): refused: %v", c.addr, c.allow, err)
		case c.reason != "" && (!errors.As(err, &ge) || ge.Reason != c.reason):
			t.Errorf("%s (allow %v): got %v, want refusal %q", c.addr, c.allow, err, c.reason)
		}
		// The dialer's Control sees "ip:port" as the kernel will connect.
		ctlErr := DialControl(c.allow)("tcp", netip.AddrPortFrom(netip.MustParseAddr(c.addr), 443).String(), nil)
		if (ctlErr == nil) != (err == nil) {
			t.Errorf("%s: DialControl %v disagrees with CheckAddr %v", c.addr, ctlErr, err)
		}
	}
	if err := DialControl(nil)("tcp", "not-an-address", nil); err == nil {
		t.Error("DialControl accepted an unparsable address")
	}
	err := CheckAddr(netip.MustParseAddr("169.254.169.254"), nil)
	if !strings.Contains(err.Error(), "169.254.169.254") || !strings.Contains(err.Error(), "notifications.allow_networks") {
		t.Errorf("message %q must name the address and the setting", err)
	}
}

func TestAllowNetsLetsChannelThrough(t *testing.T) {
	// Validation refuses a link-local URL unless AllowNets contains it.
	e := newEnv(t, func(o *Options) { o.AllowNets = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")} })
	if _, err := e.n.Create(context.Background(), ChannelInput{Name: "ll", Kind: KindWebhook, Settings: map[string]string{"url": "http://169.254.10.20/hook"}}, "admin"); err != nil {
		t.Fatalf("allowed network refused: %v", err)
	}
	// And the client's dialer is the guarded one with that allow list.
	tr := e.n.http.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Error("HTTP transport uses a proxy; the guard would see the proxy's address")
	}
	if _, err := New(Options{Store: e.st, Box: e.box, AllowNets: []netip.Prefix{{}}}); err == nil {
		t.Error("invalid AllowNets accepted")
	}
}
