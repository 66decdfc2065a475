package posture

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// HostPosture is one host's posture. A host with no rule state at the
// moment asked about (not yet scanned then, or no rule of the framework
// seen on it) has Band "" and zero counts and score.
type HostPosture struct {
	HostID int64   `json:"host_id"`
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Band   Band    `json:"band"`
	Counts Counts  `json:"counts"`
	// ScoreWithExceptions and BandWithExceptions count failures accepted
	// by an approved exception (Counts.Accepted) as passing; Score and
	// Band are the raw figures.
	ScoreWithExceptions float64     `json:"score_with_exceptions"`
	BandWithExceptions  Band        `json:"band_with_exceptions"`
	LastScanAt          *time.Time  `json:"last_scan_at,omitempty"`
	Rules               []RuleState `json:"rules,omitempty"` // only when asked for
}

// RuleState is one rule's state on a host at some moment.
type RuleState struct {
	RuleID   string        `json:"rule_id"`
	Status   result.Status `json:"status"`
	Severity rule.Severity `json:"severity"`
	ScanID   int64         `json:"scan_id"`
	Since    time.Time     `json:"since"`
	// Accepted is set on a failing rule an approved exception covered at
	// that moment; Status stays fail ("failed, accepted").
	Accepted    bool  `json:"accepted,omitempty"`
	ExceptionID int64 `json:"exception_id,omitempty"`
}

// FleetQuery selects a posture view.
type FleetQuery struct {
	At        time.Time // zero: now
	Framework string    // "": every rule
	Group     string    // "": every host
	HostID    int64     // 0: every host
	Rules     bool      // include per-rule states per host
}

// FleetPosture is the posture of a set of hosts at one moment.
type FleetPosture struct {
	At        time.Time `json:"at"`
	Framework string    `json:"framework,omitempty"`
	Group     string    `json:"group,omitempty"`
	Score     float64   `json:"score"` // over all the hosts' summed counts
	// ScoreWithExceptions is Score with accepted failures counted as
	// passing.
	ScoreWithExceptions float64       `json:"score_with_exceptions"`
	Counts              Counts        `json:"counts"`
	Bands               map[Band]int  `json:"bands"`
	Hosts               []HostPosture `json:"hosts"`
}

// Fleet returns the posture of the selected hosts as it was at q.At, with
// rule states rebuilt from the transition log.
//
// Counts come from one aggregated store query for all the selected hosts
// (CurrentCounts when q.At is zero, CountsAt otherwise). Only with q.Rules does it read each host's full state
// (StateAt per host), which suits one host or a small group. Hosts are
// those in the inventory now (deleted hosts are left out), ordered by
// name. A host without state at q.At is listed with Band "", score 0 and
// zero counts, counted under Bands[""], and adds nothing to the fleet's
// counts and score; the fleet's score is 0 when no host has state.
// LastScanAt is filled only for the present view (q.At zero).
func (s *Service) Fleet(ctx context.Context, q FleetQuery) (FleetPosture, error) {
	in, ok := s.idx.inFramework(q.Framework)
	if !ok {
		return FleetPosture{}, unknownFramework(q.Framework)
	}
	at := q.At
	if at.IsZero() {
		at = s.now()
	}
	at = at.UTC()
	hosts, err := s.selectHosts(ctx, q)
	if err != nil {
		return FleetPosture{}, err
	}
	fp := FleetPosture{At: at, Framework: q.Framework, Group: q.Group, Bands: newHistogram(),
		Hosts: make([]HostPosture, 0, len(hosts))}
	var counts map[int64]Counts
	var states map[int64][]RuleState
	if q.Rules {
		counts, states, err = s.statesAt(ctx, hosts, at, in)
	} else {
		counts, err = s.countsAt(ctx, hosts, at, q)
	}
	if err != nil {
		return FleetPosture{}, err
	}
	if err := s.applyWaivers(ctx, hosts, at, q, in, counts, states); err != nil {
		return FleetPosture{}, err
	}
	for _, h := range hosts {
		hp := HostPosture{HostID: h.ID, Name: h.Name, Rules: states[h.ID]}
		if q.At.IsZero() && !h.LastScanAt.IsZero() {
			t := h.LastScanAt
			hp.LastScanAt = &t
		}
		hp.Counts = counts[h.ID]
		hp.Score, hp.Band = assess(hp.Counts)
		hp.ScoreWithExceptions, hp.BandWithExceptions = assess(hp.Counts.withExceptions())
		fp.Counts = fp.Counts.plus(hp.Counts)
		fp.Bands[hp.Band]++
		fp.Hosts = append(fp.Hosts, hp)
	}
	fp.Score, _ = assess(fp.Counts)
	fp.ScoreWithExceptions, _ = assess(fp.Counts.withExceptions())
	return fp, nil
}

