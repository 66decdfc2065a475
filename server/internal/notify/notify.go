// Package notify delivers alert notifications to channels: a generic
// webhook (JSON, optional HMAC-SHA256 signature header), Slack (incoming
// webhook) and e-mail (SMTP with STARTTLS). HTTP goes through
// hashicorp/go-retryablehttp with bounded retries; outbound connections to
// link-local and cloud metadata addresses are refused unless allowed.
// Channel secrets are sealed before they reach the store.
package notify

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// The channel kinds.
const (
	KindWebhook = "webhook"
	KindSlack   = "slack"
	KindEmail   = "email"
)

// The delivery events.
const (
	EventOpened   = "opened"
	EventResolved = "resolved"
	EventTest     = "test"
	// EventDigest is one message standing for many events: an evaluation
	// that sends a channel more than Options.DigestOver events sends it one
	// digest instead. Its delivery row has AlertID 0.
	EventDigest = "digest"
)

// Event is one alert event to send: Name is EventOpened or EventResolved.
type Event struct {
	Name  string
	Alert store.Alert
}

// Defaults of the storm and failing-channel settings.
const (
	DefaultDigestOver  = 10
	DefaultCooldown    = 5 * time.Minute
	DefaultCooldownMax = time.Hour
)

// Box seals and opens channel secrets (secrets.Box).
type Box interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Options configure a Notifier.
type Options struct {
	Store  store.Store
	Box    Box
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// AllowNets lists networks outbound delivery may reach even though
	// they are link-local or metadata addresses (refused by default).
	AllowNets []netip.Prefix
	// RetryMax is how many times a failed HTTP delivery is retried (0: 3);
	// RetryWaitMin/Max bound the backoff (0: 500 ms / 5 s); Timeout bounds
	// one attempt (0: 10 s).
	RetryMax     int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	Timeout      time.Duration
	// RootCAs verifies HTTPS and SMTP STARTTLS peers; nil: the system pool.
	RootCAs *x509.CertPool
	// BaseURL is the UI's address, for links in messages ("" : no links).
	BaseURL string
	// Observe is told about every delivery (channel name, success),
	// skipped ones (failing channel) included as failures; nil ok.
	Observe func(channel string, ok bool)
	// DigestOver is how many events one NotifyAll may send a channel one
	// by one (0: DefaultDigestOver); above it the channel gets one digest
	// message, so that the first scan of a fleet does not flood it.
	DigestOver int
	// Cooldown is how long a channel whose last breakerAfter (3)
	// deliveries failed is not attempted (0: DefaultCooldown); it doubles
	// while the channel keeps failing, up to CooldownMax (0:
	// DefaultCooldownMax). A dead receiver then costs one retry series per
	// cooldown instead of one per alert.
	Cooldown    time.Duration
	CooldownMax time.Duration
}

// ChannelInput is a channel as an operator writes it. Settings holds
// every setting, secret or not, by kind:
//   - webhook: url (secret), hmac_secret (secret, optional)
//   - slack:   url (secret)
//   - email:   smtp_host, smtp_port (default 587), from, to (comma-separated),
//     username, password (secret), starttls ("required" default, or "none"
//     only for loopback relays)
type ChannelInput struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Settings    map[string]string `json:"settings"`
	MinSeverity string            `json:"min_severity"` // "": low
	Labels      map[string]string `json:"labels"`
	Kinds       []string          `json:"kinds"`
	Enabled     *bool             `json:"enabled"` // nil: true
}

// FieldError is a channel setting refused, naming it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ChannelView is a channel as the API and UI show it: secrets masked.
type ChannelView struct {
	ID          int64             `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Settings    map[string]string `json:"settings"` // secrets shown as "••••" plus the URL's host
	MinSeverity string            `json:"min_severity"`
	Labels      map[string]string `json:"labels,omitempty"`
	Kinds       []string          `json:"kinds,omitempty"`
	Enabled     bool              `json:"enabled"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
}

// parallel bounds how many channels NotifyAll delivers to at once.
const parallel = 4

// Notifier sends alert notifications. It is safe for concurrent use.
type Notifier struct {
	o    Options
	http *http.Client
	helo string   // EHLO name: this machine's host name
	br   *breaker // per channel, in memory: this process's view of failing channels
}

