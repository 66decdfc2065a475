package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// historyView is what history.html receives.
type historyView struct {
	Query      url.Values
	At         string // the form's values, echoed back
	HostID     int64
	Framework  string
	Group      string
	From, To   string
	DriftHost  int64
	Hosts      []store.Host
	Groups     []store.Group
	Frameworks []posture.Framework

	Fleet *posture.FleetPosture // nil when the form was refused
	Host  *posture.HostPosture  // the selected host's posture
	Rules []historyRuleRow      // the selected host's rule states
	Bands []historyBand
	// HostRows is the page of the per-host table shown; Page counts from 1.
	HostRows           []posture.HostPosture
	Page, Pages        int
	PrevHref, NextHref string
	// FleetBand is the band of the fleet's score; none when no host had state.
	FleetBand posture.Band

	ShowDrift bool
	DriftFrom time.Time
	DriftTo   time.Time
	Drift     []historyDriftRow
}

// historyPageSize is how many hosts the per-host table shows at once, so
// a large fleet's page stays quick to render and to read.
const historyPageSize = 100

// historyBand is one band of the fleet's histogram, in display order.
type historyBand struct {
	Band  posture.Band
	Count int
}

// historyRuleRow is one rule's state on the selected host, with its title.
type historyRuleRow struct {
	posture.RuleState
	Title string
	Known bool // the corpus still holds the rule (its page exists)
}

// historyDriftRow is one drifted rule with its title for display.
type historyDriftRow struct {
	posture.Drift
	Title string
	Known bool // the corpus still holds the rule (its page exists)
}

// historyBandOrder is the order bands are shown in, worst first.
var historyBandOrder = [...]posture.Band{posture.BandCritical, posture.BandPoor, posture.BandFair, posture.BandGood, posture.BandExcellent, posture.BandNone}

