package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// auditLock is the pg_advisory_xact_lock key that serialises audit appends
// across every connection and replica ("audit" as an integer), so that the
// chain has one successor per entry.
const auditLock = 0x61756469_74

const userColumns = `id, username, password_hash, role, disabled, created_at, last_login_at`

func scanUser(r pgx.Row, extra ...any) (store.User, error) {
	var u store.User
	var login *time.Time
	dest := append([]any{&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &u.CreatedAt, &login}, extra...)
	if err := r.Scan(dest...); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.LastLoginAt = fromNull(login)
	return u, nil
}

// CreateUser implements store.Accounts.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if u.Username == "" {
		return store.User{}, errors.New("create user: empty username")
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	out, err := scanUser(s.pool.QueryRow(ctx, `INSERT INTO users(username, password_hash, role, disabled, created_at,
			last_login_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+userColumns,
		u.Username, u.PasswordHash, u.Role, u.Disabled, store.Micro(u.CreatedAt), nullTime(u.LastLoginAt)))
	if isUnique(err) {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, store.ErrConflict)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return out, nil
}

// User implements store.Accounts.
func (s *Store) User(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// UserByName implements store.Accounts.
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

// Users implements store.Accounts.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// exec runs a single-row write and reports ErrNotFound when it matched no
// row; what names the row for errors.
func (s *Store) exec(ctx context.Context, what, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// UpdateUser implements store.Accounts.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	return s.exec(ctx, fmt.Sprintf("update user %d", u.ID),
		`UPDATE users SET password_hash = $1, role = $2, disabled = $3 WHERE id = $4`, u.PasswordHash, u.Role, u.Disabled, u.ID)
}

// DeleteUser implements store.Accounts: its tokens are deleted with it (a
// token's row cannot outlive its user), which revokes them.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	return nil
}

// TouchLogin implements store.Accounts.
func (s *Store) TouchLogin(ctx context.Context, userID int64, at time.Time) error {
	return s.exec(ctx, fmt.Sprintf("touch login of user %d", userID),
		`UPDATE users SET last_login_at = $1 WHERE id = $2`, store.Micro(at), userID)
}

const tokenColumns = `id, user_id, kind, name, hash, created_at, expires_at, last_used_at, revoked_at`

// tokenUserColumns reads a token joined (as t) with its user (as u).
const tokenUserColumns = `t.id, t.user_id, t.kind, t.name, t.hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
	u.id, u.username, u.password_hash, u.role, u.disabled, u.created_at, u.last_login_at`

func scanToken(r pgx.Row, extra ...any) (store.Token, error) {
	var t store.Token
	var kind string
	var expires, used, revoked *time.Time
	dest := append([]any{&t.ID, &t.UserID, &kind, &t.Name, &t.Hash, &t.CreatedAt, &expires, &used, &revoked}, extra...)
	if err := r.Scan(dest...); err != nil {
		return store.Token{}, err
	}
	t.Kind = store.TokenKind(kind)
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNull(expires), fromNull(used), fromNull(revoked)
	return t, nil
}

// CreateToken implements store.Accounts. An unknown user is ErrNotFound; a
// hash already stored is ErrConflict.
func (s *Store) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	if t.Hash == "" {
		return store.Token{}, fmt.Errorf("create token for user %d: empty hash", t.UserID)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	out, err := scanToken(s.pool.QueryRow(ctx, `INSERT INTO tokens(user_id, kind, name, hash, created_at,
			expires_at, last_used_at, revoked_at)
		SELECT id, $1, $2, $3, $4, $5, $6, $7 FROM users WHERE id = $8
		RETURNING `+tokenColumns,
		string(t.Kind), t.Name, t.Hash, store.Micro(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.LastUsedAt),
		nullTime(t.RevokedAt), t.UserID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Token{}, fmt.Errorf("create token: user %d: %w", t.UserID, store.ErrNotFound)
	}
	if isUnique(err) {
		return store.Token{}, fmt.Errorf("create token %q for user %d: hash: %w", t.Name, t.UserID, store.ErrConflict)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("create token %q for user %d: %w", t.Name, t.UserID, err)
	}
	return out, nil
}

// TokenByHash implements store.Accounts.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, store.User, error) {
	var u store.User
	var login *time.Time
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenUserColumns+` FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.hash = $1`, hash),
		&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &u.CreatedAt, &login)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Token{}, store.User{}, fmt.Errorf("token %.8s...: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, store.User{}, fmt.Errorf("token %.8s...: %w", hash, err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.LastLoginAt = fromNull(login)
	return t, u, nil
}

// Tokens implements store.Accounts.
func (s *Store) Tokens(ctx context.Context, userID int64) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE $1::bigint = 0 OR user_id = $1
		ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("tokens of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("tokens of user %d: %w", userID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tokens of user %d: %w", userID, err)
	}
	return out, nil
}

// RevokeToken implements store.Accounts. Revoking twice keeps the first
// revocation time.
func (s *Store) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	return s.exec(ctx, fmt.Sprintf("revoke token %d", id),
		`UPDATE tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, store.Micro(at), id)
}

// TouchToken implements store.Accounts.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	return s.exec(ctx, fmt.Sprintf("touch token %d", id), `UPDATE tokens SET last_used_at = $1 WHERE id = $2`, store.Micro(at), id)
}

// AppendAudit implements store.Accounts. The transaction-scoped advisory
// lock makes read-last-then-insert atomic across every replica: the next
// appender's read starts after this transaction has committed, so it sees
// this entry. The lock is released at commit or rollback.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditLock)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var lastID int64
		lastHash := store.AuditGenesis
		err := tx.QueryRow(ctx, `SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&lastID, &lastHash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read last entry: %w", err)
		}
		e = store.ChainAudit(e, lastID, lastHash)
		_, err = tx.Exec(ctx, `INSERT INTO audit_log(id, at, actor, action, target, detail, source, request_id,
				prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.ID, e.At, e.Actor, e.Action, e.Target, e.Detail, e.Source, e.RequestID, e.PrevHash, e.Hash)
		return err
	})
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return e, nil
}

// Audit implements store.Accounts.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var w sqlFilter
	if f.Actor != "" {
		w.add("actor = $?", f.Actor)
	}
	if f.Action != "" {
		w.add("action = $?", f.Action)
	}
	if !f.From.IsZero() {
		w.add("at >= $?", store.Micro(f.From))
	}
	if !f.To.IsZero() {
		w.add("at < $?", store.Micro(f.To))
	}
	if f.AfterID != 0 {
		w.add("id > $?", f.AfterID)
	}
	order := "id"
	if f.Desc {
		order = "id DESC"
	}
	q := `SELECT id, at, actor, action, target, detail, source, request_id, prev_hash, hash FROM audit_log` +
		w.sql() + fmt.Sprintf(" ORDER BY %s LIMIT %d", order, store.AuditLimit(f.Limit))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.RequestID,
			&e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
