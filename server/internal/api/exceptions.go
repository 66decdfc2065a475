package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Page bounds of the governance lists.
const (
	defaultGovPage = 500
	maxGovPage     = 1000
)

// exceptionStates are the values GET /exceptions?state= accepts.
func exceptionStates() []string {
	return []string{string(store.ExceptionRequested), string(store.ExceptionApproved), string(store.ExceptionRejected),
		string(store.ExceptionRevoked), string(store.ExceptionExpired)}
}

// exceptionView is an exception as the API shows it; absent moments and
// scope ids are left out rather than shown as zero.
type exceptionView struct {
	ID            int64      `json:"id"`
	RuleID        string     `json:"rule_id"`
	RuleTitle     string     `json:"rule_title,omitempty"`
	Scope         string     `json:"scope"`
	HostID        int64      `json:"host_id,omitempty"`
	Host          string     `json:"host,omitempty"`
	GroupID       int64      `json:"group_id,omitempty"`
	Group         string     `json:"group,omitempty"`
	Justification string     `json:"justification"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	State         string     `json:"state"`
	RequestedBy   string     `json:"requested_by"`
	RequestedAt   time.Time  `json:"requested_at"`
	DecidedBy     string     `json:"decided_by,omitempty"`
	DecidedAt     *time.Time `json:"decided_at,omitempty"`
	DecisionNote  string     `json:"decision_note,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokeNote    string     `json:"revoke_note,omitempty"`
	ExpiredAt     *time.Time `json:"expired_at,omitempty"`
}

// names resolves host and group ids to names for views, reading each host
// once per request and the groups once.
type names struct {
	s      *Server
	ctx    context.Context
	hosts  map[int64]string
	groups map[int64]string
}

func (s *Server) names(ctx context.Context) *names {
	return &names{s: s, ctx: ctx, hosts: map[int64]string{}}
}

// host is a host's name, "" when it is deleted or unreadable (the view
// still carries the id).
func (n *names) host(id int64) string {
	if id == 0 {
		return ""
	}
	if name, ok := n.hosts[id]; ok {
		return name
	}
	h, err := n.s.d.Store.Host(n.ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		n.s.log.Warn("host name for a view", "host_id", id, "err", err)
	}
	n.hosts[id] = h.Name
	return h.Name
}

// group is a group's name, "" when it no longer exists.
func (n *names) group(id int64) string {
	if id == 0 {
		return ""
	}
	if n.groups == nil {
		n.groups = map[int64]string{}
		gs, err := n.s.d.Store.Groups(n.ctx)
		if err != nil {
			n.s.log.Warn("group names for a view", "err", err)
		}
		for _, g := range gs {
			n.groups[g.ID] = g.Name
		}
	}
	return n.groups[id]
}

func (s *Server) viewException(n *names, e store.Exception) exceptionView {
	v := exceptionView{
		ID: e.ID, RuleID: e.RuleID, Scope: exceptionScope(e), HostID: e.HostID, Host: n.host(e.HostID),
		GroupID: e.GroupID, Group: n.group(e.GroupID), Justification: e.Justification, ExpiresAt: ts(e.ExpiresAt),
		State: string(e.State), RequestedBy: e.RequestedBy, RequestedAt: e.RequestedAt.UTC(),
		DecidedBy: e.DecidedBy, DecidedAt: ts(e.DecidedAt), DecisionNote: e.DecisionNote,
		RevokedBy: e.RevokedBy, RevokedAt: ts(e.RevokedAt), RevokeNote: e.RevokeNote, ExpiredAt: ts(e.ExpiredAt),
	}
	if s.d.Posture != nil {
		if r := s.index().Rule(e.RuleID); r != nil {
			v.RuleTitle = r.Title
		}
	}
	return v
}

// listExceptions answers GET /exceptions?state=&rule=&host=&group=&limit=,
// newest first.
func (s *Server) listExceptions(c *gin.Context) {
	states, ok := queryEnum(c, "state", exceptionStates())
	if !ok {
		return
	}
	f := store.ExceptionFilter{RuleID: c.Query("rule")}
	for _, st := range states {
		f.States = append(f.States, store.ExceptionState(st))
	}
	if f.HostID, ok = queryID(c, "host"); !ok {
		return
	}
	if f.GroupID, ok = queryID(c, "group"); !ok {
		return
	}
	limit, ok := queryInt(c, "limit", defaultGovPage, 1, maxGovPage)
	if !ok {
		return
	}
	f.Limit = limit
	es, err := s.d.Store.Exceptions(c.Request.Context(), f)
	if err != nil {
		s.internal(c, fmt.Errorf("list exceptions: %w", err))
		return
	}
	n := s.names(c.Request.Context())
	out := make([]exceptionView, 0, len(es))
	for _, e := range es {
		out = append(out, s.viewException(n, e))
	}
	c.JSON(http.StatusOK, gin.H{"exceptions": out})
}

// getException answers GET /exceptions/:id.
func (s *Server) getException(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	e, err := s.d.Store.Exception(c.Request.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, "not_found", "id", fmt.Sprintf("no exception with id %d", id))
		return
	} else if err != nil {
		s.internal(c, fmt.Errorf("exception %d: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, s.viewException(s.names(c.Request.Context()), e))
}

// createException answers POST /exceptions: a request, waiting for a
// security admin's decision.
func (s *Server) createException(c *gin.Context) {
	var in ExceptionInput
	if !bind(c, &in) {
		return
	}
	e, r := s.RequestException(c, in)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusCreated, s.viewException(s.names(c.Request.Context()), e))
}

// decisionBody is the optional body of approve, reject and revoke.
type decisionBody struct {
	Note string `json:"note"`
}

// decideException returns the handler of POST /exceptions/:id/<action>.
func (s *Server) decideException(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		var body decisionBody
		if c.Request.ContentLength != 0 && !bind(c, &body) {
			return
		}
		e, r := s.DecideException(c, id, action, body.Note)
		if r != nil {
			s.refuse(c, r)
			return
		}
		c.JSON(http.StatusOK, s.viewException(s.names(c.Request.Context()), e))
	}
}