// historyLocalMinute is what an <input type=datetime-local> sends: a UTC moment
// here, since the UI shows every time in UTC.
var historyLocalMinute = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$`)

// historyMoment normalizes a datetime-local value to RFC 3339 (UTC);
// other values pass through to the API's parser.
func historyMoment(v string) string {
	if !historyLocalMinute.MatchString(v) {
		return v
	}
	if len(v) == len("2006-01-02T15:04") {
		v += ":00"
	}
	return v + "Z"
}

// historyPage answers GET /history: the fleet or one host as it was at a
// moment, and the rules that changed state between two moments.
func (u *UI) historyPage(c *gin.Context) {
	ctx := c.Request.Context()
	now := u.now().UTC()
	q := c.Request.URL.Query()
	v := &historyView{Query: q, At: q.Get("at"), Framework: q.Get("framework"), Group: q.Get("group"),
		From: q.Get("from"), To: q.Get("to"), Frameworks: u.d.Posture.Index().Frameworks()}
	if v.At == "" {
		v.At = now.Format("2006-01-02")
	}
	if v.To == "" {
		v.To = now.Format("2006-01-02")
	}
	if v.From == "" {
		v.From = now.AddDate(0, 0, -7).Format("2006-01-02")
	}
	v.ShowDrift = q.Get("from") != "" || q.Get("to") != ""
	var err error
	if v.Hosts, err = u.d.Store.Hosts(ctx); err != nil {
		u.historyFail(c, fmt.Errorf("ui history: list hosts: %w", err))
		return
	}
	if v.Groups, err = u.d.Store.Groups(ctx); err != nil {
		u.historyFail(c, fmt.Errorf("ui history: list groups: %w", err))
		return
	}
	page := Page{Title: "Time travel", Data: v, Nav: "history"}
	refuse := func(field, format string, args ...any) {
		page.Error = field + ": " + fmt.Sprintf(format, args...)
		u.render(c, http.StatusBadRequest, "history", page)
	}

	at, err := api.ParseAt(historyMoment(v.At), now)
	if err != nil {
		refuse("at", "%v", err)
		return
	}
	if v.HostID, err = historyHostParam(q.Get("host"), v.Hosts); err != nil {
		refuse("host", "%v", err)
		return
	}
	if _, ok := u.d.Posture.Index().RuleIDs(v.Framework); !ok {
		refuse("framework", "unknown framework %q", historyClip(v.Framework, 80))
		return
	}
	if v.Group != "" && !historyGroupExists(v.Groups, v.Group) {
		refuse("group", "no group named %q", historyClip(v.Group, 80))
		return
	}
	var from, to time.Time
	if v.ShowDrift {
		if v.DriftHost, err = historyHostParam(q.Get("drift_host"), v.Hosts); err != nil {
			refuse("drift_host", "%v", err)
			return
		}
		if from, err = api.ParseMoment(historyMoment(v.From), false); err != nil {
			refuse("from", "%v", err)
			return
		}
		if from.After(now) {
			refuse("from", "%s is in the future", from.Format(time.RFC3339))
			return
		}
		if to, err = api.ParseAt(historyMoment(v.To), now); err != nil {
			refuse("to", "%v", err)
			return
		}
		if !from.Before(to) {
			refuse("from", "from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
			return
		}
	}

	fp, err := u.d.Posture.Fleet(ctx, posture.FleetQuery{At: at, Framework: v.Framework, Group: v.Group,
		HostID: v.HostID, Rules: v.HostID > 0})
	if err != nil {
		u.historyPostureError(c, page, err)
		return
	}
	v.Fleet = &fp
	if c := fp.Counts; c.Pass+c.Fail+c.Error+c.Skipped > 0 {
		v.FleetBand = posture.BandOf(fp.Score, c.CriticalFail)
	}
	for _, b := range historyBandOrder {
		v.Bands = append(v.Bands, historyBand{Band: b, Count: fp.Bands[b]})
	}
	v.paginate(q.Get("page"))
	if v.HostID > 0 && len(fp.Hosts) == 1 {
		v.Host = &fp.Hosts[0]
		idx := u.d.Posture.Index()
		for _, rs := range v.Host.Rules {
			row := historyRuleRow{RuleState: rs}
			if r := idx.Rule(rs.RuleID); r != nil {
				row.Title, row.Known = r.Title, true
			}
			v.Rules = append(v.Rules, row)
		}
	}
	if v.ShowDrift {
		ds, err := u.d.Posture.Drift(ctx, from, to, v.DriftHost)
		if err != nil {
			u.historyPostureError(c, page, err)
			return
		}
		v.DriftFrom, v.DriftTo = from, to
		idx := u.d.Posture.Index()
		for _, d := range ds {
			row := historyDriftRow{Drift: d}
			if r := idx.Rule(d.RuleID); r != nil {
				row.Title, row.Known = r.Title, true
			}
			v.Drift = append(v.Drift, row)
		}
	}
	u.render(c, http.StatusOK, "history", page)
}

// paginate picks the page of the per-host table to show; a page out of
// range shows the nearest one.
func (v *historyView) paginate(param string) {
	n := len(v.Fleet.Hosts)
	v.Pages = max(1, (n+historyPageSize-1)/historyPageSize)
	v.Page = 1
	if p, err := strconv.Atoi(param); err == nil {
		v.Page = min(max(p, 1), v.Pages)
	}
	start := (v.Page - 1) * historyPageSize
	v.HostRows = v.Fleet.Hosts[start:min(start+historyPageSize, n)]
	link := func(page int) string {
		q := url.Values{}
		for k, vs := range v.Query {
			q[k] = vs
		}
		q.Set("page", strconv.Itoa(page))
		return "/history?" + q.Encode()
	}
	if v.Page > 1 {
		v.PrevHref = link(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.NextHref = link(v.Page + 1)
	}
}

// historyPostureError answers a posture refusal (a bad argument) with the
// page and 400, anything else with the error page.
func (u *UI) historyPostureError(c *gin.Context, page Page, err error) {
	var ae *posture.ArgError
	if errors.As(err, &ae) {
		page.Error = ae.Field + ": " + ae.Msg
		u.render(c, http.StatusBadRequest, "history", page)
		return
	}
	u.historyFail(c, err)
}

// historyFail logs an internal error and renders the error page.
func (u *UI) historyFail(c *gin.Context, err error) {
	u.log.Error("ui history", "request_id", api.RequestID(c), "err", err)
	u.renderError(c, req(c), http.StatusInternalServerError, "The server could not read the posture history; see the server log for request "+api.RequestID(c)+".")
}

// historyHostParam parses an optional host id that must name a host of
// the inventory; 0 when absent.
func historyHostParam(v string, hosts []store.Host) (int64, error) {
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("must be a host id, got %q", historyClip(v, 40))
	}
	for _, h := range hosts {
		if h.ID == id {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no host with id %d", id)
}

func historyGroupExists(groups []store.Group, name string) bool {
	for _, g := range groups {
		if g.Name == name {
			return true
		}
	}
	return false
}

// historyClip bounds user text echoed back in a message.
func historyClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