// applyWaivers asks the waivers which rules approved exceptions accepted
// at `at` and counts the failing ones among them as Accepted (in counts,
// updated in place). With per-rule states it marks the accepted failing
// rules there; otherwise it asks the store which of the covered rules
// were failing, one query only when some exception applies at all. Rules
// outside the framework filter `in` (nil: all) are not counted.
func (s *Service) applyWaivers(ctx context.Context, hosts []store.Host, at time.Time, q FleetQuery,
	in func(string) bool, counts map[int64]Counts, states map[int64][]RuleState) error {
	if s.waivers == nil || len(hosts) == 0 || len(counts) == 0 {
		return nil
	}
	acc, err := s.waivers.Accepted(ctx, at, hosts)
	if err != nil {
		return fmt.Errorf("posture: exceptions at %s: %w", at.Format(time.RFC3339), err)
	}
	if len(acc) == 0 {
		return nil
	}
	if states != nil {
		for hid, rs := range states {
			c := counts[hid]
			for i := range rs {
				id, ok := acc[hid][rs[i].RuleID]
				if !ok || rs[i].Status != result.Fail {
					continue
				}
				rs[i].Accepted, rs[i].ExceptionID = true, id
				c.Accepted++
				if rs[i].Severity == rule.Critical {
					c.AcceptedCritical++
				}
			}
			counts[hid] = c
		}
		return nil
	}
	ruleSet := map[string]bool{}
	var hostIDs []int64
	for _, h := range hosts {
		m := acc[h.ID]
		if len(m) == 0 {
			continue
		}
		if _, counted := counts[h.ID]; !counted {
			continue // no state at `at`: nothing can be failing
		}
		hostIDs = append(hostIDs, h.ID)
		for r := range m {
			if in == nil || in(r) {
				ruleSet[r] = true
			}
		}
	}
	if len(ruleSet) == 0 || len(hostIDs) == 0 {
		return nil
	}
	ruleIDs := make([]string, 0, len(ruleSet))
	for r := range ruleSet {
		ruleIDs = append(ruleIDs, r)
	}
	slices.Sort(ruleIDs)
	if q.Group == "" && q.HostID == 0 && len(hostIDs) == len(hosts) {
		hostIDs = nil // the whole fleet: cheaper for the store than a long list
	}
	failing, err := s.st.FailingAt(ctx, q.At, ruleIDs, hostIDs)
	if err != nil {
		return fmt.Errorf("posture: accepted failures at %s: %w", at.Format(time.RFC3339), err)
	}
	for _, f := range failing {
		if _, ok := acc[f.HostID][f.RuleID]; !ok {
			continue
		}
		c, ok := counts[f.HostID]
		if !ok {
			continue
		}
		c.Accepted++
		if f.Severity == rule.Critical {
			c.AcceptedCritical++
		}
		counts[f.HostID] = c
	}
	return nil
}

// selectHosts returns the hosts a query names, ordered by name.
func (s *Service) selectHosts(ctx context.Context, q FleetQuery) ([]store.Host, error) {
	if q.HostID > 0 {
		h, err := s.st.Host(ctx, q.HostID)
		if err != nil {
			return nil, fmt.Errorf("posture: host %d: %w", q.HostID, err)
		}
		if q.Group != "" && !slices.Contains(h.Groups, q.Group) {
			return nil, nil
		}
		return []store.Host{h}, nil
	}
	all, err := s.st.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("posture: list hosts: %w", err)
	}
	if q.Group == "" {
		return all, nil
	}
	var out []store.Host
	for _, h := range all {
		if slices.Contains(h.Groups, q.Group) {
			out = append(out, h)
		}
	}
	return out, nil
}

// countsAt asks the store for the hosts' counts at `at` in one query:
// CurrentCounts for the present view (q.At zero), CountsAt otherwise.
func (s *Service) countsAt(ctx context.Context, hosts []store.Host, at time.Time, q FleetQuery) (map[int64]Counts, error) {
	ruleIDs, _ := s.idx.RuleIDs(q.Framework)
	if len(hosts) == 0 || (ruleIDs != nil && len(ruleIDs) == 0) {
		return nil, nil // nothing to count; an empty rule list would mean "every rule" to the store
	}
	var hostIDs []int64 // nil: every host, cheaper than a long list when the whole fleet is asked for
	if q.Group != "" || q.HostID > 0 {
		hostIDs = make([]int64, len(hosts))
		for i, h := range hosts {
			hostIDs[i] = h.ID
		}
	}
	var hcs []store.HostCounts
	var err error
	if q.At.IsZero() {
		hcs, err = s.st.CurrentCounts(ctx, ruleIDs, hostIDs) // current state is the state now: no log replay
	} else {
		hcs, err = s.st.CountsAt(ctx, at, ruleIDs, hostIDs)
	}
	if err != nil {
		return nil, fmt.Errorf("posture: counts at %s: %w", at.Format(time.RFC3339), err)
	}
	out := make(map[int64]Counts, len(hcs))
	for _, hc := range hcs {
		out[hc.HostID] = Counts{
			Pass: hc.Counts[result.Pass], Fail: hc.Counts[result.Fail], Error: hc.Counts[result.Error],
			Skipped: hc.Counts[result.Skipped], CriticalFail: hc.CriticalFail,
		}
	}
	return out, nil
}

// statesAt rebuilds every host's rule states at `at`, keeping the rules
// `in` accepts (nil: all), and counts them.
func (s *Service) statesAt(ctx context.Context, hosts []store.Host, at time.Time, in func(string) bool) (map[int64]Counts, map[int64][]RuleState, error) {
	counts := make(map[int64]Counts, len(hosts))
	states := make(map[int64][]RuleState, len(hosts))
	for _, h := range hosts {
		fs, err := s.st.StateAt(ctx, h.ID, at)
		if err != nil {
			return nil, nil, fmt.Errorf("posture: state of host %d (%s): %w", h.ID, h.Name, err)
		}
		var c Counts
		var rs []RuleState
		for _, f := range fs {
			if in != nil && !in(f.RuleID) {
				continue
			}
			c.add(f.Status, f.Severity == rule.Critical)
			rs = append(rs, RuleState{RuleID: f.RuleID, Status: f.Status, Severity: f.Severity, ScanID: f.ScanID, Since: f.At})
		}
		counts[h.ID], states[h.ID] = c, rs
	}
	return counts, states, nil
}
