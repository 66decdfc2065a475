package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// hostColumns is the column list every host read selects, in the order
// scanHost expects, so Hosts, Host, HostByName and UpsertHost agree.
const hostColumns = `id, name, address, os, labels::text, group_names::text, agent_id, band, score, last_scan_at, next_scan_at`

// scanHost reads one row selected with hostColumns.
func scanHost(r pgx.Row) (store.Host, error) {
	var h store.Host
	var labels, groups string
	var agent *int64
	var score *float64
	var last, next *time.Time
	if err := r.Scan(&h.ID, &h.Name, &h.Address, &h.OS, &labels, &groups, &agent, &h.Band, &score, &last, &next); err != nil {
		return store.Host{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(labels), &h.Labels), json.Unmarshal([]byte(groups), &h.Groups)); err != nil {
		return store.Host{}, fmt.Errorf("host %s: decode labels or groups: %w", h.Name, err)
	}
	if agent != nil {
		h.AgentID = *agent
	}
	if score != nil {
		h.Score = *score
	}
	h.LastScanAt, h.NextScanAt = fromNull(last), fromNull(next)
	return h, nil
}

// nullTime stores a zero time as NULL and any other cut to microseconds.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return store.Micro(t)
}

// fromNull reads NULL back as the zero time, and a time in UTC.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullID stores id 0 (no reference) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// isUnique tells whether err is a unique_violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Host implements store.Inventory.
func (s *Store) Host(ctx context.Context, id int64) (store.Host, error) {
	h, err := scanHost(s.pool.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Host{}, fmt.Errorf("host %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("host %d: %w", id, err)
	}
	return h, nil
}

// HostByName implements store.Inventory.
func (s *Store) HostByName(ctx context.Context, name string) (store.Host, error) {
	h, err := scanHost(s.pool.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = $1 AND deleted_at IS NULL`, name))
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE hosts SET deleted_at = $1, lease_owner = NULL, lease_until = NULL
			WHERE id = $2 AND deleted_at IS NULL`, store.Micro(time.Now()), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `DELETE FROM host_credentials WHERE host_id = $1`, id); err != nil {
			return fmt.Errorf("erase credential: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete host %d: %w", id, err)
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
	err := s.pool.QueryRow(ctx, `INSERT INTO host_groups(name, description, created_at) VALUES ($1, $2, $3) RETURNING id`,
		g.Name, g.Description, g.CreatedAt).Scan(&g.ID)
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
	rows, err := s.pool.Query(ctx, `SELECT id, name, description, created_at FROM host_groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []store.Group
	for rows.Next() {
		var g store.Group
		if err := rows.Scan(&g.ID, &g.Name, &g.Description, &g.CreatedAt); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		g.CreatedAt = g.CreatedAt.UTC()
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var name string
		err := tx.QueryRow(ctx, `DELETE FROM host_groups WHERE id = $1 RETURNING name`, id).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		// jsonb - text removes every array element equal to the string.
		if _, err := tx.Exec(ctx, `UPDATE hosts SET group_names = group_names - $1::text, updated_at = $2
			WHERE group_names @> jsonb_build_array($1::text)`, name, store.Micro(time.Now())); err != nil {
			return fmt.Errorf("drop %q from hosts: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %d: %w", id, err)
	}
	return nil
}

const agentColumns = `id, name, status, version, os, cert_serial, labels::text, enrolled_at, last_seen_at, revoked_at,
	spool_batches, spool_bytes, bundle_digest, hostname`

func scanAgent(r pgx.Row) (store.Agent, error) {
	var a store.Agent
	var status, labels string
	var seen, revoked *time.Time
	if err := r.Scan(&a.ID, &a.Name, &status, &a.Version, &a.OS, &a.CertSerial, &labels, &a.EnrolledAt, &seen, &revoked,
		&a.SpoolBatches, &a.SpoolBytes, &a.BundleDigest, &a.Hostname); err != nil {
		return store.Agent{}, err
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return store.Agent{}, fmt.Errorf("agent %s: decode labels: %w", a.Name, err)
	}
	a.Status = store.AgentStatus(status)
	a.EnrolledAt = a.EnrolledAt.UTC()
	a.LastSeenAt, a.RevokedAt = fromNull(seen), fromNull(revoked)
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
	out, err := scanAgent(s.pool.QueryRow(ctx, `INSERT INTO agents(name, status, version, os, cert_serial, labels,
			enrolled_at, last_seen_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT(name) DO UPDATE SET status = excluded.status, version = excluded.version, os = excluded.os,
			cert_serial = excluded.cert_serial, labels = excluded.labels,
			last_seen_at = coalesce(excluded.last_seen_at, agents.last_seen_at), revoked_at = excluded.revoked_at
		RETURNING `+agentColumns,
		a.Name, string(a.Status), a.Version, a.OS, a.CertSerial, string(lj), store.Micro(a.EnrolledAt),
		nullTime(a.LastSeenAt), nullTime(a.RevokedAt)))
	if err != nil {
		return store.Agent{}, fmt.Errorf("upsert agent %s: %w", a.Name, err)
	}
	return out, nil
}

// Agent implements store.Inventory.
func (s *Store) Agent(ctx context.Context, id int64) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("agent %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("agent %d: %w", id, err)
	}
	return a, nil
}

// Agents implements store.Inventory.
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY name`)
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

func scanScan(r pgx.Row) (store.Scan, error) {
	var sc store.Scan
	var status string
	var finished *time.Time
	c := &sc.Counts
	if err := r.Scan(&sc.ID, &sc.HostID, &sc.Trigger, &status, &sc.BundleVersion, &sc.StartedAt, &finished,
		&c.Total, &c.Pass, &c.Fail, &c.Skipped, &c.Error, &sc.Message); err != nil {
		return store.Scan{}, err
	}
	sc.Status = store.ScanStatus(status)
	sc.StartedAt = sc.StartedAt.UTC()
	sc.FinishedAt = fromNull(finished)
	return sc, nil
}

// sqlFilter accumulates AND-ed conditions and their numbered arguments.
type sqlFilter struct {
	conds []string
	args  []any
}

// add appends a condition whose single "$?" stands for v.
func (w *sqlFilter) add(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, strings.Replace(cond, "$?", fmt.Sprintf("$%d", len(w.args)), 1))
}

// sql returns " WHERE ..." or "" when nothing was added.
func (w *sqlFilter) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// Scans implements store.Inventory.
func (s *Store) Scans(ctx context.Context, f store.ScanFilter) ([]store.Scan, error) {
	var w sqlFilter
	if f.HostID != 0 {
		w.add("host_id = $?", f.HostID)
	}
	if f.Status != "" {
		w.add("status = $?", string(f.Status))
	}
	if f.BeforeID != 0 {
		w.add("id < $?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + scanColumns + ` FROM scans` + w.sql() + fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM scans WHERE id = $1 FOR UPDATE`, scanID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if store.ScanStatus(status) != store.ScanRunning {
			return fmt.Errorf("already %s: %w", status, store.ErrConflict)
		}
		_, err = tx.Exec(ctx, `UPDATE scans SET status = $1, finished_at = $2, message = $3 WHERE id = $4`,
			string(store.ScanFailed), store.Micro(at), message, scanID)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail scan %d: %w", scanID, err)
	}
	return nil
}

// SetCredential implements store.Inventory.
func (s *Store) SetCredential(ctx context.Context, hostID int64, sealed []byte) error {
	if len(sealed) == 0 {
		return fmt.Errorf("set credential of host %d: empty", hostID)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO host_credentials(host_id, sealed, updated_at)
		SELECT id, $1::bytea, $2::timestamptz FROM hosts WHERE id = $3 AND deleted_at IS NULL
		ON CONFLICT(host_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
		sealed, store.Micro(time.Now()), hostID)
	if err != nil {
		return fmt.Errorf("set credential of host %d: %w", hostID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set credential: host %d: %w", hostID, store.ErrNotFound)
	}
	return nil
}

// Credential implements store.Inventory.
func (s *Store) Credential(ctx context.Context, hostID int64) ([]byte, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT sealed FROM host_credentials WHERE host_id = $1`, hostID).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("credential of host %d: %w", hostID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("credential of host %d: %w", hostID, err)
	}
	return sealed, nil
}
