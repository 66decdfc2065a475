package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Host page limits.
const (
	hostScans        = 20
	hostFactChanges  = 30
	hostPackageMatch = 100
	hostFactsWindow  = 30 * 24 * time.Hour
)

var (
	fleetStatuses   = []string{string(result.Fail), string(result.Error), string(result.Pass), string(result.Skipped)}
	fleetSeverities = []string{string(rule.Critical), string(rule.High), string(rule.Medium), string(rule.Low)}
)

// hostFwScore is a host's posture for one framework ("" = all rules),
// raw and with accepted failures counted as passing.
type hostFwScore struct {
	ID, Title string
	Score     float64
	Band      posture.Band
	Counts    posture.Counts
	// ScoreWithExceptions and BandWithExceptions count the failures an
	// approved exception accepts (Counts.Accepted) as passing.
	ScoreWithExceptions float64
	BandWithExceptions  posture.Band
}

// fleetFindingRow is one rule's current state on the host.
type fleetFindingRow struct {
	store.Finding
	Title    string
	Category string
	Known    bool
	// Accepted marks a failing rule an approved exception covers
	// ("failed, accepted"); ExceptionID is that exception.
	Accepted    bool
	ExceptionID int64
}

// fleetFindingFilter is the findings table's query.
type fleetFindingFilter struct {
	Status, Severity, Framework, Category string
}

// hostFactsView summarises a host's inventory.
type hostFactsView struct {
	store.HostFacts
	ServicesActive, ServicesEnabled int
	PkgQuery                        string
	PkgMatches                      []store.Package
	PkgMore                         int
	Changes                         []store.FactChange
}

// hostData is what host.html renders.
type hostData struct {
	Host       store.Host
	Band       posture.Band // the band of the host's last scan
	Labels     []string
	Scores     []hostFwScore
	Days       int
	TrendFw    string
	Chart      any
	Frameworks []posture.Framework
	Filter     fleetFindingFilter
	Statuses   []string
	Severities []string
	Categories []string
	Findings   []fleetFindingRow
	StateTotal int
	Scans      []store.Scan
	Facts      *hostFactsView
	// Accepted is the number of failing rules approved exceptions accept
	// now; Exports the export menu (nil without exports.read).
	Accepted int
	Exports  []exportLink
}

