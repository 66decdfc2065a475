package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Dashboard limits. Each framework card costs one aggregated store query
// over current state, so the dashboard shows the frameworks with the most
// rules and links to /frameworks for the rest.
const (
	dashMaxFrameworks = 6
	dashMaxTopRules   = 10
	dashMaxDrift      = 20
	dashMaxAttention  = 20
	// overdueAfter is the schedule's promise: no host waits more than 48 h.
	overdueAfter = 48 * time.Hour
	// trendLookback is how far before a trend window the dashboard looks
	// for each host's last value to carry into the window's first days.
	trendLookback = 14
)

// dashBandOrder lists the bands worst first, "" (never scanned) last.
var dashBandOrder = []posture.Band{posture.BandCritical, posture.BandPoor, posture.BandFair, posture.BandGood, posture.BandExcellent, posture.BandNone}

// dashCard is one framework's fleet score.
type dashCard struct {
	ID, Title string
	Rules     int
	Score     float64
	Band      posture.Band
	Counts    posture.Counts
	Hosts     int // hosts with state for the framework
}

// dashBandCount is how many hosts sit in one band, with the /hosts filter value.
type dashBandCount struct {
	Band   posture.Band
	Filter string
	Hosts  int
}

// dashFailedRule is a rule failing on Hosts hosts now.
type dashFailedRule struct {
	ID, Title string
	Severity  rule.Severity
	Hosts     int
	Known     bool // in the rule index (has a /rules page)
}

// dashAttention is a host the schedule has not kept up with.
type dashAttention struct {
	Host   store.Host
	Why    string
	ScanID int64 // the failed scan, when Why is unreachable
	Msg    string
}

// dashDriftRow is one recent change of a rule's status on a host.
type dashDriftRow struct {
	HostID        int64
	HostName      string
	RuleID        string
	Severity      rule.Severity
	Before, After result.Status
	At            time.Time
	ScanID        int64
	Known         bool
}

// dashboardData is what dashboard.html renders.
type dashboardData struct {
	HostCount   int
	All         dashCard
	Frameworks  []dashCard
	MoreFws     int
	Bands       []dashBandCount
	Days        int
	Chart       any
	TopRules    []dashFailedRule
	Attention   []dashAttention
	MoreAttn    int
	Drift       []dashDriftRow
	MoreDrift   bool // older changes in the window than the ones shown
	DriftWindow time.Duration
	// ScoreWithExceptions is the fleet score with the failures approved
	// exceptions accept counted as passing; Accepted how many there are.
	ScoreWithExceptions float64
	Accepted            int
	// Alerts counts alerts by state name (resolved: in the last 24 h).
	Alerts map[string]int
	// Exports is the fleet export menu (nil without exports.read).
	Exports []exportLink
}

