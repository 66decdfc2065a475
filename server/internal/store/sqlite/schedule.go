package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// ClaimDue implements store.Scheduling. SQLite has one writer, so the
// select and the lease run in one immediate transaction and no other
// claimer can interleave. A claimed scan starts now, so it also satisfies
// any request made before now.
func (s *Store) ClaimDue(ctx context.Context, r store.ClaimRequest) ([]store.Claim, error) {
	if r.Limit <= 0 {
		return nil, nil
	}
	now, until := micros(r.Now), micros(r.Now.Add(r.Lease))
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: begin: %w", r.Owner, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, due_reason FROM hosts
		WHERE deleted_at IS NULL AND next_scan_at <= ?1 AND (lease_until IS NULL OR lease_until < ?1)
			AND coalesce(agent_id, 0) = ?2
		ORDER BY next_scan_at, id LIMIT ?3`, now, r.AgentID, r.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
	}
	var out []store.Claim
	for rows.Next() {
		c := store.Claim{Until: fromMicros(until)}
		if err := rows.Scan(&c.HostID, &c.Reason); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	lease, err := tx.PrepareContext(ctx, `UPDATE hosts SET lease_owner = ?1, lease_until = ?2,
		requested_at = CASE WHEN requested_at <= ?3 THEN NULL ELSE requested_at END WHERE id = ?4`)
	if err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
	}
	defer lease.Close()
	for _, c := range out {
		if _, err := lease.ExecContext(ctx, r.Owner, until, now, c.HostID); err != nil {
			return nil, fmt.Errorf("lease host %d to %s: %w", c.HostID, r.Owner, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: commit: %w", r.Owner, err)
	}
	return out, nil
}

// RequestScan implements store.Scheduling. While the host is leased the
// request is also kept in requested_at, which CompleteClaim honours after
// it has written the scan's own next due time. SQLite's two-argument min()
// is NULL when either side is, hence the coalesce.
func (s *Store) RequestScan(ctx context.Context, hostID int64, reason string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE hosts SET
			due_reason = CASE
				WHEN lease_owner IS NOT NULL THEN
					CASE WHEN requested_at IS NULL OR ?2 <= requested_at THEN ?3 ELSE due_reason END
				WHEN next_scan_at IS NULL OR ?2 <= next_scan_at THEN ?3
				ELSE due_reason END,
			requested_at = CASE WHEN lease_owner IS NOT NULL THEN min(coalesce(requested_at, ?2), ?2)
				ELSE requested_at END,
			next_scan_at = min(coalesce(next_scan_at, ?2), ?2)
		WHERE id = ?1 AND deleted_at IS NULL`, hostID, micros(at), reason)
	if err != nil {
		return fmt.Errorf("request scan of host %d: %w", hostID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("request scan of host %d: %w", hostID, store.ErrNotFound)
	}
	return nil
}

// CompleteClaim implements store.Scheduling.
func (s *Store) CompleteClaim(ctx context.Context, hostID int64, owner string, c store.Completion) error {
	res, err := s.w.ExecContext(ctx, `UPDATE hosts SET last_scan_at = ?3, score = ?4, band = ?5,
			next_scan_at = CASE WHEN ?6 IS NULL THEN requested_at ELSE min(coalesce(requested_at, ?6), ?6) END,
			due_reason = CASE WHEN requested_at IS NOT NULL AND (?6 IS NULL OR requested_at < ?6)
				THEN due_reason ELSE 'scheduled' END,
			requested_at = NULL, lease_owner = NULL, lease_until = NULL
		WHERE id = ?1 AND lease_owner = ?2`,
		hostID, owner, micros(c.ScannedAt), c.Score, c.Band, optMicros(c.NextScanAt))
	if err != nil {
		return fmt.Errorf("complete claim of host %d by %s: %w", hostID, owner, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("complete claim of host %d by %s: lease not held: %w", hostID, owner, store.ErrNotFound)
	}
	return nil
}

// ReleaseClaim implements store.Scheduling. The due reason stays: the
// retry is for the same reason as the failed attempt (or for the request
// made during the lease, which already set it).
func (s *Store) ReleaseClaim(ctx context.Context, hostID int64, owner string, retryAt time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE hosts SET
			next_scan_at = CASE WHEN ?3 IS NULL THEN requested_at ELSE min(coalesce(requested_at, ?3), ?3) END,
			requested_at = NULL, lease_owner = NULL, lease_until = NULL
		WHERE id = ?1 AND lease_owner = ?2`, hostID, owner, optMicros(retryAt))
	if err != nil {
		return fmt.Errorf("release claim of host %d by %s: %w", hostID, owner, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("release claim of host %d by %s: lease not held: %w", hostID, owner, store.ErrNotFound)
	}
	return nil
}

// optMicros maps the zero time to NULL ("not scheduled").
func optMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// utcDay is the UTC midnight of t's UTC day, the key of a snapshot.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// PutSnapshots implements store.Scheduling in one transaction; within it a
// later snapshot for the same key simply overwrites an earlier one.
func (s *Store) PutSnapshots(ctx context.Context, snaps []store.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put posture snapshots: begin: %w", err)
	}
	defer tx.Rollback()
	up, err := tx.PrepareContext(ctx, `INSERT INTO posture_snapshots(host_id, framework, day, score, pass, fail,
			error, skipped, band, scan_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (host_id, framework, day) DO UPDATE SET score = excluded.score, pass = excluded.pass,
			fail = excluded.fail, error = excluded.error, skipped = excluded.skipped, band = excluded.band,
			scan_id = excluded.scan_id`)
	if err != nil {
		return fmt.Errorf("put posture snapshots: %w", err)
	}
	defer up.Close()
	for _, sn := range snaps {
		if _, err := up.ExecContext(ctx, sn.HostID, sn.Framework, utcDay(sn.Day).UnixMicro(), sn.Score,
			sn.Pass, sn.Fail, sn.Error, sn.Skipped, sn.Band, sn.ScanID); err != nil {
			return fmt.Errorf("posture snapshot of host %d %q %s: %w", sn.HostID, sn.Framework,
				utcDay(sn.Day).Format(time.DateOnly), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put posture snapshots: commit: %w", err)
	}
	return nil
}

// Snapshots implements store.Scheduling.
func (s *Store) Snapshots(ctx context.Context, f store.SnapshotFilter) ([]store.Snapshot, error) {
	hosts, err := jsonList(f.HostIDs)
	if err != nil {
		return nil, err
	}
	from, to := optMicros(f.From), optMicros(f.To)
	if !f.From.IsZero() {
		from = utcDay(f.From).UnixMicro()
	}
	if !f.To.IsZero() {
		to = utcDay(f.To).UnixMicro()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT host_id, framework, day, score, pass, fail, error, skipped, band, scan_id
		FROM posture_snapshots
		WHERE framework = ?1 AND (?2 IS NULL OR host_id IN (SELECT value FROM json_each(?2)))
			AND (?3 IS NULL OR day >= ?3) AND (?4 IS NULL OR day <= ?4)
		ORDER BY host_id, framework, day`, f.Framework, hosts, from, to)
	if err != nil {
		return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
	}
	defer rows.Close()
	var out []store.Snapshot
	for rows.Next() {
		var sn store.Snapshot
		var day int64
		if err := rows.Scan(&sn.HostID, &sn.Framework, &day, &sn.Score, &sn.Pass, &sn.Fail, &sn.Error,
			&sn.Skipped, &sn.Band, &sn.ScanID); err != nil {
			return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
		}
		sn.Day = fromMicros(day)
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
	}
	return out, nil
}

// jsonList encodes a filter list for json_each: NULL for a nil list (no
// filter), a JSON array otherwise (an empty one matches nothing).
func jsonList[T any](v []T) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode filter list: %w", err)
	}
	return string(b), nil
}

