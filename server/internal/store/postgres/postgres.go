// Package postgres is the production store: several vigil-server replicas
// can share one PostgreSQL, which brings its own replication and failover.
// Bulk result rows go in with COPY and the per-rule state with set-based
// statements over arrays, so a batch costs a handful of round trips.
package postgres

import (
	"bytes"
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
	"github.com/jackc/pgx/v5/pgconn"
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
	rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("postgres: readiness query: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: readiness query: %w", err)
	}
	for _, v := range versions {
		if want[v] {
			applied++
		}
	}
	if applied < len(names) {
		return fmt.Errorf("postgres: %d of %d migrations applied: %w", applied, len(names), store.ErrMigrationsPending)
	}
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

// UpsertHost implements store.Store. A new host is due at once (reason
// "first"); upserting a deleted host's name revives it, with its history,
// and makes it due at once too.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) (store.Host, error) {
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
			updated_at = excluded.updated_at,
			next_scan_at = CASE WHEN hosts.deleted_at IS NULL THEN hosts.next_scan_at ELSE excluded.next_scan_at END,
			deleted_at = NULL
		RETURNING `+hostColumns, h.Name, h.Address, h.OS, labels, groups, nullID(h.AgentID), now))
	if err != nil {
		return store.Host{}, fmt.Errorf("upsert host %s: %w", h.Name, err)
	}
	return out, nil
}

// Hosts implements store.Store.
func (s *Store) Hosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+hostColumns+` FROM hosts WHERE deleted_at IS NULL ORDER BY name`)
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

// hostJSON validates h and encodes its labels and groups, nil as empty.
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
	sc, err := scanScan(s.pool.QueryRow(ctx, `SELECT `+scanColumns+` FROM scans WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Scan{}, fmt.Errorf("scan %d: %w", id, err)
	}
	return sc, nil
}

// Ingest implements store.Store. BEGIN travels in the pipeline that reads
// the host's state and COMMIT with the statement that writes the batch, so
// a batch costs two round trips to the database (three when a state
// checkpoint must be rebuilt): on a loaded machine each round trip is a
// wake-up of both processes, which costs more than the work it carries.
// Nothing is acknowledged before COMMIT has succeeded.
func (s *Store) Ingest(ctx context.Context, b store.Batch) (store.IngestStats, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return store.IngestStats{}, fmt.Errorf("ingest scan %d batch %d: %w", b.ScanID, b.Seq, err)
	}
	// A connection released inside a transaction (the rollback below
	// failed) is closed by the pool, which ends that transaction.
	defer conn.Release()
	st, err := ingest(ctx, conn.Conn(), b)
	if err != nil || st.Replayed {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(ctx, `ROLLBACK`); rbErr != nil && err == nil {
				err = fmt.Errorf("roll back: %w", rbErr)
			}
		}
	}
	if err != nil {
		return store.IngestStats{}, fmt.Errorf("ingest scan %d batch %d: %w", b.ScanID, b.Seq, err)
	}
	return st, nil
}

// querier is what the ingest steps need of a connection inside a
// transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// commitTag checks COMMIT's command tag, which reads ROLLBACK (with no
// error) when the transaction had failed: the batch is then not stored.
func commitTag(tag pgconn.CommandTag) error {
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: transaction rolled back (%s)", tag)
	}
	return nil
}