// dashboard renders /: fleet score per framework, hosts per band, the
// fleet trend, the most failed rules, hosts needing attention and recent
// drift. After the one Hosts() read the panels are independent, so their
// store queries run concurrently; every "now" figure comes from current
// state (posture at zero At, TopFailing, RecentChanges), not from
// replaying the transition log.
func (u *UI) dashboard(c *gin.Context) {
	ctx := c.Request.Context()
	days := fleetTrendDays(c)
	now := u.now().UTC()
	hosts, err := u.d.Store.Hosts(ctx)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	d := dashboardData{HostCount: len(hosts), Days: days, DriftWindow: 7 * 24 * time.Hour, Bands: dashBandsOf(hosts)}
	g, gctx := errgroup.WithContext(ctx)
	fws, more := u.dashFrameworks()
	d.MoreFws = more
	g.Go(func() error {
		// One grouped read of current state scores every card.
		rcs, err := u.d.Store.RuleStatusCounts(gctx)
		if err != nil {
			return err
		}
		scanned := 0
		for _, h := range hosts {
			if h.Band != "" {
				scanned++
			}
		}
		d.All = dashCardFrom("", "All rules", 0, nil, rcs, scanned)
		d.TopRules = u.mostFailed(rcs)
		d.Frameworks = make([]dashCard, len(fws))
		for i, fw := range fws {
			ids, _ := u.d.Posture.Index().RuleIDs(fw.ID)
			d.Frameworks[i] = dashCardFrom(fw.ID, fw.Title, fw.Rules, ids, rcs, scanned)
		}
		return nil
	})
	g.Go(func() error {
		trend, err := u.fleetTrend(gctx, hosts, days, now)
		d.Chart = lineChart(fmt.Sprintf("Fleet average score per day, last %d days", days), trend)
		return err
	})
	g.Go(func() (err error) {
		d.Attention, err = u.needAttention(gctx, hosts, now)
		if len(d.Attention) > dashMaxAttention {
			d.MoreAttn, d.Attention = len(d.Attention)-dashMaxAttention, d.Attention[:dashMaxAttention]
		}
		return err
	})
	g.Go(func() (err error) {
		d.Drift, d.MoreDrift, err = u.recentDrift(gctx, hosts, now.Add(-d.DriftWindow))
		return err
	})
	g.Go(func() error {
		fp, err := u.d.Posture.Fleet(gctx, posture.FleetQuery{})
		if err != nil {
			return fmt.Errorf("fleet posture with exceptions: %w", err)
		}
		d.ScoreWithExceptions, d.Accepted = fp.ScoreWithExceptions, fp.Counts.Accepted
		return nil
	})
	g.Go(func() error {
		counts, err := u.d.Store.AlertCounts(gctx, now)
		if err != nil {
			return fmt.Errorf("alert counts: %w", err)
		}
		d.Alerts = make(map[string]int, len(counts))
		for st, n := range counts {
			d.Alerts[string(st)] = n
		}
		return nil
	})
	if req(c).Can(string(api.PermExport)) {
		d.Exports = exportLinks("/export", "", "", "")
	}
	if err := g.Wait(); err != nil {
		u.fleetError(c, err)
		return
	}
	u.render(c, http.StatusOK, "dashboard", Page{Title: "Dashboard", Data: d, Nav: "dashboard"})
}

// fleetTrendDays reads ?days=30|90 (30 otherwise).
func fleetTrendDays(c *gin.Context) int {
	if c.Query("days") == "90" {
		return 90
	}
	return 30
}

// dashCardFrom sums the fleet's current counts over a framework's rules
// (ids; nil means every rule) and scores them as posture.Fleet scores a
// fleet: over the hosts' summed counts. Hosts is the number of scanned
// hosts.
func dashCardFrom(id, title string, rules int, ids []string, rcs []store.RuleStatusCount, scanned int) dashCard {
	var in map[string]bool
	if ids != nil {
		in = make(map[string]bool, len(ids))
		for _, r := range ids {
			in[r] = true
		}
	}
	card := dashCard{ID: id, Title: title, Rules: rules, Hosts: scanned}
	for _, rc := range rcs {
		if in != nil && !in[rc.RuleID] {
			continue
		}
		switch rc.Status {
		case result.Pass:
			card.Counts.Pass += rc.Hosts
		case result.Fail:
			card.Counts.Fail += rc.Hosts
			if rc.Severity == rule.Critical {
				card.Counts.CriticalFail += rc.Hosts
			}
		case result.Error:
			card.Counts.Error += rc.Hosts
		case result.Skipped:
			card.Counts.Skipped += rc.Hosts
		}
	}
	card.Score = posture.Score(card.Counts)
	if scanned > 0 && card.Counts.Pass+card.Counts.Fail+card.Counts.Error > 0 {
		card.Band = posture.BandOf(card.Score, card.Counts.CriticalFail)
	}
	return card
}

// dashFrameworks picks the frameworks with the most rules for the cards
// (one posture query each); more is how many frameworks with rules are
// left out.
func (u *UI) dashFrameworks() (fws []posture.Framework, more int) {
	for _, fw := range u.d.Posture.Index().Frameworks() {
		if fw.Rules > 0 {
			fws = append(fws, fw)
		}
	}
	sort.SliceStable(fws, func(i, j int) bool { return fws[i].Rules > fws[j].Rules })
	if len(fws) > dashMaxFrameworks {
		more, fws = len(fws)-dashMaxFrameworks, fws[:dashMaxFrameworks]
	}
	return fws, more
}

