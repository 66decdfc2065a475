package governance

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// hook is a live webhook receiver on 127.0.0.1 recording every request.
type hook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []hookReq
}

type hookReq struct {
	event string
	body  []byte
}

func newHook(t testing.TB) *hook {
	t.Helper()
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		h.mu.Lock()
		h.reqs = append(h.reqs, hookReq{event: r.Header.Get("X-Vigil-Event"), body: body})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// deadURL is a webhook URL on a 127.0.0.1 port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/hook"
	l.Close()
	return u
}

// withNotifier replaces e's service by one whose sink is a real notifier
// over e's store, and returns the notifier.
func (e *env) withNotifier(t testing.TB, edit func(*notify.Options)) *notify.Notifier {
	t.Helper()
	box, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	o := notify.Options{Store: e.st, Box: box, Now: e.clk.Now, RetryMax: 2,
		RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&o)
	}
	n, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := New(Config{Store: e.st, Posture: e.post, Sink: n, Now: e.clk.Now, SightingRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.gov = gov
	e.post.SetWaivers(gov)
	return n
}

func (e *env) channel(t testing.TB, n *notify.Notifier, name, url string) store.Channel {
	t.Helper()
	ch, err := n.Create(context.Background(), notify.ChannelInput{Name: name, Kind: notify.KindWebhook, Settings: map[string]string{"url": url}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// poorHosts creates n hosts in band poor (band_drop, medium) and, of
// them, the last `critical` in band critical (band_drop, critical).
func (e *env) poorHosts(t testing.TB, n, critical int) []store.Host {
	t.Helper()
	hosts := make([]store.Host, n)
	for i := range hosts {
		h, err := e.st.UpsertHost(context.Background(), store.Host{Name: fmt.Sprintf("h%03d", i), Address: "127.0.0.2", OS: "debian 12"})
		if err != nil {
			t.Fatal(err)
		}
		score, band := 40.0, posture.BandPoor
		if i >= n-critical {
			score, band = 10, posture.BandCritical
		}
		if err := e.st.SetHostPosture(context.Background(), h.ID, e.clk.Now(), score, string(band)); err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
	}
	return hosts
}

func sortedDeliveries(t testing.TB, st store.Store, id int64) []store.Delivery {
	t.Helper()
	ds, err := st.Deliveries(context.Background(), id, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ds, func(a, b store.Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return ds
}

// TestEvaluateSendsOneBatch: the sink is handed one batch per evaluation,
// whatever the number of events.
func TestEvaluateSendsOneBatch(t *testing.T) {
	e := newEnv(t, openSQLite(t), loadCorpus(t), Thresholds{})
	e.poorHosts(t, 12, 2)
	e.evaluate(t)
	if c, evs := e.sink.calls(), e.sink.take(); c != 1 || len(evs) != 12 {
		t.Fatalf("sink called %d times with %d events, want once with 12", c, len(evs))
	}
	e.clk.Add(time.Minute)
	e.evaluate(t) // nothing new: the sink is not called
	if c := e.sink.calls(); c != 1 {
		t.Fatalf("sink called for an evaluation without events (%d calls)", c)
	}
}

// TestEvaluateStormIsOneDigest: 50 alerts opened in one evaluation reach a
// live webhook as one digest with the right counts; 5 resolved in the next
// arrive one by one.
func TestEvaluateStormIsOneDigest(t *testing.T) {
	e := newEnv(t, openSQLite(t), loadCorpus(t), Thresholds{})
	n := e.withNotifier(t, nil)
	live := newHook(t)
	ch := e.channel(t, n, "live", live.srv.URL+"/hook")
	hosts := e.poorHosts(t, 50, 5)

	if s := e.evaluate(t); s.Raised != 50 {
		t.Fatalf("raised %d, want 50", s.Raised)
	}
	got := live.got()
	if len(got) != 1 || got[0].event != notify.EventDigest {
		t.Fatalf("receiver got %d requests (first %+v), want one digest", len(got), got)
	}
	var body struct {
		Event  string `json:"event"`
		Digest struct {
			Total, Opened, Resolved, More int
			BySeverity                    map[string]map[string]int `json:"by_severity"`
			ByKind                        map[string]map[string]int `json:"by_kind"`
			Alerts                        []struct {
				Event string `json:"event"`
				Alert struct {
					ID       int64  `json:"id"`
					Key      string `json:"key"`
					Severity string `json:"severity"`
				} `json:"alert"`
			} `json:"alerts"`
		} `json:"digest"`
	}
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatalf("digest body %s: %v", got[0].body, err)
	}
	d := body.Digest
	if body.Event != "digest" || d.Total != 50 || d.Opened != 50 || d.Resolved != 0 || d.More != 0 || len(d.Alerts) != 50 {
		t.Fatalf("digest %+v", d)
	}
	if sev := d.BySeverity["opened"]; len(sev) != 2 || sev["medium"] != 45 || sev["critical"] != 5 {
		t.Errorf("by_severity %v, want opened medium 45, critical 5", d.BySeverity)
	}
	if k := d.ByKind["opened"]; len(k) != 1 || k[KindBandDrop] != 50 {
		t.Errorf("by_kind %v", d.ByKind)
	}
	keys := map[string]bool{}
	for _, a := range d.Alerts {
		if a.Event != "opened" || a.Alert.ID == 0 || !strings.HasPrefix(a.Alert.Key, "band_drop/host/") {
			t.Errorf("digest item %+v", a)
		}
		keys[a.Alert.Key] = true
	}
	if len(keys) != 50 {
		t.Errorf("digest lists %d distinct alerts, want 50", len(keys))
	}
	if ds := sortedDeliveries(t, e.st, ch.ID); len(ds) != 1 || !ds[0].OK || ds[0].Event != notify.EventDigest || ds[0].AlertID != 0 {
		t.Errorf("deliveries %+v, want one digest", ds)
	}

	// Five hosts recover: five resolutions, one message each.
	for _, h := range hosts[:5] {
		if err := e.st.SetHostPosture(context.Background(), h.ID, e.clk.Now(), 95, string(posture.BandExcellent)); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(time.Minute)
	if s := e.evaluate(t); s.Resolved != 5 {
		t.Fatalf("resolved %d, want 5", s.Resolved)
	}
	got = live.got()[1:]
	if len(got) != 5 {
		t.Fatalf("receiver got %d more requests, want 5", len(got))
	}
	for i, r := range got {
		if r.event != notify.EventResolved {
			t.Errorf("request %d: event %q, want resolved", i, r.event)
		}
	}
}

// TestEvaluateDeadChannelBeside a live one: the evaluation of 50 alerts
// sent one by one makes three attempt series on the dead channel, records
// the rest as skipped, and makes every live delivery.
func TestEvaluateDeadChannel(t *testing.T) {
	e := newEnv(t, openSQLite(t), loadCorpus(t), Thresholds{})
	n := e.withNotifier(t, func(o *notify.Options) { o.DigestOver = 100 })
	live := newHook(t)
	liveCh := e.channel(t, n, "live", live.srv.URL+"/hook")
	deadCh := e.channel(t, n, "dead", deadURL(t))
	e.poorHosts(t, 50, 0)

	if s := e.evaluate(t); s.Raised != 50 {
		t.Fatalf("raised %d, want 50", s.Raised)
	}
	if got := live.got(); len(got) != 50 {
		t.Fatalf("live receiver got %d requests, want 50", len(got))
	}
	ld := sortedDeliveries(t, e.st, liveCh.ID)
	if len(ld) != 50 {
		t.Fatalf("%d live deliveries, want 50", len(ld))
	}
	for _, d := range ld {
		if !d.OK || d.Attempts != 1 {
			t.Fatalf("live delivery %+v", d)
		}
	}
	dd := sortedDeliveries(t, e.st, deadCh.ID)
	if len(dd) != 50 {
		t.Fatalf("%d dead deliveries, want 50", len(dd))
	}
	real := 0
	for i, d := range dd {
		if d.OK {
			t.Fatalf("dead delivery %d succeeded: %+v", i, d)
		}
		if d.Attempts > 0 {
			real++
			if !strings.Contains(d.Status, "connection refused") {
				t.Errorf("dead delivery %d status %q", i, d.Status)
			}
		} else if !strings.HasPrefix(d.Status, "skipped: channel failing since ") || !strings.Contains(d.Status, "; next attempt after ") {
			t.Errorf("dead delivery %d status %q", i, d.Status)
		}
	}
	if real != 3 || dd[0].Attempts != 3 || dd[2].Attempts != 3 {
		t.Fatalf("%d real attempt series on the dead channel, want the first 3", real)
	}
}

// BenchmarkEvaluateDeadChannel measures an evaluation opening 200 alerts
// with a dead webhook (closed port) beside a live one, with the production
// retry settings (3 retries, 0.5..5 s backoff): as one digest per channel
// (the default), and one by one (DigestOver above 200), where the breaker
// stops the dead channel after three series. Without either, each alert
// cost the dead channel one whole series, one after the other. Run with
// -benchtime=1x; it reports the dead channel's real attempt series and the
// mean duration of one.
func BenchmarkEvaluateDeadChannel(b *testing.B) {
	for _, bc := range []struct {
		name       string
		digestOver int
	}{{"digest", 0}, {"one_by_one", 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			x := loadCorpus(b)
			for range b.N {
				b.StopTimer()
				e := newBenchEnv(b, x)
				n := e.withNotifier(b, func(o *notify.Options) {
					o.DigestOver = bc.digestOver
					o.RetryMax, o.RetryWaitMin, o.RetryWaitMax, o.Timeout = 0, 0, 0, 0 // production defaults
				})
				live := newHook(b)
				e.channel(b, n, "live", live.srv.URL+"/hook")
				dead := e.channel(b, n, "dead", deadURL(b))
				e.poorHosts(b, 200, 20)
				b.StartTimer()
				if _, err := e.gov.Evaluate(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				series, spent := 0, time.Duration(0)
				for _, d := range sortedDeliveries(b, e.st, dead.ID) {
					if d.Attempts > 0 {
						series++
						spent += d.Duration
					}
				}
				b.ReportMetric(float64(series), "dead-series/op")
				if series > 0 {
					b.ReportMetric((spent / time.Duration(series)).Seconds(), "s/dead-series")
				}
			}
		})
	}
}

// newBenchEnv is newEnv for benchmarks: a fresh SQLite store, the test
// clock and a posture service; withNotifier adds the service.
func newBenchEnv(b *testing.B, x *posture.Index) *env {
	b.Helper()
	st := openSQLite(b)
	e := &env{st: st, x: x, clk: &clock{t: base()}, sink: &recorder{}}
	e.post = posture.NewService(st, x, e.clk.Now)
	return e
}
