package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// hostColumns is the column list every host read selects, in the order
// scanHost expects, so Hosts, Host, HostByName and UpsertHost agree.
const hostColumns = `id, name, address, os, labels, group_names, agent_id, band, score, last_scan_at, next_scan_at`

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(dest ...any) error }

// scanHost reads one row selected with hostColumns.
func scanHost(r rowScanner) (store.Host, error) {
	var h store.Host
	var labels, groups string
	var agent sql.NullInt64
	var score sql.NullFloat64
	var last, next sql.NullInt64
	if err := r.Scan(&h.ID, &h.Name, &h.Address, &h.OS, &labels, &groups, &agent, &h.Band, &score, &last, &next); err != nil {
		return store.Host{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(labels), &h.Labels), json.Unmarshal([]byte(groups), &h.Groups)); err != nil {
		return store.Host{}, fmt.Errorf("host %s: decode labels or groups: %w", h.Name, err)
	}
	h.AgentID = agent.Int64
	h.Score = score.Float64
	h.LastScanAt = fromNullMicros(last)
	h.NextScanAt = fromNullMicros(next)
	return h, nil
}

// nullMicros stores a zero time as NULL.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// fromNullMicros reads NULL back as the zero time.
func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// nullID stores id 0 (no reference) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// isUnique tells whether err is a UNIQUE constraint violation.
func isUnique(err error) bool {
	var se *sqlitedrv.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// Host implements store.Inventory.
func (s *Store) Host(ctx context.Context, id int64) (store.Host, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, `SELECT `+hostColumns+` FROM hosts WHERE id = ? AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, fmt.Errorf("host %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("host %d: %w", id, err)
	}
	return h, nil
}

// HostByName implements store.Inventory.
func (s *Store) HostByName(ctx context.Context, name string) (store.Host, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = ? AND deleted_at IS NULL`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, fmt.Errorf("host %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("host %q: %w", name, err)
	}
	return h, nil
}

// DeleteHost implements store.Inventory: the row stays (scans and
// transitions refer to it), marked deleted, unleased and without its
// credential.
func (s *Store) DeleteHost(ctx context.Context, id int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete host %d: begin: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE hosts SET deleted_at = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ? AND deleted_at IS NULL`, micros(time.Now()), id)
	if err != nil {
		return fmt.Errorf("delete host %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete host %d: %w", id, store.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM host_credentials WHERE host_id = ?`, id); err != nil {
		return fmt.Errorf("delete host %d: erase credential: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete host %d: commit: %w", id, err)
	}
	return nil
}

// CreateGroup implements store.Inventory.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (store.Group, error) {
	if g.Name == "" {
		return store.Group{}, errors.New("create group: empty name")
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = time.Now()
	}
	g.CreatedAt = store.Micro(g.CreatedAt)
	err := s.w.QueryRowContext(ctx, `INSERT INTO host_groups(name, description, created_at) VALUES (?, ?, ?) RETURNING id`,
		g.Name, g.Description, micros(g.CreatedAt)).Scan(&g.ID)
	if isUnique(err) {
		return store.Group{}, fmt.Errorf("create group %q: %w", g.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Group{}, fmt.Errorf("create group %q: %w", g.Name, err)
	}
	return g, nil
}

