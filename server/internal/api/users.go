package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// validUsername reports whether name is acceptable for a new user: 1-64
// characters of a-z 0-9 . _ @ -, starting with a letter or digit. Lower
// case only, so that "Admin" and "admin" cannot be two people, and
// printable, so names are safe in logs and URLs.
func validUsername(name string) bool {
	if name == "" || len(name) > maxLoginName {
		return false
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._@-", r)) {
			return false
		}
	}
	return true
}

// listUsers lists every user (never a password hash).
func (s *Server) listUsers(c *gin.Context) {
	users, err := s.d.Store.Users(c.Request.Context())
	if err != nil {
		s.internal(c, fmt.Errorf("list users: %w", err))
		return
	}
	out := make([]userView, 0, len(users))
	for _, u := range users {
		out = append(out, viewUser(u))
	}
	c.JSON(http.StatusOK, gin.H{"users": out})
}

type createUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// createUser adds a local account.
func (s *Server) createUser(c *gin.Context) {
	var req createUserRequest
	if !bind(c, &req) {
		return
	}
	if !validUsername(req.Username) {
		badRequest(c, "username", "username must be 1-64 characters of a-z 0-9 . _ @ - starting with a letter or digit")
		return
	}
	if !validRole(req.Role) {
		badRequest(c, "role", "role must be one of %v, got %q", Roles(), req.Role)
		return
	}
	if err := password.Validate(req.Password); err != nil {
		badRequest(c, "password", "%v", err)
		return
	}
	hash, err := password.Hash(req.Password)
	if err != nil {
		s.internal(c, fmt.Errorf("create user %q: %w", req.Username, err))
		return
	}
	u, err := s.d.Store.CreateUser(c.Request.Context(), store.User{
		Username: req.Username, PasswordHash: hash, Role: req.Role, CreatedAt: s.now(),
	})
	if errors.Is(err, store.ErrConflict) {
		fail(c, http.StatusConflict, "conflict", "username", fmt.Sprintf("user %q already exists", req.Username))
		return
	}
	if err != nil {
		s.internal(c, fmt.Errorf("create user %q: %w", req.Username, err))
		return
	}
	if !s.audit(c, "user.create", fmt.Sprintf("user/%d", u.ID), map[string]string{"username": u.Username, "role": u.Role}) {
		return
	}
	c.JSON(http.StatusCreated, viewUser(u))
}

type updateUserRequest struct {
	Role     *string `json:"role"`
	Password *string `json:"password"`
	Disabled *bool   `json:"disabled"`
}

// updateUser changes a user's role, password or disabled flag. An admin
// cannot demote or disable themselves, and the last enabled admin cannot
// be demoted or disabled, so the server always keeps a way in. A new
// password ends the user's sessions (API tokens stay).
func (s *Server) updateUser(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var req updateUserRequest
	if !bind(c, &req) {
		return
	}
	if req.Role == nil && req.Password == nil && req.Disabled == nil {
		badRequest(c, "", "nothing to update: give role, password or disabled")
		return
	}
	if req.Role != nil && !validRole(*req.Role) {
		badRequest(c, "role", "role must be one of %v, got %q", Roles(), *req.Role)
		return
	}
	if req.Password != nil {
		if err := password.Validate(*req.Password); err != nil {
			badRequest(c, "password", "%v", err)
			return
		}
	}
	u, err := s.d.Store.User(c.Request.Context(), id)
	if err != nil {
		s.internal(c, fmt.Errorf("update user %d: %w", id, err))
		return
	}
	next := u
	if req.Role != nil {
		next.Role = *req.Role
	}
	if req.Disabled != nil {
		next.Disabled = *req.Disabled
	}
	if !s.keepsAdmin(c, u, next, "demote or disable") {
		return
	}
	detail := map[string]any{"username": u.Username}
	if next.Role != u.Role {
		detail["role"] = map[string]string{"from": u.Role, "to": next.Role}
	}
	if next.Disabled != u.Disabled {
		detail["disabled"] = next.Disabled
	}
	if req.Password != nil {
		hash, err := password.Hash(*req.Password)
		if err != nil {
			s.internal(c, fmt.Errorf("update user %d: %w", id, err))
			return
		}
		next.PasswordHash = hash
		detail["password_changed"] = true
	}
	if err := s.d.Store.UpdateUser(c.Request.Context(), next); err != nil {
		s.internal(c, fmt.Errorf("update user %d: %w", id, err))
		return
	}
	if req.Password != nil {
		n, err := s.endSessions(c, id)
		if err != nil {
			s.internal(c, fmt.Errorf("update user %d: end sessions: %w", id, err))
			return
		}
		detail["sessions_revoked"] = n
	}
	if !s.audit(c, "user.update", fmt.Sprintf("user/%d", id), detail) {
		return
	}
	c.JSON(http.StatusOK, viewUser(next))
}

