package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// The alert kinds.
const (
	KindRuleFailing       = "rule_failing"
	KindScoreDrop         = "score_drop"
	KindBandDrop          = "band_drop"
	KindMassDrift         = "mass_drift"
	KindScanOverdue       = "scan_overdue"
	KindAgentOffline      = "agent_offline"
	KindBundleRefused     = "bundle_refused"
	KindExceptionExpiring = "exception_expiring"
)

// Kinds lists every alert kind, for filters and channel settings.
func Kinds() []string {
	return []string{KindRuleFailing, KindScoreDrop, KindBandDrop, KindMassDrift, KindScanOverdue,
		KindAgentOffline, KindBundleRefused, KindExceptionExpiring}
}

// The alert events a Sink is told about.
const (
	EventOpened   = "opened"
	EventResolved = "resolved"
)

// Alert severities (alerts reuse the rule severity words).
const (
	sevCritical = string(rule.Critical)
	sevHigh     = string(rule.High)
	sevMedium   = string(rule.Medium)
	sevLow      = string(rule.Low)
)

// MaxSilence is the longest an operator may silence an alert for.
const MaxSilence = 30 * 24 * time.Hour

// bundleRefusedWindow is how far back an agent's refused bundle keeps its
// alert open.
const bundleRefusedWindow = 24 * time.Hour

// expiringLow is the time left above which an expiring exception alerts
// at severity low rather than medium.
const expiringLow = 3 * 24 * time.Hour

// readBound bounds list reads during an evaluation (open alerts, audit
// entries); far above a real fleet's figures, it only guards memory.
const readBound = 100_000

// unresolved are the alert states that still count as open.
var unresolved = []store.AlertState{store.AlertActive, store.AlertAcknowledged, store.AlertSilenced}

// evalState is what one evaluation reads once and shares between kinds.
type evalState struct {
	now   time.Time
	hosts map[int64]store.Host
	list  []store.Host
	// events are the notifications of this evaluation, in order, handed
	// to the sink together at its end.
	events []Event
	// open holds each kind's unresolved alerts once read: a check that
	// needs them (rule_failing) and apply share one read per kind.
	open map[string][]store.Alert
}

// openAlerts returns the kind's unresolved alerts, read once per
// evaluation. Nothing writes a kind's alerts between its check and apply.
func (s *Service) openAlerts(ctx context.Context, ev *evalState, kind string) ([]store.Alert, error) {
	if as, ok := ev.open[kind]; ok {
		return as, nil
	}
	as, err := s.st.Alerts(ctx, store.AlertFilter{States: unresolved, Kind: kind, Limit: readBound})
	if err != nil {
		return nil, err
	}
	if ev.open == nil {
		ev.open = map[string][]store.Alert{}
	}
	ev.open[kind] = as
	return as, nil
}

// check computes the alerts of one kind whose condition holds now.
type check struct {
	kind string
	fn   func(ctx context.Context, ev *evalState) ([]store.Alert, error)
}