// ingest applies a batch on conn in two round trips: one pipeline that
// opens the transaction, records the batch, locks the host and reads its
// state and which evidence bodies are stored already, then one that
// writes everything in a single statement and commits. Writing through a
// single statement lets each refs document be parsed as JSON once
// (instead of once per table) and sends every value once in binary
// arrays. The batch is flattened before the first round trip, so that
// evidence is looked up by hash and only unknown bodies travel and get
// parsed. On an error or a replay the transaction is left open for the
// caller to roll back.
func ingest(ctx context.Context, conn *pgx.Conn, b store.Batch) (store.IngestStats, error) {
	var st store.IngestStats
	// Results without a time take the scan's start, known after the first
	// round trip: flatten with no fallback now and fill those in below.
	p, err := store.Prepare(b, time.Time{})
	if err != nil {
		return st, err
	}
	var hostID int64
	var started time.Time
	var recorded int64
	prior := map[string]store.Prior{}
	stored := make(map[string]bool, len(p.Hashes))
	var pipe pgx.Batch
	pipe.Queue(`BEGIN`)
	pipe.Queue(`SELECT host_id, started_at FROM scans WHERE id = $1`, b.ScanID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&hostID, &started)
	})
	// A concurrent retry of the same batch blocks here on the primary key
	// until the first commits, then inserts nothing.
	pipe.Queue(`INSERT INTO ingested_batches(scan_id, seq, results, ingested_at)
		SELECT id, $2, $3, now() FROM scans WHERE id = $1 ON CONFLICT DO NOTHING`,
		b.ScanID, b.Seq, len(b.Results)).Exec(func(tag pgconn.CommandTag) error {
		recorded = tag.RowsAffected()
		return nil
	})
	// Serialise batches of one host (two scans of it overlapping) so that
	// both see each other's state and log each change once; the state is
	// read after the lock is held. The whole state of one host is a few
	// hundred rows on its primary key: cheaper than matching an id list.
	pipe.Queue(`SELECT 1 FROM hosts WHERE id = (SELECT host_id FROM scans WHERE id = $1) FOR UPDATE`, b.ScanID)
	pipe.Queue(`SELECT rule_id, status, observed_at FROM current_state
		WHERE host_id = (SELECT host_id FROM scans WHERE id = $1)`, b.ScanID).Query(func(rows pgx.Rows) error {
		var id, status string
		var at time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &status, &at}, func() error {
			prior[id] = store.Prior{Status: result.Status(status), At: at.UTC()}
			return nil
		})
		return err
	})
	// The host's latest state checkpoint, which a transition at or before
	// it makes stale.
	var latest *time.Time
	pipe.Queue(`SELECT max(day) FROM state_checkpoints
		WHERE host_id = (SELECT host_id FROM scans WHERE id = $1)`, b.ScanID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&latest)
	})
	// Evidence bodies are immutable and never deleted: one seen here need
	// not be sent again. One another batch stores meanwhile is sent and
	// skipped by ON CONFLICT.
	if len(p.Hashes) > 0 {
		pipe.Queue(`SELECT hash FROM evidence WHERE hash = ANY($1::text[])`, p.Hashes).Query(func(rows pgx.Rows) error {
			var h string
			_, err := pgx.ForEachRow(rows, []any{&h}, func() error {
				stored[h] = true
				return nil
			})
			return err
		})
	}
	err = conn.SendBatch(ctx, &pipe).Close()
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("scan %d: %w", b.ScanID, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("record batch, read state: %w", err)
	}
	if recorded == 0 {
		return store.IngestStats{Replayed: true}, nil
	}
	for i := range p.Rows {
		if p.Rows[i].At.IsZero() {
			p.Rows[i].At = store.Micro(started)
		}
	}
	updates, trans := store.Plan(p.Rows, prior)
	w := newWrite(p, updates, trans, prior, stored)
	var first time.Time
	for i, t := range trans {
		if i == 0 || t.At.Before(first) {
			first = t.At
		}
	}
	// Whether a checkpoint must be dropped or rebuilt is known now; when
	// none, COMMIT goes with the write.
	checkpoint := len(trans) > 0 && !checkpointStands(first, latest)
	var commit pgconn.CommandTag
	var write pgx.Batch
	write.Queue(ingestSQL, hostID, b.ScanID,
		w.rules, w.statuses, w.sevs, w.reasons, w.refs, w.hashes, w.ats, w.cur, w.trFrom,
		w.newHashes, w.bodies).QueryRow(func(row pgx.Row) error {
		return row.Scan(&st.Results, &st.Transitions, &st.NewEvidence)
	})
	if !checkpoint {
		write.Queue(`COMMIT`).Exec(func(tag pgconn.CommandTag) error {
			commit = tag
			return nil
		})
	}
	if err := conn.SendBatch(ctx, &write).Close(); err != nil {
		return st, fmt.Errorf("write results of host %d: %w", hostID, err)
	}
	if checkpoint {
		if err := maintainCheckpoints(ctx, conn, hostID, first, latest); err != nil {
			return st, fmt.Errorf("checkpoint host %d: %w", hostID, err)
		}
		if commit, err = conn.Exec(ctx, `COMMIT`); err != nil {
			return st, fmt.Errorf("commit: %w", err)
		}
	}
	return st, commitTag(commit)
}

