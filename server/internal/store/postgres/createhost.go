package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// CreateHost implements store.Store: the conflict clause only revives a
// deleted row, so a live host of the same name returns no row.
func (s *Store) CreateHost(ctx context.Context, h store.Host) (store.Host, error) {
	labels, groups, err := hostJSON(h)
	if err != nil {
		return store.Host{}, err
	}
	now := store.Micro(time.Now())
	out, err := scanHost(s.pool.QueryRow(ctx, `INSERT INTO hosts(name, address, os, labels, group_names, agent_id,
			created_at, updated_at, next_scan_at, due_reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, 'first')
		ON CONFLICT(name) DO UPDATE SET address = excluded.address, os = excluded.os,
			labels = excluded.labels, group_names = excluded.group_names, agent_id = excluded.agent_id,
			updated_at = excluded.updated_at, next_scan_at = excluded.next_scan_at, due_reason = 'first',
			deleted_at = NULL
		WHERE hosts.deleted_at IS NOT NULL
		RETURNING `+hostColumns, h.Name, h.Address, h.OS, labels, groups, nullID(h.AgentID), now))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Host{}, fmt.Errorf("create host %s: %w", h.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("create host %s: %w", h.Name, err)
	}
	return out, nil
}
