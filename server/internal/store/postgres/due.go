package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// DueAgents implements store.Scheduling: a plain read, no row locks.
func (s *Store) DueAgents(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT agent_id FROM hosts
		WHERE deleted_at IS NULL AND next_scan_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
			AND agent_id IS NOT NULL
		ORDER BY agent_id`, store.Micro(now))
	if err != nil {
		return nil, fmt.Errorf("agents with due hosts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("agents with due hosts: %w", err)
	}
	return ids, nil
}