// New returns a Notifier; Store and Box are required.
func New(o Options) (*Notifier, error) {
	if o.Store == nil || o.Box == nil {
		return nil, errors.New("notify: Options.Store and Options.Box are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 3
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 500 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 5 * time.Second
	}
	o.RetryWaitMax = max(o.RetryWaitMax, o.RetryWaitMin)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DigestOver <= 0 {
		o.DigestOver = DefaultDigestOver
	}
	if o.Cooldown <= 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.CooldownMax <= 0 {
		o.CooldownMax = DefaultCooldownMax
	}
	o.CooldownMax = max(o.CooldownMax, o.Cooldown)
	allow := make([]netip.Prefix, len(o.AllowNets))
	for i, p := range o.AllowNets {
		if !p.IsValid() {
			return nil, fmt.Errorf("notify: allow_networks[%d] is not a valid network", i)
		}
		allow[i] = p.Masked()
	}
	o.AllowNets = allow
	helo, err := os.Hostname()
	if err != nil || !validHostname(helo) {
		helo = "localhost"
	}
	return &Notifier{o: o, http: newHTTPClient(o), helo: helo, br: newBreaker(o.Cooldown, o.CooldownMax)}, nil
}

// Create validates in, seals its secrets and stores the channel. A refused
// setting is a *FieldError; a duplicate name is the store's ErrConflict.
func (n *Notifier) Create(ctx context.Context, in ChannelInput, by string) (store.Channel, error) {
	v, err := validate(in, nil, nil, n.o.AllowNets)
	if err != nil {
		return store.Channel{}, err
	}
	sealed, err := n.seal(v.name, v.secrets)
	if err != nil {
		return store.Channel{}, err
	}
	ch, err := n.o.Store.CreateChannel(ctx, store.Channel{
		Name: v.name, Kind: v.kind, Config: v.config, Secret: sealed,
		MinSeverity: v.minSeverity, Labels: v.labels, Kinds: v.kinds, Enabled: v.enabled,
		CreatedBy: by, CreatedAt: n.o.Now().UTC(),
	})
	if err != nil {
		return store.Channel{}, fmt.Errorf("create channel %q: %w", v.name, err)
	}
	return ch, nil
}

// Update validates in and replaces channel id; a secret setting left empty
// (or sent back masked, as View shows it) keeps its stored value. Secrets
// are re-sealed under the new name.
func (n *Notifier) Update(ctx context.Context, id int64, in ChannelInput) (store.Channel, error) {
	old, err := n.o.Store.Channel(ctx, id)
	if err != nil {
		return store.Channel{}, fmt.Errorf("channel %d: %w", id, err)
	}
	oldSecrets, err := n.open(old)
	if err != nil {
		return store.Channel{}, err
	}
	v, err := validate(in, oldSecrets, old.Config, n.o.AllowNets)
	if err != nil {
		return store.Channel{}, err
	}
	sealed, err := n.seal(v.name, v.secrets)
	if err != nil {
		return store.Channel{}, err
	}
	ch := store.Channel{
		ID: id, Name: v.name, Kind: v.kind, Config: v.config, Secret: sealed,
		MinSeverity: v.minSeverity, Labels: v.labels, Kinds: v.kinds, Enabled: v.enabled,
		CreatedBy: old.CreatedBy, CreatedAt: old.CreatedAt,
	}
	if err := n.o.Store.UpdateChannel(ctx, ch); err != nil {
		return store.Channel{}, fmt.Errorf("update channel %d %q: %w", id, v.name, err)
	}
	return ch, nil
}

// View masks a stored channel for display: a secret URL shows as its
// scheme and host followed by "/••••", other secrets as "••••". It never
// opens the sealed secret.
func (n *Notifier) View(ch store.Channel) ChannelView { return view(ch) }

// Test sends a test message to channel id at once (enabled or not, filters
// ignored) and records the delivery. It is always attempted, even while
// the channel's breaker is open, and a success closes the breaker. A
// failed send is not an error: the returned Delivery says what happened.
// Errors are for a missing channel or a delivery that could not be
// recorded.
func (n *Notifier) Test(ctx context.Context, id int64) (store.Delivery, error) {
	ch, err := n.o.Store.Channel(ctx, id)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("channel %d: %w", id, err)
	}
	return n.deliver(ctx, ch, message{event: EventTest, alert: testAlert(ch, n.o.Now())}, false)
}

