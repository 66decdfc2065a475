// Package sqlite is the embedded store: one file in the data directory, so
// a single vigil-server binary is a working server. It uses WAL so readers
// never wait for the writer, and one writer connection so that writes are
// serialised in the process instead of failing with SQLITE_BUSY.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of store.Store.
type Store struct {
	w *sql.DB // the single writer
	r *sql.DB // readers
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies
// pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	// busy_timeout comes first so that the journal_mode switch waits for a
	// concurrent opener instead of failing with SQLITE_BUSY.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction, so
	// a second process writing the same file waits on busy_timeout rather
	// than failing at its first write after reading.
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r}
	if err := s.migrateRetrying(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.w.Close(), s.r.Close())
}

// Ready implements store.Store: one query counting the embedded migrations
// recorded as applied.
func (s *Store) Ready(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")] = true
	}
	var applied int
	rows, err := s.r.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("sqlite: readiness query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("sqlite: readiness query: %w", err)
		}
		if want[v] {
			applied++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: readiness query: %w", err)
	}
	if applied < len(names) {
		return fmt.Errorf("sqlite: %d of %d migrations applied: %w", applied, len(names), store.ErrMigrationsPending)
	}
	return nil
}

// migrateRetrying runs migrate, retrying while the file is busy. SQLite does
// not call the busy handler in every case: a connection opening a new file
// while another switches it to WAL, or one that finds the write-ahead log
// being recovered, gets SQLITE_BUSY at once. Replicas or a restart that race
// on one file then wait for each other instead of failing to start. Bounded
// to busyAttempts tries, about 15 s in all.
func (s *Store) migrateRetrying(ctx context.Context) error {
	const busyAttempts = 60
	var err error
	for attempt := range busyAttempts {
		if err = s.migrate(ctx); err == nil || !isBusy(err) {
			return err
		}
		s.w.SetMaxIdleConns(0) // drop the connection that saw the lock
		s.w.SetMaxIdleConns(2)
		wait := time.Duration(attempt+1) * 25 * time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(min(wait, 500*time.Millisecond)):
		}
	}
	return fmt.Errorf("%w (still busy after %d attempts)", err, busyAttempts)
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY
// and its extended codes).
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return false
}

// migrate applies every embedded migration not yet recorded, all in one
// immediate transaction: that transaction is the lock, so two processes
// opening a new file at once cannot both apply a migration.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: schema_migrations: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`,
			version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate %s: record: %w", version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func micros(t time.Time) int64 { return store.Micro(t).UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// UpsertHost implements store.Store. A new host is due at once (reason
// "first"); upserting a deleted host's name revives it, with its history,
// and makes it due at once too.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) (store.Host, error) {
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
			updated_at = excluded.updated_at,
			next_scan_at = CASE WHEN hosts.deleted_at IS NULL THEN hosts.next_scan_at ELSE excluded.next_scan_at END,
			deleted_at = NULL
		RETURNING `+hostColumns, h.Name, h.Address, h.OS, labels, groups, nullID(h.AgentID), now, now, now))
	if err != nil {
		return store.Host{}, fmt.Errorf("upsert host %s: %w", h.Name, err)
	}
	return out, nil
}

// Hosts implements store.Store.
func (s *Store) Hosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+hostColumns+` FROM hosts WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var out []store.Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return out, nil
}

func hostJSON(h store.Host) (labels, groups string, err error) {
	if h.Name == "" {
		return "", "", errors.New("upsert host: empty name")
	}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	if h.Groups == nil {
		h.Groups = []string{}
	}
	lj, err := json.Marshal(h.Labels)
	if err != nil {
		return "", "", fmt.Errorf("host %s labels: %w", h.Name, err)
	}
	gj, err := json.Marshal(h.Groups)
	if err != nil {
		return "", "", fmt.Errorf("host %s groups: %w", h.Name, err)
	}
	return string(lj), string(gj), nil
}

// CreateScan implements store.Store.
func (s *Store) CreateScan(ctx context.Context, sc store.Scan) (store.Scan, error) {
	if sc.Status == "" {
		sc.Status = store.ScanRunning
	}
	if sc.StartedAt.IsZero() {
		sc.StartedAt = time.Now()
	}
	sc.StartedAt = store.Micro(sc.StartedAt)
	var finished any
	if !sc.FinishedAt.IsZero() {
		sc.FinishedAt = store.Micro(sc.FinishedAt)
		finished = micros(sc.FinishedAt)
	}
	var exists int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM hosts WHERE id = ?`, sc.HostID).Scan(&exists); err != nil {
		return store.Scan{}, fmt.Errorf("create scan of host %d: %w", sc.HostID, err)
	}
	if exists == 0 {
		return store.Scan{}, fmt.Errorf("create scan: host %d: %w", sc.HostID, store.ErrNotFound)
	}
	c := sc.Counts
	err := s.w.QueryRowContext(ctx, `INSERT INTO scans(host_id, trigger, status, bundle_version, started_at, finished_at,
			total, pass, fail, skipped, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		sc.HostID, sc.Trigger, string(sc.Status), sc.BundleVersion, micros(sc.StartedAt), finished,
		c.Total, c.Pass, c.Fail, c.Skipped, c.Error).Scan(&sc.ID)
	if err != nil {
		return store.Scan{}, fmt.Errorf("create scan of host %d: %w", sc.HostID, err)
	}
	return sc, nil
}

