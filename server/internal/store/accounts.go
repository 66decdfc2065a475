package store

import (
	"context"
	"time"
)

// Accounts holds users, their tokens and the audit log.
type Accounts interface {
	// CreateUser adds a user; a duplicate username is ErrConflict.
	CreateUser(ctx context.Context, u User) (User, error)
	// User returns one user by id.
	User(ctx context.Context, id int64) (User, error)
	// UserByName returns one user by username.
	UserByName(ctx context.Context, username string) (User, error)
	// Users lists users ordered by username.
	Users(ctx context.Context) ([]User, error)
	// UpdateUser replaces a user's password hash, role and disabled flag.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser removes a user and revokes every token it holds.
	DeleteUser(ctx context.Context, id int64) error
	// TouchLogin records a successful login.
	TouchLogin(ctx context.Context, userID int64, at time.Time) error

	// CreateToken stores a token (only its hash) and returns it with its id.
	CreateToken(ctx context.Context, t Token) (Token, error)
	// TokenByHash finds a token and its user by the token's SHA-256 (hex);
	// it returns revoked and expired tokens too, the caller decides.
	TokenByHash(ctx context.Context, hash string) (Token, User, error)
	// Tokens lists a user's tokens (userID 0: everyone's), newest first.
	Tokens(ctx context.Context, userID int64) ([]Token, error)
	// RevokeToken marks a token revoked at `at`.
	RevokeToken(ctx context.Context, id int64, at time.Time) error
	// TouchToken records a token's use (callers throttle how often).
	TouchToken(ctx context.Context, id int64, at time.Time) error

	// AppendAudit appends an entry, assigning ID (previous + 1), PrevHash and
	// Hash (AuditHash) atomically, so concurrent appenders on any replica
	// form one unbroken chain.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit lists entries matching the filter.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// User is a local account.
type User struct {
	ID           int64
	Username     string
	PasswordHash string // argon2id, PHC string format
	Role         string
	Disabled     bool
	CreatedAt    time.Time
	LastLoginAt  time.Time
}

// TokenKind tells session tokens (from login) from API tokens (automation).
type TokenKind string

// The token kinds.
const (
	TokenSession TokenKind = "session"
	TokenAPI     TokenKind = "api"
)

// Token is a bearer credential; only Hash, never the token, is stored.
type Token struct {
	ID         int64
	UserID     int64
	Kind       TokenKind
	Name       string
	Hash       string // hex SHA-256 of the token
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// AuditEntry is one operator action.
type AuditEntry struct {
	ID        int64
	At        time.Time
	Actor     string // username, "agent:NAME" or "system"
	Action    string // e.g. host.create, user.update, auth.login_failed
	Target    string // e.g. host/12
	Detail    string // JSON object
	Source    string // remote address
	RequestID string
	PrevHash  string
	Hash      string
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Actor   string
	Action  string
	From    time.Time
	To      time.Time
	AfterID int64 // entries with id > AfterID
	Limit   int   // 0: 100
	Desc    bool  // newest first
}