// CountsAt implements store.Scheduling. The rows in force at `at` are
// those with at <= T < valid_to (valid_to NULL: still current); SQLite
// groups them, so only one row per (host, status) comes back.
func (s *Store) CountsAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]store.HostCounts, error) {
	rules, err := jsonList(ruleIDs)
	if err != nil {
		return nil, err
	}
	hosts, err := jsonList(hostIDs)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT host_id, to_status, count(*),
			sum(to_status = 'fail' AND severity = 'critical')
		FROM transitions
		WHERE at <= ?1 AND (valid_to IS NULL OR valid_to > ?1)
			AND (?2 IS NULL OR rule_id IN (SELECT value FROM json_each(?2)))
			AND (?3 IS NULL OR host_id IN (SELECT value FROM json_each(?3)))
		GROUP BY host_id, to_status ORDER BY host_id`, micros(at), rules, hosts)
	if err != nil {
		return nil, fmt.Errorf("counts at %s: %w", at, err)
	}
	defer rows.Close()
	var out []store.HostCounts
	for rows.Next() {
		var host, n, crit int64
		var status string
		if err := rows.Scan(&host, &status, &n, &crit); err != nil {
			return nil, fmt.Errorf("counts at %s: %w", at, err)
		}
		if len(out) == 0 || out[len(out)-1].HostID != host {
			out = append(out, store.HostCounts{HostID: host, Counts: map[result.Status]int{}})
		}
		hc := &out[len(out)-1]
		hc.Counts[result.Status(status)] = int(n)
		hc.CriticalFail += int(crit)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counts at %s: %w", at, err)
	}
	return out, nil
}

// FleetTransitions implements store.Scheduling.
func (s *Store) FleetTransitions(ctx context.Context, from, to time.Time, hostID int64) ([]store.Transition, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_id, to_status, severity, reason, refs, evidence_hash, scan_id, at,
			from_status, host_id FROM transitions
		WHERE at >= ?1 AND at < ?2 AND (?3 = 0 OR host_id = ?3)
		ORDER BY host_id, rule_id, at, id`, micros(from), micros(to), hostID)
	if err != nil {
		return nil, fmt.Errorf("fleet transitions: %w", err)
	}
	out, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("fleet transitions: %w", err)
	}
	return out, nil
}

// scanTransitions reads the finding columns followed by from_status and
// host_id.
func scanTransitions(rows *sql.Rows) ([]store.Transition, error) {
	defer rows.Close()
	var out []store.Transition
	for rows.Next() {
		var t store.Transition
		var from string
		if err := scanFinding(rows, &t.Finding, &from, &t.HostID); err != nil {
			return nil, err
		}
		t.From = result.Status(from)
		out = append(out, t)
	}
	return out, rows.Err()
}

// PruneResults implements store.Scheduling.
func (s *Store) PruneResults(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM scan_results WHERE observed_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("prune results before %s: %w", before, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune results before %s: %w", before, err)
	}
	return n, nil
}
