package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// TouchAgents implements store.Enrollment: one write transaction for the
// whole batch, the same statement as TouchAgent for each agent.
func (s *Store) TouchAgents(ctx context.Context, hbs []store.AgentTouch) error {
	if len(hbs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("touch %d agents: begin: %w", len(hbs), err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE agents SET last_seen_at = max(coalesce(last_seen_at, 0), ?1),
			version = CASE WHEN ?2 = '' THEN version ELSE ?2 END,
			os = CASE WHEN ?3 = '' THEN os ELSE ?3 END,
			bundle_digest = CASE WHEN ?4 = '' THEN bundle_digest ELSE ?4 END,
			spool_batches = ?5, spool_bytes = ?6
		WHERE id = ?7`)
	if err != nil {
		return fmt.Errorf("touch %d agents: %w", len(hbs), err)
	}
	defer stmt.Close()
	for _, hb := range hbs {
		at := hb.At
		if at.IsZero() {
			at = time.Now()
		}
		if _, err := stmt.ExecContext(ctx, micros(at), hb.Version, hb.OS, hb.BundleDigest, hb.SpoolBatches,
			hb.SpoolBytes, hb.AgentID); err != nil {
			return fmt.Errorf("touch agent %d: %w", hb.AgentID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("touch %d agents: commit: %w", len(hbs), err)
	}
	return nil
}

// RevokedAgents implements store.Enrollment, on the reader pool.
func (s *Store) RevokedAgents(ctx context.Context) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM agents WHERE status <> ? ORDER BY id`, string(store.AgentActive))
	if err != nil {
		return nil, fmt.Errorf("revoked agents: %w", err)
	}
	return scanIDs(rows, "revoked agents")
}
