// Package postgres is the production store: several vigil-server replicas
// can share one PostgreSQL, which brings its own replication and failover.
// Bulk result rows go in with COPY and the per-rule state with set-based
// statements over arrays, so a batch costs a handful of round trips.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the pg_advisory_lock key that serialises migrations
// across replicas starting at once ("vigil" as an integer).
const migrationLock = 0x76696769_6c

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or DSN) and
// applies pending migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres config: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres connect %s: %w", cfg.ConnConfig.Host, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies pending migrations, each in its own transaction, while
// holding a session advisory lock so that replicas starting together do
// not race; a replica that waited finds the work done and applies nothing.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	// Unlock with a fresh context: the caller's may be cancelled already,
	// and a lock left held would block every other replica's start.
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(migrationLock)); err != nil {
			conn.Conn().Close(uctx) // dropping the session drops its locks
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: schema_migrations: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if done {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: pgx uses the simple protocol, which accepts
			// several statements in one string.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

// UpsertHost implements store.Store.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) (store.Host, error) {
	if h.Name == "" {
		return store.Host{}, errors.New("upsert host: empty name")
	}
	labels, groups := h.Labels, h.Groups
	if labels == nil {
		labels = map[string]string{}
	}
	if groups == nil {
		groups = []string{}
	}
	lj, err := json.Marshal(labels)
	if err != nil {
		return store.Host{}, fmt.Errorf("host %s labels: %w", h.Name, err)
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return store.Host{}, fmt.Errorf("host %s groups: %w", h.Name, err)
	}
	err = s.pool.QueryRow(ctx, `INSERT INTO hosts(name, address, os, labels, group_names, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, now(), now())
		ON CONFLICT(name) DO UPDATE SET address = excluded.address, os = excluded.os,
			labels = excluded.labels, group_names = excluded.group_names, updated_at = excluded.updated_at
		RETURNING id`, h.Name, h.Address, h.OS, string(lj), string(gj)).Scan(&h.ID)
	if err != nil {
		return store.Host{}, fmt.Errorf("upsert host %s: %w", h.Name, err)
	}
	return h, nil
}

// Hosts implements store.Store.
func (s *Store) Hosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, address, os, labels::text, group_names::text FROM hosts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var out []store.Host
	for rows.Next() {
		var h store.Host
		var labels, groups string
		if err := rows.Scan(&h.ID, &h.Name, &h.Address, &h.OS, &labels, &groups); err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		if err := errors.Join(json.Unmarshal([]byte(labels), &h.Labels), json.Unmarshal([]byte(groups), &h.Groups)); err != nil {
			return nil, fmt.Errorf("host %s: decode labels or groups: %w", h.Name, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return out, nil
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
	var finished *time.Time
	if !sc.FinishedAt.IsZero() {
		sc.FinishedAt = store.Micro(sc.FinishedAt)
		finished = &sc.FinishedAt
	}
	c := sc.Counts
	err := s.pool.QueryRow(ctx, `INSERT INTO scans(host_id, trigger, status, bundle_version, started_at, finished_at,
			total, pass, fail, skipped, error)
		SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM hosts WHERE id = $1 RETURNING id`,
		sc.HostID, sc.Trigger, string(sc.Status), sc.BundleVersion, sc.StartedAt, finished,
		c.Total, c.Pass, c.Fail, c.Skipped, c.Error).Scan(&sc.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("create scan: host %d: %w", sc.HostID, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("create scan of host %d: %w", sc.HostID, err)
	}
	return sc, nil
}

// FinishScan implements store.Store.
func (s *Store) FinishScan(ctx context.Context, id int64, status store.ScanStatus, at time.Time, c result.Summary) error {
	tag, err := s.pool.Exec(ctx, `UPDATE scans SET status = $1, finished_at = $2, total = $3, pass = $4, fail = $5,
		skipped = $6, error = $7 WHERE id = $8`, string(status), store.Micro(at), c.Total, c.Pass, c.Fail, c.Skipped, c.Error, id)
	if err != nil {
		return fmt.Errorf("finish scan %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish scan %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, id int64) (store.Scan, error) {
	sc := store.Scan{ID: id}
	var status string
	var finished *time.Time
	c := &sc.Counts
	err := s.pool.QueryRow(ctx, `SELECT host_id, trigger, status, bundle_version, started_at, finished_at,
			total, pass, fail, skipped, error FROM scans WHERE id = $1`, id).
		Scan(&sc.HostID, &sc.Trigger, &status, &sc.BundleVersion, &sc.StartedAt, &finished,
			&c.Total, &c.Pass, &c.Fail, &c.Skipped, &c.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, err)
	}
	sc.Status = store.ScanStatus(status)
	sc.StartedAt = sc.StartedAt.UTC()
	if finished != nil {
		sc.FinishedAt = finished.UTC()
	}
	return sc, nil
}

// Ingest implements store.Store.
func (s *Store) Ingest(ctx context.Context, b store.Batch) (store.IngestStats, error) {
	var st store.IngestStats
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		st, err = ingest(ctx, tx, b)
		if err == nil && st.Replayed {
			return errReplayed // nothing to keep; roll back
		}
		return err
	})
	if errors.Is(err, errReplayed) {
		return store.IngestStats{Replayed: true}, nil
	}
	if err != nil {
		return store.IngestStats{}, fmt.Errorf("ingest scan %d batch %d: %w", b.ScanID, b.Seq, err)
	}
	return st, nil
}

var errReplayed = errors.New("batch already applied")

func ingest(ctx context.Context, tx pgx.Tx, b store.Batch) (store.IngestStats, error) {
	var st store.IngestStats
	var hostID int64
	var started time.Time
	err := tx.QueryRow(ctx, `SELECT host_id, started_at FROM scans WHERE id = $1`, b.ScanID).Scan(&hostID, &started)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("scan %d: %w", b.ScanID, store.ErrNotFound)
	}
	if err != nil {
		return st, err
	}
	p, err := store.Prepare(b, started)
	if err != nil {
		return st, err
	}
	// A concurrent retry of the same batch blocks here on the primary key
	// until the first commits, then inserts nothing.
	tag, err := tx.Exec(ctx, `INSERT INTO ingested_batches(scan_id, seq, results, ingested_at) VALUES ($1, $2, $3, now())
		ON CONFLICT DO NOTHING`, b.ScanID, b.Seq, len(p.Rows))
	if err != nil {
		return st, fmt.Errorf("record batch: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.IngestStats{Replayed: true}, nil
	}
	// Serialise batches of one host (two scans of it overlapping) so that
	// both see each other's state and log each change once.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM hosts WHERE id = $1 FOR UPDATE`, hostID); err != nil {
		return st, fmt.Errorf("lock host %d: %w", hostID, err)
	}
	if len(p.Hashes) > 0 {
		bodies := make([]string, len(p.Hashes))
		for i, h := range p.Hashes {
			bodies[i] = string(p.Evidence[h])
		}
		tag, err := tx.Exec(ctx, `INSERT INTO evidence(hash, body) SELECT * FROM unnest($1::text[], $2::jsonb[])
			ON CONFLICT DO NOTHING`, p.Hashes, bodies)
		if err != nil {
			return st, fmt.Errorf("evidence: %w", err)
		}
		st.NewEvidence = int(tag.RowsAffected())
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"scan_results"},
		[]string{"scan_id", "host_id", "rule_id", "status", "severity", "reason", "refs", "evidence_hash", "observed_at"},
		pgx.CopyFromSlice(len(p.Rows), func(i int) ([]any, error) {
			r := p.Rows[i]
			return []any{b.ScanID, hostID, r.RuleID, string(r.Status), r.Severity, r.Reason, string(r.Refs),
				nullable(r.EvidenceHash), r.At}, nil
		}))
	if err != nil {
		return st, fmt.Errorf("copy results: %w", err)
	}
	st.Results = int(n)
	prior, err := priors(ctx, tx, hostID, store.RuleIDs(p.Rows))
	if err != nil {
		return st, err
	}
	updates, trans := store.Plan(p.Rows, prior)
	if err := upsertState(ctx, tx, hostID, b.ScanID, updates); err != nil {
		return st, err
	}
	if len(trans) > 0 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"transitions"},
			[]string{"host_id", "rule_id", "from_status", "to_status", "severity", "reason", "refs", "evidence_hash", "scan_id", "at"},
			pgx.CopyFromSlice(len(trans), func(i int) ([]any, error) {
				t := trans[i]
				return []any{hostID, t.RuleID, string(t.From), string(t.Status), t.Severity, t.Reason, string(t.Refs),
					nullable(t.EvidenceHash), b.ScanID, t.At}, nil
			}))
		if err != nil {
			return st, fmt.Errorf("copy transitions: %w", err)
		}
		st.Transitions = int(n)
	}
	return st, nil
}

