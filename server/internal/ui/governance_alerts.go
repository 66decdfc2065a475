package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// alertKinds are the conditions governance raises alerts for.
var alertKinds = []string{"rule_failing", "score_drop", "band_drop", "mass_drift", "scan_overdue", "agent_offline",
	"bundle_refused", "exception_expiring"}

// alertStateOpt is one choice of the list's state filter.
type alertStateOpt struct{ Value, Label string }

// alertStateOpts are the state filter's choices; "" (the default) is
// every alert not resolved.
var alertStateOpts = []alertStateOpt{{"", "open (not resolved)"}, {"active", "active"}, {"acknowledged", "acknowledged"},
	{"silenced", "silenced"}, {"resolved", "resolved"}, {"all", "all"}}

// alertActions are the operator actions POST /alerts/:id/:action takes,
// with the flash message's verb.
var alertActions = map[string]string{"acknowledge": "acknowledged", "silence": "silenced", "resolve": "resolved", "reactivate": "reactivated"}

// alertsData is what alerts.html shows.
type alertsData struct {
	Rows        []alertRow
	State       string
	Kind        string
	StateOpts   []alertStateOpt
	Kinds       []string
	MinUntil    string // datetime-local bounds of the silence field
	MaxUntil    string
	Until       string // its default: one day from now
	RowID       int64  // the row whose action was refused
	RowErr      string
	RowErrUntil bool // the refusal is about the silence time
}

// alertRow is one alert as the list shows it.
type alertRow struct {
	store.Alert
	Effective store.AlertState // silenced with the time passed shows as active
	HostName  string
	RuleKnown bool
}

// alertsPage lists alerts with the state and kind filters.
func (u *UI) alertsPage(c *gin.Context) {
	u.renderAlerts(c, http.StatusOK, "", 0, "", false)
}

// renderAlerts builds and renders the alerts page; rowID/rowErr show a
// refused action in its row.
func (u *UI) renderAlerts(c *gin.Context, status int, errMsg string, rowID int64, rowErr string, untilErr bool) {
	ctx := c.Request.Context()
	now := u.now().UTC()
	d := alertsData{StateOpts: alertStateOpts, Kinds: alertKinds, RowID: rowID, RowErr: rowErr, RowErrUntil: untilErr,
		MinUntil: now.Add(time.Minute).Format("2006-01-02T15:04"), MaxUntil: now.Add(30 * 24 * time.Hour).Format("2006-01-02T15:04"),
		Until: now.Add(24 * time.Hour).Format("2006-01-02T15:04")}
	q := c.Request.URL.Query()
	if c.Request.Method != http.MethodGet {
		q = nil
	}
	var problems []string
	d.State, d.Kind = q.Get("state"), q.Get("kind")
	if !slices.ContainsFunc(alertStateOpts, func(o alertStateOpt) bool { return o.Value == d.State }) {
		problems = append(problems, fmt.Sprintf("unknown state %q", d.State))
		d.State = ""
	}
	if d.Kind != "" && !slices.Contains(alertKinds, d.Kind) {
		problems = append(problems, fmt.Sprintf("unknown kind %q", d.Kind))
		d.Kind = ""
	}
	f := store.AlertFilter{Kind: d.Kind}
	switch d.State {
	case "":
		f.States = []store.AlertState{store.AlertActive, store.AlertAcknowledged, store.AlertSilenced}
	case "all":
	case "active":
		// A silenced alert whose time has passed is active again.
		f.States = []store.AlertState{store.AlertActive, store.AlertSilenced}
	default:
		f.States = []store.AlertState{store.AlertState(d.State)}
	}
	list, err := u.d.Store.Alerts(ctx, f)
	if err != nil {
		u.fleetError(c, fmt.Errorf("list alerts: %w", err))
		return
	}
	hosts, err := u.d.Store.Hosts(ctx)
	if err != nil {
		u.fleetError(c, fmt.Errorf("list hosts: %w", err))
		return
	}
	names := make(map[int64]string, len(hosts))
	for _, h := range hosts {
		names[h.ID] = h.Name
	}
	idx := u.d.Posture.Index()
	for _, a := range list {
		row := alertRow{Alert: a, Effective: effectiveAlertState(a, now), HostName: names[a.HostID]}
		if d.State != "" && d.State != "all" && string(row.Effective) != d.State {
			continue
		}
		row.RuleKnown = a.RuleID != "" && idx.Rule(a.RuleID) != nil
		d.Rows = append(d.Rows, row)
	}
	if rowID != 0 && !slices.ContainsFunc(d.Rows, func(r alertRow) bool { return r.ID == rowID }) {
		// The alert is not in the list shown (a resolved one): say it above.
		errMsg = rowErr
	}
	if errMsg == "" && len(problems) > 0 {
		errMsg = "Ignored: " + strings.Join(problems, "; ") + "."
	}
	u.render(c, status, "alerts", Page{Title: "Alerts", Nav: "alerts", Error: errMsg, Data: d})
}

// effectiveAlertState is the state to show: a silence that has run out
// no longer silences.
func effectiveAlertState(a store.Alert, now time.Time) store.AlertState {
	if a.State == store.AlertSilenced && !a.SilencedUntil.After(now) {
		return store.AlertActive
	}
	return a.State
}

// changeAlert applies an operator action through the API's ChangeAlert
// (same rules, same audit entry); a refusal is shown in the alert's row.
func (u *UI) changeAlert(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	action := c.Param("action")
	done, ok := alertActions[action]
	if !ok {
		u.renderError(c, req(c), http.StatusNotFound, "There is no page at this address.")
		return
	}
	var until time.Time
	if action == "silence" {
		v := strings.TrimSpace(c.PostForm("until"))
		t, ok := localMinute(v)
		if !ok {
			msg := "Enter the date and time (UTC) the silence ends."
			if v != "" {
				msg = fmt.Sprintf("%q is not a date and time (YYYY-MM-DDTHH:MM, UTC).", v)
			}
			u.renderAlerts(c, http.StatusBadRequest, "", id, msg, true)
			return
		}
		until = t
	}
	a, r := u.d.API.ChangeAlert(c, id, action, until)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderAlerts(c, status, "", id, msg, r.Field == "until") })
		return
	}
	flash := fmt.Sprintf("Alert %d %s.", a.ID, done)
	if action == "silence" {
		flash = fmt.Sprintf("Alert %d silenced until %s.", a.ID, a.SilencedUntil.UTC().Format("2006-01-02 15:04 UTC"))
	}
	back := "/alerts"
	if s := c.PostForm("back"); s == "all" || s == "resolved" || s == "acknowledged" || s == "silenced" || s == "active" {
		back += "?state=" + s
	}
	u.redirect(c, back+"#alert-"+strconv.FormatInt(a.ID, 10), flash)
}

// alertActionsFor lists the actions an alert in state st offers.
func alertActionsFor(st store.AlertState) []string {
	switch st {
	case store.AlertActive:
		return []string{"acknowledge", "silence", "resolve"}
	case store.AlertAcknowledged:
		return []string{"silence", "resolve", "reactivate"}
	case store.AlertSilenced:
		return []string{"acknowledge", "resolve", "reactivate"}
	}
	return nil
}

// Can reports whether the row offers action (templates call it).
func (r alertRow) Can(action string) bool {
	return slices.Contains(alertActionsFor(r.Effective), action)
}
