package notify

import (
	"context"
	"encoding/json"
	"mime"
	"net/mail"
	"strings"
	"testing"
)

// TestDigestSlackAndEmail: over DigestOver events a Slack channel gets one
// message with the counts and the first 20 titles, an e-mail channel one
// mail with the summary subject; each is one "digest" delivery with
// AlertID 0.
func TestDigestSlackAndEmail(t *testing.T) {
	ctx := context.Background()
	cert, pool := selfSigned(t)
	smtp := newSMTPServer(t, cert, true)
	e := newEnv(t, func(o *Options) { o.RootCAs = pool })
	slack := newReceiver(t)
	sch, err := e.n.Create(ctx, ChannelInput{Name: "slack", Kind: KindSlack, Settings: map[string]string{"url": slack.url()}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	mch, err := e.n.Create(ctx, emailInput(smtp.port(), nil), "admin")
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, "digest", 41)
	for i := 37; i < 41; i++ {
		evs[i].Name = EventResolved
	}
	e.n.NotifyAll(ctx, evs)

	got := slack.got()
	if len(got) != 1 {
		t.Fatalf("slack received %d messages, want one digest", len(got))
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string `json:"type"`
			Text     *struct{ Text string }
			Fields   []struct{ Text string }
			Elements []struct{ Text string }
		} `json:"blocks"`
	}
	if err := json.Unmarshal(got[0].body, &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "37 alerts opened, 4 resolved") {
		t.Errorf("slack text %q", msg.Text)
	}
	raw := string(got[0].body)
	if !strings.Contains(raw, "digest alert 19") || strings.Contains(raw, "digest alert 20") {
		t.Errorf("slack digest does not list exactly the first 20 titles:\n%s", raw)
	}
	if !strings.Contains(raw, "high 37") || !strings.Contains(raw, "rule_failing 37") || !strings.Contains(raw, "and 21 more") {
		t.Errorf("slack digest lacks counts or the rest:\n%s", raw)
	}

	data := smtp.snapshot().data
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("mail does not parse: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != "[Vigil] 37 alerts opened, 4 resolved" {
		t.Errorf("subject %q, %v", subject, err)
	}
	for _, id := range []int64{sch.ID, mch.ID} {
		ds := deliveries(t, e.st, id)
		if len(ds) != 1 || !ds[0].OK || ds[0].Event != EventDigest || ds[0].AlertID != 0 {
			t.Errorf("channel %d deliveries %+v, want one digest", id, ds)
		}
	}
}

// TestDigestThreshold: exactly DigestOver events still go one by one.
func TestDigestThreshold(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.DigestOver = 3 })
	rcv := newReceiver(t)
	if _, err := e.n.Create(ctx, webhookInput("hook", rcv.url()), "admin"); err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, "edge", 4)
	e.n.NotifyAll(ctx, evs[:3])
	e.n.NotifyAll(ctx, evs)
	got := rcv.got()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 3 single messages and 1 digest", len(got))
	}
	for i, r := range got {
		want := EventOpened
		if i == 3 {
			want = EventDigest
		}
		if ev := r.header.Get("X-Vigil-Event"); ev != want {
			t.Errorf("request %d: X-Vigil-Event %q, want %q", i, ev, want)
		}
	}
}