// Notify sends one event (opened, resolved) about alert a, as NotifyAll
// does for a batch of one.
func (n *Notifier) Notify(ctx context.Context, event string, a store.Alert) {
	n.NotifyAll(ctx, []Event{{Name: event, Alert: a}})
}

// NotifyAll sends events, in order, to every enabled channel whose filters
// match each, recording each delivery. A channel matching more than
// Options.DigestOver of them gets one digest message instead. A channel
// whose breaker is open is not attempted: its deliveries are recorded as
// skipped. One failing channel never stops the others; it is logged and
// recorded. Channels are served concurrently (at most `parallel` at once),
// each channel's deliveries in order, and each delivery is bounded by a
// timeout derived from the retry settings, so NotifyAll always returns.
func (n *Notifier) NotifyAll(ctx context.Context, events []Event) {
	if len(events) == 0 {
		return
	}
	defer n.recoverPanic(ctx, "notify")
	chans, err := n.o.Store.Channels(ctx)
	if err != nil {
		n.o.Logger.ErrorContext(ctx, "notification channels unavailable; alerts not sent",
			"events", len(events), "first_alert_id", events[0].Alert.ID, "err", err)
		return
	}
	ids := make(map[int64]bool, len(chans))
	for _, ch := range chans {
		ids[ch.ID] = true
	}
	n.br.keep(ids)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, ch := range chans {
		if !ch.Enabled {
			continue
		}
		msgs := n.messages(ch, events)
		if len(msgs) == 0 {
			continue
		}
		wg.Go(func() {
			defer n.recoverPanic(ctx, "notify channel "+ch.Name)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for _, m := range msgs {
					_, _ = n.record(ctx, ch, m, time.Now(), result{status: "not sent: " + ctx.Err().Error(), err: ctx.Err()})
				}
				return
			}
			defer func() { <-sem }()
			for _, m := range msgs {
				_, _ = n.deliver(ctx, ch, m, true)
			}
		})
	}
	wg.Wait()
}

// message is what one delivery sends: one alert event, or a digest of
// several (event EventDigest, batch set, alert zero).
type message struct {
	event string
	alert store.Alert
	batch []Event
}

// messages returns what channel ch is sent for events: one message per
// matching event, or one digest when more than DigestOver match.
func (n *Notifier) messages(ch store.Channel, events []Event) []message {
	var mine []Event
	for _, e := range events {
		if Matches(ch, e.Alert) {
			mine = append(mine, e)
		}
	}
	if len(mine) > n.o.DigestOver {
		return []message{{event: EventDigest, batch: mine}}
	}
	out := make([]message, len(mine))
	for i, e := range mine {
		out[i] = message{event: e.Name, alert: e.Alert}
	}
	return out
}

// budget bounds one delivery to a channel, retries included.
func (n *Notifier) budget(kind string) time.Duration {
	if kind == KindEmail {
		return 2*n.o.Timeout + 5*time.Second
	}
	r := time.Duration(n.o.RetryMax)
	return (r+1)*n.o.Timeout + r*n.o.RetryWaitMax + 5*time.Second
}

// deliver sends m to ch and records the delivery. guarded deliveries go
// through the channel's breaker: skipped while it is open, a trial when
// its cooldown has ended. Every real attempt's outcome feeds the breaker,
// except a failure caused by ctx ending, which says nothing about the
// channel.
func (n *Notifier) deliver(ctx context.Context, ch store.Channel, m message, guarded bool) (store.Delivery, error) {
	trial := false
	if guarded {
		var skip string
		trial, skip = n.br.admit(ch.ID, n.o.Now())
		if skip != "" {
			return n.record(ctx, ch, m, time.Now(), result{status: skip, skipped: true, err: errors.New(skip)})
		}
	}
	start := time.Now()
	r := n.send(ctx, ch, m)
	if r.ok || ctx.Err() == nil {
		if opened, until := n.br.done(ch.ID, n.o.Now(), r.ok, trial); opened {
			n.o.Logger.WarnContext(ctx, "notification channel failing; deliveries paused",
				"channel", ch.Name, "next_attempt_after", until.UTC().Format(time.RFC3339))
		}
	}
	return n.record(ctx, ch, m, start, r)
}

