package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// exceptionStates are the states the list filters on, in lifecycle order.
var exceptionStates = []string{string(store.ExceptionRequested), string(store.ExceptionApproved), string(store.ExceptionRejected),
	string(store.ExceptionRevoked), string(store.ExceptionExpired)}

// exceptionActions are the decisions POST /exceptions/:id/:action takes,
// with the word the confirmation uses.
var exceptionActions = map[string]string{"approve": "approved", "reject": "rejected", "revoke": "revoked"}

// exceptionFields are the request form's fields, as the API names them.
var exceptionFields = []string{"scope", "host_id", "group_id", "rule_id", "justification", "expires_at"}

// exceptionsData is what exceptions.html shows.
type exceptionsData struct {
	Rows    []exceptionRow
	Filter  exceptionFilter
	States  []string
	Hosts   []store.Host
	Groups  []store.Group
	Form    exceptionForm
	Errs    fieldErrs
	MinDate string // the earliest expiry the form offers (tomorrow, UTC)
	// Decide is the row whose decision was refused, with the message
	// shown in that row.
	DecideID  int64
	DecideErr string
}

// exceptionFilter is the list's query.
type exceptionFilter struct {
	State, Rule string
	Host        int64
}

// exceptionRow is one exception with what the page needs to show it.
type exceptionRow struct {
	store.Exception
	Scope, ScopeName      string // host | group | fleet, and the host's or group's name
	RuleTitle             string
	RuleKnown             bool
	CanApprove, CanRevoke bool
	CanReject             bool
}

// exceptionForm echoes the request form.
type exceptionForm struct {
	Scope         string // host, group or fleet
	HostID        int64
	GroupID       int64
	RuleID        string
	Justification string
	ExpiresAt     string // YYYY-MM-DD
}

// exceptionsPage lists exceptions with the request form; the host page's
// "request exception" links fill the form with request_host and
// request_rule.
func (u *UI) exceptionsPage(c *gin.Context) {
	form := exceptionForm{Scope: "host", RuleID: strings.TrimSpace(c.Query("request_rule"))}
	if h, err := strconv.ParseInt(c.Query("request_host"), 10, 64); err == nil && h > 0 {
		form.HostID = h
	}
	u.renderExceptions(c, http.StatusOK, form, nil, "")
}

// renderExceptions builds and renders the exceptions page.
func (u *UI) renderExceptions(c *gin.Context, status int, form exceptionForm, errs fieldErrs, errMsg string) {
	u.renderExceptionsRow(c, status, form, errs, errMsg, 0, "")
}

// renderExceptionsRow is renderExceptions with a refused decision shown
// in row decideID.
func (u *UI) renderExceptionsRow(c *gin.Context, status int, form exceptionForm, errs fieldErrs, errMsg string, decideID int64, decideErr string) {
	ctx := c.Request.Context()
	r := req(c)
	d := exceptionsData{States: exceptionStates, Form: form, Errs: errs, MinDate: u.now().UTC().AddDate(0, 0, 1).Format("2006-01-02"),
		DecideID: decideID, DecideErr: decideErr}
	q := c.Request.URL.Query()
	if c.Request.Method != http.MethodGet {
		q = nil
	}
	var problems []string
	d.Filter.State, d.Filter.Rule = q.Get("state"), strings.TrimSpace(q.Get("rule"))
	if d.Filter.State != "" && !slices.Contains(exceptionStates, d.Filter.State) {
		problems = append(problems, "state must be one of "+strings.Join(exceptionStates, ", "))
		d.Filter.State = ""
	}
	if v := q.Get("host"); v != "" {
		if h, err := strconv.ParseInt(v, 10, 64); err == nil && h > 0 {
			d.Filter.Host = h
		} else {
			problems = append(problems, fmt.Sprintf("host %q is not a host id", v))
		}
	}
	var err error
	if d.Hosts, err = u.d.Store.Hosts(ctx); err != nil {
		u.fleetError(c, fmt.Errorf("list hosts: %w", err))
		return
	}
	if d.Groups, err = u.d.Store.Groups(ctx); err != nil {
		u.fleetError(c, fmt.Errorf("list groups: %w", err))
		return
	}
	f := store.ExceptionFilter{RuleID: d.Filter.Rule, HostID: d.Filter.Host}
	if d.Filter.State != "" {
		f.States = []store.ExceptionState{store.ExceptionState(d.Filter.State)}
	}
	list, err := u.d.Store.Exceptions(ctx, f)
	if err != nil {
		u.fleetError(c, fmt.Errorf("list exceptions: %w", err))
		return
	}
	hostName := make(map[int64]string, len(d.Hosts))
	for _, h := range d.Hosts {
		hostName[h.ID] = h.Name
	}
	groupName := make(map[int64]string, len(d.Groups))
	for _, g := range d.Groups {
		groupName[g.ID] = g.Name
	}
	idx := u.d.Posture.Index()
	decide := r.Can(string(api.PermExceptionsDecide))
	for _, e := range list {
		row := exceptionRow{Exception: e, Scope: "fleet", ScopeName: "whole fleet", RuleTitle: e.RuleID}
		switch {
		case e.HostID != 0:
			row.Scope, row.ScopeName = "host", hostName[e.HostID]
			if row.ScopeName == "" {
				row.ScopeName = fmt.Sprintf("host %d (deleted)", e.HostID)
			}
		case e.GroupID != 0:
			row.Scope, row.ScopeName = "group", groupName[e.GroupID]
			if row.ScopeName == "" {
				row.ScopeName = fmt.Sprintf("group %d (deleted)", e.GroupID)
			}
		}
		if rl := idx.Rule(e.RuleID); rl != nil {
			row.RuleTitle, row.RuleKnown = rl.Title, true
		}
		// The requester may neither approve nor reject their own request
		// (the service refuses it too): the buttons are not offered.
		own := e.RequestedBy == r.User.Username
		row.CanApprove = decide && !own && e.State == store.ExceptionRequested
		row.CanReject = decide && !own && e.State == store.ExceptionRequested
		row.CanRevoke = decide && e.State == store.ExceptionApproved
		d.Rows = append(d.Rows, row)
	}
	if decideID != 0 && !slices.ContainsFunc(d.Rows, func(r exceptionRow) bool { return r.ID == decideID }) {
		errMsg = decideErr // the row is not shown: say it above the list
	}
	if errMsg == "" && len(problems) > 0 {
		errMsg = "Ignored: " + strings.Join(problems, "; ") + "."
	}
	u.render(c, status, "exceptions", Page{Title: "Exceptions", Nav: "exceptions", Error: errMsg, Data: d})
}