func priors(ctx context.Context, tx pgx.Tx, hostID int64, ruleIDs []string) (map[string]store.Prior, error) {
	rows, err := tx.Query(ctx, `SELECT rule_id, status, observed_at FROM current_state
		WHERE host_id = $1 AND rule_id = ANY($2)`, hostID, ruleIDs)
	if err != nil {
		return nil, fmt.Errorf("read current state of host %d: %w", hostID, err)
	}
	defer rows.Close()
	prior := map[string]store.Prior{}
	for rows.Next() {
		var id, status string
		var at time.Time
		if err := rows.Scan(&id, &status, &at); err != nil {
			return nil, fmt.Errorf("read current state of host %d: %w", hostID, err)
		}
		prior[id] = store.Prior{Status: result.Status(status), At: at.UTC()}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read current state of host %d: %w", hostID, err)
	}
	return prior, nil
}

// upsertState writes the final state of each rule in one statement over
// parallel arrays.
func upsertState(ctx context.Context, tx pgx.Tx, hostID, scanID int64, rows []store.Row) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	ids, statuses, sevs, reasons, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hashes, ats := make([]*string, n), make([]time.Time, n)
	for i, r := range rows {
		ids[i], statuses[i], sevs[i], reasons[i], refs[i] = r.RuleID, string(r.Status), r.Severity, r.Reason, string(r.Refs)
		if r.EvidenceHash != "" {
			h := r.EvidenceHash
			hashes[i] = &h
		}
		ats[i] = r.At
	}
	_, err := tx.Exec(ctx, `INSERT INTO current_state(host_id, rule_id, status, severity, reason, refs, evidence_hash,
			scan_id, observed_at)
		SELECT $1, u.rule_id, u.status, u.severity, u.reason, u.refs, u.hash, $2, u.at
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::timestamptz[])
			AS u(rule_id, status, severity, reason, refs, hash, at)
		ON CONFLICT (host_id, rule_id) DO UPDATE SET status = excluded.status, severity = excluded.severity,
			reason = excluded.reason, refs = excluded.refs, evidence_hash = excluded.evidence_hash,
			scan_id = excluded.scan_id, observed_at = excluded.observed_at`,
		hostID, scanID, ids, statuses, sevs, reasons, refs, hashes, ats)
	if err != nil {
		return fmt.Errorf("update current state of host %d: %w", hostID, err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CurrentState implements store.Store.
func (s *Store) CurrentState(ctx context.Context, hostID int64) ([]store.Finding, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, status, severity, reason, refs::text, evidence_hash, scan_id, observed_at
		FROM current_state WHERE host_id = $1 ORDER BY rule_id`, hostID)
	if err != nil {
		return nil, fmt.Errorf("current state of host %d: %w", hostID, err)
	}
	fs, err := collectFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("current state of host %d: %w", hostID, err)
	}
	return fs, nil
}

// ScanResults implements store.Store.
func (s *Store) ScanResults(ctx context.Context, scanID int64) ([]store.Finding, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, status, severity, reason, refs::text, evidence_hash, scan_id, observed_at
		FROM scan_results WHERE scan_id = $1 ORDER BY id`, scanID)
	if err != nil {
		return nil, fmt.Errorf("results of scan %d: %w", scanID, err)
	}
	fs, err := collectFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("results of scan %d: %w", scanID, err)
	}
	return fs, nil
}

