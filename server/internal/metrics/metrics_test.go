package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

func TestHandlerAccess(t *testing.T) {
	m := New()
	cases := []struct {
		name, token, remote, auth string
		code                      int
	}{
		{"token missing", "s3cret", "127.0.0.1:5000", "", 401},
		{"token wrong", "s3cret", "127.0.0.1:5000", "Bearer nope", 401},
		{"token right, remote client", "s3cret", "192.0.2.7:5000", "Bearer s3cret", 200},
		{"no token, loopback", "", "127.0.0.1:5000", "", 200},
		{"no token, ipv6 loopback", "", "[::1]:5000", "", 200},
		{"no token, remote client", "", "192.0.2.7:5000", "", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = tc.remote
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			m.Handler(tc.token, nil).ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d", rec.Code, tc.code)
			}
			if tc.code == 200 && !strings.Contains(rec.Body.String(), `vigil_alerts{state="active"} 0`) {
				t.Fatalf("zero-valued alert family missing:\n%s", rec.Body)
			}
		})
	}
}

// TestStoreCountsScanLife drives a real SQLite store through the wrapper:
// the scan, ingest and store-latency families follow, and the fleet
// gauges read the store at scrape time.
func TestStoreCountsScanLife(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	m := New()
	m.RegisterFleet(raw, nil, nil)
	st := m.WrapStore(raw)
	if err := st.Ready(ctx); err != nil {
		t.Fatalf("Ready on a migrated store: %v", err)
	}
	h, err := st.UpsertHost(ctx, store.Host{Name: "h1", Address: "127.0.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-3 * time.Second)
	sc, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "manual", Status: store.ScanRunning, StartedAt: start})
	if err != nil {
		t.Fatal(err)
	}
	rs := []result.Result{
		{RuleID: "r1", Status: result.Pass, Severity: rule.Severity("low"), Time: start},
		{RuleID: "r2", Status: result.Fail, Severity: rule.Severity("high"), Time: start},
	}
	for range 2 { // the replay must not count twice
		if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: rs}); err != nil {
			t.Fatal(err)
		}
	}
	// The fleet gauges are read now and cached for 15 s.
	if body := scrape(t, m); !strings.Contains(body, "vigil_scans_running 1\n") || !strings.Contains(body, `vigil_scans_queued 1`) {
		t.Fatalf("fleet gauges while scanning:\n%s", body)
	}
	if err := st.FinishScan(ctx, sc.ID, store.ScanCompleted, time.Now(), result.Summarize(rs)); err != nil {
		t.Fatal(err)
	}
	sc2, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "manual", Status: store.ScanRunning, StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FailScan(ctx, sc2.ID, time.Now(), "unreachable"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"results_ingested": 2,
		"started":          2,
		"completed":        1,
		"failed":           1,
	} {
		var got float64
		switch name {
		case "results_ingested":
			got = testutil.ToFloat64(m.resultsIngested)
		case "started":
			got = testutil.ToFloat64(m.scansStarted)
		default:
			got = testutil.ToFloat64(m.scansEnded.WithLabelValues(name))
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.scanDuration); n != 2 {
		t.Errorf("scan duration series %d, want 2 (completed, failed)", n)
	}
	if n := testutil.CollectAndCount(m.storeLatency); n < 5 {
		t.Errorf("store latency series %d, want one per method used", n)
	}
	body := scrape(t, m)
	for _, want := range []string{`vigil_hosts{band="none"} 1`, `vigil_store_query_duration_seconds_count{method="UpsertHost"} 1`,
		`vigil_ingest_duration_seconds_count 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// scrape fetches /metrics from a loopback address.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:1"
	m.Handler("", nil).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
