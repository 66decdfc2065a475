package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// PutFacts implements store.Facts. The host's row lock serialises two
// inventories of one host (and inventories with ingest); the item rows are
// rewritten only when something changed, with one statement per table.
func (s *Store) PutFacts(ctx context.Context, hostID int64, f store.HostFacts) (int, error) {
	f = f.Normalize()
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		n, err = putFacts(ctx, tx, hostID, f)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put facts of host %d: %w", hostID, err)
	}
	return n, nil
}

func putFacts(ctx context.Context, tx pgx.Tx, hostID int64, f store.HostFacts) (int, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM hosts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, hostID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	var body []byte
	var at time.Time
	err = tx.QueryRow(ctx, `SELECT body::text, collected_at FROM host_facts WHERE host_id = $1`, hostID).Scan(&body, &at)
	first := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !first {
		return 0, err
	}
	var changes []store.FactChange
	if !first {
		if store.Micro(f.CollectedAt).Before(at) {
			return 0, nil // a late import of an older inventory
		}
		var old store.HostFacts
		if err := json.Unmarshal(body, &old); err != nil {
			return 0, fmt.Errorf("decode stored facts: %w", err)
		}
		changes = store.DiffFacts(hostID, old, f)
	}
	nb, err := json.Marshal(f)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO host_facts(host_id, os, kernel, body, collected_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT(host_id) DO UPDATE SET os = excluded.os, kernel = excluded.kernel, body = excluded.body,
			collected_at = excluded.collected_at`, hostID, f.OS, f.Kernel, string(nb), store.Micro(f.CollectedAt)); err != nil {
		return 0, err
	}
	if !first && len(changes) == 0 {
		return 0, nil
	}
	if err := writeItems(ctx, tx, hostID, f); err != nil {
		return 0, err
	}
	if len(changes) > 0 {
		var ats []time.Time
		var kinds, chs, items, olds, news []string
		for _, c := range changes {
			ats = append(ats, c.At)
			kinds, chs, items = append(kinds, c.Kind), append(chs, c.Change), append(items, c.Item)
			olds, news = append(olds, c.Old), append(news, c.New)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fact_changes(host_id, at, kind, change, item, old, new)
			SELECT $1::bigint, c.at, c.kind, c.change, c.item, c.old, c.new
			FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
				WITH ORDINALITY AS c(at, kind, change, item, old, new, ord) ORDER BY c.ord`,
			hostID, ats, kinds, chs, items, olds, news); err != nil {
			return 0, fmt.Errorf("log changes: %w", err)
		}
	}
	return len(changes), nil
}

// writeItems replaces the host's searchable package, port and service rows.
func writeItems(ctx context.Context, tx pgx.Tx, hostID int64, f store.HostFacts) error {
	for _, t := range []string{"host_packages", "host_ports", "host_services"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE host_id = $1`, hostID); err != nil {
			return err
		}
	}
	var names, archs, versions []string
	for _, p := range f.Packages {
		names, archs, versions = append(names, p.Name), append(archs, p.Arch), append(versions, p.Version)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO host_packages(host_id, name, arch, version)
		SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::text[])`, hostID, names, archs, versions); err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	var protos, addrs, procs []string
	var ports []int32
	for _, p := range f.Ports {
		protos, addrs, procs = append(protos, p.Protocol), append(addrs, p.Address), append(procs, p.Process)
		ports = append(ports, int32(p.Port))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO host_ports(host_id, protocol, address, port, process)
		SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::int[], $5::text[])`, hostID, protos, addrs, ports, procs); err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	var snames []string
	var enabled, active []bool
	for _, sv := range f.Services {
		snames, enabled, active = append(snames, sv.Name), append(enabled, sv.Enabled), append(active, sv.Active)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO host_services(host_id, name, enabled, active)
		SELECT $1::bigint, * FROM unnest($2::text[], $3::bool[], $4::bool[])`, hostID, snames, enabled, active); err != nil {
		return fmt.Errorf("services: %w", err)
	}
	return nil
}

