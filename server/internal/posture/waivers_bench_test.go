package posture_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
)

// BenchmarkFleetWithExceptions measures what applying exceptions adds to
// Fleet for the whole fleet (1,000 hosts x 300 rules x 90 days of
// postgres.SeedHistory history), now and at random past moments, without
// waivers and with governance.Service as the waivers holding ten approved
// exceptions (five fleet-wide, three on groups of 100 hosts each, two on
// single hosts). The dashboard calls Fleet once per framework, so the
// difference between the raw and the exceptions runs is paid several
// times per page. It reports latency percentiles and the failures the
// exceptions accepted.
func BenchmarkFleetWithExceptions(b *testing.B) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.DB(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const hosts, rules, days = 1000, 300, 90
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	start := end.Add(-days * 24 * time.Hour)
	t0 := time.Now()
	if err := postgres.SeedHistory(ctx, s, hosts, rules, days, end); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d hosts x %d rules x %d days in %s", hosts, rules, days, time.Since(t0).Round(time.Millisecond))

	// The corpus only has to exist: the seeded rule ids (rule_NNNN) are not
	// in it, so the exceptions below are written to the store directly
	// (RequestException would refuse them) and the view is all rules.
	idx, err := posture.LoadIndex("../../../rules")
	if err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return end }
	raw := posture.NewService(s, idx, now)
	waived := posture.NewService(s, idx, now)
	gov, err := governance.New(governance.Config{Store: s, Posture: waived, Now: now})
	if err != nil {
		b.Fatal(err)
	}
	waived.SetWaivers(gov)

	groupNames := []string{"web", "db", "edge"}
	groupIDs := make([]int64, len(groupNames))
	for i, n := range groupNames {
		g, err := s.CreateGroup(ctx, store.Group{Name: n})
		if err != nil {
			b.Fatal(err)
		}
		groupIDs[i] = g.ID
	}
	all, err := s.Hosts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i, h := range all {
		if i%10 >= len(groupNames) {
			continue
		}
		h.Address, h.OS, h.Groups = "127.0.0.2", "debian 12", []string{groupNames[i%10]}
		if _, err := s.UpsertHost(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	// Approved before the history starts, so they apply at every moment
	// measured: the most work for the waivers.
	type scope struct {
		rule          string
		host, group   int64
		expiresInDays int
	}
	scopes := []scope{
		{rule: "rule_0005"}, {rule: "rule_0010"}, {rule: "rule_0020"}, {rule: "rule_0040"}, {rule: "rule_0061", expiresInDays: 400},
		{rule: "rule_0015", group: groupIDs[0]}, {rule: "rule_0025", group: groupIDs[1]}, {rule: "rule_0030", group: groupIDs[2]},
		{rule: "rule_0035", host: all[0].ID}, {rule: "rule_0045", host: all[1].ID},
	}
	for _, sc := range scopes {
		e := store.Exception{RuleID: sc.rule, HostID: sc.host, GroupID: sc.group,
			Justification: "compensating control documented in ticket SEC-1", State: store.ExceptionRequested,
			RequestedBy: "alice", RequestedAt: start.Add(-2 * time.Hour)}
		if sc.expiresInDays > 0 {
			e.ExpiresAt = start.Add(time.Duration(sc.expiresInDays) * 24 * time.Hour)
		}
		ex, err := s.CreateException(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.DecideException(ctx, store.ExceptionDecision{ID: ex.ID, From: []store.ExceptionState{store.ExceptionRequested},
			To: store.ExceptionApproved, By: "bob", At: start.Add(-time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}

	for _, moment := range []string{"now", "past"} {
		for _, mode := range []string{"raw", "exceptions"} {
			svc := raw
			if mode == "exceptions" {
				svc = waived
			}
			b.Run(moment+"/"+mode, func(b *testing.B) {
				// The same moments for both modes.
				rng := rand.New(rand.NewPCG(3, 4))
				var lat []time.Duration
				accepted := 0
				for b.Loop() {
					var at time.Time
					if moment == "past" {
						at = end.Add(-time.Duration(rng.Int64N(int64((days*24 - 1) * time.Hour))))
					}
					t := time.Now()
					fp, err := svc.Fleet(ctx, posture.FleetQuery{At: at})
					lat = append(lat, time.Since(t))
					if err != nil {
						b.Fatal(err)
					}
					if len(fp.Hosts) != hosts || fp.Bands[posture.BandNone] != 0 {
						b.Fatalf("%d hosts, %d without state, want %d with state", len(fp.Hosts), fp.Bands[posture.BandNone], hosts)
					}
					if got := fp.Counts.Accepted; (mode == "raw") != (got == 0) {
						b.Fatalf("%s at %s: %d failures accepted", mode, at, got)
					}
					accepted = fp.Counts.Accepted
				}
				slices.Sort(lat)
				pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.95), "p95-ms")
				b.ReportMetric(float64(accepted), "accepted")
			})
		}
	}
}

// Compile-time check that the governance service is what posture applies.
var _ posture.Waivers = (*governance.Service)(nil)
