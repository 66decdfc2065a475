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

// ValidUsername reports whether name is acceptable for a new user: 1-64
// characters of a-z 0-9 . _ @ -, starting with a letter or digit. Lower
// case only, so that "Admin" and "admin" cannot be two people, and
// printable, so names are safe in logs and URLs.
func ValidUsername(name string) bool {
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
	u, r := s.CreateUser(c, req.Username, req.Password, req.Role)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusCreated, viewUser(u))
}

// CreateUser validates and adds a local account and audits it
// ("user.create") as the principal set on c. The REST API and the web UI
// both create users through it.
func (s *Server) CreateUser(c *gin.Context, username, pw, role string) (store.User, *Refusal) {
	if !ValidUsername(username) {
		return store.User{}, invalid("username", "username must be 1-64 characters of a-z 0-9 . _ @ - starting with a letter or digit")
	}
	if !validRole(role) {
		return store.User{}, invalid("role", "role must be one of %v, got %q", Roles(), role)
	}
	if err := password.Validate(pw); err != nil {
		return store.User{}, invalid("password", "%v", err)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return store.User{}, failed(fmt.Errorf("create user %q: %w", username, err))
	}
	u, err := s.d.Store.CreateUser(c.Request.Context(), store.User{
		Username: username, PasswordHash: hash, Role: role, CreatedAt: s.now(),
	})
	if errors.Is(err, store.ErrConflict) {
		return store.User{}, conflictRefusal("username", fmt.Sprintf("user %q already exists", username))
	}
	if err != nil {
		return store.User{}, failed(fmt.Errorf("create user %q: %w", username, err))
	}
	if err := s.AppendAudit(c, "user.create", fmt.Sprintf("user/%d", u.ID), map[string]string{"username": u.Username, "role": u.Role}); err != nil {
		return store.User{}, failed(err)
	}
	return u, nil
}

// UserChange is a partial update of a user (the body of PATCH
// /users/:id); nil fields stay as they are.
type UserChange struct {
	Role     *string `json:"role"`
	Password *string `json:"password"`
	Disabled *bool   `json:"disabled"`
}

// updateUser changes a user's role, password or disabled flag.
func (s *Server) updateUser(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var req UserChange
	if !bind(c, &req) {
		return
	}
	u, r := s.UpdateUser(c, id, req)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusOK, viewUser(u))
}

// UpdateUser changes a user's role, password or disabled flag and audits
// it ("user.update"). An admin cannot demote or disable themselves, and
// the last enabled admin cannot be demoted or disabled, so the server
// always keeps a way in. A new password ends the user's sessions (API
// tokens stay).
func (s *Server) UpdateUser(c *gin.Context, id int64, req UserChange) (store.User, *Refusal) {
	if req.Role == nil && req.Password == nil && req.Disabled == nil {
		return store.User{}, invalid("", "nothing to update: give role, password or disabled")
	}
	if req.Role != nil && !validRole(*req.Role) {
		return store.User{}, invalid("role", "role must be one of %v, got %q", Roles(), *req.Role)
	}
	if req.Password != nil {
		if err := password.Validate(*req.Password); err != nil {
			return store.User{}, invalid("password", "%v", err)
		}
	}
	u, err := s.d.Store.User(c.Request.Context(), id)
	if err != nil {
		return store.User{}, failed(fmt.Errorf("update user %d: %w", id, err))
	}
	next := u
	if req.Role != nil {
		next.Role = *req.Role
	}
	if req.Disabled != nil {
		next.Disabled = *req.Disabled
	}
	if r := s.adminKept(c, u, next, "demote or disable"); r != nil {
		return store.User{}, r
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
			return store.User{}, failed(fmt.Errorf("update user %d: %w", id, err))
		}
		next.PasswordHash = hash
		detail["password_changed"] = true
	}
	if err := s.d.Store.UpdateUser(c.Request.Context(), next); err != nil {
		return store.User{}, failed(fmt.Errorf("update user %d: %w", id, err))
	}
	if req.Password != nil {
		n, err := s.endSessions(c, id)
		if err != nil {
			return store.User{}, failed(fmt.Errorf("update user %d: end sessions: %w", id, err))
		}
		detail["sessions_revoked"] = n
	}
	if err := s.AppendAudit(c, "user.update", fmt.Sprintf("user/%d", id), detail); err != nil {
		return store.User{}, failed(err)
	}
	return next, nil
}

// deleteUser removes a user.
func (s *Server) deleteUser(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if _, r := s.DeleteUser(c, id); r != nil {
		s.refuse(c, r)
		return
	}
	c.Status(http.StatusNoContent)
}

// DeleteUser removes a user (its tokens are revoked by the store) and
// audits it ("user.delete"); it returns the user as it was. An admin
// cannot delete themselves, nor anyone the last enabled admin.
func (s *Server) DeleteUser(c *gin.Context, id int64) (store.User, *Refusal) {
	u, err := s.d.Store.User(c.Request.Context(), id)
	if err != nil {
		return store.User{}, failed(fmt.Errorf("delete user %d: %w", id, err))
	}
	if r := s.adminKept(c, u, store.User{ID: u.ID, Disabled: true}, "delete"); r != nil {
		return store.User{}, r
	}
	if err := s.d.Store.DeleteUser(c.Request.Context(), id); err != nil {
		return store.User{}, failed(fmt.Errorf("delete user %d: %w", id, err))
	}
	if err := s.AppendAudit(c, "user.delete", fmt.Sprintf("user/%d", id), map[string]string{"username": u.Username, "role": u.Role}); err != nil {
		return store.User{}, failed(err)
	}
	return u, nil
}

// keepsAdmin is adminKept answering its refusal; it returns false when it
// has answered.
func (s *Server) keepsAdmin(c *gin.Context, from, to store.User, verb string) bool {
	if r := s.adminKept(c, from, to, verb); r != nil {
		s.refuse(c, r)
		return false
	}
	return true
}

// adminKept checks that turning user `from` into `to` (to.Disabled for a
// deletion) neither locks the caller out of their own admin rights nor
// removes the last enabled admin; otherwise it refuses with 409. Two
// admins demoting each other at the same instant can both pass this
// check: the store offers no conditional update to close that race.
func (s *Server) adminKept(c *gin.Context, from, to store.User, verb string) *Refusal {
	losesAdmin := from.Role == RoleAdmin && !from.Disabled && (to.Role != RoleAdmin || to.Disabled)
	if !losesAdmin && from.ID != principal(c).User.ID {
		return nil
	}
	if from.ID == principal(c).User.ID && (to.Role != from.Role || to.Disabled) {
		return conflictRefusal("", fmt.Sprintf("you cannot %s your own account; ask another admin", verb))
	}
	if !losesAdmin {
		return nil
	}
	users, err := s.d.Store.Users(c.Request.Context())
	if err != nil {
		return failed(fmt.Errorf("count admins: %w", err))
	}
	admins := 0
	for _, u := range users {
		if u.Role == RoleAdmin && !u.Disabled {
			admins++
		}
	}
	if admins <= 1 {
		return conflictRefusal("", fmt.Sprintf("cannot %s the last enabled admin", verb))
	}
	return nil
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