// Evaluate expires due exceptions, checks every alert condition once,
// raises and resolves alerts and, at the end, hands the sink every alert
// opened or resolved (silenced ones excluded) in one batch. A kind whose
// check fails raises nothing and resolves nothing this time (its alerts
// stay as they are); the other kinds go on, and the errors are returned
// together.
func (s *Service) Evaluate(ctx context.Context) (EvalStats, error) {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	now := s.now()
	var stats EvalStats
	var errs []error

	n, err := s.expire(ctx, now)
	stats.Expired = n
	if err != nil {
		errs = append(errs, err)
	}

	hosts, err := s.st.Hosts(ctx)
	if err != nil {
		return stats, errors.Join(append(errs, fmt.Errorf("governance: evaluate: %w", err))...)
	}
	ev := &evalState{now: now, hosts: make(map[int64]store.Host, len(hosts)), list: hosts}
	for _, h := range hosts {
		ev.hosts[h.ID] = h
	}
	checks := []check{
		{KindRuleFailing, s.ruleFailing},
		{KindScoreDrop, s.scoreDrop},
		{KindBandDrop, s.bandDrop},
		{KindMassDrift, s.massDrift},
		{KindScanOverdue, s.scanOverdue},
		{KindAgentOffline, s.agentOffline},
		{KindBundleRefused, s.bundleRefused},
		{KindExceptionExpiring, s.exceptionExpiring},
	}
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("governance: evaluate: %w", err))
			break
		}
		if err := s.apply(ctx, ev, c, &stats); err != nil {
			errs = append(errs, err)
		} else if c.kind == KindRuleFailing {
			s.lastEval = now
		}
	}

	if s.cfg.OnEvaluate != nil {
		counts, err := s.st.AlertCounts(ctx, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("governance: alert counts: %w", err))
		} else {
			s.cfg.OnEvaluate(counts)
		}
	}
	// Last, so that slow channels delay neither the alerts nor the
	// metrics; events of kinds checked before a failure are sent too.
	if s.cfg.Sink != nil && len(ev.events) > 0 {
		s.cfg.Sink.NotifyAll(ctx, ev.events)
	}
	return stats, errors.Join(errs...)
}

// apply runs one check, raises what holds, resolves the rest of its kind
// and queues the notifications of alerts opened and resolved.
func (s *Service) apply(ctx context.Context, ev *evalState, c check, stats *EvalStats) error {
	holding, err := c.fn(ctx, ev)
	if err != nil {
		return fmt.Errorf("governance: %s: %w", c.kind, err)
	}
	open, err := s.openAlerts(ctx, ev, c.kind)
	if err != nil {
		return fmt.Errorf("governance: %s: open alerts: %w", c.kind, err)
	}
	current := make(map[string]store.Alert, len(open))
	for _, a := range open {
		current[a.Key] = a
	}
	keep := make([]string, 0, len(holding))
	var write []store.Alert
	for _, h := range holding {
		// Every holding key is kept, written or not (and even when its
		// raise fails below), so that no alert whose condition still holds
		// is resolved.
		keep = append(keep, h.Key)
		if a, ok := current[h.Key]; ok && s.unchanged(a, h, ev.now) {
			stats.Seen++
			continue
		}
		write = append(write, h)
	}
	raised := s.raiseAll(ctx, c.kind, ev.now, write)
	var raiseErr error
	for i, r := range raised {
		if r.err != nil {
			raiseErr = errors.Join(raiseErr, fmt.Errorf("governance: raise %s: %w", write[i].Key, r.err))
			continue
		}
		stats.Seen++
		if r.created {
			stats.Raised++
			ev.notify(EventOpened, r.alert)
		}
	}
	resolved, err := s.st.ResolveAlerts(ctx, []string{c.kind}, keep, ev.now)
	if err != nil {
		return errors.Join(raiseErr, fmt.Errorf("governance: resolve %s alerts: %w", c.kind, err))
	}
	stats.Resolved += len(resolved)
	for _, a := range resolved {
		ev.notify(EventResolved, a)
	}
	return raiseErr
}

// unchanged reports whether the open alert a already records what the
// holding condition h says, recently enough that rewriting it would only
// bump LastSeenAt and Count: same severity, title, detail and labels, no
// lapsed silence to store, last seen less than SightingRefresh ago.
func (s *Service) unchanged(a, h store.Alert, now time.Time) bool {
	if a.State == store.AlertSilenced && !a.SilencedUntil.After(now) {
		return false
	}
	return a.Severity == h.Severity && a.Title == h.Title && a.Detail == h.Detail && maps.Equal(a.Labels, h.Labels) &&
		now.Sub(a.LastSeenAt) < s.cfg.SightingRefresh
}

