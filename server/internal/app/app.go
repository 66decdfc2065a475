// Package app assembles vigil-server from its parts: configuration, store,
// TLS, posture, scheduler and API. cmd/vigil-server only parses flags and
// calls into here.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// OpenStore opens (and migrates) the configured store: PostgreSQL when a
// database URL is set, otherwise SQLite in the data directory, which it
// creates (0700) if needed.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return sqlite.Open(ctx, cfg.SQLitePath())
}

// NewLogger builds the server's logger: text on a terminal, JSON otherwise
// (under systemd), unless the configuration says which.
func NewLogger(cfg config.Log, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if st, err := w.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// CreateAdmin makes an admin account with the password read from r (the
// first line), validated against the password policy and stored hashed
// with argon2id; the action is audited with actor "cli".
func CreateAdmin(ctx context.Context, st store.Store, username string, r io.Reader, now time.Time) (store.User, error) {
	if username == "" {
		return store.User{}, fmt.Errorf("--username is required")
	}
	raw, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return store.User{}, fmt.Errorf("read password: %w", err)
	}
	pw, _, _ := strings.Cut(string(raw), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if err := password.Validate(pw); err != nil {
		return store.User{}, fmt.Errorf("password: %w", err)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return store.User{}, err
	}
	u, err := st.CreateUser(ctx, store.User{Username: username, PasswordHash: hash, Role: "admin", CreatedAt: now})
	if err != nil {
		return store.User{}, fmt.Errorf("create admin %s: %w", username, err)
	}
	_, err = st.AppendAudit(ctx, store.AuditEntry{At: now, Actor: "cli", Action: "user.create",
		Target: fmt.Sprintf("user/%d", u.ID), Detail: fmt.Sprintf(`{"username":%q,"role":"admin"}`, username), Source: "local"})
	if err != nil {
		return u, fmt.Errorf("audit admin creation: %w", err)
	}
	return u, nil
}

// VerifyAudit reads the whole audit log in pages and checks its hash
// chain; it returns how many entries it checked.
func VerifyAudit(ctx context.Context, st store.Store) (int, error) {
	var all []store.AuditEntry
	var after int64
	for {
		page, err := st.Audit(ctx, store.AuditFilter{AfterID: after, Limit: 1000})
		if err != nil {
			return len(all), err
		}
		all = append(all, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	return len(all), store.VerifyAudit(all)
}
