package governance

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// The fleet the benchmarks measure: the size ISSUE 7 targets.
const (
	benchHosts = 1000
	benchRules = 300
	benchDays  = 90
)

// benchSeverity is the severity postgres.SeedHistory gives rule number r
// (1-based): every 20th critical, every 5th high, the rest medium.
func benchSeverity(r int) rule.Severity {
	switch {
	case r%20 == 0:
		return rule.Critical
	case r%5 == 0:
		return rule.High
	}
	return rule.Medium
}

// seedSQLite records one completed scan of every rule on `hosts` hosts
// through Ingest (about 30% failing, every 37th rule skipped), two days of
// all-rules snapshots per host with every 20th host's score falling by
// more than the default score drop, in well under a minute.
func seedSQLite(b *testing.B, st store.Store, hosts, rules int, at time.Time) {
	b.Helper()
	ctx := context.Background()
	day := utcDay(at.Add(2 * time.Hour))
	var snaps []store.Snapshot
	for h := 1; h <= hosts; h++ {
		host, err := st.UpsertHost(ctx, store.Host{Name: fmt.Sprintf("seed-%d", h), Address: "127.0.0.2", OS: "debian 12"})
		if err != nil {
			b.Fatal(err)
		}
		sc, err := st.CreateScan(ctx, store.Scan{HostID: host.ID, Trigger: "scheduled", BundleVersion: "1.0.0", StartedAt: at})
		if err != nil {
			b.Fatal(err)
		}
		results := make([]result.Result, rules)
		for r := 1; r <= rules; r++ {
			status := result.Pass
			switch {
			case r%37 == 0:
				status = result.Skipped
			case (h*31+r*17)%10 < 3:
				status = result.Fail
			}
			results[r-1] = result.Result{RuleID: fmt.Sprintf("rule_%04d", r), Status: status, Severity: benchSeverity(r),
				Reason: "seeded", Time: at}
		}
		if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: results}); err != nil {
			b.Fatal(err)
		}
		sum := result.Summarize(results)
		if err := st.FinishScan(ctx, sc.ID, store.ScanCompleted, at, sum); err != nil {
			b.Fatal(err)
		}
		score := 100 * float64(sum.Pass) / float64(sum.Pass+sum.Fail)
		before := score
		if h%20 == 0 {
			before = min(100, score+15)
		}
		snaps = append(snaps,
			store.Snapshot{HostID: host.ID, Day: day.Add(-24 * time.Hour), Score: before, Pass: sum.Pass, Fail: sum.Fail,
				Skipped: sum.Skipped, Band: "good", ScanID: sc.ID},
			store.Snapshot{HostID: host.ID, Day: day, Score: score, Pass: sum.Pass, Fail: sum.Fail,
				Skipped: sum.Skipped, Band: "fair", ScanID: sc.ID})
	}
	if err := st.PutSnapshots(ctx, snaps); err != nil {
		b.Fatal(err)
	}
}

// benchFleet is a governed fleet ready to evaluate.
type benchFleet struct {
	st   store.Store
	clk  *clock
	gov  *Service
	post *posture.Service
}

