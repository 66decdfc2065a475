package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// ClaimDue implements store.Scheduling. One statement selects the due
// hosts with FOR UPDATE SKIP LOCKED and leases them, so replicas racing
// for the same hosts each get a disjoint set and nobody waits. A claimed
// scan starts now, so it also satisfies any request made before now.
func (s *Store) ClaimDue(ctx context.Context, r store.ClaimRequest) ([]store.Claim, error) {
	if r.Limit <= 0 {
		return nil, nil
	}
	now := store.Micro(r.Now)
	until := store.Micro(r.Now.Add(r.Lease))
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM hosts
			WHERE deleted_at IS NULL AND next_scan_at <= $3
				AND (lease_until IS NULL OR lease_until < $3) AND coalesce(agent_id, 0) = $4
			ORDER BY next_scan_at, id LIMIT $5
			FOR UPDATE SKIP LOCKED)
		UPDATE hosts h SET lease_owner = $1, lease_until = $2,
			requested_at = CASE WHEN h.requested_at <= $3 THEN NULL ELSE h.requested_at END
		FROM due WHERE h.id = due.id
		RETURNING h.id, h.due_reason, h.lease_until, h.next_scan_at`,
		r.Owner, until, now, r.AgentID, r.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
	}
	defer rows.Close()
	type due struct {
		store.Claim
		at time.Time
	}
	var got []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.HostID, &d.Reason, &d.Until, &d.at); err != nil {
			return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
		}
		d.Until = d.Until.UTC()
		got = append(got, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim due hosts for %s: %w", r.Owner, err)
	}
	// RETURNING has no order: restore earliest due first.
	sort.Slice(got, func(i, j int) bool {
		if !got[i].at.Equal(got[j].at) {
			return got[i].at.Before(got[j].at)
		}
		return got[i].HostID < got[j].HostID
	})
	out := make([]store.Claim, len(got))
	for i, d := range got {
		out[i] = d.Claim
	}
	return out, nil
}

// RequestScan implements store.Scheduling. While the host is leased the
// request is also kept in requested_at, which CompleteClaim honours after
// it has written the scan's own next due time.
func (s *Store) RequestScan(ctx context.Context, hostID int64, reason string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET
			due_reason = CASE
				WHEN lease_owner IS NOT NULL THEN
					CASE WHEN requested_at IS NULL OR $2 <= requested_at THEN $3 ELSE due_reason END
				WHEN next_scan_at IS NULL OR $2 <= next_scan_at THEN $3
				ELSE due_reason END,
			requested_at = CASE WHEN lease_owner IS NOT NULL THEN least(requested_at, $2) ELSE requested_at END,
			next_scan_at = least(next_scan_at, $2)
		WHERE id = $1 AND deleted_at IS NULL`, hostID, store.Micro(at), reason)
	if err != nil {
		return fmt.Errorf("request scan of host %d: %w", hostID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("request scan of host %d: %w", hostID, store.ErrNotFound)
	}
	return nil
}

// CompleteClaim implements store.Scheduling.
func (s *Store) CompleteClaim(ctx context.Context, hostID int64, owner string, c store.Completion) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET last_scan_at = $3, score = $4, band = $5,
			next_scan_at = least($6, requested_at),
			due_reason = CASE WHEN requested_at IS NOT NULL AND ($6::timestamptz IS NULL OR requested_at < $6)
				THEN due_reason ELSE 'scheduled' END,
			requested_at = NULL, lease_owner = NULL, lease_until = NULL
		WHERE id = $1 AND lease_owner = $2`,
		hostID, owner, store.Micro(c.ScannedAt), c.Score, c.Band, optTime(c.NextScanAt))
	if err != nil {
		return fmt.Errorf("complete claim of host %d by %s: %w", hostID, owner, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete claim of host %d by %s: lease not held: %w", hostID, owner, store.ErrNotFound)
	}
	return nil
}

// ReleaseClaim implements store.Scheduling. The due reason stays: the
// retry is for the same reason as the failed attempt (or for the request
// made during the lease, which already set it).
func (s *Store) ReleaseClaim(ctx context.Context, hostID int64, owner string, retryAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET next_scan_at = least($3, requested_at),
			requested_at = NULL, lease_owner = NULL, lease_until = NULL
		WHERE id = $1 AND lease_owner = $2`, hostID, owner, optTime(retryAt))
	if err != nil {
		return fmt.Errorf("release claim of host %d by %s: %w", hostID, owner, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("release claim of host %d by %s: lease not held: %w", hostID, owner, store.ErrNotFound)
	}
	return nil
}

// optTime maps the zero time to NULL ("not scheduled").
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	m := store.Micro(t)
	return &m
}