// FinishScan implements store.Store.
func (s *Store) FinishScan(ctx context.Context, id int64, status store.ScanStatus, at time.Time, c result.Summary) error {
	res, err := s.w.ExecContext(ctx, `UPDATE scans SET status = ?, finished_at = ?, total = ?, pass = ?, fail = ?,
		skipped = ?, error = ? WHERE id = ?`, string(status), micros(at), c.Total, c.Pass, c.Fail, c.Skipped, c.Error, id)
	if err != nil {
		return fmt.Errorf("finish scan %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish scan %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, id int64) (store.Scan, error) {
	sc, err := scanScan(s.r.QueryRowContext(ctx, `SELECT `+scanColumns+` FROM scans WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, err)
	}
	return sc, nil
}

// Ingest implements store.Store.
func (s *Store) Ingest(ctx context.Context, b store.Batch) (store.IngestStats, error) {
	var st store.IngestStats
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("ingest scan %d batch %d: begin: %w", b.ScanID, b.Seq, err)
	}
	defer tx.Rollback()
	st, err = ingest(ctx, tx, b)
	if err != nil {
		return store.IngestStats{}, fmt.Errorf("ingest scan %d batch %d: %w", b.ScanID, b.Seq, err)
	}
	if st.Replayed {
		return st, nil
	}
	if err := tx.Commit(); err != nil {
		return store.IngestStats{}, fmt.Errorf("ingest scan %d batch %d: commit: %w", b.ScanID, b.Seq, err)
	}
	return st, nil
}

func ingest(ctx context.Context, tx *sql.Tx, b store.Batch) (store.IngestStats, error) {
	var st store.IngestStats
	var hostID, started int64
	err := tx.QueryRowContext(ctx, `SELECT host_id, started_at FROM scans WHERE id = ?`, b.ScanID).Scan(&hostID, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("scan %d: %w", b.ScanID, store.ErrNotFound)
	}
	if err != nil {
		return st, err
	}
	p, err := store.Prepare(b, fromMicros(started))
	if err != nil {
		return st, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO ingested_batches(scan_id, seq, results, ingested_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, b.ScanID, b.Seq, len(p.Rows), micros(time.Now()))
	if err != nil {
		return st, fmt.Errorf("record batch: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.IngestStats{Replayed: true}, nil
	}
	for _, h := range p.Hashes {
		res, err := tx.ExecContext(ctx, `INSERT INTO evidence(hash, body) VALUES (?, ?) ON CONFLICT DO NOTHING`, h, string(p.Evidence[h]))
		if err != nil {
			return st, fmt.Errorf("evidence %s: %w", h, err)
		}
		n, _ := res.RowsAffected()
		st.NewEvidence += int(n)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO scan_results(scan_id, host_id, rule_id, status, severity, reason, refs,
		evidence_hash, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return st, err
	}
	defer ins.Close()
	for _, r := range p.Rows {
		if _, err := ins.ExecContext(ctx, b.ScanID, hostID, r.RuleID, string(r.Status), r.Severity, r.Reason,
			string(r.Refs), nullable(r.EvidenceHash), micros(r.At)); err != nil {
			return st, fmt.Errorf("result %s: %w", r.RuleID, err)
		}
		st.Results++
	}
	prior, err := priors(ctx, tx, hostID)
	if err != nil {
		return st, err
	}
	updates, trans := store.Plan(p.Rows, prior)
	up, err := tx.PrepareContext(ctx, `INSERT INTO current_state(host_id, rule_id, status, severity, reason, refs,
			evidence_hash, scan_id, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(host_id, rule_id) DO UPDATE SET status = excluded.status, severity = excluded.severity,
			reason = excluded.reason, refs = excluded.refs, evidence_hash = excluded.evidence_hash,
			scan_id = excluded.scan_id, observed_at = excluded.observed_at`)
	if err != nil {
		return st, err
	}
	defer up.Close()
	for _, r := range updates {
		if _, err := up.ExecContext(ctx, hostID, r.RuleID, string(r.Status), r.Severity, r.Reason, string(r.Refs),
			nullable(r.EvidenceHash), b.ScanID, micros(r.At)); err != nil {
			return st, fmt.Errorf("current state %s: %w", r.RuleID, err)
		}
	}
	if len(trans) == 0 {
		return st, nil
	}
	// A rule's new transition closes its open one (valid_to), so that
	// "state at T" is the rows with at <= T < valid_to.
	closeOpen, err := tx.PrepareContext(ctx, `UPDATE transitions SET valid_to = ?
		WHERE host_id = ? AND rule_id = ? AND valid_to IS NULL`)
	if err != nil {
		return st, err
	}
	defer closeOpen.Close()
	tr, err := tx.PrepareContext(ctx, `INSERT INTO transitions(host_id, rule_id, from_status, to_status, severity,
		reason, refs, evidence_hash, scan_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return st, err
	}
	defer tr.Close()
	for _, t := range trans {
		if _, err := closeOpen.ExecContext(ctx, micros(t.At), hostID, t.RuleID); err != nil {
			return st, fmt.Errorf("close transition %s: %w", t.RuleID, err)
		}
		if _, err := tr.ExecContext(ctx, hostID, t.RuleID, string(t.From), string(t.Status), t.Severity, t.Reason,
			string(t.Refs), nullable(t.EvidenceHash), b.ScanID, micros(t.At)); err != nil {
			return st, fmt.Errorf("transition %s: %w", t.RuleID, err)
		}
		st.Transitions++
	}
	return st, nil
}

// priors reads the host's whole current state: with a few hundred rules
// per host that is one cheap indexed scan, simpler than an IN list.
func priors(ctx context.Context, tx *sql.Tx, hostID int64) (map[string]store.Prior, error) {
	rows, err := tx.QueryContext(ctx, `SELECT rule_id, status, observed_at FROM current_state WHERE host_id = ?`, hostID)
	if err != nil {
		return nil, fmt.Errorf("read current state of host %d: %w", hostID, err)
	}
	defer rows.Close()
	prior := map[string]store.Prior{}
	for rows.Next() {
		var id, status string
		var at int64
		if err := rows.Scan(&id, &status, &at); err != nil {
			return nil, err
		}
		prior[id] = store.Prior{Status: result.Status(status), At: fromMicros(at)}
	}
	return prior, rows.Err()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CurrentState implements store.Store.
func (s *Store) CurrentState(ctx context.Context, hostID int64) ([]store.Finding, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_id, status, severity, reason, refs, evidence_hash, scan_id, observed_at
		FROM current_state WHERE host_id = ? ORDER BY rule_id`, hostID)
	if err != nil {
		return nil, fmt.Errorf("current state of host %d: %w", hostID, err)
	}
	fs, err := scanFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("current state of host %d: %w", hostID, err)
	}
	return fs, nil
}

// ScanResults implements store.Store.
func (s *Store) ScanResults(ctx context.Context, scanID int64) ([]store.Finding, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_id, status, severity, reason, refs, evidence_hash, scan_id, observed_at
		FROM scan_results WHERE scan_id = ? ORDER BY id`, scanID)
	if err != nil {
		return nil, fmt.Errorf("results of scan %d: %w", scanID, err)
	}
	fs, err := scanFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("results of scan %d: %w", scanID, err)
	}
	return fs, nil
}

// StateAt implements store.Store: the rows in force at `at` are those
// with at <= T < valid_to, one per rule, since ingest closes a rule's
// previous transition when it writes the next.
func (s *Store) StateAt(ctx context.Context, hostID int64, at time.Time) ([]store.Finding, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_id, to_status, severity, reason, refs, evidence_hash, scan_id, at
		FROM transitions WHERE host_id = ?1 AND at <= ?2 AND (valid_to IS NULL OR valid_to > ?2)
		ORDER BY rule_id`, hostID, micros(at))
	if err != nil {
		return nil, fmt.Errorf("state of host %d at %s: %w", hostID, at, err)
	}
	fs, err := scanFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("state of host %d at %s: %w", hostID, at, err)
	}
	return fs, nil
}

// Transitions implements store.Store.
func (s *Store) Transitions(ctx context.Context, hostID int64, from, to time.Time) ([]store.Transition, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_id, to_status, severity, reason, refs, evidence_hash, scan_id, at,
			from_status, host_id FROM transitions WHERE host_id = ? AND at >= ? AND at < ? ORDER BY at, id`,
		hostID, micros(from), micros(to))
	if err != nil {
		return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
	}
	out, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
	}
	return out, nil
}

// Evidence implements store.Store.
func (s *Store) Evidence(ctx context.Context, hash string) ([]result.Evidence, error) {
	var body string
	err := s.r.QueryRowContext(ctx, `SELECT body FROM evidence WHERE hash = ?`, hash).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("evidence %s: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence %s: %w", hash, err)
	}
	var ev []result.Evidence
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return nil, fmt.Errorf("evidence %s: decode: %w", hash, err)
	}
	return ev, nil
}

func scanFindings(rows *sql.Rows) ([]store.Finding, error) {
	defer rows.Close()
	var out []store.Finding
	for rows.Next() {
		var f store.Finding
		if err := scanFinding(rows, &f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// scanFinding reads the common column list (rule_id, status, severity,
// reason, refs, evidence_hash, scan_id, time) followed by extra columns.
func scanFinding(rows *sql.Rows, f *store.Finding, extra ...any) error {
	var status, severity, refs string
	var hash sql.NullString
	var at int64
	dest := append([]any{&f.RuleID, &status, &severity, &f.Reason, &refs, &hash, &f.ScanID, &at}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	f.Status = result.Status(status)
	f.Severity = rule.Severity(severity)
	f.EvidenceHash = hash.String
	f.At = fromMicros(at)
	if err := json.Unmarshal([]byte(refs), &f.References); err != nil {
		return fmt.Errorf("rule %s references: %w", f.RuleID, err)
	}
	return nil
}
