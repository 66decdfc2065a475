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

const joinTokenColumns = `id, hash, uses, used, labels::text, created_by, created_at, expires_at, revoked_at`

func scanJoinToken(r pgx.Row) (store.JoinToken, error) {
	var t store.JoinToken
	var labels string
	var revoked *time.Time
	if err := r.Scan(&t.ID, &t.Hash, &t.Uses, &t.Used, &labels, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &revoked); err != nil {
		return store.JoinToken{}, err
	}
	if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
		return store.JoinToken{}, fmt.Errorf("join token %d: decode labels: %w", t.ID, err)
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), fromNull(revoked)
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
	out, err := scanJoinToken(s.pool.QueryRow(ctx, `INSERT INTO join_tokens(hash, uses, used, labels, created_by,
			created_at, expires_at, revoked_at) VALUES ($1, $2, 0, $3::jsonb, $4, $5, $6, $7) RETURNING `+joinTokenColumns,
		t.Hash, t.Uses, lj, t.CreatedBy, store.Micro(t.CreatedAt), store.Micro(t.ExpiresAt), nullTime(t.RevokedAt)))
	if isUnique(err) {
		return store.JoinToken{}, fmt.Errorf("create join token: %w", store.ErrConflict)
	}
	if err != nil {
		return store.JoinToken{}, fmt.Errorf("create join token: %w", err)
	}
	return out, nil
}

// UseJoinToken implements store.Enrollment: one conditional UPDATE, whose
// WHERE PostgreSQL re-checks after taking the row lock, so concurrent uses
// never exceed Uses.
func (s *Store) UseJoinToken(ctx context.Context, hash string, at time.Time) (store.JoinToken, error) {
	t, err := scanJoinToken(s.pool.QueryRow(ctx, `UPDATE join_tokens SET used = used + 1
		WHERE hash = $1 AND used < uses AND revoked_at IS NULL AND expires_at > $2
		RETURNING `+joinTokenColumns, hash, store.Micro(at)))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", err)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM join_tokens WHERE hash = $1)`, hash).Scan(&exists); err != nil {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", err)
	}
	if !exists {
		return store.JoinToken{}, fmt.Errorf("use join token: %w", store.ErrNotFound)
	}
	return store.JoinToken{}, fmt.Errorf("use join token: %w", store.ErrTokenSpent)
}

// JoinTokens implements store.Enrollment.
func (s *Store) JoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens ORDER BY created_at DESC, id DESC`)
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
	out, err := scanAgent(s.pool.QueryRow(ctx, `INSERT INTO agents(name, status, version, os, cert_serial, labels,
			enrolled_at, last_seen_at, revoked_at, hostname) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)
		ON CONFLICT(name) DO NOTHING RETURNING `+agentColumns,
		a.Name, string(a.Status), a.Version, a.OS, a.CertSerial, lj, store.Micro(a.EnrolledAt),
		nullTime(a.LastSeenAt), nullTime(a.RevokedAt), a.Hostname))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("create agent %s: %w", a.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("create agent %s: %w", a.Name, err)
	}
	return out, nil
}

// RecordCertificate implements store.Enrollment.
func (s *Store) RecordCertificate(ctx context.Context, agentID int64, serial string, notBefore, notAfter time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE agents SET cert_serial = $1 WHERE id = $2`, serial, agentID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("agent %d: %w", agentID, store.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `INSERT INTO agent_certificates(serial, agent_id, not_before, not_after)
			VALUES ($1, $2, $3, $4) ON CONFLICT (serial) DO NOTHING`,
			serial, agentID, store.Micro(notBefore), store.Micro(notAfter))
		return err
	})
	if err != nil {
		return fmt.Errorf("record certificate %s: %w", serial, err)
	}
	return nil
}

// RevokeAgent implements store.Enrollment.
func (s *Store) RevokeAgent(ctx context.Context, agentID int64, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE agents SET status = 'revoked', revoked_at = coalesce(revoked_at, $1)
		WHERE id = $2`, store.Micro(at), agentID)
	if err != nil {
		return fmt.Errorf("revoke agent %d: %w", agentID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke agent %d: %w", agentID, store.ErrNotFound)
	}
	return nil
}

// TouchAgent implements store.Enrollment.
func (s *Store) TouchAgent(ctx context.Context, agentID int64, hb store.AgentHeartbeat) error {
	if hb.At.IsZero() {
		hb.At = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `UPDATE agents SET last_seen_at = greatest(last_seen_at, $1),
			version = coalesce(nullif($2, ''), version),
			os = coalesce(nullif($3, ''), os),
			bundle_digest = coalesce(nullif($4, ''), bundle_digest),
			spool_batches = $5, spool_bytes = $6
		WHERE id = $7`, store.Micro(hb.At), hb.Version, hb.OS, hb.BundleDigest, hb.SpoolBatches, hb.SpoolBytes, agentID)
	if err != nil {
		return fmt.Errorf("touch agent %d: %w", agentID, err)
	}
	if tag.RowsAffected() == 0 {
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
	if _, err := s.pool.Exec(ctx, `INSERT INTO bundles(digest, version, created, expires, published_at, data)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING`,
		b.Digest, b.Version, store.Micro(b.Created), nullTime(b.Expires), store.Micro(b.PublishedAt), b.Data); err != nil {
		return fmt.Errorf("put bundle %s: %w", b.Digest, err)
	}
	return nil
}

func scanBundle(r pgx.Row, withData bool) (store.StoredBundle, error) {
	var b store.StoredBundle
	var expires *time.Time
	dest := []any{&b.Digest, &b.Version, &b.Created, &expires, &b.PublishedAt}
	if withData {
		dest = append(dest, &b.Data)
	}
	if err := r.Scan(dest...); err != nil {
		return store.StoredBundle{}, err
	}
	b.Created, b.Expires, b.PublishedAt = b.Created.UTC(), fromNull(expires), b.PublishedAt.UTC()
	return b, nil
}

// Bundle implements store.Enrollment.
func (s *Store) Bundle(ctx context.Context, digest string) (store.StoredBundle, error) {
	b, err := scanBundle(s.pool.QueryRow(ctx, `SELECT digest, version, created, expires, published_at, data
		FROM bundles WHERE digest = $1`, digest), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.StoredBundle{}, fmt.Errorf("bundle %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("bundle %s: %w", digest, err)
	}
	return b, nil
}

// LatestBundle implements store.Enrollment.
func (s *Store) LatestBundle(ctx context.Context) (store.StoredBundle, error) {
	b, err := scanBundle(s.pool.QueryRow(ctx, `SELECT digest, version, created, expires, published_at
		FROM bundles ORDER BY published_at DESC, digest DESC LIMIT 1`), false)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.StoredBundle{}, fmt.Errorf("latest bundle: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("latest bundle: %w", err)
	}
	return b, nil
}