// deleteUser removes a user (its tokens are revoked by the store). An
// admin cannot delete themselves, nor anyone the last enabled admin.
func (s *Server) deleteUser(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	u, err := s.d.Store.User(c.Request.Context(), id)
	if err != nil {
		s.internal(c, fmt.Errorf("delete user %d: %w", id, err))
		return
	}
	if !s.keepsAdmin(c, u, store.User{ID: u.ID, Disabled: true}, "delete") {
		return
	}
	if err := s.d.Store.DeleteUser(c.Request.Context(), id); err != nil {
		s.internal(c, fmt.Errorf("delete user %d: %w", id, err))
		return
	}
	if !s.audit(c, "user.delete", fmt.Sprintf("user/%d", id), map[string]string{"username": u.Username, "role": u.Role}) {
		return
	}
	c.Status(http.StatusNoContent)
}

// keepsAdmin checks that turning user `from` into `to` (to.Disabled for a
// deletion) neither locks the caller out of their own admin rights nor
// removes the last enabled admin; otherwise it answers 409 and returns
// false. Two admins demoting each other at the same instant can both pass
// this check: the store offers no conditional update to close that race.
func (s *Server) keepsAdmin(c *gin.Context, from, to store.User, verb string) bool {
	losesAdmin := from.Role == RoleAdmin && !from.Disabled && (to.Role != RoleAdmin || to.Disabled)
	if !losesAdmin && from.ID != principal(c).User.ID {
		return true
	}
	if from.ID == principal(c).User.ID && (to.Role != from.Role || to.Disabled) {
		fail(c, http.StatusConflict, "conflict", "", fmt.Sprintf("you cannot %s your own account; ask another admin", verb))
		return false
	}
	if !losesAdmin {
		return true
	}
	users, err := s.d.Store.Users(c.Request.Context())
	if err != nil {
		s.internal(c, fmt.Errorf("count admins: %w", err))
		return false
	}
	admins := 0
	for _, u := range users {
		if u.Role == RoleAdmin && !u.Disabled {
			admins++
		}
	}
	if admins <= 1 {
		fail(c, http.StatusConflict, "conflict", "", fmt.Sprintf("cannot %s the last enabled admin", verb))
		return false
	}
	return true
}

// endSessions revokes a user's live session tokens, keeping the caller's
// own, and says how many it revoked.
func (s *Server) endSessions(c *gin.Context, userID int64) (int, error) {
	toks, err := s.d.Store.Tokens(c.Request.Context(), userID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range toks {
		if t.Kind != store.TokenSession || !t.RevokedAt.IsZero() || t.ID == principal(c).Token.ID {
			continue
		}
		if err := s.d.Store.RevokeToken(c.Request.Context(), t.ID, s.now()); err != nil {
			return n, fmt.Errorf("revoke token %d: %w", t.ID, err)
		}
		n++
	}
	return n, nil
}
