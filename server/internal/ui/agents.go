package ui

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// tokenTTL is a lifetime the token form offers.
type tokenTTL struct{ Value, Label string }

// joinTokenTTLs are the lifetimes the token form offers, shortest first.
func joinTokenTTLs() []tokenTTL {
	return []tokenTTL{{"1h", "1 hour"}, {"24h", "24 hours"}, {"168h", "7 days"}}
}

// maxFormTokenUses bounds the uses the form accepts; the REST API allows
// more for scripted mass enrolment.
const maxFormTokenUses = 100

// agentsData is what agents.html shows.
type agentsData struct {
	Agents   []agentRow
	TTLs     []tokenTTL
	Form     tokenForm
	NewToken *newToken // set once, on the response to the token form
}

// agentRow is one agent in the table.
type agentRow struct {
	store.Agent
	State  string
	Hosts  []store.Host
	Digest string // short bundle digest
}

// tokenForm echoes the token form after a refusal.
type tokenForm struct {
	TTL    string
	Uses   int
	Labels string
}

// newToken is a freshly minted join token, shown on this response only.
type newToken struct {
	Token     string
	CAPin     string
	ExpiresAt time.Time
	Uses      int
	Command   string
}

// agentsPage lists the agents and, for agents.manage, the token form.
func (u *UI) agentsPage(c *gin.Context) {
	u.renderAgents(c, http.StatusOK, tokenForm{TTL: "1h", Uses: 1}, nil, "")
}

// renderAgents builds and renders the agents page; one Agents and one
// Hosts call whatever the fleet size.
func (u *UI) renderAgents(c *gin.Context, status int, form tokenForm, nt *newToken, errMsg string) {
	ctx := c.Request.Context()
	agents, err := u.d.Store.Agents(ctx)
	if err != nil {
		u.adminFail(c, fmt.Errorf("list agents: %w", err))
		return
	}
	hosts, err := u.d.Store.Hosts(ctx)
	if err != nil {
		u.adminFail(c, fmt.Errorf("list hosts: %w", err))
		return
	}
	owned := map[int64][]store.Host{}
	for _, h := range hosts {
		if h.AgentID != 0 {
			owned[h.AgentID] = append(owned[h.AgentID], h)
		}
	}
	rows := make([]agentRow, 0, len(agents))
	for _, a := range agents {
		state, _ := u.d.API.AgentState(a)
		hs := owned[a.ID]
		sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
		rows = append(rows, agentRow{Agent: a, State: state, Hosts: hs, Digest: shortDigest(a.BundleDigest)})
	}
	u.render(c, status, "agents", Page{Title: "Agents", Nav: "agents", Error: errMsg,
		Data: agentsData{Agents: rows, TTLs: joinTokenTTLs(), Form: form, NewToken: nt}})
}

// createJoinToken mints a join token through the API's CreateJoinToken
// and shows it once: the page is the response itself (201), so the token
// is never in a URL, a redirect or a cookie.
func (u *UI) createJoinToken(c *gin.Context) {
	form := tokenForm{TTL: c.PostForm("ttl"), Labels: strings.TrimSpace(c.PostForm("labels"))}
	uses, err := strconv.Atoi(strings.TrimSpace(c.PostForm("uses")))
	form.Uses = uses
	switch {
	case !validTTL(form.TTL):
		u.renderAgents(c, http.StatusBadRequest, form, nil, "Choose how long the token stays valid: 1 hour, 24 hours or 7 days.")
		return
	case err != nil || uses < 1 || uses > maxFormTokenUses:
		u.renderAgents(c, http.StatusBadRequest, form, nil, fmt.Sprintf("Uses must be a whole number from 1 to %d.", maxFormTokenUses))
		return
	}
	labels, err := parseLabels(form.Labels)
	if err != nil {
		u.renderAgents(c, http.StatusBadRequest, form, nil, upperFirst(err.Error())+".")
		return
	}
	token, t, r := u.d.API.CreateJoinToken(c, api.JoinTokenRequest{TTL: form.TTL, Uses: uses, Labels: labels})
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderAgents(c, status, form, nil, msg) })
		return
	}
	addr := u.d.GRPCAddr
	if addr == "" {
		addr = "SERVER:PORT"
	}
	nt := &newToken{Token: token, CAPin: u.d.CAPin, ExpiresAt: t.ExpiresAt, Uses: t.Uses,
		Command: fmt.Sprintf("vigil-agent enroll --server %s --token %s --ca-pin %s --state-dir /var/lib/vigil-agent", addr, token, u.d.CAPin)}
	u.renderAgents(c, http.StatusCreated, tokenForm{TTL: "1h", Uses: 1}, nt, "")
}

// revokeAgent revokes an agent through the API's RevokeAgent.
func (u *UI) revokeAgent(c *gin.Context) {
	id, ok := u.adminID(c)
	if !ok {
		return
	}
	a, r := u.d.API.RevokeAgent(c, id)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderError(c, req(c), status, msg) })
		return
	}
	u.redirect(c, "/agents", fmt.Sprintf("Agent %s is revoked: its next call will be refused.", a.Name))
}

// validTTL reports whether ttl is one the form offers.
func validTTL(ttl string) bool {
	for _, t := range joinTokenTTLs() {
		if t.Value == ttl {
			return true
		}
	}
	return false
}

// parseLabels reads "k=v,k=v" (blank: none).
func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("labels must be written key=value, separated by commas; %q is not", strings.TrimSpace(kv))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// shortDigest is the first 12 hex digits of a "sha256:..." digest.
func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// adminID parses the :id path parameter; on failure it has answered 400.
func (u *UI) adminID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		u.renderError(c, req(c), http.StatusBadRequest, fmt.Sprintf("%q is not an id.", c.Param("id")))
		return 0, false
	}
	return id, true
}

// refusal presents an API refusal: a server failure is logged and shown
// as the error page, anything else through show (status, message).
func (u *UI) refusal(c *gin.Context, r *api.Refusal, show func(status int, msg string)) {
	if r.Status >= http.StatusInternalServerError {
		u.adminFail(c, r)
		return
	}
	show(r.Status, upperFirst(r.Message)+".")
}

// adminFail logs a server-side failure and renders the 500 page.
func (u *UI) adminFail(c *gin.Context, err error) {
	var r *api.Refusal
	if errors.As(err, &r) && r.Err != nil {
		err = r.Err
	}
	u.log.Error("ui page", "path", c.Request.URL.Path, "request_id", api.RequestID(c), "err", err)
	u.renderError(c, req(c), http.StatusInternalServerError, "The server could not do this; see the server log for request "+api.RequestID(c)+".")
}

// upperFirst capitalises an API message for a sentence on the page.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