// dashBandsOf counts hosts per band as the hosts list filters them (the band
// of each host's last scan).
func dashBandsOf(hosts []store.Host) []dashBandCount {
	n := map[posture.Band]int{}
	for _, h := range hosts {
		n[posture.Band(h.Band)]++
	}
	out := make([]dashBandCount, 0, len(dashBandOrder))
	for _, b := range dashBandOrder {
		f := string(b)
		if b == posture.BandNone {
			f = "none"
		}
		out = append(out, dashBandCount{Band: b, Filter: f, Hosts: n[b]})
	}
	return out
}

// fleetTrend is the fleet's average all-rules score per day over the last
// `days` days: each host's latest snapshot on or before the day (carried
// over days without a scan, as posture.Trend does), averaged over the
// hosts that have one. It reads the window's snapshots plus trendLookback
// days before it in one query; a host with no snapshot in that span but
// scanned before it carries its current score (its last scan's), which is
// the value its last snapshot holds.
func (u *UI) fleetTrend(ctx context.Context, hosts []store.Host, days int, now time.Time) ([]chartPoint, error) {
	today := fleetDay(now)
	first := today.AddDate(0, 0, -(days - 1))
	snaps, err := u.d.Store.Snapshots(ctx, store.SnapshotFilter{From: first.AddDate(0, 0, -trendLookback), To: today})
	if err != nil {
		return nil, fmt.Errorf("fleet trend: %w", err)
	}
	byHost := map[int64][]store.Snapshot{} // ordered by day (the store orders by host, framework, day)
	for _, s := range snaps {
		byHost[s.HostID] = append(byHost[s.HostID], s)
	}
	sum := make([]float64, days)
	cnt := make([]int, days)
	for _, h := range hosts {
		ss := byHost[h.ID]
		var carried *float64
		if len(ss) == 0 && h.Band != "" && h.LastScanAt.Before(first) {
			v := h.Score
			carried = &v
		}
		k := 0
		for i := range days {
			day := first.AddDate(0, 0, i)
			for k < len(ss) && !fleetDay(ss[k].Day).After(day) {
				carried = nil // a day with nothing assessed counts for no host
				if ss[k].Band != "" {
					v := ss[k].Score
					carried = &v
				}
				k++
			}
			if carried != nil {
				sum[i] += *carried
				cnt[i]++
			}
		}
	}
	var out []chartPoint
	for i := range days {
		if cnt[i] == 0 {
			continue
		}
		out = append(out, chartPoint{Label: first.AddDate(0, 0, i).Format(time.DateOnly), Value: fleetRound(sum[i] / float64(cnt[i]))})
	}
	return out, nil
}

