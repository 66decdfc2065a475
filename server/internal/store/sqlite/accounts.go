package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

const userColumns = `id, username, password_hash, role, disabled, created_at, last_login_at`

func scanUser(r rowScanner) (store.User, error) {
	var u store.User
	var created int64
	var login sql.NullInt64
	if err := r.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &created, &login); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMicros(created)
	u.LastLoginAt = fromNullMicros(login)
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
	out, err := scanUser(s.w.QueryRowContext(ctx, `INSERT INTO users(username, password_hash, role, disabled, created_at,
			last_login_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING `+userColumns,
		u.Username, u.PasswordHash, u.Role, u.Disabled, micros(u.CreatedAt), nullMicros(u.LastLoginAt)))
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
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// UserByName implements store.Accounts.
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

// Users implements store.Accounts.
func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
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
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// UpdateUser implements store.Accounts.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	return s.exec(ctx, fmt.Sprintf("update user %d", u.ID),
		`UPDATE users SET password_hash = ?, role = ?, disabled = ? WHERE id = ?`, u.PasswordHash, u.Role, u.Disabled, u.ID)
}

// DeleteUser implements store.Accounts: its tokens are deleted with it (a
// token's row cannot outlive its user), which revokes them.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete user %d: begin: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ?`, id); err != nil {
		return fmt.Errorf("delete user %d: tokens: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete user %d: %w", id, store.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete user %d: commit: %w", id, err)
	}
	return nil
}

// TouchLogin implements store.Accounts.
func (s *Store) TouchLogin(ctx context.Context, userID int64, at time.Time) error {
	return s.exec(ctx, fmt.Sprintf("touch login of user %d", userID),
		`UPDATE users SET last_login_at = ? WHERE id = ?`, micros(at), userID)
}

const tokenColumns = `id, user_id, kind, name, hash, created_at, expires_at, last_used_at, revoked_at`

// tokenUserColumns reads a token joined (as t) with its user (as u).
const tokenUserColumns = `t.id, t.user_id, t.kind, t.name, t.hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
	u.id, u.username, u.password_hash, u.role, u.disabled, u.created_at, u.last_login_at`

func scanToken(r rowScanner, extra ...any) (store.Token, error) {
	var t store.Token
	var kind string
	var created int64
	var expires, used, revoked sql.NullInt64
	dest := append([]any{&t.ID, &t.UserID, &kind, &t.Name, &t.Hash, &created, &expires, &used, &revoked}, extra...)
	if err := r.Scan(dest...); err != nil {
		return store.Token{}, err
	}
	t.Kind = store.TokenKind(kind)
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt = fromNullMicros(expires)
	t.LastUsedAt = fromNullMicros(used)
	t.RevokedAt = fromNullMicros(revoked)
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
	out, err := scanToken(s.w.QueryRowContext(ctx, `INSERT INTO tokens(user_id, kind, name, hash, created_at,
			expires_at, last_used_at, revoked_at)
		SELECT id, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?
		RETURNING `+tokenColumns,
		string(t.Kind), t.Name, t.Hash, micros(t.CreatedAt), nullMicros(t.ExpiresAt), nullMicros(t.LastUsedAt),
		nullMicros(t.RevokedAt), t.UserID))
	if errors.Is(err, sql.ErrNoRows) {
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
	var created int64
	var login sql.NullInt64
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenUserColumns+` FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`, hash),
		&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &created, &login)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, store.User{}, fmt.Errorf("token %.8s...: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, store.User{}, fmt.Errorf("token %.8s...: %w", hash, err)
	}
	u.CreatedAt = fromMicros(created)
	u.LastLoginAt = fromNullMicros(login)
	return t, u, nil
}

// Tokens implements store.Accounts.
func (s *Store) Tokens(ctx context.Context, userID int64) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE ? = 0 OR user_id = ?
		ORDER BY created_at DESC, id DESC`, userID, userID)
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
		`UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, micros(at), id)
}

// TouchToken implements store.Accounts.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	return s.exec(ctx, fmt.Sprintf("touch token %d", id), `UPDATE tokens SET last_used_at = ? WHERE id = ?`, micros(at), id)
}

// AppendAudit implements store.Accounts. The single writer connection and
// the immediate transaction serialise appenders, so reading the last entry
// and inserting the next cannot interleave.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit %s: begin: %w", e.Action, err)
	}
	defer tx.Rollback()
	var lastID int64
	lastHash := store.AuditGenesis
	err = tx.QueryRowContext(ctx, `SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&lastID, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.AuditEntry{}, fmt.Errorf("append audit %s: read last entry: %w", e.Action, err)
	}
	e = store.ChainAudit(e, lastID, lastHash)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log(id, at, actor, action, target, detail, source, request_id,
			prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, micros(e.At), e.Actor, e.Action, e.Target, e.Detail, e.Source, e.RequestID, e.PrevHash, e.Hash); err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit %d %s: %w", e.ID, e.Action, err)
	}
	if err := tx.Commit(); err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit %d %s: commit: %w", e.ID, e.Action, err)
	}
	return e, nil
}

// Audit implements store.Accounts.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, micros(f.To))
	}
	if f.AfterID != 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	q := `SELECT id, at, actor, action, target, detail, source, request_id, prev_hash, hash FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Desc {
		q += " DESC"
	}
	q += " LIMIT ?"
	args = append(args, store.AuditLimit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.RequestID,
			&e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
