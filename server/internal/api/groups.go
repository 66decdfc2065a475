package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// groupNameRe keeps group names usable unescaped in query strings
// (?group=) and label-like tooling.
var groupNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

const maxDescription = 1024

// groupJSON is a host group with its member count.
type groupJSON struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Hosts       int        `json:"hosts"`
	CreatedAt   *time.Time `json:"created_at"`
}

// listGroups answers GET /groups.
func (s *Server) listGroups(c *gin.Context) {
	ctx := c.Request.Context()
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	hosts, err := s.d.Store.Hosts(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	members := map[string]int{}
	for _, h := range hosts {
		for _, g := range h.Groups {
			members[g]++
		}
	}
	out := make([]groupJSON, len(groups))
	for i, g := range groups {
		out[i] = toGroupJSON(g, members[g.Name])
	}
	c.JSON(http.StatusOK, gin.H{"groups": out})
}

func toGroupJSON(g store.Group, hosts int) groupJSON {
	return groupJSON{ID: g.ID, Name: g.Name, Description: g.Description, Hosts: hosts, CreatedAt: ts(g.CreatedAt)}
}

// groupCreate is the body of POST /groups.
type groupCreate struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// createGroup answers POST /groups; a duplicate name is 409.
func (s *Server) createGroup(c *gin.Context) {
	var req groupCreate
	if !bind(c, &req) {
		return
	}
	if !groupNameRe.MatchString(req.Name) {
		badRequest(c, "name", "name must be 1-128 letters, digits, dots, underscores or hyphens")
		return
	}
	if len(req.Description) > maxDescription {
		badRequest(c, "description", "description must be at most %d bytes", maxDescription)
		return
	}
	for _, r := range req.Description {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			badRequest(c, "description", "description must not contain control characters")
			return
		}
	}
	g, err := s.d.Store.CreateGroup(c.Request.Context(), store.Group{Name: req.Name, Description: req.Description, CreatedAt: s.now()})
	if errors.Is(err, store.ErrConflict) {
		fail(c, http.StatusConflict, "conflict", "name", fmt.Sprintf("a group named %q already exists", req.Name))
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "group.create", groupTarget(g.ID), gin.H{"name": g.Name, "description": g.Description}) {
		return
	}
	c.JSON(http.StatusCreated, toGroupJSON(g, 0))
}

// deleteGroup answers DELETE /groups/:id; member hosts lose the group name.
func (s *Server) deleteGroup(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	groups, err := s.d.Store.Groups(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	name := ""
	for _, g := range groups {
		if g.ID == id {
			name = g.Name
		}
	}
	if err := s.d.Store.DeleteGroup(ctx, id); err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "group.delete", groupTarget(id), gin.H{"name": name}) {
		return
	}
	c.Status(http.StatusNoContent)
}

func groupTarget(id int64) string { return "group/" + strconv.FormatInt(id, 10) }