// Groups implements store.Inventory.
func (s *Store) Groups(ctx context.Context) ([]store.Group, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, description, created_at FROM host_groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []store.Group
	for rows.Next() {
		var g store.Group
		var created int64
		if err := rows.Scan(&g.ID, &g.Name, &g.Description, &created); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		g.CreatedAt = fromMicros(created)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// DeleteGroup implements store.Inventory: the group row and its name in
// every host's group list (deleted hosts included) go in one transaction.
func (s *Store) DeleteGroup(ctx context.Context, id int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete group %d: begin: %w", id, err)
	}
	defer tx.Rollback()
	var name string
	err = tx.QueryRowContext(ctx, `DELETE FROM host_groups WHERE id = ? RETURNING name`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete group %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete group %d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE hosts SET updated_at = ?, group_names = (
			SELECT json_group_array(j.value ORDER BY j.key) FROM json_each(hosts.group_names) AS j WHERE j.value <> ?)
		WHERE EXISTS (SELECT 1 FROM json_each(hosts.group_names) AS j WHERE j.value = ?)`,
		micros(time.Now()), name, name); err != nil {
		return fmt.Errorf("delete group %q: drop from hosts: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete group %q: commit: %w", name, err)
	}
	return nil
}

const agentColumns = `id, name, status, version, os, cert_serial, labels, enrolled_at, last_seen_at, revoked_at,
	spool_batches, spool_bytes, bundle_digest, hostname`

func scanAgent(r rowScanner) (store.Agent, error) {
	var a store.Agent
	var status, labels string
	var enrolled int64
	var seen, revoked sql.NullInt64
	if err := r.Scan(&a.ID, &a.Name, &status, &a.Version, &a.OS, &a.CertSerial, &labels, &enrolled, &seen, &revoked,
		&a.SpoolBatches, &a.SpoolBytes, &a.BundleDigest, &a.Hostname); err != nil {
		return store.Agent{}, err
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return store.Agent{}, fmt.Errorf("agent %s: decode labels: %w", a.Name, err)
	}
	a.Status = store.AgentStatus(status)
	a.EnrolledAt = fromMicros(enrolled)
	a.LastSeenAt = fromNullMicros(seen)
	a.RevokedAt = fromNullMicros(revoked)
	return a, nil
}

// UpsertAgent implements store.Inventory. EnrolledAt is kept from the first
// insert, and a zero LastSeenAt does not erase a recorded one.
func (s *Store) UpsertAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	if a.Name == "" {
		return store.Agent{}, errors.New("upsert agent: empty name")
	}
	if a.Status == "" {
		a.Status = store.AgentActive
	}
	if a.EnrolledAt.IsZero() {
		a.EnrolledAt = time.Now()
	}
	labels := a.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lj, err := json.Marshal(labels)
	if err != nil {
		return store.Agent{}, fmt.Errorf("agent %s labels: %w", a.Name, err)
	}
	out, err := scanAgent(s.w.QueryRowContext(ctx, `INSERT INTO agents(name, status, version, os, cert_serial, labels,
			enrolled_at, last_seen_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET status = excluded.status, version = excluded.version, os = excluded.os,
			cert_serial = excluded.cert_serial, labels = excluded.labels,
			last_seen_at = coalesce(excluded.last_seen_at, agents.last_seen_at), revoked_at = excluded.revoked_at
		RETURNING `+agentColumns,
		a.Name, string(a.Status), a.Version, a.OS, a.CertSerial, string(lj), micros(a.EnrolledAt),
		nullMicros(a.LastSeenAt), nullMicros(a.RevokedAt)))
	if err != nil {
		return store.Agent{}, fmt.Errorf("upsert agent %s: %w", a.Name, err)
	}
	return out, nil
}

// Agent implements store.Inventory.
func (s *Store) Agent(ctx context.Context, id int64) (store.Agent, error) {
	a, err := scanAgent(s.r.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("agent %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("agent %d: %w", id, err)
	}
	return a, nil
}

// Agents implements store.Inventory.
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// scanColumns is the column list of every scan read, in scanScan's order.
const scanColumns = `id, host_id, trigger, status, bundle_version, started_at, finished_at,
	total, pass, fail, skipped, error, message`

func scanScan(r rowScanner) (store.Scan, error) {
	var sc store.Scan
	var status string
	var started int64
	var finished sql.NullInt64
	c := &sc.Counts
	if err := r.Scan(&sc.ID, &sc.HostID, &sc.Trigger, &status, &sc.BundleVersion, &started, &finished,
		&c.Total, &c.Pass, &c.Fail, &c.Skipped, &c.Error, &sc.Message); err != nil {
		return store.Scan{}, err
	}
	sc.Status = store.ScanStatus(status)
	sc.StartedAt = fromMicros(started)
	sc.FinishedAt = fromNullMicros(finished)
	return sc, nil
}

// Scans implements store.Inventory.
func (s *Store) Scans(ctx context.Context, f store.ScanFilter) ([]store.Scan, error) {
	var where []string
	var args []any
	if f.HostID != 0 {
		where, args = append(where, "host_id = ?"), append(args, f.HostID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.BeforeID != 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := `SELECT ` + scanColumns + ` FROM scans`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list scans: %w", err)
	}
	defer rows.Close()
	var out []store.Scan
	for rows.Next() {
		sc, err := scanScan(rows)
		if err != nil {
			return nil, fmt.Errorf("list scans: %w", err)
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list scans: %w", err)
	}
	return out, nil
}

// FailScan implements store.Inventory. Only a running scan can fail: a
// finished one is ErrConflict and keeps its outcome.
func (s *Store) FailScan(ctx context.Context, scanID int64, at time.Time, message string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fail scan %d: begin: %w", scanID, err)
	}
	defer tx.Rollback()
	var status string
	err = tx.QueryRowContext(ctx, `SELECT status FROM scans WHERE id = ?`, scanID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("fail scan %d: %w", scanID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("fail scan %d: %w", scanID, err)
	}
	if store.ScanStatus(status) != store.ScanRunning {
		return fmt.Errorf("fail scan %d: already %s: %w", scanID, status, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE scans SET status = ?, finished_at = ?, message = ? WHERE id = ?`,
		string(store.ScanFailed), micros(at), message, scanID); err != nil {
		return fmt.Errorf("fail scan %d: %w", scanID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fail scan %d: commit: %w", scanID, err)
	}
	return nil
}

// SetCredential implements store.Inventory.
func (s *Store) SetCredential(ctx context.Context, hostID int64, sealed []byte) error {
	if len(sealed) == 0 {
		return fmt.Errorf("set credential of host %d: empty", hostID)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO host_credentials(host_id, sealed, updated_at)
		SELECT id, ?, ? FROM hosts WHERE id = ? AND deleted_at IS NULL
		ON CONFLICT(host_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
		sealed, micros(time.Now()), hostID)
	if err != nil {
		return fmt.Errorf("set credential of host %d: %w", hostID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set credential: host %d: %w", hostID, store.ErrNotFound)
	}
	return nil
}

// Credential implements store.Inventory.
func (s *Store) Credential(ctx context.Context, hostID int64) ([]byte, error) {
	var sealed []byte
	err := s.r.QueryRowContext(ctx, `SELECT sealed FROM host_credentials WHERE host_id = ?`, hostID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("credential of host %d: %w", hostID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("credential of host %d: %w", hostID, err)
	}
	return sealed, nil
}
