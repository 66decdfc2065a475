package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Label bounds on an enrolment token (the labels go to every agent
// enrolled with it).
const (
	maxTokenLabels   = 32
	maxTokenLabelLen = 128
)

// enrollmentTokenRequest is the body of POST /enrollment-tokens; every
// field is optional (one use, one hour).
type enrollmentTokenRequest struct {
	TTL    string            `json:"ttl"`
	Uses   int               `json:"uses"`
	Labels map[string]string `json:"labels"`
}

// createEnrollmentToken answers POST /enrollment-tokens: a join token
// shown once, with the CA pin the agent checks the server against.
func (s *Server) createEnrollmentToken(c *gin.Context) {
	var req enrollmentTokenRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > agentapi.MaxJoinTokenTTL {
			badRequest(c, "ttl", "ttl %q must be a duration such as 1h or 30m, at most %s", req.TTL, agentapi.MaxJoinTokenTTL)
			return
		}
		ttl = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > agentapi.MaxJoinTokenUses {
		badRequest(c, "uses", "uses must be 1 to %d", agentapi.MaxJoinTokenUses)
		return
	}
	if len(req.Labels) > maxTokenLabels {
		badRequest(c, "labels", "at most %d labels", maxTokenLabels)
		return
	}
	for k, v := range req.Labels {
		if k == "" || len(k) > maxTokenLabelLen || len(v) > maxTokenLabelLen {
			badRequest(c, "labels", "label %q: keys must be 1 to %d bytes, values at most %d", k, maxTokenLabelLen, maxTokenLabelLen)
			return
		}
	}
	actor := "anonymous"
	if pr := principal(c); pr != nil {
		actor = pr.User.Username
	}
	token, t, err := agentapi.MintJoinToken(c.Request.Context(), s.d.Store, ttl, req.Uses, req.Labels, actor, s.now())
	if err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "enrollment_token.create", fmt.Sprintf("join_token/%d", t.ID), agentapi.JoinTokenAudit(t)) {
		return
	}
	labels := t.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	c.JSON(http.StatusCreated, gin.H{"token": token, "ca_pin": s.d.CAPin, "expires_at": t.ExpiresAt,
		"id": t.ID, "uses": t.Uses, "labels": labels})
}

// revokeAgent answers POST /agents/:id/revoke: the agent's next call is
// refused. Revoking a revoked agent succeeds and keeps the first time.
func (s *Server) revokeAgent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.RevokeAgent(ctx, id, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			fail(c, http.StatusNotFound, "not_found", "", fmt.Sprintf("agent %d not found", id))
			return
		}
		s.internal(c, err)
		return
	}
	a, err := s.d.Store.Agent(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "agent.revoke", fmt.Sprintf("agent/%d", id), map[string]any{"name": a.Name, "cert_serial": a.CertSerial}) {
		return
	}
	hosts, err := s.d.Store.Hosts(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, s.toAgentJSON(a, agentHosts(hosts)[a.ID]))
}
