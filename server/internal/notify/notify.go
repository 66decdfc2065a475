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
	// Observe is told about every delivery (channel name, success); nil ok.
	Observe func(channel string, ok bool)
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

// parallel bounds how many channels Notify delivers to at once.
const parallel = 4

// Notifier sends alert notifications. It is safe for concurrent use.
type Notifier struct {
	o    Options
	http *http.Client
	helo string // EHLO name: this machine's host name
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
	return &Notifier{o: o, http: newHTTPClient(o), helo: helo}, nil
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
// ignored) and records the delivery. A failed send is not an error: the
// returned Delivery says what happened. Errors are for a missing channel
// or a delivery that could not be recorded.
func (n *Notifier) Test(ctx context.Context, id int64) (store.Delivery, error) {
	ch, err := n.o.Store.Channel(ctx, id)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("channel %d: %w", id, err)
	}
	return n.deliver(ctx, ch, EventTest, testAlert(ch, n.o.Now()))
}

// Notify sends event (opened, resolved) about alert a to every enabled
// channel whose filters match, recording each delivery. One failing
// channel never stops the others; it is logged and recorded. At most
// `parallel` channels are served at once and each delivery is bounded by a
// timeout derived from the retry settings, so Notify always returns.
func (n *Notifier) Notify(ctx context.Context, event string, a store.Alert) {
	defer n.recoverPanic(ctx, "notify")
	chans, err := n.o.Store.Channels(ctx)
	if err != nil {
		n.o.Logger.ErrorContext(ctx, "notification channels unavailable; alert not sent",
			"event", event, "alert_id", a.ID, "err", err)
		return
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, ch := range chans {
		if !ch.Enabled || !Matches(ch, a) {
			continue
		}
		wg.Go(func() {
			defer n.recoverPanic(ctx, "notify channel "+ch.Name)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				_, _ = n.record(ctx, ch, event, a, time.Now(), result{status: "not sent: " + ctx.Err().Error(), err: ctx.Err()})
				return
			}
			defer func() { <-sem }()
			_, _ = n.deliver(ctx, ch, event, a)
		})
	}
	wg.Wait()
}

// budget bounds one delivery to a channel, retries included.
func (n *Notifier) budget(kind string) time.Duration {
	if kind == KindEmail {
		return 2*n.o.Timeout + 5*time.Second
	}
	r := time.Duration(n.o.RetryMax)
	return (r+1)*n.o.Timeout + r*n.o.RetryWaitMax + 5*time.Second
}

// deliver sends one message to ch and records the delivery.
func (n *Notifier) deliver(ctx context.Context, ch store.Channel, event string, a store.Alert) (store.Delivery, error) {
	start := time.Now()
	r := n.send(ctx, ch, event, a)
	return n.record(ctx, ch, event, a, start, r)
}

// send renders and sends; it turns a panic into a failed result.
func (n *Notifier) send(ctx context.Context, ch store.Channel, event string, a store.Alert) (r result) {
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
	switch ch.Kind {
	case KindWebhook:
		body, err := n.webhookPayload(event, a, now)
		if err != nil {
			return result{status: "encode payload failed", err: err}
		}
		return n.sendWebhook(ctx, secrets, event, body, now)
	case KindSlack:
		body, err := n.slackPayload(event, a)
		if err != nil {
			return result{status: "encode payload failed", err: err}
		}
		return n.sendSlack(ctx, secrets, body)
	case KindEmail:
		return n.sendEmail(ctx, ch.Config, secrets, "[Vigil] "+headline(event, a), n.emailText(event, a), now)
	}
	return result{status: "unknown channel kind " + ch.Kind, err: fmt.Errorf("channel %q: unknown kind %q", ch.Name, ch.Kind)}
}

// record appends the delivery log row, tells Observe and logs the outcome
// (with the receiver's host only, never a URL).
func (n *Notifier) record(ctx context.Context, ch store.Channel, event string, a store.Alert, start time.Time, r result) (store.Delivery, error) {
	d := store.Delivery{
		ChannelID: ch.ID, AlertID: a.ID, Event: event,
		At: n.o.Now().UTC().Add(-time.Since(start)), OK: r.ok,
		Attempts: r.attempts, Status: r.status, Duration: time.Since(start),
	}
	if n.o.Observe != nil {
		n.o.Observe(ch.Name, r.ok)
	}
	attrs := []any{"channel", ch.Name, "kind", ch.Kind, "event", event, "alert_id", a.ID,
		"attempts", r.attempts, "status", r.status, "duration", d.Duration.Round(time.Millisecond)}
	if h := ch.Config[configURLHost]; h != "" {
		attrs = append(attrs, "host", urlHost(h))
	} else if h := ch.Config["smtp_host"]; h != "" {
		attrs = append(attrs, "host", h)
	}
	if r.ok {
		n.o.Logger.InfoContext(ctx, "notification delivered", attrs...)
	} else {
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
