package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// CurrentCounts implements store.Scheduling. current_state holds one row
// per (host, rule), the state now, so SQLite groups it directly instead of
// selecting the transitions in force as CountsAt does.
func (s *Store) CurrentCounts(ctx context.Context, ruleIDs []string, hostIDs []int64) ([]store.HostCounts, error) {
	rules, err := jsonList(ruleIDs)
	if err != nil {
		return nil, err
	}
	hosts, err := jsonList(hostIDs)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT host_id, status, count(*),
			sum(status = 'fail' AND severity = 'critical')
		FROM current_state
		WHERE (?1 IS NULL OR rule_id IN (SELECT value FROM json_each(?1)))
			AND (?2 IS NULL OR host_id IN (SELECT value FROM json_each(?2)))
		GROUP BY host_id, status ORDER BY host_id`, rules, hosts)
	if err != nil {
		return nil, fmt.Errorf("current counts: %w", err)
	}
	defer rows.Close()
	var out []store.HostCounts
	for rows.Next() {
		var host, n, crit int64
		var status string
		if err := rows.Scan(&host, &status, &n, &crit); err != nil {
			return nil, fmt.Errorf("current counts: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].HostID != host {
			out = append(out, store.HostCounts{HostID: host, Counts: map[result.Status]int{}})
		}
		hc := &out[len(out)-1]
		hc.Counts[result.Status(status)] = int(n)
		hc.CriticalFail += int(crit)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("current counts: %w", err)
	}
	return out, nil
}

// TopFailing implements store.Scheduling with one grouped query over the
// failing current_state rows of hosts not deleted.
func (s *Store) TopFailing(ctx context.Context, ruleIDs []string, limit int) ([]store.RuleFailures, error) {
	if limit <= 0 {
		return nil, nil
	}
	rules, err := jsonList(ruleIDs)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.rule_id, count(*), max(c.severity)
		FROM current_state c JOIN hosts h ON h.id = c.host_id AND h.deleted_at IS NULL
		WHERE c.status = 'fail' AND (?1 IS NULL OR c.rule_id IN (SELECT value FROM json_each(?1)))
		GROUP BY c.rule_id ORDER BY count(*) DESC, c.rule_id LIMIT ?2`, rules, limit)
	if err != nil {
		return nil, fmt.Errorf("top failing rules: %w", err)
	}
	defer rows.Close()
	var out []store.RuleFailures
	for rows.Next() {
		var rf store.RuleFailures
		var sev string
		if err := rows.Scan(&rf.RuleID, &rf.Hosts, &sev); err != nil {
			return nil, fmt.Errorf("top failing rules: %w", err)
		}
		rf.Severity = rule.Severity(sev)
		out = append(out, rf)
	}
	if err := rows.Err(); err != nil {
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
	rows, err := s.r.QueryContext(ctx, `SELECT t.rule_id, t.to_status, t.severity, t.reason, t.refs, t.evidence_hash,
			t.scan_id, t.at, t.from_status, t.host_id
		FROM transitions t JOIN hosts h ON h.id = t.host_id AND h.deleted_at IS NULL
		WHERE t.at >= ?1 AND t.from_status <> ''
		ORDER BY t.at DESC, t.id DESC LIMIT ?2`, micros(since), limit)
	if err != nil {
		return nil, fmt.Errorf("recent changes since %s: %w", since, err)
	}
	out, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("recent changes since %s: %w", since, err)
	}
	return out, nil
}

// RuleStatusCounts implements store.Store.
func (s *Store) RuleStatusCounts(ctx context.Context) ([]store.RuleStatusCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT c.rule_id, c.status, c.severity, count(*)
		FROM current_state c JOIN hosts h ON h.id = c.host_id AND h.deleted_at IS NULL
		GROUP BY c.rule_id, c.status, c.severity ORDER BY c.rule_id, c.status, c.severity`)
	if err != nil {
		return nil, fmt.Errorf("rule status counts: %w", err)
	}
	defer rows.Close()
	var out []store.RuleStatusCount
	for rows.Next() {
		var rc store.RuleStatusCount
		var st, sev string
		if err := rows.Scan(&rc.RuleID, &st, &sev, &rc.Hosts); err != nil {
			return nil, fmt.Errorf("rule status counts: %w", err)
		}
		rc.Status, rc.Severity = result.Status(st), rule.Severity(sev)
		out = append(out, rc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rule status counts: %w", err)
	}
	return out, nil
}
