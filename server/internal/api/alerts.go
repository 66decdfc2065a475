package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// alertStates are the values GET /alerts?state= accepts.
func alertStates() []string {
	return []string{string(store.AlertActive), string(store.AlertAcknowledged), string(store.AlertSilenced), string(store.AlertResolved)}
}

// alertKinds are the alert kinds the governance service raises, the values
// GET /alerts?kind= accepts.
func alertKinds() []string {
	return []string{"rule_failing", "score_drop", "band_drop", "mass_drift", "scan_overdue", "agent_offline",
		"bundle_refused", "exception_expiring"}
}

// alertView is an alert as the API shows it: State is the effective state
// (an expired silence shows as active) and Detail a JSON object.
type alertView struct {
	ID            int64             `json:"id"`
	Kind          string            `json:"kind"`
	Key           string            `json:"key"`
	Severity      string            `json:"severity"`
	State         string            `json:"state"`
	HostID        int64             `json:"host_id,omitempty"`
	Host          string            `json:"host,omitempty"`
	AgentID       int64             `json:"agent_id,omitempty"`
	RuleID        string            `json:"rule_id,omitempty"`
	ExceptionID   int64             `json:"exception_id,omitempty"`
	Labels        map[string]string `json:"labels"`
	Title         string            `json:"title"`
	Detail        json.RawMessage   `json:"detail"`
	OpenedAt      time.Time         `json:"opened_at"`
	LastSeenAt    time.Time         `json:"last_seen_at"`
	Count         int               `json:"count"`
	AckBy         string            `json:"ack_by,omitempty"`
	AckAt         *time.Time        `json:"ack_at,omitempty"`
	SilencedUntil *time.Time        `json:"silenced_until,omitempty"`
	ResolvedBy    string            `json:"resolved_by,omitempty"`
	ResolvedAt    *time.Time        `json:"resolved_at,omitempty"`
}

func (s *Server) viewAlert(n *names, a store.Alert) alertView {
	v := alertView{
		ID: a.ID, Kind: a.Kind, Key: a.Key, Severity: a.Severity, State: string(effectiveAlertState(a, s.now())),
		HostID: a.HostID, Host: n.host(a.HostID), AgentID: a.AgentID, RuleID: a.RuleID, ExceptionID: a.ExceptionID,
		Labels: a.Labels, Title: a.Title, Detail: json.RawMessage(a.Detail),
		OpenedAt: a.OpenedAt.UTC(), LastSeenAt: a.LastSeenAt.UTC(), Count: a.Count,
		AckBy: a.AckBy, AckAt: ts(a.AckAt), ResolvedBy: a.ResolvedBy, ResolvedAt: ts(a.ResolvedAt),
	}
	if v.State == string(store.AlertSilenced) {
		v.SilencedUntil = ts(a.SilencedUntil)
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if a.Detail == "" || !json.Valid(v.Detail) || v.Detail[0] != '{' {
		v.Detail = json.RawMessage(`{}`)
		if a.Detail != "" {
			// Not an object: keep it visible, still as JSON.
			b, _ := json.Marshal(map[string]string{"text": a.Detail})
			v.Detail = b
		}
	}
	return v
}

// listAlerts answers GET /alerts?state=&kind=&host=&limit=, most recently
// seen first. state filters on the effective state, so ?state=active
// includes alerts whose silence has run out.
func (s *Server) listAlerts(c *gin.Context) {
	states, ok := queryEnum(c, "state", alertStates())
	if !ok {
		return
	}
	kinds, ok := queryEnum(c, "kind", alertKinds())
	if !ok {
		return
	}
	if len(kinds) > 1 {
		badRequest(c, "kind", "kind takes one alert kind")
		return
	}
	f := store.AlertFilter{}
	if len(kinds) == 1 {
		f.Kind = kinds[0]
	}
	for _, st := range states {
		f.States = append(f.States, store.AlertState(st))
	}
	if slices.Contains(states, string(store.AlertActive)) && !slices.Contains(states, string(store.AlertSilenced)) {
		// An alert silenced until a moment now past is stored silenced.
		f.States = append(f.States, store.AlertSilenced)
	}
	if f.HostID, ok = queryID(c, "host"); !ok {
		return
	}
	if f.Limit, ok = queryInt(c, "limit", defaultGovPage, 1, maxGovPage); !ok {
		return
	}
	as, err := s.d.Store.Alerts(c.Request.Context(), f)
	if err != nil {
		s.internal(c, fmt.Errorf("list alerts: %w", err))
		return
	}
	n := s.names(c.Request.Context())
	out := make([]alertView, 0, len(as))
	for _, a := range as {
		v := s.viewAlert(n, a)
		if states != nil && !slices.Contains(states, v.State) {
			continue
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"alerts": out})
}

// getAlert answers GET /alerts/:id.
func (s *Server) getAlert(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	a, err := s.d.Store.Alert(c.Request.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, "not_found", "id", fmt.Sprintf("no alert with id %d", id))
		return
	} else if err != nil {
		s.internal(c, fmt.Errorf("alert %d: %w", id, err))
		return
	}
	c.JSON(http.StatusOK, s.viewAlert(s.names(c.Request.Context()), a))
}

// silenceBody is the body of POST /alerts/:id/silence.
type silenceBody struct {
	Until string `json:"until"` // RFC 3339, or a date (its last instant)
}

// changeAlert returns the handler of POST /alerts/:id/<action>; only
// silence takes a body.
func (s *Server) changeAlert(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		var until time.Time
		if action == "silence" {
			var body silenceBody
			if !bind(c, &body) {
				return
			}
			if body.Until == "" {
				badRequest(c, "until", "until is required: the moment the alert becomes active again")
				return
			}
			t, err := parseMoment(body.Until, true)
			if err != nil {
				badRequest(c, "until", "until: %v", err)
				return
			}
			until = t
		} else if c.Request.ContentLength > 0 {
			var empty struct{}
			if !bind(c, &empty) {
				return
			}
		}
		a, r := s.ChangeAlert(c, id, action, until)
		if r != nil {
			s.refuse(c, r)
			return
		}
		c.JSON(http.StatusOK, s.viewAlert(s.names(c.Request.Context()), a))
	}
}