// mostFailed lists the rules failing on the most hosts now, from the same
// per-rule counts that score the framework cards (no further query).
func (u *UI) mostFailed(rcs []store.RuleStatusCount) []dashFailedRule {
	hosts := map[string]int{}
	for _, rc := range rcs {
		if rc.Status == result.Fail {
			hosts[rc.RuleID] += rc.Hosts
		}
	}
	idx := u.d.Posture.Index()
	out := make([]dashFailedRule, 0, len(hosts))
	for id, n := range hosts {
		fr := dashFailedRule{ID: id, Title: id, Hosts: n}
		if r := idx.Rule(id); r != nil {
			fr.Title, fr.Severity, fr.Known = r.Title, r.Severity, true
		}
		out = append(out, fr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hosts != out[j].Hosts {
			return out[i].Hosts > out[j].Hosts
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > dashMaxTopRules {
		out = out[:dashMaxTopRules]
	}
	return out
}

// needAttention lists hosts never scanned, overdue (last scan older than
// overdueAfter) or unreachable (their latest scan failed), the last from
// one query over recent failed scans.
func (u *UI) needAttention(ctx context.Context, hosts []store.Host, now time.Time) ([]dashAttention, error) {
	failed, err := u.d.Store.Scans(ctx, store.ScanFilter{Status: store.ScanFailed, Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("failed scans: %w", err)
	}
	lastFailed := map[int64]store.Scan{}
	for _, sc := range failed { // newest first: keep the first per host
		if _, ok := lastFailed[sc.HostID]; !ok {
			lastFailed[sc.HostID] = sc
		}
	}
	var out []dashAttention
	for _, h := range hosts {
		if sc, ok := lastFailed[h.ID]; ok && sc.StartedAt.After(h.LastScanAt) {
			out = append(out, dashAttention{Host: h, Why: "unreachable", ScanID: sc.ID, Msg: sc.Message})
			continue
		}
		switch {
		case h.LastScanAt.IsZero():
			out = append(out, dashAttention{Host: h, Why: "never scanned"})
		case now.Sub(h.LastScanAt) > overdueAfter:
			out = append(out, dashAttention{Host: h, Why: "overdue"})
		}
	}
	rank := map[string]int{"unreachable": 0, "overdue": 1, "never scanned": 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Why] < rank[out[j].Why] })
	return out, nil
}

// recentDrift lists the latest dashMaxDrift status changes since `since`
// (first observations are not changes), newest first, from one limited
// store query; more reports whether older ones in the window exist.
func (u *UI) recentDrift(ctx context.Context, hosts []store.Host, since time.Time) ([]dashDriftRow, bool, error) {
	ts, err := u.d.Store.RecentChanges(ctx, since, dashMaxDrift+1)
	if err != nil {
		return nil, false, fmt.Errorf("recent drift: %w", err)
	}
	more := len(ts) > dashMaxDrift
	if more {
		ts = ts[:dashMaxDrift]
	}
	names := make(map[int64]string, len(hosts))
	for _, h := range hosts {
		names[h.ID] = h.Name
	}
	idx := u.d.Posture.Index()
	out := make([]dashDriftRow, len(ts))
	for i, t := range ts {
		name, ok := names[t.HostID]
		if !ok { // added after the hosts were read
			name = fmt.Sprintf("host %d", t.HostID)
		}
		out[i] = dashDriftRow{HostID: t.HostID, HostName: name, RuleID: t.RuleID, Severity: t.Severity,
			Before: t.From, After: t.Status, At: t.At, ScanID: t.ScanID, Known: idx.Rule(t.RuleID) != nil}
	}
	return out, more, nil
}

// fleetError answers a failed page: 404 for a missing host or scan, 400
// for a bad posture argument, 500 (logged) otherwise.
func (u *UI) fleetError(c *gin.Context, err error) {
	var arg *posture.ArgError
	switch {
	case errors.Is(err, store.ErrNotFound):
		u.renderError(c, req(c), http.StatusNotFound, "There is no such host or scan.")
	case errors.As(err, &arg):
		u.renderError(c, req(c), http.StatusBadRequest, arg.Msg)
	default:
		u.log.Error("ui page", "path", c.Request.URL.Path, "request_id", api.RequestID(c), "err", err)
		u.renderError(c, req(c), http.StatusInternalServerError, "The server could not build this page; see its log for request "+api.RequestID(c)+".")
	}
}

// pathInt parses a positive integer path parameter; anything else is a
// page that does not exist.
func (u *UI) pathInt(c *gin.Context, name string) (int64, bool) {
	n, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || n <= 0 {
		u.renderError(c, req(c), http.StatusNotFound, "There is no page at this address.")
		return 0, false
	}
	return n, true
}

func fleetDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func fleetRound(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// fleetSeverityRank orders severities worst first; unknown ones last.
func fleetSeverityRank(s rule.Severity) int {
	if i := slices.Index([]rule.Severity{rule.Critical, rule.High, rule.Medium, rule.Low}, s); i >= 0 {
		return i
	}
	return 4
}