// send renders and sends; it turns a panic into a failed result.
func (n *Notifier) send(ctx context.Context, ch store.Channel, m message) (r result) {
	defer func() {
		if p := recover(); p != nil {
			n.o.Logger.ErrorContext(ctx, "notification delivery panicked", "channel", ch.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r = result{status: "internal error", err: fmt.Errorf("panic: %v", p)}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, n.budget(ch.Kind))
	defer cancel()
	secrets, err := n.open(ch)
	if err != nil {
		return result{status: "channel secret unreadable", err: err}
	}
	now := n.o.Now()
	digest := m.event == EventDigest
	switch ch.Kind {
	case KindWebhook:
		var body []byte
		if digest {
			body, err = n.digestWebhookPayload(m.batch, now)
		} else {
			body, err = n.webhookPayload(m.event, m.alert, now)
		}
		if err != nil {
			return result{status: "encode payload failed", err: err}
		}
		return n.sendWebhook(ctx, secrets, m.event, body, now)
	case KindSlack:
		var body []byte
		if digest {
			body, err = n.digestSlackPayload(m.batch)
		} else {
			body, err = n.slackPayload(m.event, m.alert)
		}
		if err != nil {
			return result{status: "encode payload failed", err: err}
		}
		return n.sendSlack(ctx, secrets, body)
	case KindEmail:
		subject, text := "[Vigil] "+headline(m.event, m.alert), ""
		if digest {
			subject, text = n.digestEmail(m.batch)
		} else {
			text = n.emailText(m.event, m.alert)
		}
		return n.sendEmail(ctx, ch.Config, secrets, subject, text, now)
	}
	return result{status: "unknown channel kind " + ch.Kind, err: fmt.Errorf("channel %q: unknown kind %q", ch.Name, ch.Kind)}
}

// record appends the delivery log row, tells Observe and logs the outcome
// (with the receiver's host only, never a URL).
func (n *Notifier) record(ctx context.Context, ch store.Channel, m message, start time.Time, r result) (store.Delivery, error) {
	d := store.Delivery{
		ChannelID: ch.ID, AlertID: m.alert.ID, Event: m.event,
		At: n.o.Now().UTC().Add(-time.Since(start)), OK: r.ok,
		Attempts: r.attempts, Status: r.status, Duration: time.Since(start),
	}
	if n.o.Observe != nil {
		n.o.Observe(ch.Name, r.ok)
	}
	attrs := []any{"channel", ch.Name, "kind", ch.Kind, "event", m.event, "alert_id", m.alert.ID,
		"attempts", r.attempts, "status", r.status, "duration", d.Duration.Round(time.Millisecond)}
	if m.batch != nil {
		attrs = append(attrs, "alerts", len(m.batch))
	}
	if h := ch.Config[configURLHost]; h != "" {
		attrs = append(attrs, "host", urlHost(h))
	} else if h := ch.Config["smtp_host"]; h != "" {
		attrs = append(attrs, "host", h)
	}
	switch {
	case r.ok:
		n.o.Logger.InfoContext(ctx, "notification delivered", attrs...)
	case r.skipped:
		n.o.Logger.InfoContext(ctx, "notification skipped: channel failing", attrs...)
	default:
		n.o.Logger.WarnContext(ctx, "notification failed", append(attrs, "err", r.err)...)
	}
	// The row is written even when ctx was cancelled (shutdown), so the
	// log shows what happened.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	saved, err := n.o.Store.AppendDelivery(sctx, d)
	if err != nil {
		n.o.Logger.ErrorContext(ctx, "recording notification delivery failed", "channel", ch.Name, "err", err)
		return d, fmt.Errorf("record delivery to channel %q: %w", ch.Name, err)
	}
	return saved, nil
}

func (n *Notifier) recoverPanic(ctx context.Context, what string) {
	if p := recover(); p != nil {
		n.o.Logger.ErrorContext(ctx, "notification panic", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	}
}
