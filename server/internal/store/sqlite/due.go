package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DueAgents implements store.Scheduling. It runs on the reader pool, so
// asking it every poll never queues behind the single writer.
func (s *Store) DueAgents(ctx context.Context, now time.Time) ([]int64, error) {
	at := micros(now)
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT agent_id FROM hosts
		WHERE deleted_at IS NULL AND next_scan_at <= ?1 AND (lease_until IS NULL OR lease_until < ?1)
			AND agent_id IS NOT NULL
		ORDER BY agent_id`, at)
	if err != nil {
		return nil, fmt.Errorf("agents with due hosts: %w", err)
	}
	return scanIDs(rows, "agents with due hosts")
}

// scanIDs reads one int64 column from every row and closes rows.
func scanIDs(rows *sql.Rows, what string) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
