package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// TouchAgents implements store.Enrollment: the same update as TouchAgent
// for each agent, sent as one pipelined batch inside one transaction.
func (s *Store) TouchAgents(ctx context.Context, hbs []store.AgentTouch) error {
	if len(hbs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, hb := range hbs {
		at := hb.At
		if at.IsZero() {
			at = time.Now()
		}
		b.Queue(`UPDATE agents SET last_seen_at = greatest(last_seen_at, $1),
				version = coalesce(nullif($2, ''), version),
				os = coalesce(nullif($3, ''), os),
				bundle_digest = coalesce(nullif($4, ''), bundle_digest),
				spool_batches = $5, spool_bytes = $6
			WHERE id = $7`, store.Micro(at), hb.Version, hb.OS, hb.BundleDigest, hb.SpoolBatches, hb.SpoolBytes, hb.AgentID)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("touch %d agents: %w", len(hbs), err)
	}
	return nil
}

// RevokedAgents implements store.Enrollment.
func (s *Store) RevokedAgents(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM agents WHERE status <> $1 ORDER BY id`, string(store.AgentActive))
	if err != nil {
		return nil, fmt.Errorf("revoked agents: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("revoked agents: %w", err)
	}
	return ids, nil
}
