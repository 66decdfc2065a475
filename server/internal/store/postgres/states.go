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

// StatesAt implements store.Store: StateAt's latest transition at or
// before T per (host, rule), for all the hosts in one query on the
// (host, rule, at) index, references not read.
func (s *Store) StatesAt(ctx context.Context, at time.Time, hostIDs []int64) (map[int64][]store.Finding, error) {
	out := make(map[int64][]store.Finding, len(hostIDs))
	if len(hostIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (host_id, rule_id) host_id, rule_id, to_status, severity, reason,
			evidence_hash, scan_id, at
		FROM transitions WHERE host_id = ANY($1) AND at <= $2
		ORDER BY host_id, rule_id, at DESC, id DESC`, hostIDs, store.Micro(at))
	if err != nil {
		return nil, fmt.Errorf("states of %d hosts at %s: %w", len(hostIDs), at, err)
	}
	var (
		hostID           int64
		f                store.Finding
		status, severity string
		hash             *string
	)
	_, err = pgx.ForEachRow(rows, []any{&hostID, &f.RuleID, &status, &severity, &f.Reason, &hash, &f.ScanID, &f.At}, func() error {
		g := f
		g.Status, g.Severity, g.At = result.Status(status), rule.Severity(severity), f.At.UTC()
		g.EvidenceHash = ""
		if hash != nil {
			g.EvidenceHash = *hash
		}
		out[hostID] = append(out[hostID], g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("states of %d hosts at %s: %w", len(hostIDs), at, err)
	}
	return out, nil
}
