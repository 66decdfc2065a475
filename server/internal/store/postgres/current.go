package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// CurrentCounts implements store.Scheduling. current_state holds one row
// per (host, rule), the state now, so PostgreSQL groups it directly
// instead of replaying checkpoints and transitions as CountsAt does.
func (s *Store) CurrentCounts(ctx context.Context, ruleIDs []string, hostIDs []int64) ([]store.HostCounts, error) {
	if (ruleIDs != nil && len(ruleIDs) == 0) || (hostIDs != nil && len(hostIDs) == 0) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT host_id, status, count(*),
			count(*) FILTER (WHERE status = 'fail' AND severity = 'critical')
		FROM current_state
		WHERE ($1::text[] IS NULL OR rule_id = ANY($1))
			AND ($2::bigint[] IS NULL OR host_id = ANY($2))
		GROUP BY host_id, status ORDER BY host_id`, ruleIDs, hostIDs)
	if err != nil {
		return nil, fmt.Errorf("current counts: %w", err)
	}
	var out []store.HostCounts
	var host, n, crit int64
	var status string
	_, err = pgx.ForEachRow(rows, []any{&host, &status, &n, &crit}, func() error {
		if len(out) == 0 || out[len(out)-1].HostID != host {
			out = append(out, store.HostCounts{HostID: host, Counts: map[result.Status]int{}})
		}
		hc := &out[len(out)-1]
		hc.Counts[result.Status(status)] = int(n)
		hc.CriticalFail += int(crit)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("current counts: %w", err)
	}
	return out, nil
}

// TopFailing implements store.Scheduling with one grouped query over the
// failing current_state rows of hosts not deleted.
func (s *Store) TopFailing(ctx context.Context, ruleIDs []string, limit int) ([]store.RuleFailures, error) {
	if limit <= 0 || (ruleIDs != nil && len(ruleIDs) == 0) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT c.rule_id, count(*), max(c.severity)
		FROM current_state c JOIN hosts h ON h.id = c.host_id AND h.deleted_at IS NULL
		WHERE c.status = 'fail' AND ($1::text[] IS NULL OR c.rule_id = ANY($1))
		GROUP BY c.rule_id ORDER BY count(*) DESC, c.rule_id LIMIT $2`, ruleIDs, limit)
	if err != nil {
		return nil, fmt.Errorf("top failing rules: %w", err)
	}
	var out []store.RuleFailures
	var id, sev string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &n, &sev}, func() error {
		out = append(out, store.RuleFailures{RuleID: id, Hosts: int(n), Severity: rule.Severity(sev)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("top failing rules: %w", err)
	}
	return out, nil
}

// RecentChanges implements store.Scheduling: the transitions_at index
// walked backwards from now, first observations and deleted hosts skipped.
func (s *Store) RecentChanges(ctx context.Context, since time.Time, limit int) ([]store.Transition, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT t.rule_id, t.to_status, t.severity, t.reason, t.refs::text, t.evidence_hash,
			t.scan_id, t.at, t.from_status, t.host_id
		FROM transitions t JOIN hosts h ON h.id = t.host_id AND h.deleted_at IS NULL
		WHERE t.at >= $1 AND t.from_status <> ''
		ORDER BY t.at DESC, t.id DESC LIMIT $2`, store.Micro(since), limit)
	if err != nil {
		return nil, fmt.Errorf("recent changes since %s: %w", since, err)
	}
	out, err := collectTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("recent changes since %s: %w", since, err)
	}
	return out, nil
}

// RuleStatusCounts implements store.Store.
func (s *Store) RuleStatusCounts(ctx context.Context) ([]store.RuleStatusCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.rule_id, c.status, c.severity, count(*)
		FROM current_state c JOIN hosts h ON h.id = c.host_id AND h.deleted_at IS NULL
		GROUP BY c.rule_id, c.status, c.severity ORDER BY c.rule_id, c.status, c.severity`)
	if err != nil {
		return nil, fmt.Errorf("rule status counts: %w", err)
	}
	var out []store.RuleStatusCount
	var id, st, sev string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &st, &sev, &n}, func() error {
		out = append(out, store.RuleStatusCount{RuleID: id, Status: result.Status(st), Severity: rule.Severity(sev), Hosts: int(n)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rule status counts: %w", err)
	}
	return out, nil
}
