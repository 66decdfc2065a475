package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Audit query bounds.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
	// verifyPage is how many entries verifyAudit reads per store call.
	verifyPage = 1000
	// maxAuditActor bounds an actor name taken from a login attempt.
	maxAuditActor = 64
)

// audit appends an audit entry for the caller's state-changing action
// (action like "host.create", target like "host/12", detail marshalled to
// a JSON object). A failure to write the entry is logged and answered 500:
// an action the log cannot record is reported as failed.
func (s *Server) audit(c *gin.Context, action, target string, detail any) bool {
	actor := "anonymous"
	if pr := principal(c); pr != nil {
		actor = pr.User.Username
	}
	return s.auditAs(c, actor, action, target, detail)
}

// auditAs is audit with an explicit actor, for login where nobody is
// signed in yet and the actor is the username attempted.
func (s *Server) auditAs(c *gin.Context, actor, action, target string, detail any) bool {
	if err := s.appendAudit(c, actor, action, target, detail); err != nil {
		s.internal(c, err)
		return false
	}
	return true
}

// appendAudit writes the entry and returns any failure without answering.
func (s *Server) appendAudit(c *gin.Context, actor, action, target string, detail any) error {
	if len(actor) > maxAuditActor {
		actor = actor[:maxAuditActor]
	}
	d, err := detailJSON(detail)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", action, target, err)
	}
	_, err = s.d.Store.AppendAudit(c.Request.Context(), store.AuditEntry{
		At: s.now(), Actor: actor, Action: action, Target: target, Detail: d,
		Source: c.ClientIP(), RequestID: RequestID(c),
	})
	if err != nil {
		return fmt.Errorf("audit %s %s: append: %w", action, target, err)
	}
	return nil
}

// AppendAudit records a state change made through another front end (the
// web UI) on behalf of the signed-in principal set with SetPrincipal.
func (s *Server) AppendAudit(c *gin.Context, action, target string, detail any) error {
	actor := "anonymous"
	if pr := principal(c); pr != nil {
		actor = pr.User.Username
	}
	return s.appendAudit(c, actor, action, target, detail)
}

// detailJSON encodes an audit detail as a JSON object; nil is {}.
func detailJSON(detail any) (string, error) {
	if detail == nil {
		return "{}", nil
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return "", fmt.Errorf("encode detail: %w", err)
	}
	if len(b) == 0 || b[0] != '{' {
		return "", fmt.Errorf("detail %s is not a JSON object", b)
	}
	return string(b), nil
}

// auditView is an audit entry as the API shows it; detail stays a JSON
// object rather than a string holding one.
type auditView struct {
	ID        int64           `json:"id"`
	At        time.Time       `json:"at"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Detail    json.RawMessage `json:"detail"`
	Source    string          `json:"source"`
	RequestID string          `json:"request_id"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

func viewAudit(e store.AuditEntry) auditView {
	d := json.RawMessage(e.Detail)
	if !json.Valid(d) {
		// Stored by something other than this API; show it, still as JSON.
		d, _ = json.Marshal(e.Detail)
	}
	return auditView{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: d,
		Source: e.Source, RequestID: e.RequestID, PrevHash: e.PrevHash, Hash: e.Hash}
}

// listAudit answers GET /audit?actor=&action=&from=&to=&after=&limit=&order=.
func (s *Server) listAudit(c *gin.Context) {
	f, ok := auditFilter(c)
	if !ok {
		return
	}
	entries, err := s.d.Store.Audit(c.Request.Context(), f)
	if err != nil {
		s.internal(c, fmt.Errorf("list audit: %w", err))
		return
	}
	out := make([]auditView, 0, len(entries))
	for _, e := range entries {
		out = append(out, viewAudit(e))
	}
	c.JSON(http.StatusOK, gin.H{"entries": out})
}

// auditFilter parses listAudit's query; on failure it has answered 400.
func auditFilter(c *gin.Context) (store.AuditFilter, bool) {
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Limit: defaultAuditLimit, Desc: true}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(t.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				badRequest(c, t.name, "%s must be an RFC 3339 time such as 2026-01-15T00:00:00Z, got %q", t.name, v)
				return f, false
			}
			*t.dst = at
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		badRequest(c, "to", "to is before from")
		return f, false
	}
	if v := c.Query("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			badRequest(c, "after", "after must be an entry id (>= 0), got %q", v)
			return f, false
		}
		f.AfterID = n
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			badRequest(c, "limit", "limit must be between 1 and %d, got %q", maxAuditLimit, v)
			return f, false
		}
		f.Limit = n
	}
	switch v := c.Query("order"); v {
	case "", "desc":
	case "asc":
		f.Desc = false
	default:
		badRequest(c, "order", "order must be asc or desc, got %q", v)
		return f, false
	}
	return f, true
}

// verifyAudit reads the whole log, oldest first, and checks its hash
// chain: {"ok":true,"entries":N}, or ok false with the first break.
func (s *Server) verifyAudit(c *gin.Context) {
	n, broken, err := s.VerifyAuditLog(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	if broken != nil {
		c.JSON(http.StatusOK, gin.H{"ok": false, "entries": n, "error": broken.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true, "entries": n})
}

// VerifyAuditLog reads the whole audit log, oldest first, and checks its
// hash chain (store.VerifyAudit). It returns how many entries it read and
// broken, the first break, when the chain does not hold; err is a failure
// to read. The REST API and the web UI both verify through it.
func (s *Server) VerifyAuditLog(ctx context.Context) (entries int, broken, err error) {
	var all []store.AuditEntry
	var after int64
	for {
		page, err := s.d.Store.Audit(ctx, store.AuditFilter{AfterID: after, Limit: verifyPage})
		if err != nil {
			return 0, nil, fmt.Errorf("verify audit: read after entry %d: %w", after, err)
		}
		all = append(all, page...)
		if len(page) < verifyPage {
			break
		}
		next := page[len(page)-1].ID
		if next <= after {
			// A store that does not honour AfterID would loop forever.
			return 0, nil, fmt.Errorf("verify audit: page after entry %d did not advance", after)
		}
		after = next
	}
	return len(all), store.VerifyAudit(all), nil
}