// raiseConcurrency bounds the RaiseAlert calls one evaluation has in
// flight. At fleet scale a kind holds tens of thousands of alerts (every
// critical or high failure not under exception), each one round trip
// every evaluation; PostgreSQL serves several at once, where one at a time
// left both sides idle on latency (BenchmarkEvaluate). SQLite's single
// writer queues them, which costs nothing.
const raiseConcurrency = 4

// raiseResult is the outcome of one RaiseAlert.
type raiseResult struct {
	alert   store.Alert
	created bool
	err     error
}

// raiseAll raises every holding alert of one kind at now, up to
// raiseConcurrency at once, and returns the outcomes in holding's order so
// that stats and notifications stay deterministic.
func (s *Service) raiseAll(ctx context.Context, kind string, now time.Time, holding []store.Alert) []raiseResult {
	out := make([]raiseResult, len(holding))
	raise := func(i int) {
		a := holding[i]
		a.Kind, a.At = kind, now
		out[i].alert, out[i].created, out[i].err = s.st.RaiseAlert(ctx, a)
	}
	if len(holding) < 2*raiseConcurrency {
		for i := range holding {
			raise(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range raiseConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(holding) {
					return
				}
				raise(i)
			}
		})
	}
	wg.Wait()
	return out
}

// notify queues event about a for the sink, unless a is silenced at the
// evaluation's moment.
func (ev *evalState) notify(event string, a store.Alert) {
	if !a.SilencedUntil.IsZero() && a.SilencedUntil.After(ev.now) {
		return
	}
	ev.events = append(ev.events, Event{Name: event, Alert: a})
}

// expire moves due approved exceptions to expired and audits each one.
func (s *Service) expire(ctx context.Context, now time.Time) (int, error) {
	gone, err := s.st.ExpireExceptions(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("governance: expire exceptions: %w", err)
	}
	var errs []error
	for _, e := range gone {
		detail := map[string]any{"rule_id": e.RuleID, "scope": scopeOf(e), "expires_at": e.ExpiresAt}
		if e.HostID > 0 {
			detail["host_id"] = e.HostID
		}
		if e.GroupID > 0 {
			detail["group_id"] = e.GroupID
		}
		b, err := json.Marshal(detail)
		if err != nil {
			return len(gone), fmt.Errorf("governance: audit expiry of exception %d: %w", e.ID, err)
		}
		if _, err := s.st.AppendAudit(ctx, store.AuditEntry{At: now, Actor: "system", Action: "exception.expire",
			Target: fmt.Sprintf("exception/%d", e.ID), Detail: string(b)}); err != nil {
			errs = append(errs, fmt.Errorf("governance: audit expiry of exception %d: %w", e.ID, err))
		}
		s.log.Info("exception expired", "exception_id", e.ID, "rule_id", e.RuleID, "scope", scopeOf(e))
	}
	return len(gone), errors.Join(errs...)
}

// detail encodes an alert's detail object.
func detail(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		// Only plain values go in; a failure here is a programming error,
		// and an empty object keeps the alert usable.
		return "{}"
	}
	return string(b)
}

// hostAlert starts an alert about host h, carrying its labels.
func hostAlert(key string, h store.Host) store.Alert {
	return store.Alert{Key: key, HostID: h.ID, Labels: h.Labels}
}