// requestException records a request through the API's RequestException
// (same validation, same audit entry); a refused field is shown next to
// it.
func (u *UI) requestException(c *gin.Context) {
	form := exceptionForm{Scope: c.PostForm("scope"), RuleID: strings.TrimSpace(c.PostForm("rule_id")),
		Justification: c.PostForm("justification"), ExpiresAt: strings.TrimSpace(c.PostForm("expires_at"))}
	errs := fieldErrs{}
	hostID, herr := formID(c.PostForm("host_id"))
	groupID, gerr := formID(c.PostForm("group_id"))
	form.HostID, form.GroupID = hostID, groupID
	in := api.ExceptionInput{RuleID: form.RuleID, Justification: form.Justification, ExpiresAt: form.ExpiresAt}
	switch form.Scope {
	case "host":
		if herr != nil || hostID == 0 {
			errs["host_id"] = "Choose the host the exception covers."
		}
		in.HostID = hostID
	case "group":
		if gerr != nil || groupID == 0 {
			errs["group_id"] = "Choose the group the exception covers."
		}
		in.GroupID = groupID
	case "fleet":
	default:
		errs["scope"] = "Choose what the exception covers: one host, a group or the whole fleet."
	}
	if form.RuleID == "" {
		errs["rule_id"] = "Enter the id of the rule to accept."
	}
	if strings.TrimSpace(form.Justification) == "" {
		errs["justification"] = "Explain why the failure is accepted."
	}
	if len(errs) > 0 {
		u.renderExceptions(c, http.StatusBadRequest, form, errs, "")
		return
	}
	e, r := u.d.API.RequestException(c, in)
	if r != nil {
		u.refusal(c, r, func(status int, _ string) {
			u.renderExceptions(c, status, form, refusalField(r, exceptionFields...), "")
		})
		return
	}
	u.redirect(c, "/exceptions", fmt.Sprintf("Exception %d requested for rule %s. Someone with the exceptions.decide permission, other than you, must approve it.", e.ID, e.RuleID))
}

// decideException approves, rejects or revokes through the API's
// DecideException; a refusal (wrong state, self-approval) is shown in the
// exception's row.
func (u *UI) decideException(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	action := c.Param("action")
	done, ok := exceptionActions[action]
	if !ok {
		u.renderError(c, req(c), http.StatusNotFound, "There is no page at this address.")
		return
	}
	e, r := u.d.API.DecideException(c, id, action, strings.TrimSpace(c.PostForm("note")))
	if r != nil {
		u.refusal(c, r, func(status int, msg string) {
			u.renderExceptionsRow(c, status, exceptionForm{Scope: "host"}, nil, msg, id, msg)
		})
		return
	}
	u.redirect(c, "/exceptions#exception-"+strconv.FormatInt(e.ID, 10), fmt.Sprintf("Exception %d (rule %s) %s.", e.ID, e.RuleID, done))
}

// formID parses an optional id from a form ("" is 0).
func formID(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not an id", v)
	}
	return n, nil
}
