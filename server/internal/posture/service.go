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

// clockSkew widens the window in which RecordScan looks for a scan's
// transitions: a transition is stamped with the result's time, which an
// agent's clock sets, while the scan's start is the server's.
const clockSkew = time.Hour

// Service answers posture questions from the store.
type Service struct {
	st      store.Store
	idx     *Index
	now     func() time.Time
	waivers Waivers // nil: no exceptions applied
}

// SetWaivers makes the service apply approved exceptions (Counts.Accepted,
// the *WithExceptions scores, RuleState.Accepted). Call it before serving.
func (s *Service) SetWaivers(w Waivers) { s.waivers = w }

// NewService returns a Service; now is the clock (time.Now in production).
func NewService(st store.Store, idx *Index, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, idx: idx, now: now}
}

// Index returns the rule index the service scores with.
func (s *Service) Index() *Index { return s.idx }

// Outcome is what recording a finished scan learned.
type Outcome struct {
	Score float64
	Band  Band
	// NewCriticalFailures are critical rules this scan saw start failing.
	NewCriticalFailures []string
}

// RecordScan computes the host's posture after scan scanID finished,
// upserts today's snapshot for every framework and for all rules, and
// reports new critical failures. Frameworks no rule maps to get no
// snapshot; a framework none of whose rules the host reported gets Band ""
// and score 0 (nothing assessed), as does the all-rules view of a host
// with no rule state at all. Calling it again for the same scan rewrites
// the same snapshots and reports the same failures.
func (s *Service) RecordScan(ctx context.Context, hostID, scanID int64) (Outcome, error) {
	sc, err := s.st.Scan(ctx, scanID)
	if err != nil {
		return Outcome{}, fmt.Errorf("posture: record scan %d of host %d: %w", scanID, hostID, err)
	}
	if sc.HostID != hostID {
		return Outcome{}, fmt.Errorf("posture: record scan %d of host %d: the scan belongs to host %d: %w",
			scanID, hostID, sc.HostID, store.ErrNotFound)
	}
	cur, err := s.st.CurrentState(ctx, hostID)
	if err != nil {
		return Outcome{}, fmt.Errorf("posture: record scan %d of host %d: %w", scanID, hostID, err)
	}
	byFw := s.countByFramework(cur)
	day := utcDay(s.now())
	snaps := make([]store.Snapshot, 0, len(byFw))
	for fw, c := range byFw {
		score, band := assess(c)
		snaps = append(snaps, store.Snapshot{
			HostID: hostID, Framework: fw, Day: day, Score: score,
			Pass: c.Pass, Fail: c.Fail, Error: c.Error, Skipped: c.Skipped,
			Band: string(band), ScanID: scanID,
		})
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Framework < snaps[j].Framework })
	if err := s.st.PutSnapshots(ctx, snaps); err != nil {
		return Outcome{}, fmt.Errorf("posture: record scan %d of host %d: %w", scanID, hostID, err)
	}
	var out Outcome
	out.Score, out.Band = assess(byFw[""])
	out.NewCriticalFailures, err = s.newCriticalFailures(ctx, sc)
	if err != nil {
		return Outcome{}, fmt.Errorf("posture: record scan %d of host %d: %w", scanID, hostID, err)
	}
	return out, nil
}

// countByFramework counts a host's rule states for all rules ("") and for
// every framework that has at least one rule in the index. A framework
// none of the host's rules maps to still gets (empty) counts, so its
// snapshot says "nothing assessed" rather than carrying an older value.
func (s *Service) countByFramework(fs []store.Finding) map[string]Counts {
	out := map[string]Counts{"": {}}
	for _, fw := range s.idx.frameworks {
		if fw.Rules > 0 {
			out[fw.ID] = Counts{}
		}
	}
	for _, f := range fs {
		crit := f.Severity == rule.Critical
		c := out[""]
		c.add(f.Status, crit)
		out[""] = c
		for _, fw := range s.idx.frameworksOf(f.RuleID) {
			c := out[fw]
			c.add(f.Status, crit)
			out[fw] = c
		}
	}
	return out
}

// newCriticalFailures lists the critical rules that scan sc moved into
// fail, sorted. The transition log records changes only, so a rule still
// failing since an earlier scan is not reported again.
func (s *Service) newCriticalFailures(ctx context.Context, sc store.Scan) ([]string, error) {
	trs, err := s.st.Transitions(ctx, sc.HostID, sc.StartedAt.Add(-clockSkew), farFuture())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range trs {
		if t.ScanID != sc.ID || t.Status != result.Fail || t.From == result.Fail || t.Severity != rule.Critical {
			continue
		}
		if !seen[t.RuleID] {
			seen[t.RuleID] = true
			out = append(out, t.RuleID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// farFuture is an upper time bound past any real observation that both
// databases store.
func farFuture() time.Time { return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }

// utcDay returns the UTC midnight starting t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