// governFleet gives a store holding rule history for seed-N hosts what a
// real server has around it: labels and groups on every host, scan times
// and bands from the scheduler (every 50th host overdue), five agents
// (two silent), one refused bundle, ten approved exceptions (five
// fleet-wide, three on groups, two on hosts; two expiring within the
// week), and an open rule_failing alert for every critical or high rule
// failing now, as a server that watched the fleet from its first scan
// holds them. Then it evaluates once, so that the alerts are in steady
// state.
func governFleet(b *testing.B, st store.Store, idx *posture.Index, now time.Time) *benchFleet {
	b.Helper()
	ctx := context.Background()
	f := &benchFleet{st: st, clk: &clock{t: now}}
	f.post = posture.NewService(st, idx, f.clk.Now)
	gov, err := New(Config{Store: st, Posture: f.post, Now: f.clk.Now, OnEvaluate: func(map[store.AlertState]int) {}})
	if err != nil {
		b.Fatal(err)
	}
	f.gov = gov
	f.post.SetWaivers(gov)

	groupNames := []string{"web", "db", "edge"}
	groups := make([]store.Group, len(groupNames))
	for i, n := range groupNames {
		if groups[i], err = st.CreateGroup(ctx, store.Group{Name: n}); err != nil {
			b.Fatal(err)
		}
	}
	hosts, err := st.Hosts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(hosts) != benchHosts {
		b.Fatalf("%d hosts seeded, want %d", len(hosts), benchHosts)
	}
	scores := latestScores(b, st, now)
	for i, h := range hosts {
		env := "prod"
		if i%3 == 0 {
			env = "staging"
		}
		h.Address, h.OS, h.Labels = "127.0.0.2", "debian 12", map[string]string{"env": env, "team": fmt.Sprintf("t%d", i%7)}
		h.Groups = nil
		if i%10 < len(groupNames) {
			h.Groups = []string{groupNames[i%10]}
		}
		if hosts[i], err = st.UpsertHost(ctx, h); err != nil {
			b.Fatal(err)
		}
		if err := st.RequestScan(ctx, h.ID, "manual", now.Add(-time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	claims, err := st.ClaimDue(ctx, store.ClaimRequest{Owner: "bench", Now: now, Limit: benchHosts, Lease: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if len(claims) != benchHosts {
		b.Fatalf("claimed %d hosts, want %d", len(claims), benchHosts)
	}
	for _, c := range claims {
		scanned := now.Add(-30 * time.Minute)
		if c.HostID%50 == 0 {
			scanned = now.Add(-72 * time.Hour)
		}
		sc, ok := scores[c.HostID]
		if !ok {
			b.Fatalf("host %d has no snapshot", c.HostID)
		}
		if err := st.CompleteClaim(ctx, c.HostID, "bench", store.Completion{ScannedAt: scanned,
			NextScanAt: now.Add(time.Hour), Score: sc.Score, Band: string(bandOf(sc.Score))}); err != nil {
			b.Fatal(err)
		}
	}

	for i := range 5 {
		ag, err := st.CreateAgent(ctx, store.Agent{Name: fmt.Sprintf("agent-%d", i), Version: "1.0.0", OS: "debian 12",
			CertSerial: fmt.Sprintf("%032x", i+1), Labels: map[string]string{"env": "prod"}, EnrolledAt: now.Add(-48 * time.Hour),
			Hostname: fmt.Sprintf("agent-host-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		seen := now.Add(-time.Minute)
		if i >= 3 {
			seen = now.Add(-time.Hour) // silent: agent_offline
		}
		if err := st.TouchAgent(ctx, ag.ID, store.AgentHeartbeat{At: seen, Version: "1.0.0", OS: "debian 12"}); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if _, err := st.AppendAudit(ctx, store.AuditEntry{At: now.Add(-2 * time.Hour), Actor: "agent:" + ag.Name,
				Action: "agent.bundle_refused", Target: fmt.Sprintf("agent/%d", ag.ID),
				Detail: `{"message":"signature does not verify","bundle_digest":"sha256:00"}`}); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Ten approved exceptions on critical and high rules, written to the
	// store directly: the seeded rule ids (rule_NNNN) are not in the
	// corpus, so RequestException would refuse them, and evaluation reads
	// exceptions from the store alone.
	reqs := []ExceptionRequest{
		{RuleID: "rule_0005"}, {RuleID: "rule_0010"}, {RuleID: "rule_0020"}, {RuleID: "rule_0040"},
		{RuleID: "rule_0060", ExpiresAt: now.Add(2 * 24 * time.Hour)},
		{RuleID: "rule_0015", GroupID: groups[0].ID}, {RuleID: "rule_0025", GroupID: groups[1].ID},
		{RuleID: "rule_0030", GroupID: groups[2].ID, ExpiresAt: now.Add(5 * 24 * time.Hour)},
		{RuleID: "rule_0035", HostID: hosts[0].ID}, {RuleID: "rule_0045", HostID: hosts[1].ID},
	}
	for _, req := range reqs {
		ex, err := st.CreateException(ctx, store.Exception{RuleID: req.RuleID, HostID: req.HostID, GroupID: req.GroupID,
			Justification: "compensating control documented in ticket SEC-1", ExpiresAt: req.ExpiresAt,
			State: store.ExceptionRequested, RequestedBy: "alice", RequestedAt: now.Add(-2 * time.Hour)})
		if err != nil {
			b.Fatalf("exception %+v: %v", req, err)
		}
		if _, err := st.DecideException(ctx, store.ExceptionDecision{ID: ex.ID, From: []store.ExceptionState{store.ExceptionRequested},
			To: store.ExceptionApproved, By: "bob", At: now.Add(-time.Hour), Note: "accepted"}); err != nil {
			b.Fatal(err)
		}
	}

	var watched []string
	for r := 1; r <= benchRules; r++ {
		if s := benchSeverity(r); s == rule.Critical || s == rule.High {
			watched = append(watched, fmt.Sprintf("rule_%04d", r))
		}
	}
	failing, err := st.FailingAt(ctx, time.Time{}, watched, nil)
	if err != nil {
		b.Fatal(err)
	}
	byID := make(map[int64]store.Host, len(hosts))
	for _, h := range hosts {
		byID[h.ID] = h
	}
	for _, fr := range failing {
		h := byID[fr.HostID]
		if _, _, err := st.RaiseAlert(ctx, store.Alert{Kind: KindRuleFailing,
			Key: fmt.Sprintf("%s/host/%d/%s", KindRuleFailing, h.ID, fr.RuleID), HostID: h.ID, RuleID: fr.RuleID,
			Severity: string(fr.Severity), Labels: h.Labels, Title: "Rule failing on " + h.Name + ": " + fr.RuleID,
			Detail: "{}", At: now.Add(-time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d critical or high failures raised as open alerts", len(failing))
	// The first evaluation resolves the alerts exceptions cover and opens
	// the other kinds; from the next one on nothing is new.
	t0 := time.Now()
	stats, err := gov.Evaluate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("first evaluation: %+v in %s", stats, time.Since(t0).Round(time.Millisecond))
	f.clk.Add(time.Minute)
	return f
}

// latestScores returns every host's latest all-rules snapshot up to now.
func latestScores(b *testing.B, st store.Store, now time.Time) map[int64]store.Snapshot {
	b.Helper()
	snaps, err := st.Snapshots(context.Background(), store.SnapshotFilter{From: now.Add(-3 * 24 * time.Hour), To: now})
	if err != nil {
		b.Fatal(err)
	}
	out := map[int64]store.Snapshot{}
	for _, s := range snaps {
		if cur, ok := out[s.HostID]; !ok || s.Day.After(cur.Day) {
			out[s.HostID] = s
		}
	}
	return out
}

// bandOf is a score's band, as the scheduler would record it.
func bandOf(score float64) posture.Band {
	switch {
	case score >= 95:
		return posture.BandExcellent
	case score >= 85:
		return posture.BandGood
	case score >= 70:
		return posture.BandFair
	case score >= 50:
		return posture.BandPoor
	}
	return posture.BandCritical
}

// BenchmarkEvaluate measures one steady-state evaluation (the work Run
// does every minute on a real server: nothing new since the previous one)
// over 1,000 hosts x 300 rules with every critical and high failure under
// an open alert, on PostgreSQL (history from postgres.SeedHistory) and on
// SQLite (one ingested scan per host). It reports the alerts the
// evaluation holds and what it raised or resolved per run (both should be
// zero in steady state). Target: well under 2 s per evaluation.
func BenchmarkEvaluate(b *testing.B) {
	ctx := context.Background()
	// The corpus only names alerts (titles); the seeded rule ids are not in it.
	idx := loadCorpus(b)
	for _, drv := range []string{"postgres", "sqlite"} {
		b.Run(drv, func(b *testing.B) {
			now := time.Now().UTC().Truncate(time.Second)
			t0 := time.Now()
			var st store.Store
			switch drv {
			case "postgres":
				s, err := postgres.Open(ctx, pgtest.DB(b))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				if err := postgres.SeedHistory(ctx, s, benchHosts, benchRules, benchDays, now.Add(-2*time.Hour)); err != nil {
					b.Fatal(err)
				}
				st = s
			case "sqlite":
				s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "vigil.db"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				seedSQLite(b, s, benchHosts, benchRules, now.Add(-2*time.Hour))
				st = s
			}
			b.Logf("%s: seeded %d hosts x %d rules in %s", drv, benchHosts, benchRules, time.Since(t0).Round(time.Millisecond))
			t0 = time.Now()
			f := governFleet(b, st, idx, now)
			b.Logf("%s: governed in %s", drv, time.Since(t0).Round(time.Millisecond))
			var last EvalStats
			var raised, resolved int
			runs := 0
			for b.Loop() {
				es, err := f.gov.Evaluate(ctx)
				if err != nil {
					b.Fatal(err)
				}
				last = es
				raised += es.Raised
				resolved += es.Resolved
				runs++
				f.clk.Add(time.Minute)
			}
			if last.Seen == 0 {
				b.Fatal("the evaluation holds no alert: the fixture is wrong")
			}
			b.ReportMetric(float64(last.Seen), "alerts")
			b.ReportMetric(float64(raised)/float64(runs), "raised/op")
			b.ReportMetric(float64(resolved)/float64(runs), "resolved/op")
		})
	}
}