// checkpointStands reports whether the host's latest checkpoint (nil when
// none) survives transitions written from time first on: it predates
// them all and is already the checkpoint of first's UTC day.
func checkpointStands(first time.Time, latest *time.Time) bool {
	return latest != nil && latest.Before(first) && !latest.Before(utcDay(first))
}

// maintainCheckpoints keeps a host's state checkpoints exact after
// transitions were written from time first on: those at or after first
// no longer hold and go; the one of first's UTC day is (re)built from the
// log unless it still stands. It runs under the host's row lock, so no
// other batch of the host can write between the read and the insert. In
// steady operation this costs nothing but the max(day) read: the day's
// checkpoint is built by the host's first batch with a change that day.
func maintainCheckpoints(ctx context.Context, tx querier, hostID int64, first time.Time, latest *time.Time) error {
	day := utcDay(first)
	if checkpointStands(first, latest) {
		return nil // the day's checkpoint exists and predates every change
	}
	if latest != nil && !latest.Before(first) {
		if _, err := tx.Exec(ctx, `DELETE FROM state_checkpoints WHERE host_id = $1 AND day >= $2`, hostID, first); err != nil {
			return fmt.Errorf("drop stale checkpoints: %w", err)
		}
	}
	codes, err := stateCodes(ctx, tx, hostID, day)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO state_checkpoints(host_id, day, codes) VALUES ($1, $2, $3)
		ON CONFLICT (host_id, day) DO NOTHING`, hostID, day, codes); err != nil {
		return fmt.Errorf("insert checkpoint of %s: %w", day.Format(time.DateOnly), err)
	}
	return nil
}

// stateCodes encodes a host's state at `at` (the latest transition of
// each rule with at <= T), numbering rules not numbered yet. A number
// another transaction assigned after this statement's snapshot is missed
// by both joins; the statement is then run again, seeing it.
func stateCodes(ctx context.Context, tx querier, hostID int64, at time.Time) ([]byte, error) {
	for range 3 {
		rows, err := tx.Query(ctx, `WITH st AS MATERIALIZED (
				SELECT DISTINCT ON (rule_id) rule_id, `+codeSQL+` AS code
				FROM transitions t WHERE host_id = $1 AND at <= $2 ORDER BY rule_id, at DESC, id DESC),
			added AS (
				INSERT INTO rule_numbers(rule_id)
				SELECT rule_id FROM st WHERE NOT EXISTS (SELECT 1 FROM rule_numbers n WHERE n.rule_id = st.rule_id)
				ORDER BY rule_id ON CONFLICT DO NOTHING RETURNING no, rule_id)
			SELECT coalesce(n.no, a.no), st.code FROM st
			LEFT JOIN rule_numbers n USING (rule_id) LEFT JOIN added a USING (rule_id)`, hostID, at)
		if err != nil {
			return nil, fmt.Errorf("state at %s: %w", at, err)
		}
		codes := []byte{} // NOT NULL even when the host had no state
		missing := false
		var no *int32
		var code int16
		_, err = pgx.ForEachRow(rows, []any{&no, &code}, func() error {
			if no == nil {
				missing = true
				return nil
			}
			codes = setCode(codes, int(*no), byte(code))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("state at %s: %w", at, err)
		}
		if !missing {
			return codes, nil
		}
	}
	return nil, fmt.Errorf("state at %s: rule numbers keep changing", at)
}

// codeSQL is a transition's (alias t) checkpoint code; see the
// state_checkpoints table and decodeStatus.
const codeSQL = `(CASE t.to_status WHEN 'pass' THEN 1 WHEN 'fail' THEN 2 WHEN 'skipped' THEN 3 ELSE 4 END
	+ CASE WHEN t.severity = 'critical' THEN 8 ELSE 0 END)::smallint`

// codeCritical marks a critical rule in a checkpoint code.
const codeCritical = 8

// statusOf decodes a checkpoint code; "" is no state.
func statusOf(code byte) result.Status {
	switch code &^ codeCritical {
	case 1:
		return result.Pass
	case 2:
		return result.Fail
	case 3:
		return result.Skipped
	case 4:
		return result.Error
	}
	return ""
}

// setCode stores code for rule number no (from 1), growing codes with
// zeros (no state) as needed.
func setCode(codes []byte, no int, code byte) []byte {
	for len(codes) < no {
		codes = append(codes, 0)
	}
	codes[no-1] = code
	return codes
}

// ingestSQL writes one batch. $3..$11 are the batch's rows (r, numbered
// from 1 in batch order): their values, then cur, 'u' for a row that
// updates its rule's current state and 'i' for one that creates it (the
// host's state was read under its row lock, so the split is exact), and
// tr_from, the previous status of a row that is a transition (NULL for
// others). $12/$13 are the evidence bodies not stored yet. A plain UPDATE
// of existing state rows, unlike an upsert, neither probes the index per
// row first nor writes a row-lock record per row, and with no indexed
// column changed it is a HOT update in the free room fillfactor leaves.
// Every write reads r alone (no join on row numbers, which the planner,
// blind to array sizes, may nest). Transitions are appended only.
const ingestSQL = `WITH r AS MATERIALIZED (
		SELECT u.i, u.rule_id, u.status, u.severity, u.reason, u.refs::jsonb AS refs, u.hash, u.at, u.cur, u.tr_from
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
			$10::text[], $11::text[])
			WITH ORDINALITY AS u(rule_id, status, severity, reason, refs, hash, at, cur, tr_from, i)),
	ev AS (
		INSERT INTO evidence(hash, body)
		SELECT e.hash, e.body::jsonb FROM unnest($12::text[], $13::text[]) AS e(hash, body)
		ON CONFLICT DO NOTHING RETURNING 1),
	res AS (
		INSERT INTO scan_results(scan_id, host_id, rule_id, status, severity, reason, refs, evidence_hash, observed_at)
		SELECT $2, $1, rule_id, status, severity, reason, refs, hash, at FROM r ORDER BY i RETURNING 1),
	upd AS (
		UPDATE current_state c SET status = r.status, severity = r.severity, reason = r.reason, refs = r.refs,
			evidence_hash = r.hash, scan_id = $2, observed_at = r.at
		FROM r WHERE r.cur = 'u' AND c.host_id = $1 AND c.rule_id = r.rule_id),
	ins AS (
		INSERT INTO current_state(host_id, rule_id, status, severity, reason, refs, evidence_hash, scan_id, observed_at)
		SELECT $1, rule_id, status, severity, reason, refs, hash, $2, at FROM r WHERE cur = 'i'
		ON CONFLICT (host_id, rule_id) DO UPDATE SET status = excluded.status, severity = excluded.severity,
			reason = excluded.reason, refs = excluded.refs, evidence_hash = excluded.evidence_hash,
			scan_id = excluded.scan_id, observed_at = excluded.observed_at),
	tr AS (
		INSERT INTO transitions(host_id, rule_id, from_status, to_status, severity, reason, refs, evidence_hash,
			scan_id, at)
		SELECT $1, rule_id, tr_from, status, severity, reason, refs, hash, $2, at
		FROM r WHERE tr_from IS NOT NULL ORDER BY i RETURNING 1)
	SELECT (SELECT count(*) FROM res), (SELECT count(*) FROM tr), (SELECT count(*) FROM ev)`

// write is a planned batch as the parallel arrays ingestSQL takes.
type write struct {
	rules, statuses, sevs, reasons, refs, cur []string
	hashes, trFrom                            []*string
	ats                                       []time.Time
	newHashes, bodies                         []string
}

// newWrite lays a planned batch out as arrays, marking the rows that
// write current state and those that are transitions; only evidence not
// stored yet is sent.
func newWrite(p store.Prepared, updates []store.Row, trans []store.TransitionRow,
	prior map[string]store.Prior, stored map[string]bool) write {
	n := len(p.Rows)
	w := write{
		rules: make([]string, n), statuses: make([]string, n), sevs: make([]string, n), reasons: make([]string, n),
		refs: make([]string, n), cur: make([]string, n), hashes: make([]*string, n), trFrom: make([]*string, n),
		ats: make([]time.Time, n),
	}
	// Plan returns copies of rows: find each one's position among its
	// rule's rows by its whole content (rows equal in every field are
	// interchangeable). A rule's update is its last accepted row, which is
	// its last row of that content. Transitions come in batch order, each
	// row at most once, so each takes the first equal row after the
	// previous transition's: positions then increase as the log's order
	// (by row number) requires.
	byRule := make(map[string][]int, n)
	for i, r := range p.Rows {
		w.rules[i], w.statuses[i], w.sevs[i], w.reasons[i], w.refs[i] = r.RuleID, string(r.Status), r.Severity, r.Reason, string(r.Refs)
		if r.EvidenceHash != "" {
			w.hashes[i] = &p.Rows[i].EvidenceHash
		}
		w.ats[i] = r.At
		byRule[r.RuleID] = append(byRule[r.RuleID], i)
	}
	for _, u := range updates {
		at := byRule[u.RuleID]
		c := len(at) - 1
		for c > 0 && !sameRow(p.Rows[at[c]], u) {
			c--
		}
		if _, ok := prior[u.RuleID]; ok {
			w.cur[at[c]] = "u"
		} else {
			w.cur[at[c]] = "i"
		}
	}
	last := -1
	for _, t := range trans {
		at := byRule[t.RuleID]
		c := 0
		for c < len(at)-1 && (at[c] <= last || !sameRow(p.Rows[at[c]], t.Row)) {
			c++
		}
		last = at[c]
		from := string(t.From)
		w.trFrom[last] = &from
	}
	for _, h := range p.Hashes {
		if !stored[h] {
			w.newHashes = append(w.newHashes, h)
			w.bodies = append(w.bodies, string(p.Evidence[h]))
		}
	}
	return w
}

// sameRow reports whether two rows are equal in every field.
func sameRow(a, b store.Row) bool {
	return a.RuleID == b.RuleID && a.Status == b.Status && a.Severity == b.Severity && a.Reason == b.Reason &&
		a.EvidenceHash == b.EvidenceHash && a.At.Equal(b.At) && bytes.Equal(a.Refs, b.Refs)
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

// StateAt implements store.Store: each rule's state at T is its latest
// transition with at <= T (the later-written one on a tie), read on the
// (host, rule, at) index.
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
			from_status, host_id FROM transitions WHERE host_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`,
		hostID, store.Micro(from), store.Micro(to))
	if err != nil {
		return nil, fmt.Errorf("transitions of host %d: %w", hostID, err)
	}
	out, err := collectTransitions(rows)
	if err != nil {
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
