package posture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
)

// seedIndex is an index over the rule ids SeedHistory writes (rule_0001
// ..rule_NNNN), with every other rule mapped to NIST SP 800-53 AC-2 and
// the corpus's real catalogues, so FedRAMP is derived as in production.
func seedIndex(b *testing.B, rules int) *Index {
	b.Helper()
	cats, err := framework.LoadDir(filepath.Join(corpusDir, "frameworks"))
	if err != nil {
		b.Fatal(err)
	}
	rs := make([]*rule.Rule, rules)
	for i := range rs {
		r := &rule.Rule{ID: fmt.Sprintf("rule_%04d", i+1), Severity: rule.Medium}
		if (i+1)%2 == 0 {
			r.References.Flat = map[string][]string{"nist_800_53": {"AC-2"}}
		}
		rs[i] = r
	}
	return newIndex(rs, cats)
}

// BenchmarkFleetAt measures Fleet at random past moments over synthetic
// history on PostgreSQL (postgres.SeedHistory: 1,000 hosts x 300 rules x
// 90 days), for all rules and for one framework, and reports latency
// percentiles and the Go heap in use. Target: p95 under 200 ms.
func BenchmarkFleetAt(b *testing.B) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.DB(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const hosts, rules, days = 1000, 300, 90
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	t0 := time.Now()
	if err := postgres.SeedHistory(ctx, s, hosts, rules, days, end); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d hosts x %d rules x %d days in %s", hosts, rules, days, time.Since(t0).Round(time.Millisecond))
	idx := seedIndex(b, rules)
	fwRules, _ := idx.RuleIDs("fedramp_moderate")
	if len(fwRules) != rules/2 {
		b.Fatalf("fedramp_moderate derives %d rules, want %d", len(fwRules), rules/2)
	}
	svc := NewService(s, idx, func() time.Time { return end })
	for _, fw := range []string{"", "fedramp_moderate"} {
		name := fw
		if name == "" {
			name = "all-rules"
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var lat []time.Duration
			for b.Loop() {
				// Any moment after every rule's first observation.
				at := end.Add(-time.Duration(rng.Int64N(int64((days*24 - 1) * time.Hour))))
				t := time.Now()
				fp, err := svc.Fleet(ctx, FleetQuery{At: at, Framework: fw})
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				if len(fp.Hosts) != hosts || fp.Bands[BandNone] != 0 {
					b.Fatalf("%d hosts, %d without state, want %d with state", len(fp.Hosts), fp.Bands[BandNone], hosts)
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
