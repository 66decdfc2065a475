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
)

const joinTokenColumns = `id, hash, uses, used, labels, created_by, created_at, expires_at, revoked_at`

func scanJoinToken(r rowScanner) (store.JoinToken, error) {
	var t store.JoinToken
	var labels string
	var created, expires int64
	var revoked sql.NullInt64
	if err := r.Scan(&t.ID, &t.Hash, &t.Uses, &t.Used, &labels, &t.CreatedBy, &created, &expires, &revoked); err != nil {
		return store.JoinToken{}, err
	}
	if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
		return store.JoinToken{}, fmt.Errorf("join token %d: decode labels: %w", t.ID, err)
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromMicros(expires), fromNullMicros(revoked)
	return t, nil
}

func labelsJSON(what string, labels map[string]string) (string, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return "", fmt.Errorf("%s labels: %w", what, err)
	}
	return string(b), nil
}

// CreateJoinToken implements store.Enrollment.
func (s *Store) CreateJoinToken(ctx context.Context, t store.JoinToken) (store.JoinToken, error) {
	if t.Hash == "" || t.Uses <= 0 || t.ExpiresAt.IsZero() {
		return store.JoinToken{}, errors.New("create join token: hash, uses > 0 and expiry are required")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	lj, err := labelsJSON("join token", t.Labels)
	if err != nil {
		return store.JoinToken{}, err
	}
	out, err := scanJoinToken(s.w.QueryRowContext(ctx, `INSERT INTO join_tokens(hash, uses, used, labels, created_by,
			created_at, expires_at, revoked_at) VALUES (?, ?, 0, ?, ?, ?, ?, ?) RETURNING `+joinTokenColumns,
		t.Hash, t.Uses, lj, t.CreatedBy, micros(t.CreatedAt), micros(t.ExpiresAt), nullMicros(t.RevokedAt)))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return store.JoinToken{}, fmt.Errorf("create join token: %w", store.ErrConflict)
	}
	if err != nil {
		return store.JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	return out, nil
}

// UseJoinToken implements store.Enrollment: one conditional UPDATE on the
// single writer connection, so concurrent uses never exceed Uses.
func (s *Store) UseJoinToken(ctx context.Context, hash string, at time.Time) (store.JoinToken, error) {
	t, err := scanJoinToken(s.w.QueryRowContext(ctx, `UPDATE join_tokens SET used = used + 1
		WHERE hash = ? AND used < uses AND revoked_at IS NULL AND expires_at > ?
		RETURNING `+joinTokenColumns, hash, micros(at)))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM join_tokens WHERE hash = ?`, hash).Scan(&n); err != nil {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", err)
	}
	if n == 0 {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", store.ErrNotFound)
	}
	return store.JoinToken{}, fmt.Errorf("use join token: %w", store.ErrTokenSpent)
}

// JoinTokens implements store.Enrollment.
func (s *Store) JoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	defer rows.Close()
	var out []store.JoinToken
	for rows.Next() {
		t, err := scanJoinToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list join tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return out, nil
}

// CreateAgent implements store.Enrollment.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	if a.Name == "" {
		return store.Agent{}, errors.New("create agent: empty name")
	}
	if a.Status == "" {
		a.Status = store.AgentActive
	}
	if a.EnrolledAt.IsZero() {
		a.EnrolledAt = time.Now()
	}
	lj, err := labelsJSON("agent "+a.Name, a.Labels)
	if err != nil {
		return store.Agent{}, err
	}
	out, err := scanAgent(s.w.QueryRowContext(ctx, `INSERT INTO agents(name, status, version, os, cert_serial, labels,
			enrolled_at, last_seen_at, revoked_at, hostname) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO NOTHING RETURNING `+agentColumns,
		a.Name, string(a.Status), a.Version, a.OS, a.CertSerial, lj, micros(a.EnrolledAt),
		nullMicros(a.LastSeenAt), nullMicros(a.RevokedAt), a.Hostname))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("create agent %s: %w", a.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("create agent %s: %w", a.Name, err)
	}
	return out, nil
}

// RecordCertificate implements store.Enrollment.
func (s *Store) RecordCertificate(ctx context.Context, agentID int64, serial string, notBefore, notAfter time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record certificate %s: %w", serial, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE agents SET cert_serial = ? WHERE id = ?`, serial, agentID)
	if err != nil {
		return fmt.Errorf("record certificate %s: %w", serial, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("record certificate %s: agent %d: %w", serial, agentID, store.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO agent_certificates(serial, agent_id, not_before, not_after)
		VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`, serial, agentID, micros(notBefore), micros(notAfter)); err != nil {
		return fmt.Errorf("record certificate %s: %w", serial, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record certificate %s: commit: %w", serial, err)
	}
	return nil
}

// RevokeAgent implements store.Enrollment.
func (s *Store) RevokeAgent(ctx context.Context, agentID int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET status = 'revoked', revoked_at = coalesce(revoked_at, ?)
		WHERE id = ?`, micros(at), agentID)
	if err != nil {
		return fmt.Errorf("revoke agent %d: %w", agentID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke agent %d: %w", agentID, store.ErrNotFound)
	}
	return nil
}

// TouchAgent implements store.Enrollment.
func (s *Store) TouchAgent(ctx context.Context, agentID int64, hb store.AgentHeartbeat) error {
	if hb.At.IsZero() {
		hb.At = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `UPDATE agents SET last_seen_at = max(coalesce(last_seen_at, 0), ?),
			version = CASE WHEN ? = '' THEN version ELSE ? END,
			os = CASE WHEN ? = '' THEN os ELSE ? END,
			bundle_digest = CASE WHEN ? = '' THEN bundle_digest ELSE ? END,
			spool_batches = ?, spool_bytes = ?
		WHERE id = ?`, micros(hb.At), hb.Version, hb.Version, hb.OS, hb.OS, hb.BundleDigest, hb.BundleDigest,
		hb.SpoolBatches, hb.SpoolBytes, agentID)
	if err != nil {
		return fmt.Errorf("touch agent %d: %w", agentID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("touch agent %d: %w", agentID, store.ErrNotFound)
	}
	return nil
}

// PutBundle implements store.Enrollment.
func (s *Store) PutBundle(ctx context.Context, b store.StoredBundle) error {
	if b.Digest == "" || len(b.Data) == 0 {
		return errors.New("put bundle: digest and data are required")
	}
	if b.PublishedAt.IsZero() {
		b.PublishedAt = time.Now()
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO bundles(digest, version, created, expires, published_at, data)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING`,
		b.Digest, b.Version, micros(b.Created), nullMicros(b.Expires), micros(b.PublishedAt), b.Data); err != nil {
		return fmt.Errorf("put bundle %s: %w", b.Digest, err)
	}
	return nil
}

func scanBundle(r rowScanner, withData bool) (store.StoredBundle, error) {
	var b store.StoredBundle
	var created, published int64
	var expires sql.NullInt64
	dest := []any{&b.Digest, &b.Version, &created, &expires, &published}
	if withData {
		dest = append(dest, &b.Data)
	}
	if err := r.Scan(dest...); err != nil {
		return store.StoredBundle{}, err
	}
	b.Created, b.Expires, b.PublishedAt = fromMicros(created), fromNullMicros(expires), fromMicros(published)
	return b, nil
}

// Bundle implements store.Enrollment.
func (s *Store) Bundle(ctx context.Context, digest string) (store.StoredBundle, error) {
	b, err := scanBundle(s.r.QueryRowContext(ctx, `SELECT digest, version, created, expires, published_at, data
		FROM bundles WHERE digest = ?`, digest), true)
	if errors.Is(err, sql.ErrNoRows) {
		return store.StoredBundle{}, fmt.Errorf("bundle %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("bundle %s: %w", digest, err)
	}
	return b, nil
}

// LatestBundle implements store.Enrollment.
func (s *Store) LatestBundle(ctx context.Context) (store.StoredBundle, error) {
	b, err := scanBundle(s.r.QueryRowContext(ctx, `SELECT digest, version, created, expires, published_at
		FROM bundles ORDER BY published_at DESC, rowid DESC LIMIT 1`), false)
	if errors.Is(err, sql.ErrNoRows) {
		return store.StoredBundle{}, fmt.Errorf("latest bundle: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("latest bundle: %w", err)
	}
	return b, nil
}
