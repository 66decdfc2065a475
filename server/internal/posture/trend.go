package posture

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// MaxTrendDays bounds a trend: a year, leap day included.
const MaxTrendDays = 366

// TrendPoint is a host's posture on one day. Snapshots keep no count of
// critical failures, so Counts.CriticalFail is always zero here; Band
// still says critical when one was failing.
type TrendPoint struct {
	Day     time.Time `json:"day"`
	Score   float64   `json:"score"`
	Band    Band      `json:"band"`
	Counts  Counts    `json:"counts"`
	Carried bool      `json:"carried"` // no scan that day: the last known value
}

// Trend returns one point per day for the last `days` days (oldest first)
// for a framework ("" = all rules), carrying the last known value over days
// without a scan; days before the first scan are omitted. Today (UTC) is
// the last day; days must be 1..MaxTrendDays.
func (s *Service) Trend(ctx context.Context, hostID int64, days int, framework string) ([]TrendPoint, error) {
	if days < 1 || days > MaxTrendDays {
		return nil, invalid("days", "days must be 1..%d, got %d", MaxTrendDays, days)
	}
	if _, ok := s.idx.RuleIDs(framework); !ok {
		return nil, unknownFramework(framework)
	}
	if _, err := s.st.Host(ctx, hostID); err != nil {
		return nil, fmt.Errorf("posture: trend of host %d: %w", hostID, err)
	}
	today := utcDay(s.now())
	first := today.AddDate(0, 0, -(days - 1))
	snaps, err := s.st.Snapshots(ctx, store.SnapshotFilter{HostIDs: []int64{hostID}, Framework: framework, From: first, To: today})
	if err != nil {
		return nil, fmt.Errorf("posture: trend of host %d: %w", hostID, err)
	}
	byDay := make(map[time.Time]store.Snapshot, len(snaps))
	for _, sn := range snaps {
		byDay[utcDay(sn.Day)] = sn
	}
	var last *store.Snapshot
	if _, ok := byDay[first]; !ok {
		if last, err = s.lastBefore(ctx, hostID, framework, first); err != nil {
			return nil, err
		}
	}
	out := make([]TrendPoint, 0, days)
	for d := first; !d.After(today); d = d.AddDate(0, 0, 1) {
		sn, ok := byDay[d]
		switch {
		case ok:
			last = &sn
		case last == nil:
			continue // before the first snapshot
		}
		out = append(out, TrendPoint{
			Day: d, Score: last.Score, Band: Band(last.Band), Carried: !ok,
			Counts: Counts{Pass: last.Pass, Fail: last.Fail, Error: last.Error, Skipped: last.Skipped},
		})
	}
	return out, nil
}

// lastBefore returns the host's latest snapshot for a framework on a day
// before `day`, or nil. A host keeps at most one snapshot a day per
// framework, so reading its whole earlier series stays small.
func (s *Service) lastBefore(ctx context.Context, hostID int64, framework string, day time.Time) (*store.Snapshot, error) {
	snaps, err := s.st.Snapshots(ctx, store.SnapshotFilter{HostIDs: []int64{hostID}, Framework: framework,
		From: time.Unix(0, 0).UTC(), To: day.AddDate(0, 0, -1)})
	if err != nil {
		return nil, fmt.Errorf("posture: trend of host %d: before %s: %w", hostID, day.Format(time.DateOnly), err)
	}
	if len(snaps) == 0 {
		return nil, nil
	}
	return &snaps[len(snaps)-1], nil
}