// ruleFailing: a rule of a watched severity seen moving into fail since
// the previous evaluation opens an alert; it holds while the rule still
// fails there and no active exception covers it.
func (s *Service) ruleFailing(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	since := s.lastEval
	if since.IsZero() {
		since = ev.now.Add(-2 * s.cfg.Interval)
	}
	type hr struct {
		host int64
		rule string
	}
	cands := map[hr]store.Alert{}
	if since.Before(ev.now) || since.Equal(ev.now) {
		trs, err := s.st.FleetTransitions(ctx, since, ev.now.Add(time.Microsecond), 0)
		if err != nil {
			return nil, err
		}
		for _, t := range trs {
			h, ok := ev.hosts[t.HostID]
			if !ok || t.Status != result.Fail || t.From == result.Fail || !slices.Contains(s.th.FailingSeverities, t.Severity) {
				continue
			}
			a := hostAlert(fmt.Sprintf("%s/host/%d/%s", KindRuleFailing, h.ID, t.RuleID), h)
			a.RuleID, a.Severity = t.RuleID, string(t.Severity)
			cands[hr{h.ID, t.RuleID}] = a
		}
	}
	open, err := s.openAlerts(ctx, ev, KindRuleFailing)
	if err != nil {
		return nil, err
	}
	for _, a := range open {
		h, ok := ev.hosts[a.HostID]
		if !ok || a.RuleID == "" {
			continue // host deleted: the alert resolves
		}
		k := hr{a.HostID, a.RuleID}
		if _, ok := cands[k]; !ok {
			na := hostAlert(a.Key, h)
			na.RuleID, na.Severity = a.RuleID, a.Severity
			cands[k] = na
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	ruleSet, hostSet := map[string]bool{}, map[int64]bool{}
	for k := range cands {
		ruleSet[k.rule], hostSet[k.host] = true, true
	}
	ruleIDs := sortedKeys(ruleSet)
	hostIDs := make([]int64, 0, len(hostSet))
	for id := range hostSet {
		hostIDs = append(hostIDs, id)
	}
	slices.Sort(hostIDs)
	failing, err := s.st.FailingAt(ctx, time.Time{}, ruleIDs, hostIDs)
	if err != nil {
		return nil, err
	}
	subjects := make([]store.Host, 0, len(hostIDs))
	for _, id := range hostIDs {
		subjects = append(subjects, ev.hosts[id])
	}
	accepted, err := s.Accepted(ctx, ev.now, subjects)
	if err != nil {
		return nil, err
	}
	var out []store.Alert
	for _, f := range failing {
		a, ok := cands[hr{f.HostID, f.RuleID}]
		if !ok {
			continue
		}
		if _, covered := accepted[f.HostID][f.RuleID]; covered {
			continue
		}
		if f.Severity != "" {
			a.Severity = string(f.Severity)
		}
		if a.Severity == "" {
			a.Severity = sevHigh
		}
		h := ev.hosts[f.HostID]
		title := f.RuleID
		if r := s.idx.Rule(f.RuleID); r != nil && r.Title != "" {
			title = r.Title
		}
		a.Title = fmt.Sprintf("%s rule failing on %s: %s", strings.ToUpper(a.Severity[:1])+a.Severity[1:], h.Name, title)
		a.Detail = detail(map[string]any{"host": h.Name, "rule_id": f.RuleID, "rule_title": title,
			"severity": a.Severity, "scan_id": f.ScanID})
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// scoreDrop: a host's latest all-rules snapshot is more than ScoreDrop
// points below its best snapshot within ScoreDropWindow.
func (s *Service) scoreDrop(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	if len(ev.list) == 0 {
		return nil, nil
	}
	from := utcDay(ev.now.Add(-s.th.ScoreDropWindow))
	snaps, err := s.st.Snapshots(ctx, store.SnapshotFilter{From: from, To: utcDay(ev.now)})
	if err != nil {
		return nil, err
	}
	type span struct {
		latest, best store.Snapshot
		seen         bool
	}
	by := map[int64]*span{}
	for _, sn := range snaps {
		if sn.Band == "" {
			continue // nothing assessed that day: no score to compare
		}
		sp := by[sn.HostID]
		if sp == nil {
			sp = &span{}
			by[sn.HostID] = sp
		}
		if !sp.seen || sn.Day.After(sp.latest.Day) {
			sp.latest = sn
		}
		if !sp.seen || sn.Score > sp.best.Score {
			sp.best = sn
		}
		sp.seen = true
	}
	var out []store.Alert
	for _, h := range ev.list {
		sp := by[h.ID]
		if sp == nil {
			continue
		}
		drop := sp.best.Score - sp.latest.Score
		if drop <= s.th.ScoreDrop {
			continue
		}
		a := hostAlert(fmt.Sprintf("%s/host/%d", KindScoreDrop, h.ID), h)
		a.Severity = sevHigh
		a.Title = fmt.Sprintf("Score of %s fell %.1f points to %.1f", h.Name, drop, sp.latest.Score)
		a.Detail = detail(map[string]any{"host": h.Name, "score": sp.latest.Score, "max_score": sp.best.Score,
			"max_day": sp.best.Day.Format(time.DateOnly), "drop": drop, "threshold": s.th.ScoreDrop,
			"window": s.th.ScoreDropWindow.String()})
		out = append(out, a)
	}
	return out, nil
}

// bandDrop: a host's band is worse than BandFloor.
func (s *Service) bandDrop(_ context.Context, ev *evalState) ([]store.Alert, error) {
	floor := bandRank(s.th.BandFloor)
	var out []store.Alert
	for _, h := range ev.list {
		b := posture.Band(h.Band)
		r := bandRank(b)
		if r < 0 || r >= floor {
			continue
		}
		a := hostAlert(fmt.Sprintf("%s/host/%d", KindBandDrop, h.ID), h)
		a.Severity = sevMedium
		if b == posture.BandCritical {
			a.Severity = sevCritical
		}
		a.Title = fmt.Sprintf("%s is in posture band %s", h.Name, b)
		a.Detail = detail(map[string]any{"host": h.Name, "band": b, "score": h.Score, "floor": s.th.BandFloor})
		out = append(out, a)
	}
	return out, nil
}

// massDrift: at least MassDriftHosts distinct hosts changed one rule into
// one status within MassDriftWindow. A rule's first observation on a host
// is not a change.
func (s *Service) massDrift(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	trs, err := s.st.FleetTransitions(ctx, ev.now.Add(-s.th.MassDriftWindow), ev.now.Add(time.Microsecond), 0)
	if err != nil {
		return nil, err
	}
	type rs struct {
		rule   string
		status result.Status
	}
	hostsOf := map[rs]map[int64]bool{}
	for _, t := range trs {
		if t.From == "" || t.From == t.Status {
			continue
		}
		if _, ok := ev.hosts[t.HostID]; !ok {
			continue
		}
		k := rs{t.RuleID, t.Status}
		if hostsOf[k] == nil {
			hostsOf[k] = map[int64]bool{}
		}
		hostsOf[k][t.HostID] = true
	}
	var out []store.Alert
	for k, hs := range hostsOf {
		if len(hs) < s.th.MassDriftHosts {
			continue
		}
		ids := make([]int64, 0, len(hs))
		for id := range hs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		names := make([]string, 0, min(len(ids), 50))
		for _, id := range ids[:min(len(ids), 50)] {
			names = append(names, ev.hosts[id].Name)
		}
		out = append(out, store.Alert{
			Key: fmt.Sprintf("%s/%s/%s", KindMassDrift, k.rule, k.status), RuleID: k.rule, Severity: sevHigh,
			Title: fmt.Sprintf("%d hosts changed %s to %s within %s", len(ids), k.rule, k.status, s.th.MassDriftWindow),
			Detail: detail(map[string]any{"rule_id": k.rule, "status": k.status, "hosts": len(ids), "host_names": names,
				"window": s.th.MassDriftWindow.String(), "threshold": s.th.MassDriftHosts}),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// scanOverdue: a host's last completed scan (never scanned: its planned
// first scan) is older than OverdueAfter.
func (s *Service) scanOverdue(_ context.Context, ev *evalState) ([]store.Alert, error) {
	var out []store.Alert
	for _, h := range ev.list {
		ref, never := h.LastScanAt, h.LastScanAt.IsZero()
		if never {
			ref = h.NextScanAt
		}
		if ref.IsZero() || ev.now.Sub(ref) <= s.th.OverdueAfter {
			continue
		}
		a := hostAlert(fmt.Sprintf("%s/host/%d", KindScanOverdue, h.ID), h)
		a.Severity = sevMedium
		d := map[string]any{"host": h.Name, "overdue_after": s.th.OverdueAfter.String()}
		if never {
			a.Title = fmt.Sprintf("%s has never been scanned", h.Name)
			d["due_since"] = ref
		} else {
			a.Title = fmt.Sprintf("%s not scanned since %s", h.Name, ref.UTC().Format(time.RFC3339))
			d["last_scan_at"] = ref
		}
		a.Detail = detail(d)
		out = append(out, a)
	}
	return out, nil
}

// agentOffline: an active agent silent (never seen: since enrolment) for
// longer than AgentOfflineAfter.
func (s *Service) agentOffline(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	agents, err := s.st.Agents(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Alert
	for _, ag := range agents {
		if ag.Status != store.AgentActive {
			continue
		}
		ref := ag.LastSeenAt
		if ref.IsZero() {
			ref = ag.EnrolledAt
		}
		if ref.IsZero() || ev.now.Sub(ref) <= s.th.AgentOfflineAfter {
			continue
		}
		out = append(out, store.Alert{
			Key: fmt.Sprintf("%s/agent/%d", KindAgentOffline, ag.ID), AgentID: ag.ID, Labels: ag.Labels, Severity: sevHigh,
			Title:  fmt.Sprintf("Agent %s silent since %s", ag.Name, ref.UTC().Format(time.RFC3339)),
			Detail: detail(map[string]any{"agent": ag.Name, "last_seen_at": ref, "offline_after": s.th.AgentOfflineAfter.String()}),
		})
	}
	return out, nil
}

// bundleRefused: an agent refused a rule bundle (audit action
// agent.bundle_refused) within the last 24 hours.
func (s *Service) bundleRefused(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	entries, err := s.st.Audit(ctx, store.AuditFilter{Action: "agent.bundle_refused",
		From: ev.now.Add(-bundleRefusedWindow), To: ev.now.Add(time.Microsecond), Limit: readBound, Desc: true})
	if err != nil {
		return nil, err
	}
	type refusal struct {
		n      int
		latest store.AuditEntry
	}
	by := map[int64]*refusal{}
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Target, "agent/")
		if !ok {
			continue
		}
		aid, err := strconv.ParseInt(id, 10, 64)
		if err != nil || aid <= 0 {
			continue
		}
		r := by[aid]
		if r == nil {
			r = &refusal{latest: e}
			by[aid] = r
		}
		r.n++
		if e.At.After(r.latest.At) {
			r.latest = e
		}
	}
	if len(by) == 0 {
		return nil, nil
	}
	agents, err := s.st.Agents(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]store.Agent, len(agents))
	for _, ag := range agents {
		byID[ag.ID] = ag
	}
	var out []store.Alert
	for aid, r := range by {
		ag := byID[aid]
		name := ag.Name
		if name == "" {
			name = fmt.Sprintf("#%d", aid)
		}
		var msg struct {
			Message      string `json:"message"`
			BundleDigest string `json:"bundle_digest"`
		}
		_ = json.Unmarshal([]byte(r.latest.Detail), &msg) // best effort: the detail is shown, not relied on
		out = append(out, store.Alert{
			Key: fmt.Sprintf("%s/agent/%d", KindBundleRefused, aid), AgentID: aid, Labels: ag.Labels, Severity: sevHigh,
			Title: fmt.Sprintf("Agent %s refused a rule bundle", name),
			Detail: detail(map[string]any{"agent": name, "refusals": r.n, "last_at": r.latest.At,
				"message": msg.Message, "bundle_digest": msg.BundleDigest, "audit_id": r.latest.ID}),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// exceptionExpiring: an approved exception expires within ExpiringWithin.
func (s *Service) exceptionExpiring(ctx context.Context, ev *evalState) ([]store.Alert, error) {
	exs, err := s.st.Exceptions(ctx, store.ExceptionFilter{States: []store.ExceptionState{store.ExceptionApproved}, Limit: maxExceptions})
	if err != nil {
		return nil, err
	}
	var out []store.Alert
	for _, e := range exs {
		if e.ExpiresAt.IsZero() {
			continue
		}
		left := e.ExpiresAt.Sub(ev.now)
		if left <= 0 || left > s.th.ExpiringWithin {
			continue
		}
		a := store.Alert{Key: fmt.Sprintf("%s/%d", KindExceptionExpiring, e.ID), ExceptionID: e.ID, RuleID: e.RuleID,
			Severity: sevMedium}
		if left > expiringLow {
			a.Severity = sevLow
		}
		d := map[string]any{"exception_id": e.ID, "rule_id": e.RuleID, "scope": scopeOf(e), "expires_at": e.ExpiresAt,
			"approved_by": e.DecidedBy}
		where := "the fleet"
		if e.HostID > 0 {
			if h, ok := ev.hosts[e.HostID]; ok {
				a.HostID, a.Labels = h.ID, h.Labels
				where = h.Name
			}
			d["host_id"] = e.HostID
		}
		if e.GroupID > 0 {
			where = fmt.Sprintf("group %d", e.GroupID)
			d["group_id"] = e.GroupID
		}
		a.Title = fmt.Sprintf("Exception #%d for %s on %s expires %s", e.ID, e.RuleID, where, e.ExpiresAt.UTC().Format(time.RFC3339))
		a.Detail = detail(d)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExceptionID < out[j].ExceptionID })
	return out, nil
}

// SetAlertState applies an operator's alert action: acknowledged,
// silenced until `until` (in the future, at most MaxSilence ahead),
// resolved, or active again (reactivate). A refused argument is a
// *FieldError; a resolved alert is a wrapped store.ErrConflict.
func (s *Service) SetAlertState(ctx context.Context, actor string, id int64, to store.AlertState, until time.Time) (store.Alert, error) {
	if actor == "" {
		return store.Alert{}, fmt.Errorf("governance: alert %d: an action needs an actor", id)
	}
	now := s.now()
	ch := store.AlertChange{ID: id, To: to, By: actor, At: now}
	switch to {
	case store.AlertAcknowledged, store.AlertResolved, store.AlertActive:
	case store.AlertSilenced:
		switch {
		case until.IsZero():
			return store.Alert{}, &FieldError{Field: "until", Msg: "is required to silence an alert"}
		case !until.After(now):
			return store.Alert{}, &FieldError{Field: "until", Msg: "must be in the future"}
		case until.Sub(now) > MaxSilence:
			return store.Alert{}, &FieldError{Field: "until", Msg: "must be at most 30 days ahead"}
		}
		ch.Until = until.UTC()
	default:
		return store.Alert{}, &FieldError{Field: "state", Msg: fmt.Sprintf("cannot move an alert to %q", to)}
	}
	a, err := s.st.SetAlertState(ctx, ch)
	if err != nil {
		return store.Alert{}, fmt.Errorf("governance: alert %d to %s: %w", id, to, err)
	}
	return a, nil
}

// Run evaluates at once and then every Interval until ctx ends. Each
// evaluation is bounded by a timeout (twice the interval, at least a
// minute); errors are logged and the next tick tries again.
func (s *Service) Run(ctx context.Context) error {
	timeout := max(2*s.cfg.Interval, time.Minute)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		ectx, cancel := context.WithTimeout(ctx, timeout)
		st, err := s.Evaluate(ectx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("governance: evaluation failed", "err", err, "raised", st.Raised, "resolved", st.Resolved)
		case st.Raised+st.Resolved+st.Expired > 0:
			s.log.Info("governance: evaluated", "raised", st.Raised, "seen", st.Seen, "resolved", st.Resolved, "expired", st.Expired)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// utcDay returns the UTC midnight starting t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// sortedKeys returns a set's members in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
