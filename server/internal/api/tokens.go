package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Token prefixes tell a session token from an API token at a glance (and
// let secret scanners recognise leaked vigil tokens).
const (
	prefixSession = "vgs_"
	prefixAPI     = "vga_"
)

// tokenBytes of randomness make a token: 256 bits, beyond guessing.
const tokenBytes = 32

// API token lifetimes, in days: the default when the caller names none and
// the most a caller may ask for.
const (
	defaultTokenDays = 90
	maxTokenDays     = 3650
	maxTokenName     = 100
)

// newToken returns a fresh token of the kind and the hex SHA-256 to store.
func newToken(kind store.TokenKind) (plain, hash string, err error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("token randomness: %w", err)
	}
	prefix := prefixAPI
	if kind == store.TokenSession {
		prefix = prefixSession
	}
	plain = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return plain, hashToken(plain), nil
}

// hashToken is what the store keeps and looks tokens up by. A fast hash is
// right here: the token has 256 bits of entropy, unlike a password.
func hashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// tokenKindOf recognises a well-formed vigil token by its shape, so junk
// is refused without a database round trip.
func tokenKindOf(plain string) (store.TokenKind, bool) {
	var kind store.TokenKind
	rest, ok := strings.CutPrefix(plain, prefixSession)
	if ok {
		kind = store.TokenSession
	} else if rest, ok = strings.CutPrefix(plain, prefixAPI); ok {
		kind = store.TokenAPI
	} else {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	return kind, err == nil && len(b) == tokenBytes
}

// mintToken creates and stores a token for a user; expires zero is never.
func (s *Server) mintToken(c *gin.Context, userID int64, kind store.TokenKind, name string, expires time.Time) (string, store.Token, error) {
	plain, hash, err := newToken(kind)
	if err != nil {
		return "", store.Token{}, err
	}
	tok, err := s.d.Store.CreateToken(c.Request.Context(), store.Token{
		UserID: userID, Kind: kind, Name: name, Hash: hash, CreatedAt: s.now(), ExpiresAt: expires,
	})
	if err != nil {
		return "", store.Token{}, fmt.Errorf("create %s token for user %d: %w", kind, userID, err)
	}
	return plain, tok, nil
}

// tokenView is a token as the API shows it: never the token nor its hash.
type tokenView struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	Kind       string     `json:"kind"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Current    bool       `json:"current"` // the token of this request
}

func viewToken(t store.Token, current int64) tokenView {
	return tokenView{ID: t.ID, UserID: t.UserID, Kind: string(t.Kind), Name: t.Name, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: optTime(t.ExpiresAt), LastUsedAt: optTime(t.LastUsedAt), RevokedAt: optTime(t.RevokedAt),
		Current: t.ID == current}
}

// listTokens lists the caller's tokens; a users.manage holder may ask for
// another user's (?user=ID) or everyone's (?user=all).
func (s *Server) listTokens(c *gin.Context) {
	pr := principal(c)
	userID := pr.User.ID
	if q, ok := c.GetQuery("user"); ok {
		switch id, err := strconv.ParseInt(q, 10, 64); {
		case q == "all":
			userID = 0
		case err != nil || id <= 0:
			badRequest(c, "user", "user must be a user id or \"all\", got %q", q)
			return
		default:
			userID = id
		}
		if userID != pr.User.ID && !Allowed(pr.User.Role, PermUsersManage) {
			fail(c, http.StatusForbidden, "forbidden", "user",
				fmt.Sprintf("listing other users' tokens needs permission %q", PermUsersManage))
			return
		}
	}
	toks, err := s.d.Store.Tokens(c.Request.Context(), userID)
	if err != nil {
		s.internal(c, fmt.Errorf("list tokens of user %d: %w", userID, err))
		return
	}
	out := make([]tokenView, 0, len(toks))
	for _, t := range toks {
		out = append(out, viewToken(t, pr.Token.ID))
	}
	c.JSON(http.StatusOK, gin.H{"tokens": out})
}

type createTokenRequest struct {
	Name          string `json:"name"`
	ExpiresInDays *int   `json:"expires_in_days"`
}

// createToken makes an API token for the caller. The token is in this
// response only; the server keeps its hash.
func (s *Server) createToken(c *gin.Context) {
	pr := principal(c)
	var req createTokenRequest
	if !bind(c, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "":
		badRequest(c, "name", "name is required (say what the token is for)")
		return
	case utf8.RuneCountInString(req.Name) > maxTokenName || !utf8.ValidString(req.Name):
		badRequest(c, "name", "name must be valid UTF-8 of at most %d characters", maxTokenName)
		return
	}
	days := defaultTokenDays
	if req.ExpiresInDays != nil {
		days = *req.ExpiresInDays
		if days < 1 || days > maxTokenDays {
			badRequest(c, "expires_in_days", "expires_in_days must be between 1 and %d, got %d", maxTokenDays, days)
			return
		}
	}
	expires := s.now().Add(time.Duration(days) * 24 * time.Hour)
	plain, tok, err := s.mintToken(c, pr.User.ID, store.TokenAPI, req.Name, expires)
	if err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "token.create", fmt.Sprintf("token/%d", tok.ID),
		map[string]any{"name": tok.Name, "user_id": tok.UserID, "expires_at": tok.ExpiresAt.UTC()}) {
		if err := s.d.Store.RevokeToken(c.Request.Context(), tok.ID, s.now()); err != nil {
			s.log.Error("revoke unaudited token", "request_id", RequestID(c), "token_id", tok.ID, "err", err)
		}
		return
	}
	c.JSON(http.StatusCreated, struct {
		tokenView
		Token string `json:"token"`
	}{viewToken(tok, pr.Token.ID), plain})
}

// revokeToken revokes one of the caller's tokens, or anyone's for a
// users.manage holder. Someone else's token is 404 to everyone else, so
// token ids of other users cannot be probed. Revoking a revoked token
// succeeds and keeps the first revocation time.
func (s *Server) revokeToken(c *gin.Context) {
	pr := principal(c)
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	owner := pr.User.ID
	if Allowed(pr.User.Role, PermUsersManage) {
		owner = 0
	}
	toks, err := s.d.Store.Tokens(c.Request.Context(), owner)
	if err != nil {
		s.internal(c, fmt.Errorf("revoke token %d: list tokens: %w", id, err))
		return
	}
	var tok *store.Token
	for i := range toks {
		if toks[i].ID == id {
			tok = &toks[i]
			break
		}
	}
	if tok == nil {
		fail(c, http.StatusNotFound, "not_found", "", fmt.Sprintf("no token %d", id))
		return
	}
	already := !tok.RevokedAt.IsZero()
	if !already {
		if err := s.d.Store.RevokeToken(c.Request.Context(), id, s.now()); err != nil {
			s.internal(c, fmt.Errorf("revoke token %d: %w", id, err))
			return
		}
	}
	if !s.audit(c, "token.revoke", fmt.Sprintf("token/%d", id),
		map[string]any{"user_id": tok.UserID, "name": tok.Name, "kind": tok.Kind, "already_revoked": already}) {
		return
	}
	c.Status(http.StatusNoContent)
}
