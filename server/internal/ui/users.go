package ui

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// usersData is what users.html shows.
type usersData struct {
	Users []store.User
	Roles []string
	Form  userForm
}

// userForm echoes the create form after a refusal (never the password).
type userForm struct {
	Username string
	Role     string
}

// usersPage lists the accounts with their forms.
func (u *UI) usersPage(c *gin.Context) {
	u.renderUsers(c, http.StatusOK, userForm{Role: api.RoleViewer}, "")
}

// renderUsers renders the users page with status and an error line.
func (u *UI) renderUsers(c *gin.Context, status int, form userForm, errMsg string) {
	users, err := u.d.Store.Users(c.Request.Context())
	if err != nil {
		u.adminFail(c, fmt.Errorf("list users: %w", err))
		return
	}
	u.render(c, status, "users", Page{Title: "Users", Nav: "users", Error: errMsg,
		Data: usersData{Users: users, Roles: api.Roles(), Form: form}})
}

// createUser adds an account through the API's CreateUser (same policy,
// same audit entry).
func (u *UI) createUser(c *gin.Context) {
	form := userForm{Username: strings.TrimSpace(c.PostForm("username")), Role: c.PostForm("role")}
	nu, r := u.d.API.CreateUser(c, form.Username, c.PostForm("password"), form.Role)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderUsers(c, status, form, msg) })
		return
	}
	u.redirect(c, "/users", fmt.Sprintf("User %s created with role %s.", nu.Username, nu.Role))
}

// updateUser changes role, disabled flag and optionally the password
// through the API's UpdateUser. Only fields that differ from the stored
// user are sent, so an unchanged form is refused as "nothing to update"
// rather than audited as a change.
func (u *UI) updateUser(c *gin.Context) {
	id, ok := u.adminID(c)
	if !ok {
		return
	}
	cur, err := u.d.Store.User(c.Request.Context(), id)
	if err != nil {
		u.refusal(c, adminStoreRefusal(fmt.Errorf("user %d: %w", id, err)), func(status int, msg string) {
			u.renderError(c, req(c), status, msg)
		})
		return
	}
	var ch api.UserChange
	if role := c.PostForm("role"); role != "" && role != cur.Role {
		ch.Role = &role
	}
	if disabled := c.PostForm("disabled") != ""; disabled != cur.Disabled {
		ch.Disabled = &disabled
	}
	if pw := c.PostForm("password"); pw != "" {
		ch.Password = &pw
	}
	nu, r := u.d.API.UpdateUser(c, id, ch)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) {
			u.renderUsers(c, status, userForm{Role: api.RoleViewer}, fmt.Sprintf("%s: %s", cur.Username, msg))
		})
		return
	}
	u.redirect(c, "/users", fmt.Sprintf("User %s updated.", nu.Username))
}

// deleteUser removes an account through the API's DeleteUser.
func (u *UI) deleteUser(c *gin.Context) {
	id, ok := u.adminID(c)
	if !ok {
		return
	}
	old, r := u.d.API.DeleteUser(c, id)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderUsers(c, status, userForm{Role: api.RoleViewer}, msg) })
		return
	}
	u.redirect(c, "/users", fmt.Sprintf("User %s deleted; their sessions and tokens are revoked.", old.Username))
}

// adminStoreRefusal maps a store error as the API does: not found is 404.
func adminStoreRefusal(err error) *api.Refusal {
	if errors.Is(err, store.ErrNotFound) {
		return &api.Refusal{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	}
	return &api.Refusal{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}
