package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkCountsAtScale measures the posture?at= query over synthetic
// history (SeedHistory: 1,000 hosts x 300 rules x 90 days) at random past
// moments, for all rules and for a 120-rule subset (one framework), and
// reports latency percentiles and the Go heap in use.
func BenchmarkCountsAtScale(b *testing.B) {
	ctx := context.Background()
	s := open(b).(*Store)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const hosts, rules, days = 1000, 300, 90
	t0 := time.Now()
	if err := SeedHistory(ctx, s, hosts, rules, days, end); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM transitions`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d transitions in %s", n, time.Since(t0).Round(time.Millisecond))
	var subset []string
	for r := 1; r <= 120; r++ {
		subset = append(subset, fmt.Sprintf("rule_%04d", r*2))
	}
	for _, c := range []struct {
		name  string
		rules []string
	}{{"all-rules", nil}, {"120-rules", subset}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var lat []time.Duration
			for b.Loop() {
				at := end.Add(-time.Duration(rng.Int64N(int64(days * 24 * time.Hour))))
				t := time.Now()
				got, err := s.CountsAt(ctx, at, c.rules, nil)
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != hosts {
					b.Fatalf("counts for %d hosts, want %d", len(got), hosts)
				}
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
		})
	}
}