// StateAt implements store.Store.
func (s *Store) StateAt(ctx context.Context, hostID int64, at time.Time) ([]store.Finding, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (rule_id) rule_id, to_status, severity, reason, refs::text,
			evidence_hash, scan_id, at
		FROM transitions WHERE host_id = $1 AND at <= $2
		ORDER BY rule_id, at DESC, id DESC`, hostID, store.Micro(at))
	if err != nil {
		return nil, fmt.Errorf("state of host %d at %s: %w", hostID, at, err)
	}
	fs, err := collectFindings(rows)
	if err != nil {
		return nil, fmt.Errorf("state of host %d at %s: %w", hostID, at, err)
	}
	return fs, nil
}

// Transitions implements store.Store.
func (s *Store) Transitions(ctx context.Context, hostID int64, from, to time.Time) ([]store.Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, to_status, severity, reason, refs::text, evidence_hash, scan_id, at,
			from_status FROM transitions WHERE host_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`,
		hostID, store.Micro(from), store.Micro(to))
	if err != nil {
		return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
	}
	defer rows.Close()
	var out []store.Transition
	for rows.Next() {
		var t store.Transition
		var from string
		if err := scanFinding(rows, &t.Finding, &from); err != nil {
			return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
		}
		t.From = result.Status(from)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
	}
	return out, nil
}

// Evidence implements store.Store.
func (s *Store) Evidence(ctx context.Context, hash string) ([]result.Evidence, error) {
	var body string
	err := s.pool.QueryRow(ctx, `SELECT body::text FROM evidence WHERE hash = $1`, hash).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
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

func collectFindings(rows pgx.Rows) ([]store.Finding, error) {
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
func scanFinding(rows pgx.Rows, f *store.Finding, extra ...any) error {
	var status, severity, refs string
	var hash *string
	dest := append([]any{&f.RuleID, &status, &severity, &f.Reason, &refs, &hash, &f.ScanID, &f.At}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	f.Status = result.Status(status)
	f.Severity = rule.Severity(severity)
	if hash != nil {
		f.EvidenceHash = *hash
	}
	f.At = f.At.UTC()
	if err := json.Unmarshal([]byte(refs), &f.References); err != nil {
		return fmt.Errorf("rule %s references: %w", f.RuleID, err)
	}
	return nil
}
