package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// CreateHost implements store.Store: the conflict clause only revives a
// deleted row, so a live host of the same name returns no row.
func (s *Store) CreateHost(ctx context.Context, h store.Host) (store.Host, error) {
	labels, groups, err := hostJSON(h)
	if err != nil {
		return store.Host{}, err
	}
	now := micros(time.Now())
	out, err := scanHost(s.w.QueryRowContext(ctx, `INSERT INTO hosts(name, address, os, labels, group_names, agent_id,
			created_at, updated_at, next_scan_at, due_reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'first')
		ON CONFLICT(name) DO UPDATE SET address = excluded.address, os = excluded.os,
			labels = excluded.labels, group_names = excluded.group_names, agent_id = excluded.agent_id,
			updated_at = excluded.updated_at, next_scan_at = excluded.next_scan_at, due_reason = 'first',
			deleted_at = NULL
		WHERE hosts.deleted_at IS NOT NULL
		RETURNING `+hostColumns, h.Name, h.Address, h.OS, labels, groups, nullID(h.AgentID), now, now, now))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, fmt.Errorf("create host %s: %w", h.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("create host %s: %w", h.Name, err)
	}
	return out, nil
}
