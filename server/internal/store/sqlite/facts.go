package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// PutFacts implements store.Facts. The item rows are rewritten only when
// something changed, which after the first scan is rare.
func (s *Store) PutFacts(ctx context.Context, hostID int64, f store.HostFacts) (int, error) {
	f = f.Normalize()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("put facts of host %d: %w", hostID, err)
	}
	defer tx.Rollback()
	n, err := putFacts(ctx, tx, hostID, f)
	if err != nil {
		return 0, fmt.Errorf("put facts of host %d: %w", hostID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("put facts of host %d: %w", hostID, err)
	}
	return n, nil
}

func putFacts(ctx context.Context, tx *sql.Tx, hostID int64, f store.HostFacts) (int, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM hosts WHERE id = ? AND deleted_at IS NULL`, hostID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	var body string
	var at int64
	err = tx.QueryRowContext(ctx, `SELECT body, collected_at FROM host_facts WHERE host_id = ?`, hostID).Scan(&body, &at)
	first := errors.Is(err, sql.ErrNoRows)
	if err != nil && !first {
		return 0, err
	}
	var changes []store.FactChange
	if !first {
		if micros(f.CollectedAt) < at {
			return 0, nil // a late import of an older inventory
		}
		var old store.HostFacts
		if err := json.Unmarshal([]byte(body), &old); err != nil {
			return 0, fmt.Errorf("decode stored facts: %w", err)
		}
		changes = store.DiffFacts(hostID, old, f)
	}
	nb, err := json.Marshal(f)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO host_facts(host_id, os, kernel, body, collected_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(host_id) DO UPDATE SET os = excluded.os, kernel = excluded.kernel, body = excluded.body,
			collected_at = excluded.collected_at`, hostID, f.OS, f.Kernel, string(nb), micros(f.CollectedAt)); err != nil {
		return 0, err
	}
	if !first && len(changes) == 0 {
		return 0, nil
	}
	if err := writeItems(ctx, tx, hostID, f); err != nil {
		return 0, err
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fact_changes(host_id, at, kind, change, item, old, new)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, hostID, micros(c.At), c.Kind, c.Change, c.Item, c.Old, c.New); err != nil {
			return 0, err
		}
	}
	return len(changes), nil
}

// writeItems replaces the host's searchable package, port and service rows.
func writeItems(ctx context.Context, tx *sql.Tx, hostID int64, f store.HostFacts) error {
	for _, t := range []string{"host_packages", "host_ports", "host_services"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE host_id = ?`, hostID); err != nil {
			return err
		}
	}
	for _, p := range f.Packages {
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_packages(host_id, name, arch, version) VALUES (?, ?, ?, ?)`,
			hostID, p.Name, p.Arch, p.Version); err != nil {
			return fmt.Errorf("package %s: %w", p.Key(), err)
		}
	}
	for _, p := range f.Ports {
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_ports(host_id, protocol, address, port, process) VALUES (?, ?, ?, ?, ?)`,
			hostID, p.Protocol, p.Address, p.Port, p.Process); err != nil {
			return fmt.Errorf("port %s: %w", p.Key(), err)
		}
	}
	for _, sv := range f.Services {
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_services(host_id, name, enabled, active) VALUES (?, ?, ?, ?)`,
			hostID, sv.Name, sv.Enabled, sv.Active); err != nil {
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
	}
	return nil
}

// Facts implements store.Facts.
func (s *Store) Facts(ctx context.Context, hostID int64) (store.HostFacts, error) {
	var body string
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT body, collected_at FROM host_facts WHERE host_id = ?`, hostID).Scan(&body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: %w", hostID, store.ErrNotFound)
	}
	if err != nil {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: %w", hostID, err)
	}
	var f store.HostFacts
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: decode: %w", hostID, err)
	}
	f.CollectedAt = fromMicros(at)
	return f, nil
}

// FactChanges implements store.Facts.
func (s *Store) FactChanges(ctx context.Context, hostID int64, from, to time.Time) ([]store.FactChange, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, host_id, at, kind, change, item, old, new FROM fact_changes
		WHERE host_id = ? AND at >= ? AND at < ? ORDER BY at, id`, hostID, micros(from), micros(to))
	if err != nil {
		return nil, fmt.Errorf("fact changes of host %d: %w", hostID, err)
	}
	defer rows.Close()
	out := []store.FactChange{}
	for rows.Next() {
		var c store.FactChange
		var at int64
		if err := rows.Scan(&c.ID, &c.HostID, &at, &c.Kind, &c.Change, &c.Item, &c.Old, &c.New); err != nil {
			return nil, fmt.Errorf("fact changes of host %d: %w", hostID, err)
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fact changes of host %d: %w", hostID, err)
	}
	return out, nil
}

