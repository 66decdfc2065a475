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

// JoinTokenRequest is the body of POST /enrollment-tokens; every field is
// optional (one use, one hour).
type JoinTokenRequest struct {
	TTL    string            `json:"ttl"`
	Uses   int               `json:"uses"`
	Labels map[string]string `json:"labels"`
}

// createEnrollmentToken answers POST /enrollment-tokens: a join token
// shown once, with the CA pin the agent checks the server against.
func (s *Server) createEnrollmentToken(c *gin.Context) {
	var req JoinTokenRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	token, t, r := s.CreateJoinToken(c, req)
	if r != nil {
		s.refuse(c, r)
		return
	}
	labels := t.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	c.JSON(http.StatusCreated, gin.H{"token": token, "ca_pin": s.d.CAPin, "expires_at": t.ExpiresAt,
		"id": t.ID, "uses": t.Uses, "labels": labels})
}

// CreateJoinToken validates req, mints a join token (only its hash is
// stored) and audits it ("enrollment_token.create") as the principal set
// on c; the token is returned to be shown once. The REST API and the web
// UI both mint tokens through it.
func (s *Server) CreateJoinToken(c *gin.Context, req JoinTokenRequest) (string, store.JoinToken, *Refusal) {
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > agentapi.MaxJoinTokenTTL {
			return "", store.JoinToken{}, invalid("ttl", "ttl %q must be a duration such as 1h or 30m, at most %s", req.TTL, agentapi.MaxJoinTokenTTL)
		}
		ttl = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > agentapi.MaxJoinTokenUses {
		return "", store.JoinToken{}, invalid("uses", "uses must be 1 to %d", agentapi.MaxJoinTokenUses)
	}
	if len(req.Labels) > maxTokenLabels {
		return "", store.JoinToken{}, invalid("labels", "at most %d labels", maxTokenLabels)
	}
	for k, v := range req.Labels {
		if k == "" || len(k) > maxTokenLabelLen || len(v) > maxTokenLabelLen {
			return "", store.JoinToken{}, invalid("labels", "label %q: keys must be 1 to %d bytes, values at most %d", k, maxTokenLabelLen, maxTokenLabelLen)
		}
	}
	actor := "anonymous"
	if pr := principal(c); pr != nil {
		actor = pr.User.Username
	}
	token, t, err := agentapi.MintJoinToken(c.Request.Context(), s.d.Store, ttl, req.Uses, req.Labels, actor, s.now())
	if err != nil {
		return "", store.JoinToken{}, failed(err)
	}
	if err := s.AppendAudit(c, "enrollment_token.create", fmt.Sprintf("join_token/%d", t.ID), agentapi.JoinTokenAudit(t)); err != nil {
		return "", store.JoinToken{}, failed(err)
	}
	return token, t, nil
}

// revokeAgent answers POST /agents/:id/revoke.
func (s *Server) revokeAgent(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	a, r := s.RevokeAgent(c, id)
	if r != nil {
		s.refuse(c, r)
		return
	}
	hosts, err := s.d.Store.Hosts(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, s.toAgentJSON(a, agentHosts(hosts)[a.ID]))
}

// RevokeAgent revokes an agent, so that its next call is refused, and
// audits it ("agent.revoke"); revoking a revoked agent succeeds and keeps
// the first time. The REST API and the web UI both revoke through it.
func (s *Server) RevokeAgent(c *gin.Context, id int64) (store.Agent, *Refusal) {
	ctx := c.Request.Context()
	if err := s.d.Store.RevokeAgent(ctx, id, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Agent{}, &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("agent %d not found", id)}
		}
		return store.Agent{}, failed(err)
	}
	a, err := s.d.Store.Agent(ctx, id)
	if err != nil {
		return store.Agent{}, failed(err)
	}
	if err := s.AppendAudit(c, "agent.revoke", fmt.Sprintf("agent/%d", id), map[string]any{"name": a.Name, "cert_serial": a.CertSerial}); err != nil {
		return store.Agent{}, failed(err)
	}
	return a, nil
}