// hostPage renders /hosts/:id.
func (u *UI) hostPage(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	h, err := u.d.Store.Host(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	idx := u.d.Posture.Index()
	d := hostData{Host: h, Band: posture.Band(h.Band), Labels: fleetLabels(h.Labels), Days: fleetTrendDays(c), TrendFw: c.Query("framework"),
		Statuses: fleetStatuses, Severities: fleetSeverities, Categories: rule.Categories}
	for _, fw := range idx.Frameworks() {
		if fw.Rules > 0 {
			d.Frameworks = append(d.Frameworks, fw)
		}
	}
	var problems []string
	if _, ok := idx.RuleIDs(d.TrendFw); !ok {
		problems = append(problems, fmt.Sprintf("unknown framework %q", d.TrendFw))
		d.TrendFw = ""
	}
	d.Filter = fleetFindingFilter{Status: c.Query("status"), Severity: c.Query("severity"), Framework: d.TrendFw, Category: c.Query("category")}
	if d.Filter.Status != "" && !slices.Contains(fleetStatuses, d.Filter.Status) {
		problems = append(problems, "status must be one of "+strings.Join(fleetStatuses, ", "))
		d.Filter.Status = ""
	}
	if d.Filter.Severity != "" && !slices.Contains(fleetSeverities, d.Filter.Severity) {
		problems = append(problems, "severity must be one of "+strings.Join(fleetSeverities, ", "))
		d.Filter.Severity = ""
	}
	if d.Filter.Category != "" && !slices.Contains(rule.Categories, d.Filter.Category) {
		problems = append(problems, "category must be one of "+strings.Join(rule.Categories, ", "))
		d.Filter.Category = ""
	}
	state, err := u.d.Store.CurrentState(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	accepted, err := u.hostAccepted(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	d.StateTotal = len(state)
	d.Scores = u.scoresByFramework(state, accepted)
	d.Findings = u.filterFindings(state, d.Filter, accepted)
	for _, f := range state {
		if f.Status == result.Fail && accepted[f.RuleID] != 0 {
			d.Accepted++
		}
	}
	if req(c).Can(string(api.PermExport)) {
		d.Exports = exportLinks(fmt.Sprintf("/hosts/%d/export", id), d.TrendFw, "", "")
	}
	trend, err := u.d.Posture.Trend(ctx, id, d.Days, d.TrendFw)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	pts := make([]chartPoint, len(trend))
	for i, p := range trend {
		pts[i] = chartPoint{Label: p.Day.Format(time.DateOnly), Value: p.Score}
	}
	fwName := "all rules"
	if d.TrendFw != "" {
		fwName = d.TrendFw
	}
	d.Chart = lineChart(fmt.Sprintf("Score of %s per day (%s), last %d days", h.Name, fwName, d.Days), pts)
	if d.Scans, err = u.d.Store.Scans(ctx, store.ScanFilter{HostID: id, Limit: hostScans}); err != nil {
		u.fleetError(c, err)
		return
	}
	if d.Facts, err = u.hostFacts(ctx, id, strings.TrimSpace(c.Query("pkg"))); err != nil {
		u.fleetError(c, err)
		return
	}
	var msg string
	if len(problems) > 0 {
		msg = "Ignored: " + strings.Join(problems, "; ") + "."
	}
	u.render(c, http.StatusOK, "host", Page{Title: h.Name, Data: d, Nav: "hosts", Error: msg})
}

// hostAccepted maps the rules approved exceptions accept on the host now
// to the exception's id, as posture applies them.
func (u *UI) hostAccepted(ctx context.Context, id int64) (map[string]int64, error) {
	fp, err := u.d.Posture.Fleet(ctx, posture.FleetQuery{HostID: id, Rules: true})
	if err != nil {
		return nil, fmt.Errorf("posture of host %d: %w", id, err)
	}
	out := map[string]int64{}
	for _, h := range fp.Hosts {
		if h.HostID != id {
			continue
		}
		for _, r := range h.Rules {
			if r.Accepted && r.ExceptionID != 0 {
				out[r.RuleID] = r.ExceptionID
			}
		}
	}
	return out, nil
}

// scoresByFramework scores the host's current state for all rules and
// for each framework its rules map to, as posture.RecordScan counts them:
// a rule the index no longer knows counts only under all rules. Failures
// in accepted count as accepted, for the score with exceptions.
func (u *UI) scoresByFramework(state []store.Finding, accepted map[string]int64) []hostFwScore {
	idx := u.d.Posture.Index()
	counts := map[string]*posture.Counts{"": {}}
	add := func(fw string, f store.Finding) {
		c := counts[fw]
		if c == nil {
			c = &posture.Counts{}
			counts[fw] = c
		}
		switch f.Status {
		case result.Pass:
			c.Pass++
		case result.Fail:
			c.Fail++
			if f.Severity == rule.Critical {
				c.CriticalFail++
			}
			if accepted[f.RuleID] != 0 {
				c.Accepted++
				if f.Severity == rule.Critical {
					c.AcceptedCritical++
				}
			}
		case result.Error:
			c.Error++
		case result.Skipped:
			c.Skipped++
		}
	}
	for _, f := range state {
		add("", f)
		if idx.Rule(f.RuleID) == nil {
			continue
		}
		seen := ""
		for _, ref := range idx.Refs(f.RuleID) { // sorted by framework
			if ref.Framework != seen {
				seen = ref.Framework
				add(ref.Framework, f)
			}
		}
	}
	out := []hostFwScore{hostScoreOf("", "All rules", *counts[""])}
	for _, fw := range idx.Frameworks() {
		if c, ok := counts[fw.ID]; ok {
			out = append(out, hostScoreOf(fw.ID, fw.Title, *c))
		}
	}
	return out
}

func hostScoreOf(id, title string, c posture.Counts) hostFwScore {
	s := hostFwScore{ID: id, Title: title, Counts: c}
	if c.Pass+c.Fail+c.Error+c.Skipped > 0 {
		s.Score = posture.Score(c)
		s.Band = posture.BandOf(s.Score, c.CriticalFail)
		w := c
		w.Pass += c.Accepted
		w.Fail -= c.Accepted
		w.CriticalFail -= c.AcceptedCritical
		s.ScoreWithExceptions = posture.Score(w)
		s.BandWithExceptions = posture.BandOf(s.ScoreWithExceptions, w.CriticalFail)
	}
	return s
}

// filterFindings keeps the findings the filter selects, failures first
// (those no exception accepts before accepted ones), then by severity and
// rule id. accepted marks failing rules an approved exception covers.
func (u *UI) filterFindings(state []store.Finding, f fleetFindingFilter, accepted map[string]int64) []fleetFindingRow {
	idx := u.d.Posture.Index()
	var inFw map[string]bool
	if f.Framework != "" {
		ids, _ := idx.RuleIDs(f.Framework)
		inFw = make(map[string]bool, len(ids))
		for _, id := range ids {
			inFw[id] = true
		}
	}
	var out []fleetFindingRow
	for _, fd := range state {
		row := fleetFindingRow{Finding: fd, Title: fd.RuleID}
		if fd.Status == result.Fail && accepted[fd.RuleID] != 0 {
			row.Accepted, row.ExceptionID = true, accepted[fd.RuleID]
		}
		if r := idx.Rule(fd.RuleID); r != nil {
			row.Title, row.Category, row.Known = r.Title, r.Category, true
		}
		if (f.Status != "" && string(fd.Status) != f.Status) ||
			(f.Severity != "" && string(fd.Severity) != f.Severity) ||
			(inFw != nil && !inFw[fd.RuleID]) ||
			(f.Category != "" && row.Category != f.Category) {
			continue
		}
		out = append(out, row)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := slices.Index(fleetStatuses, string(out[i].Status)), slices.Index(fleetStatuses, string(out[j].Status))
		if a != b {
			return a < b
		}
		if out[i].Accepted != out[j].Accepted {
			return !out[i].Accepted // open failures before accepted ones
		}
		if sa, sb := fleetSeverityRank(out[i].Severity), fleetSeverityRank(out[j].Severity); sa != sb {
			return sa < sb
		}
		return out[i].RuleID < out[j].RuleID
	})
	return out
}

// hostFacts summarises the host's latest inventory and its recent
// changes; nil when the host never reported one.
func (u *UI) hostFacts(ctx context.Context, id int64, pkg string) (*hostFactsView, error) {
	f, err := u.d.Store.Facts(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("facts of host %d: %w", id, err)
	}
	v := &hostFactsView{HostFacts: f, PkgQuery: pkg}
	for _, s := range f.Services {
		if s.Active {
			v.ServicesActive++
		}
		if s.Enabled {
			v.ServicesEnabled++
		}
	}
	if pkg != "" {
		q := strings.ToLower(pkg)
		for _, p := range f.Packages {
			if strings.Contains(strings.ToLower(p.Name), q) {
				if len(v.PkgMatches) == hostPackageMatch {
					v.PkgMore++
					continue
				}
				v.PkgMatches = append(v.PkgMatches, p)
			}
		}
	}
	now := u.now()
	ch, err := u.d.Store.FactChanges(ctx, id, now.Add(-hostFactsWindow), now.Add(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("fact changes of host %d: %w", id, err)
	}
	slices.Reverse(ch) // newest first
	if len(ch) > hostFactChanges {
		ch = ch[:hostFactChanges]
	}
	v.Changes = ch
	return v, nil
}

// scanNow answers POST /hosts/:id/scan as the REST POST /hosts/:id/scan
// does: the host is due now, the scheduler is woken, the request audited.
func (u *UI) scanNow(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	h, err := u.d.Store.Host(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	if err := u.d.Store.RequestScan(ctx, id, "manual", u.now().UTC()); err != nil {
		u.fleetError(c, err)
		return
	}
	if err := u.d.API.AppendAudit(c, "scan.request", "host/"+strconv.FormatInt(id, 10), gin.H{"trigger": "manual"}); err != nil {
		u.fleetError(c, err)
		return
	}
	if u.d.Wake != nil {
		u.d.Wake()
	}
	u.log.Info("ui scan requested", "host", h.Name, "request_id", api.RequestID(c))
	u.redirect(c, "/hosts/"+strconv.FormatInt(id, 10), "Scan requested for "+h.Name+".")
}