// utcDay is the UTC midnight of t's UTC day, the key of a snapshot.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// PutSnapshots implements store.Scheduling in one statement over arrays.
// Duplicate keys within one call are reduced to the last one first, since
// an upsert may touch a row only once per statement.
func (s *Store) PutSnapshots(ctx context.Context, snaps []store.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	type key struct {
		host int64
		fw   string
		day  time.Time
	}
	last := map[key]int{}
	for i, sn := range snaps {
		last[key{sn.HostID, sn.Framework, utcDay(sn.Day)}] = i
	}
	n := len(last)
	hosts, fws, days := make([]int64, 0, n), make([]string, 0, n), make([]string, 0, n)
	scores, pass, fail, errs, skipped := make([]float64, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
	bands, scans := make([]string, 0, n), make([]int64, 0, n)
	for i, sn := range snaps {
		if last[key{sn.HostID, sn.Framework, utcDay(sn.Day)}] != i {
			continue
		}
		hosts, fws, days = append(hosts, sn.HostID), append(fws, sn.Framework), append(days, utcDay(sn.Day).Format(time.DateOnly))
		scores, pass, fail = append(scores, sn.Score), append(pass, int32(sn.Pass)), append(fail, int32(sn.Fail))
		errs, skipped = append(errs, int32(sn.Error)), append(skipped, int32(sn.Skipped))
		bands, scans = append(bands, sn.Band), append(scans, sn.ScanID)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO posture_snapshots(host_id, framework, day, score, pass, fail, error, skipped, band, scan_id)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::date[], $4::float8[], $5::int[], $6::int[], $7::int[],
			$8::int[], $9::text[], $10::bigint[])
		ON CONFLICT (host_id, framework, day) DO UPDATE SET score = excluded.score, pass = excluded.pass,
			fail = excluded.fail, error = excluded.error, skipped = excluded.skipped, band = excluded.band,
			scan_id = excluded.scan_id`,
		hosts, fws, days, scores, pass, fail, errs, skipped, bands, scans)
	if err != nil {
		return fmt.Errorf("put %d posture snapshots: %w", n, err)
	}
	return nil
}

// Snapshots implements store.Scheduling.
func (s *Store) Snapshots(ctx context.Context, f store.SnapshotFilter) ([]store.Snapshot, error) {
	if f.HostIDs != nil && len(f.HostIDs) == 0 {
		return nil, nil
	}
	var from, to *string
	if !f.From.IsZero() {
		d := utcDay(f.From).Format(time.DateOnly)
		from = &d
	}
	if !f.To.IsZero() {
		d := utcDay(f.To).Format(time.DateOnly)
		to = &d
	}
	rows, err := s.pool.Query(ctx, `SELECT host_id, framework, day::text, score, pass, fail, error, skipped, band, scan_id
		FROM posture_snapshots
		WHERE framework = $1 AND ($2::bigint[] IS NULL OR host_id = ANY($2))
			AND ($3::date IS NULL OR day >= $3) AND ($4::date IS NULL OR day <= $4)
		ORDER BY host_id, framework, day`, f.Framework, f.HostIDs, from, to)
	if err != nil {
		return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
	}
	defer rows.Close()
	var out []store.Snapshot
	for rows.Next() {
		var sn store.Snapshot
		var day string
		if err := rows.Scan(&sn.HostID, &sn.Framework, &day, &sn.Score, &sn.Pass, &sn.Fail, &sn.Error,
			&sn.Skipped, &sn.Band, &sn.ScanID); err != nil {
			return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
		}
		if sn.Day, err = time.Parse(time.DateOnly, day); err != nil {
			return nil, fmt.Errorf("posture snapshot of host %d: day %q: %w", sn.HostID, day, err)
		}
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("posture snapshots %q: %w", f.Framework, err)
	}
	return out, nil
}

// CountsAt implements store.Scheduling. Scanning every transition in
// force at T (one per host and rule, 300,000 for 1,000 hosts of 300
// rules) took 400 ms; instead one statement reads each host's latest state
// checkpoint at or before T (a byte per rule) and the few transitions
// after it up to T (on the (host_id, at) index), and the counting is done
// here. Both parts come from
// one snapshot, and ingest keeps checkpoints exact, so the answer is the
// same as the full scan's. A host without a checkpoint before T is
// rebuilt from its whole log.
func (s *Store) CountsAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]store.HostCounts, error) {
	if (ruleIDs != nil && len(ruleIDs) == 0) || (hostIDs != nil && len(hostIDs) == 0) {
		return nil, nil
	}
	// Kind 0 rows are checkpoints (codes), kind 1 rows transitions (no or,
	// for a rule not numbered yet, rule_id), in the order they happened.
	rows, err := s.pool.Query(ctx, `WITH cp AS MATERIALIZED (
			SELECT h.id AS host_id, c.day, c.codes FROM hosts h
			LEFT JOIN LATERAL (SELECT day, codes FROM state_checkpoints k
				WHERE k.host_id = h.id AND k.day <= $1 ORDER BY day DESC LIMIT 1) c ON true
			WHERE $2::bigint[] IS NULL OR h.id = ANY($2))
		SELECT 0 AS kind, host_id, NULL::timestamptz AS at, 0::bigint AS id, codes, NULL::int AS no,
			NULL::text AS rule_id, 0::smallint AS code
		FROM cp WHERE codes IS NOT NULL
		UNION ALL
		SELECT 1, t.host_id, t.at, t.id, NULL, n.no, CASE WHEN n.no IS NULL THEN t.rule_id END, `+codeSQL+`
		FROM cp JOIN transitions t ON t.host_id = cp.host_id AND t.at > coalesce(cp.day, '-infinity') AND t.at <= $1
		LEFT JOIN rule_numbers n ON n.rule_id = t.rule_id
		ORDER BY host_id, kind, at, id`, store.Micro(at), hostIDs)
	if err != nil {
		return nil, fmt.Errorf("counts at %s: %w", at, err)
	}
	// Each host's state at T: its checkpoint's codes, overwritten by the
	// later transitions in order; rules not numbered yet by rule id.
	type state struct {
		host  int64
		codes []byte
		extra map[string]byte
	}
	var hosts []state
	var kind int32
	var host, id int64
	var tat *time.Time
	var codes []byte
	var no *int32
	var ruleID *string
	var code int16
	_, err = pgx.ForEachRow(rows, []any{&kind, &host, &tat, &id, &codes, &no, &ruleID, &code}, func() error {
		if len(hosts) == 0 || hosts[len(hosts)-1].host != host {
			hosts = append(hosts, state{host: host})
		}
		h := &hosts[len(hosts)-1]
		switch {
		case kind == 0:
			h.codes = append([]byte(nil), codes...)
		case no != nil:
			h.codes = setCode(h.codes, int(*no), byte(code))
		default:
			if h.extra == nil {
				h.extra = map[string]byte{}
			}
			h.extra[*ruleID] = byte(code)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counts at %s: %w", at, err)
	}
	// The subset's numbers, read after the states: every number in them
	// was assigned before, so none is missed.
	var in []bool // by rule number; nil: every rule
	var inID map[string]bool
	if ruleIDs != nil {
		inID = make(map[string]bool, len(ruleIDs))
		for _, r := range ruleIDs {
			inID[r] = true
		}
		var nos []int32
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(no), '{}') FROM rule_numbers WHERE rule_id = ANY($1)`,
			ruleIDs).Scan(&nos); err != nil {
			return nil, fmt.Errorf("counts at %s: rule numbers: %w", at, err)
		}
		in = []bool{}
		for _, n := range nos {
			for len(in) <= int(n) {
				in = append(in, false)
			}
			in[n] = true
		}
	}
	var out []store.HostCounts
	for _, h := range hosts {
		hc := store.HostCounts{HostID: h.host, Counts: map[result.Status]int{}}
		add := func(code byte) {
			st := statusOf(code)
			if st == "" {
				return
			}
			hc.Counts[st]++
			if st == result.Fail && code&codeCritical != 0 {
				hc.CriticalFail++
			}
		}
		for i, code := range h.codes {
			if in == nil || (i+1 < len(in) && in[i+1]) {
				add(code)
			}
		}
		for r, code := range h.extra {
			if inID == nil || inID[r] {
				add(code)
			}
		}
		if len(hc.Counts) > 0 {
			out = append(out, hc)
		}
	}
	return out, nil
}

// FleetTransitions implements store.Scheduling.
func (s *Store) FleetTransitions(ctx context.Context, from, to time.Time, hostID int64) ([]store.Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, to_status, severity, reason, refs::text, evidence_hash, scan_id, at,
			from_status, host_id FROM transitions
		WHERE at >= $1 AND at < $2 AND ($3 = 0 OR host_id = $3)
		ORDER BY host_id, rule_id, at, id`, store.Micro(from), store.Micro(to), hostID)
	if err != nil {
		return nil, fmt.Errorf("fleet transitions: %w", err)
	}
	out, err := collectTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("fleet transitions: %w", err)
	}
	return out, nil
}

// collectTransitions reads the finding columns followed by from_status
// and host_id.
func collectTransitions(rows pgx.Rows) ([]store.Transition, error) {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM scan_results WHERE observed_at < $1`, store.Micro(before))
	if err != nil {
		return 0, fmt.Errorf("prune results before %s: %w", before, err)
	}
	return tag.RowsAffected(), nil
}