// Facts implements store.Facts.
func (s *Store) Facts(ctx context.Context, hostID int64) (store.HostFacts, error) {
	var body []byte
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT body::text, collected_at FROM host_facts WHERE host_id = $1`, hostID).Scan(&body, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: %w", hostID, store.ErrNotFound)
	}
	if err != nil {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: %w", hostID, err)
	}
	var f store.HostFacts
	if err := json.Unmarshal(body, &f); err != nil {
		return store.HostFacts{}, fmt.Errorf("facts of host %d: decode: %w", hostID, err)
	}
	f.CollectedAt = at.UTC()
	return f, nil
}

// FactChanges implements store.Facts.
func (s *Store) FactChanges(ctx context.Context, hostID int64, from, to time.Time) ([]store.FactChange, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, host_id, at, kind, change, item, old, new FROM fact_changes
		WHERE host_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`, hostID, store.Micro(from), store.Micro(to))
	if err != nil {
		return nil, fmt.Errorf("fact changes of host %d: %w", hostID, err)
	}
	out := []store.FactChange{}
	for rows.Next() {
		var c store.FactChange
		if err := rows.Scan(&c.ID, &c.HostID, &c.At, &c.Kind, &c.Change, &c.Item, &c.Old, &c.New); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fact changes of host %d: %w", hostID, err)
		}
		c.At = c.At.UTC()
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
		rows, err := s.pool.Query(ctx, query, arg)
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
				var port int32
				err = rows.Scan(&m.HostID, &m.HostName, &m.Protocol, &m.Address, &port, &m.Name)
				m.Port = int(port)
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
			JOIN hosts h ON h.id = p.host_id AND h.deleted_at IS NULL WHERE p.name = $1`, q.Package); err != nil {
			return nil, err
		}
	}
	if q.Port != 0 {
		if err := run(store.FactPort, `SELECT h.id, h.name, p.protocol, p.address, p.port, p.process FROM host_ports p
			JOIN hosts h ON h.id = p.host_id AND h.deleted_at IS NULL WHERE p.port = $1`, q.Port); err != nil {
			return nil, err
		}
	}
	if q.Service != "" {
		if err := run(store.FactService, `SELECT h.id, h.name, sv.name, sv.enabled, sv.active FROM host_services sv
			JOIN hosts h ON h.id = sv.host_id AND h.deleted_at IS NULL WHERE sv.name = $1`, q.Service); err != nil {
			return nil, err
		}
	}
	return store.IntersectMatches(sets, q.Limit), nil
}

// RecordImport implements store.Facts.
func (s *Store) RecordImport(ctx context.Context, rec store.ImportRecord) (store.ImportRecord, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO imported_archives(digest, host_id, scan_id, agent_id, started_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT(digest) DO NOTHING`,
		rec.Digest, rec.HostID, rec.ScanID, rec.AgentID, store.Micro(rec.StartedAt)); err != nil {
		return store.ImportRecord{}, fmt.Errorf("record import %s: %w", rec.Digest, err)
	}
	return s.ImportedArchive(ctx, rec.Digest)
}

// ImportedArchive implements store.Facts.
func (s *Store) ImportedArchive(ctx context.Context, digest string) (store.ImportRecord, error) {
	r := store.ImportRecord{Digest: digest}
	var finished *time.Time
	err := s.pool.QueryRow(ctx, `SELECT host_id, scan_id, agent_id, started_at, finished_at FROM imported_archives
		WHERE digest = $1`, digest).Scan(&r.HostID, &r.ScanID, &r.AgentID, &r.StartedAt, &finished)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ImportRecord{}, fmt.Errorf("imported archive %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.ImportRecord{}, fmt.Errorf("imported archive %s: %w", digest, err)
	}
	r.StartedAt, r.FinishedAt = r.StartedAt.UTC(), fromNull(finished)
	return r, nil
}

// FinishImport implements store.Facts.
func (s *Store) FinishImport(ctx context.Context, digest string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE imported_archives SET finished_at = $1 WHERE digest = $2`, store.Micro(at), digest)
	if err != nil {
		return fmt.Errorf("finish import %s: %w", digest, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish import %s: %w", digest, store.ErrNotFound)
	}
	return nil
}

// SetHostPosture implements store.Facts.
func (s *Store) SetHostPosture(ctx context.Context, hostID int64, scannedAt time.Time, score float64, band string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hosts SET last_scan_at = $2, score = $3, band = $4
		WHERE id = $1 AND deleted_at IS NULL AND (last_scan_at IS NULL OR last_scan_at <= $2)`,
		hostID, store.Micro(scannedAt), score, band)
	if err != nil {
		return fmt.Errorf("set posture of host %d: %w", hostID, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := s.Host(ctx, hostID); err != nil {
		return fmt.Errorf("set posture: %w", err)
	}
	return nil // the host holds a later scan already
}
