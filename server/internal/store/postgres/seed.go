package postgres

import (
	"context"
	"fmt"
	"time"
)

// SeedHistory fills the database with SYNTHETIC posture history for
// measurement only (benchmarks of as-of queries, posture pages at scale):
// `hosts` hosts named seed-N, `rules` rules each, and `days` days of
// transitions ending at end. Every (host, rule) starts at end-days; about
// 2% of rules change per host per day (pass <-> fail); every 37th rule is
// skipped throughout; every 20th is critical. valid_to, current_state and
// a daily all-rules posture snapshot per host (the state at the day's end) are consistent with the
// transitions. It writes with set-based SQL (generate_series), not through
// Ingest, so seeding a million transitions takes seconds.
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
				evidence_hash, scan_id, at, valid_to)
			SELECT host_id, rule_id, coalesce(lag(st) OVER w, ''), st, sev, 'seeded', '[{"framework":"cis","control":"1.1"}]',
				NULL, 0, at, lead(at) OVER w
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
			SELECT host_id, rule_id, to_status, severity, reason, refs, evidence_hash, scan_id, at
			FROM transitions WHERE valid_to IS NULL
			ON CONFLICT (host_id, rule_id) DO NOTHING`, nil},
		{"snapshots", `INSERT INTO posture_snapshots(host_id, framework, day, score, pass, fail, error, skipped, band, scan_id)
			SELECT host_id, '', (d - interval '1 day')::date,
				CASE WHEN pass + fail = 0 THEN 100 ELSE round(100.0 * pass / (pass + fail), 1) END,
				pass, fail, 0, skipped,
				CASE WHEN pass + fail = 0 OR pass >= 0.9 * (pass + fail) THEN 'good'
					WHEN pass >= 0.7 * (pass + fail) THEN 'fair' ELSE 'poor' END, 0
			FROM (
				SELECT t.host_id, d.d, count(*) FILTER (WHERE t.to_status = 'pass') AS pass,
					count(*) FILTER (WHERE t.to_status = 'fail') AS fail,
					count(*) FILTER (WHERE t.to_status = 'skipped') AS skipped
				FROM generate_series($1::timestamptz + interval '1 day', $1::timestamptz + $2::int * interval '1 day',
					interval '1 day') AS d(d)
				JOIN transitions t ON t.at < d.d AND (t.valid_to IS NULL OR t.valid_to >= d.d)
				GROUP BY t.host_id, d.d
			) c
			ON CONFLICT (host_id, framework, day) DO NOTHING`, []any{start, days}},
		{"vacuum", `VACUUM ANALYZE`, nil}, // sets the visibility map: index-only scans
	}
	for _, st := range steps {
		if _, err := s.pool.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("seed history: %s: %w", st.name, err)
		}
	}
	return nil
}
