package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/engine/result"
)

// SeedHistory fills the database with SYNTHETIC posture history for
// measurement only (benchmarks of as-of queries, posture pages at scale):
// `hosts` hosts named seed-N, `rules` rules each, and `days` days of
// transitions ending at end. Every (host, rule) starts at end-days; about
// 2% of rules change per host per day (pass <-> fail); every 37th rule is
// skipped throughout; every 20th is critical. current_state, a daily state
// checkpoint and a daily all-rules posture snapshot per host (the state at
// the day's end) are consistent with the transitions. It writes with
// set-based SQL (generate_series) and COPY, not through Ingest, so seeding
// a million transitions takes seconds. The database should be empty.
func SeedHistory(ctx context.Context, s *Store, hosts, rules, days int, end time.Time) error {
	start := end.Add(-time.Duration(days) * 24 * time.Hour).UTC()
	steps := []struct {
		name, sql string
		args      []any
	}{
		{"hosts", `INSERT INTO hosts(name, created_at, updated_at)
			SELECT 'seed-' || g, now(), now() FROM generate_series(1, $1::int) g
			ON CONFLICT (name) DO NOTHING`, []any{hosts}},
		// Up to four candidate changes per (host, rule), each kept with
		// probability 0.45: 1.8 changes per rule over the period.
		{"transitions", `INSERT INTO transitions(host_id, rule_id, from_status, to_status, severity, reason, refs,
				evidence_hash, scan_id, at)
			SELECT host_id, rule_id, coalesce(lag(st) OVER w, ''), st, sev, 'seeded', '[{"framework":"cis","control":"1.1"}]',
				NULL, 0, at
			FROM (
				SELECT host_id, rule_id, sev, at,
					CASE WHEN skipped THEN 'skipped'
						WHEN (row_number() OVER (PARTITION BY host_id, rule_id ORDER BY at) + init) % 2 = 1 THEN 'pass'
						ELSE 'fail' END AS st
				FROM (
					SELECT h.id AS host_id, 'rule_' || lpad(r::text, 4, '0') AS rule_id, r % 37 = 0 AS skipped,
						CASE WHEN r % 20 = 0 THEN 'critical' WHEN r % 5 = 0 THEN 'high' ELSE 'medium' END AS sev,
						CASE WHEN random() < 0.8 THEN 0 ELSE 1 END AS init, c.at
					FROM hosts h CROSS JOIN generate_series(1, $1::int) r
					CROSS JOIN LATERAL (
						SELECT $2::timestamptz AS at
						UNION ALL
						SELECT $2::timestamptz + random() * $3::int * interval '1 day'
						FROM generate_series(1, 4) k WHERE random() < 0.45 AND r % 37 <> 0 AND h.id > 0
					) c
					WHERE h.name LIKE 'seed-%'
				) x
			) y
			WINDOW w AS (PARTITION BY host_id, rule_id ORDER BY at)`, []any{rules, start, days}},
		{"current state", `INSERT INTO current_state(host_id, rule_id, status, severity, reason, refs, evidence_hash,
				scan_id, observed_at)
			SELECT DISTINCT ON (host_id, rule_id) host_id, rule_id, to_status, severity, reason, refs, evidence_hash, scan_id, at
			FROM transitions ORDER BY host_id, rule_id, at DESC, id DESC
			ON CONFLICT (host_id, rule_id) DO NOTHING`, nil},
		{"rule numbers", `INSERT INTO rule_numbers(rule_id)
			SELECT rule_id FROM (SELECT DISTINCT rule_id FROM transitions) r
			WHERE NOT EXISTS (SELECT 1 FROM rule_numbers n WHERE n.rule_id = r.rule_id)
			ORDER BY rule_id`, nil},
		{"vacuum", `VACUUM ANALYZE`, nil}, // sets the visibility map: index-only scans
	}
	for i, st := range steps {
		if i == len(steps)-1 {
			if err := seedDays(ctx, s, start, days); err != nil {
				return fmt.Errorf("seed history: %w", err)
			}
		}
		if _, err := s.pool.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seed history: %s: %w", st.name, err)
		}
	}
	return nil
}

// seedDays writes, for every host and each UTC midnight D in
// (start, start+days], the state checkpoint at D (as ingest would build
// it) and the all-rules posture snapshot of the day ending at D, replaying
// the log once in order rather than querying it per day.
func seedDays(ctx context.Context, s *Store, start time.Time, days int) error {
	rows, err := s.pool.Query(ctx, `SELECT t.host_id, n.no, t.at, `+codeSQL+`
		FROM transitions t JOIN rule_numbers n USING (rule_id) ORDER BY t.host_id, t.at, t.id`)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	first := utcDay(start).Add(24 * time.Hour)
	last := start.Add(time.Duration(days) * 24 * time.Hour)
	var cps, snaps [][]any
	cur := int64(-1)
	var codes []byte
	next := first
	// emit writes host cur's days D < until: a change at D itself is part
	// of D's state, so it is applied before D is emitted.
	emit := func(until time.Time) {
		for ; next.Before(until) && !next.After(last); next = next.Add(24 * time.Hour) {
			cps = append(cps, []any{cur, next, append([]byte{}, codes...)})
			snaps = append(snaps, seedSnapshot(cur, next.Add(-24*time.Hour), codes))
		}
	}
	never := last.Add(48 * time.Hour)
	var host int64
	var no int32
	var at time.Time
	var code int16
	_, err = pgx.ForEachRow(rows, []any{&host, &no, &at, &code}, func() error {
		if host != cur {
			if cur >= 0 {
				emit(never)
			}
			cur, codes, next = host, nil, first
		}
		emit(at)
		codes = setCode(codes, int(no), byte(code))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if cur >= 0 {
		emit(never)
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"state_checkpoints"}, []string{"host_id", "day", "codes"},
		pgx.CopyFromRows(cps)); err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"posture_snapshots"}, []string{"host_id", "framework", "day",
		"score", "pass", "fail", "error", "skipped", "band", "scan_id"}, pgx.CopyFromRows(snaps)); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	return nil
}

// seedSnapshot is the all-rules posture snapshot of a host for day from
// its state codes: score is pass / (pass + fail), band good >= 90%, fair
// >= 70%, else poor.
func seedSnapshot(host int64, day time.Time, codes []byte) []any {
	var pass, fail, skipped int32
	for _, c := range codes {
		switch statusOf(c) {
		case result.Pass:
			pass++
		case result.Fail:
			fail++
		case result.Skipped:
			skipped++
		}
	}
	score, band := 100.0, "good"
	if n := float64(pass + fail); n > 0 {
		score = math.Round(1000*float64(pass)/n) / 10
		switch {
		case float64(pass) >= 0.9*n:
		case float64(pass) >= 0.7*n:
			band = "fair"
		default:
			band = "poor"
		}
	}
	return []any{host, "", day, score, pass, fail, int32(0), skipped, band, int64(0)}
}