// SearchFacts implements store.Facts.
func (s *Store) SearchFacts(ctx context.Context, q store.FactQuery) ([]store.FactMatch, error) {
	if q.Empty() {
		return nil, errors.New("search facts: no criterion (package, port or service)")
	}
	var sets [][]store.FactMatch
	run := func(kind, query string, arg any) error {
		rows, err := s.r.QueryContext(ctx, query, arg)
		if err != nil {
			return fmt.Errorf("search facts (%s): %w", kind, err)
		}
		defer rows.Close()
		var ms []store.FactMatch
		for rows.Next() {
			m := store.FactMatch{Kind: kind}
			var err error
			switch kind {
			case store.FactPackage:
				err = rows.Scan(&m.HostID, &m.HostName, &m.Name, &m.Arch, &m.Version)
			case store.FactPort:
				err = rows.Scan(&m.HostID, &m.HostName, &m.Protocol, &m.Address, &m.Port, &m.Name)
			default:
				err = rows.Scan(&m.HostID, &m.HostName, &m.Name, &m.Enabled, &m.Active)
			}
			if err != nil {
				return fmt.Errorf("search facts (%s): %w", kind, err)
			}
			ms = append(ms, m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("search facts (%s): %w", kind, err)
		}
		sets = append(sets, ms)
		return nil
	}
	if q.Package != "" {
		if err := run(store.FactPackage, `SELECT h.id, h.name, p.name, p.arch, p.version FROM host_packages p
			JOIN hosts h ON h.id = p.host_id AND h.deleted_at IS NULL WHERE p.name = ?`, q.Package); err != nil {
			return nil, err
		}
	}
	if q.Port != 0 {
		if err := run(store.FactPort, `SELECT h.id, h.name, p.protocol, p.address, p.port, p.process FROM host_ports p
			JOIN hosts h ON h.id = p.host_id AND h.deleted_at IS NULL WHERE p.port = ?`, q.Port); err != nil {
			return nil, err
		}
	}
	if q.Service != "" {
		if err := run(store.FactService, `SELECT h.id, h.name, sv.name, sv.enabled, sv.active FROM host_services sv
			JOIN hosts h ON h.id = sv.host_id AND h.deleted_at IS NULL WHERE sv.name = ?`, q.Service); err != nil {
			return nil, err
		}
	}
	return store.IntersectMatches(sets, q.Limit), nil
}

// RecordImport implements store.Facts.
func (s *Store) RecordImport(ctx context.Context, rec store.ImportRecord) (store.ImportRecord, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO imported_archives(digest, host_id, scan_id, agent_id, started_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING`,
		rec.Digest, rec.HostID, rec.ScanID, rec.AgentID, micros(rec.StartedAt)); err != nil {
		return store.ImportRecord{}, fmt.Errorf("record import %s: %w", rec.Digest, err)
	}
	return s.importRecord(ctx, s.w, rec.Digest)
}

// ImportedArchive implements store.Facts.
func (s *Store) ImportedArchive(ctx context.Context, digest string) (store.ImportRecord, error) {
	return s.importRecord(ctx, s.r, digest)
}

func (s *Store) importRecord(ctx context.Context, db *sql.DB, digest string) (store.ImportRecord, error) {
	r := store.ImportRecord{Digest: digest}
	var started int64
	var finished sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT host_id, scan_id, agent_id, started_at, finished_at FROM imported_archives
		WHERE digest = ?`, digest).Scan(&r.HostID, &r.ScanID, &r.AgentID, &started, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ImportRecord{}, fmt.Errorf("imported archive %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.ImportRecord{}, fmt.Errorf("imported archive %s: %w", digest, err)
	}
	r.StartedAt, r.FinishedAt = fromMicros(started), fromNullMicros(finished)
	return r, nil
}

// FinishImport implements store.Facts.
func (s *Store) FinishImport(ctx context.Context, digest string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE imported_archives SET finished_at = ? WHERE digest = ?`, micros(at), digest)
	if err != nil {
		return fmt.Errorf("finish import %s: %w", digest, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish import %s: %w", digest, store.ErrNotFound)
	}
	return nil
}

// SetHostPosture implements store.Facts.
func (s *Store) SetHostPosture(ctx context.Context, hostID int64, scannedAt time.Time, score float64, band string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE hosts SET last_scan_at = ?2, score = ?3, band = ?4
		WHERE id = ?1 AND deleted_at IS NULL AND (last_scan_at IS NULL OR last_scan_at <= ?2)`,
		hostID, micros(scannedAt), score, band)
	if err != nil {
		return fmt.Errorf("set posture of host %d: %w", hostID, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, err := s.Host(ctx, hostID); err != nil {
		return fmt.Errorf("set posture: %w", err)
	}
	return nil // the host holds a later scan already
}
