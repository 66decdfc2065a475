package posture

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Change is one observed state change.
type Change struct {
	At     time.Time     `json:"at"`
	From   result.Status `json:"from"`
	To     result.Status `json:"to"`
	ScanID int64         `json:"scan_id"`
}

// Drift is a rule on a host whose state changed between two moments.
type Drift struct {
	HostID   int64         `json:"host_id"`
	HostName string        `json:"host"`
	RuleID   string        `json:"rule_id"`
	Severity rule.Severity `json:"severity"`
	Before   result.Status `json:"before"` // state at from ("" if unknown)
	After    result.Status `json:"after"`  // state at to
	Changes  []Change      `json:"changes"`
}

// Drift lists rules whose state at `to` differs from their state at `from`
// (on one host when hostID > 0), each with the scans that saw each change.
// Changes count when from < At <= to. A rule that changed and changed
// back is not drift. The state at `from` is the first change's From: the
// log holds every change, so nothing else moved the rule in between. For
// the whole fleet, hosts no longer in the inventory are left out. The
// result is ordered by host name, then rule id.
func (s *Service) Drift(ctx context.Context, from, to time.Time, hostID int64) ([]Drift, error) {
	if !from.Before(to) {
		return nil, invalid("from", "from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	names, err := s.hostNames(ctx, hostID)
	if err != nil {
		return nil, err
	}
	// The store's window is [from, to); shifting both ends by its
	// precision (a microsecond) gives (from, to].
	trs, err := s.st.FleetTransitions(ctx, from.Add(time.Microsecond), to.Add(time.Microsecond), hostID)
	if err != nil {
		return nil, fmt.Errorf("posture: drift of host %d from %s to %s: %w", hostID, from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	// The store orders by host, rule, time; a stable sort keeps that
	// promise local, so grouping below stays right whatever the driver.
	sort.SliceStable(trs, func(i, j int) bool {
		if trs[i].HostID != trs[j].HostID {
			return trs[i].HostID < trs[j].HostID
		}
		return trs[i].RuleID < trs[j].RuleID
	})
	var out []Drift
	for i := 0; i < len(trs); {
		j := i + 1
		for j < len(trs) && trs[j].HostID == trs[i].HostID && trs[j].RuleID == trs[i].RuleID {
			j++
		}
		if d, ok := driftOf(trs[i:j], names); ok {
			out = append(out, d)
		}
		i = j
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].HostName != out[j].HostName {
			return out[i].HostName < out[j].HostName
		}
		if out[i].HostID != out[j].HostID {
			return out[i].HostID < out[j].HostID
		}
		return out[i].RuleID < out[j].RuleID
	})
	return out, nil
}

// driftOf folds one (host, rule)'s changes, oldest first, into a Drift;
// ok is false when the rule ended where it started or the host is not
// listed.
func driftOf(trs []store.Transition, names map[int64]string) (Drift, bool) {
	first, last := trs[0], trs[len(trs)-1]
	name, listed := names[first.HostID]
	if !listed || first.From == last.Status {
		return Drift{}, false
	}
	d := Drift{HostID: first.HostID, HostName: name, RuleID: first.RuleID, Severity: last.Severity,
		Before: first.From, After: last.Status, Changes: make([]Change, len(trs))}
	for k, t := range trs {
		d.Changes[k] = Change{At: t.At, From: t.From, To: t.Status, ScanID: t.ScanID}
	}
	return d, true
}

// hostNames maps the ids of the hosts a drift query covers to their names.
func (s *Service) hostNames(ctx context.Context, hostID int64) (map[int64]string, error) {
	if hostID > 0 {
		h, err := s.st.Host(ctx, hostID)
		if err != nil {
			return nil, fmt.Errorf("posture: drift of host %d: %w", hostID, err)
		}
		return map[int64]string{h.ID: h.Name}, nil
	}
	hosts, err := s.st.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("posture: drift: list hosts: %w", err)
	}
	names := make(map[int64]string, len(hosts))
	for _, h := range hosts {
		names[h.ID] = h.Name
	}
	return names, nil
}
