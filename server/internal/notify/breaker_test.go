package notify

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// answer makes the receiver answer status to every further request.
func (r *receiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = []int{status}
}

// events raises n alerts (keys distinct by prefix) and returns them as
// opened events, in order.
func events(t *testing.T, st store.Store, prefix string, n int) []Event {
	t.Helper()
	out := make([]Event, n)
	for i := range out {
		a := sampleAlert()
		a.Key = fmt.Sprintf("%s/%d", prefix, i)
		a.Title = fmt.Sprintf("%s alert %d", prefix, i)
		out[i] = Event{Name: EventOpened, Alert: raise(t, st, a)}
	}
	return out
}

// deliveries returns channel id's delivery log in the order written.
func deliveries(t *testing.T, st store.Store, id int64) []store.Delivery {
	t.Helper()
	ds, err := st.Deliveries(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ds, func(a, b store.Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return ds
}

// skipStatus is the status a skipped delivery records.
func skipStatus(since, until time.Time) string {
	return "skipped: channel failing since " + since.UTC().Format(time.RFC3339) + "; next attempt after " + until.UTC().Format(time.RFC3339)
}

// TestBreakerOpensHalfOpensAndCloses walks one channel through the breaker
// on an injected clock: three failed deliveries open it (no further
// requests, skipped rows with the reason), the first delivery after the
// cooldown is a real attempt whose failure doubles the cooldown, and a
// successful trial closes it.
func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &testClock{t: t0}
	e := newEnv(t, func(o *Options) { o.Now = clk.Now; o.Cooldown = 5 * time.Minute; o.CooldownMax = 15 * time.Minute })
	rcv := newReceiver(t, http.StatusInternalServerError) // RetryMax 2: 3 requests per delivery
	ch, err := e.n.Create(ctx, webhookInput("flaky", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, "storm", 12)

	e.n.NotifyAll(ctx, evs[:5]) // 5 <= DigestOver: one by one
	if got := len(rcv.got()); got != 9 {
		t.Fatalf("receiver saw %d requests, want 3 deliveries x 3 attempts = 9", got)
	}
	ds := deliveries(t, e.st, ch.ID)
	if len(ds) != 5 {
		t.Fatalf("%d deliveries recorded, want 5", len(ds))
	}
	for i, d := range ds {
		if d.OK || d.AlertID != evs[i].Alert.ID || d.Event != EventOpened {
			t.Errorf("delivery %d: %+v", i, d)
		}
		if i < 3 && (d.Attempts != 3 || d.Status != "500 Internal Server Error") {
			t.Errorf("delivery %d not a real attempt series: %+v", i, d)
		}
		if want := skipStatus(t0, t0.Add(5*time.Minute)); i >= 3 && (d.Attempts != 0 || d.Status != want) {
			t.Errorf("delivery %d: attempts %d status %q, want 0 and %q", i, d.Attempts, d.Status, want)
		}
	}
	if o := e.obs.of("flaky"); len(o) != 5 || o[0] || o[4] {
		t.Errorf("observe: %v, want 5 failures (skipped ones count)", o)
	}
	if !strings.Contains(e.logs.String(), "deliveries paused") {
		t.Errorf("opening the breaker was not logged:\n%s", e.logs.String())
	}

	// Within the cooldown: skipped.
	clk.Set(t0.Add(4 * time.Minute))
	e.n.NotifyAll(ctx, evs[5:6])
	if got := len(rcv.got()); got != 9 {
		t.Fatalf("a delivery was attempted during the cooldown: %d requests", got)
	}

	// Cooldown over: one real attempt (half-open); it fails, the cooldown
	// doubles to 10 minutes, and the next delivery is skipped again.
	t1 := t0.Add(5*time.Minute + time.Second)
	clk.Set(t1)
	e.n.NotifyAll(ctx, evs[6:8])
	if got := len(rcv.got()); got != 12 {
		t.Fatalf("half-open: receiver saw %d requests, want 12 (one more series)", got)
	}
	ds = deliveries(t, e.st, ch.ID)
	if d := ds[6]; d.Attempts != 3 || d.OK {
		t.Errorf("trial delivery %+v, want a real failed series", d)
	}
	if d, want := ds[7], skipStatus(t0, t1.Add(10*time.Minute)); d.Status != want {
		t.Errorf("after the failed trial: status %q, want %q", d.Status, want)
	}

	// The cooldown doubles at most to CooldownMax.
	t2 := t1.Add(10*time.Minute + time.Second)
	clk.Set(t2)
	e.n.NotifyAll(ctx, evs[8:10])
	ds = deliveries(t, e.st, ch.ID)
	if d, want := ds[9], skipStatus(t0, t2.Add(15*time.Minute)); d.Status != want {
		t.Errorf("capped cooldown: status %q, want %q", d.Status, want)
	}

	// The receiver recovers; the next trial succeeds and closes the
	// breaker: the delivery after it is attempted at once.
	rcv.answer(http.StatusOK)
	clk.Set(t2.Add(15*time.Minute + time.Second))
	before := len(rcv.got())
	e.n.NotifyAll(ctx, evs[10:12])
	if got := len(rcv.got()) - before; got != 2 {
		t.Fatalf("after recovery: %d requests, want 2 (trial and next)", got)
	}
	ds = deliveries(t, e.st, ch.ID)
	if len(ds) != 12 || !ds[10].OK || !ds[11].OK || ds[11].Attempts != 1 {
		t.Fatalf("after recovery: %+v", ds[10:])
	}
}

// TestTestBypassesBreaker: "send test" is attempted while the breaker is
// open, and its success closes the breaker.
func TestTestBypassesBreaker(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &testClock{t: t0}
	e := newEnv(t, func(o *Options) { o.Now = clk.Now })
	rcv := newReceiver(t, http.StatusBadGateway)
	ch, err := e.n.Create(ctx, webhookInput("hook", rcv.url()), "admin")
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, "bypass", 6)
	e.n.NotifyAll(ctx, evs[:4]) // three failures open it; the fourth is skipped
	if ds := deliveries(t, e.st, ch.ID); len(ds) != 4 || !strings.HasPrefix(ds[3].Status, "skipped: ") {
		t.Fatalf("breaker did not open: %+v", ds)
	}

	// A failing test is attempted for real and moves no deadline.
	before := len(rcv.got())
	d, err := e.n.Test(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.OK || d.Attempts != 3 || len(rcv.got())-before != 3 {
		t.Fatalf("failing test while open: %+v, %d requests", d, len(rcv.got())-before)
	}
	e.n.NotifyAll(ctx, evs[4:5])
	if ds := deliveries(t, e.st, ch.ID); ds[5].Status != skipStatus(t0, t0.Add(DefaultCooldown)) {
		t.Fatalf("after a failed test: %q", ds[5].Status)
	}

	// A successful test closes it, well within the cooldown.
	rcv.answer(http.StatusNoContent)
	d, err = e.n.Test(ctx, ch.ID)
	if err != nil || !d.OK || d.Event != EventTest {
		t.Fatalf("test: %+v, %v", d, err)
	}
	before = len(rcv.got())
	e.n.NotifyAll(ctx, evs[5:6])
	ds := deliveries(t, e.st, ch.ID)
	if last := ds[len(ds)-1]; !last.OK || last.Attempts != 1 || len(rcv.got())-before != 1 {
		t.Fatalf("after a successful test the breaker is still open: %+v", last)
	}
}

// TestBreakerIgnoresCancelledDeliveries: deliveries cut short by the
// caller's context (an evaluation's deadline) say nothing about the
// channel and do not open its breaker.
func TestBreakerIgnoresCancelledDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	var stall atomic.Bool
	stall.Store(true)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		if stall.Load() {
			select {
			case <-r.Context().Done(): // the client gave up
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ch, err := e.n.Create(context.Background(), webhookInput("slow", srv.URL+"/h"), "admin")
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, "cancel", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	e.n.NotifyAll(ctx, evs)
	ds := deliveries(t, e.st, ch.ID)
	if len(ds) != 4 {
		t.Fatalf("%d deliveries recorded, want 4", len(ds))
	}
	for _, d := range ds {
		if d.OK || strings.HasPrefix(d.Status, "skipped") {
			t.Errorf("cancelled delivery %+v", d)
		}
	}
	stall.Store(false)
	e.n.NotifyAll(context.Background(), evs[:1])
	if ds := deliveries(t, e.st, ch.ID); len(ds) != 5 || !ds[4].OK {
		t.Fatalf("after cancelled deliveries the channel is not attempted: %+v", ds[len(ds)-1])
	}
}
