package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// statesChunk bounds the host ids bound into one query (SQLite allows
// 32766 variables).
const statesChunk = 500

// StatesAt implements store.Store: StateAt's rows (at <= T < valid_to) for
// many hosts per query, references not read.
func (s *Store) StatesAt(ctx context.Context, at time.Time, hostIDs []int64) (map[int64][]store.Finding, error) {
	out := make(map[int64][]store.Finding, len(hostIDs))
	t := micros(at)
	for start := 0; start < len(hostIDs); start += statesChunk {
		ids := hostIDs[start:min(start+statesChunk, len(hostIDs))]
		args := make([]any, 0, len(ids)+1)
		args = append(args, t)
		for _, id := range ids {
			args = append(args, id)
		}
		// ?1 is the moment, ?2... the host ids.
		q := `SELECT host_id, rule_id, to_status, severity, reason, evidence_hash, scan_id, at
			FROM transitions WHERE host_id IN (?2` + strings.Repeat(",?", len(ids)-1) + `)
				AND at <= ?1 AND (valid_to IS NULL OR valid_to > ?1)
			ORDER BY host_id, rule_id`
		if err := s.statesChunk(ctx, q, args, out); err != nil {
			return nil, fmt.Errorf("states of %d hosts at %s: %w", len(hostIDs), at, err)
		}
	}
	return out, nil
}

func (s *Store) statesChunk(ctx context.Context, q string, args []any, out map[int64][]store.Finding) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		hostID, at       int64
		status, severity string
		hash             sql.NullString
	)
	for rows.Next() {
		var f store.Finding
		if err := rows.Scan(&hostID, &f.RuleID, &status, &severity, &f.Reason, &hash, &f.ScanID, &at); err != nil {
			return err
		}
		f.Status, f.Severity = result.Status(status), rule.Severity(severity)
		f.EvidenceHash, f.At = hash.String, fromMicros(at)
		out[hostID] = append(out[hostID], f)
	}
	return rows.Err()
}
