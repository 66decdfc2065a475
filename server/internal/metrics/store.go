package metrics

import (
	"context"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Store wraps a store.Store and times every call into
// vigil_store_query_duration_seconds{method}. The scan life-cycle calls
// also feed the scan and ingest families, so every path that starts, ends
// or ingests a scan (scheduler, agents, imports) is counted without those
// packages knowing about metrics. store_gen.go holds the generated
// wrappers; a method missing there passes through untimed (embedding) and
// TestStoreWrapperGenerated fails until it is regenerated.
type Store struct {
	store.Store
	m *Metrics
}

var _ store.Store = (*Store)(nil)

// WrapStore returns st instrumented with m.
func (m *Metrics) WrapStore(st store.Store) *Store { return &Store{Store: st, m: m} }

// CreateScan counts a started scan.
func (s *Store) CreateScan(ctx context.Context, sc store.Scan) (store.Scan, error) {
	defer s.m.observeStore("CreateScan", time.Now())
	out, err := s.Store.CreateScan(ctx, sc)
	if err == nil {
		s.m.scansStarted.Inc()
	}
	return out, err
}

// FinishScan counts the scan's end by status and observes its duration.
func (s *Store) FinishScan(ctx context.Context, scanID int64, st store.ScanStatus, at time.Time, counts result.Summary) error {
	start := time.Now()
	err := s.Store.FinishScan(ctx, scanID, st, at, counts)
	s.m.observeStore("FinishScan", start)
	if err == nil {
		s.ended(ctx, scanID, string(st), at)
	}
	return err
}

// FailScan counts a failed scan and observes its duration.
func (s *Store) FailScan(ctx context.Context, scanID int64, at time.Time, message string) error {
	start := time.Now()
	err := s.Store.FailScan(ctx, scanID, at, message)
	s.m.observeStore("FailScan", start)
	if err == nil {
		s.ended(ctx, scanID, string(store.ScanFailed), at)
	}
	return err
}

// ended records a scan's end; the duration needs the start time, one
// small read per scan.
func (s *Store) ended(ctx context.Context, scanID int64, status string, at time.Time) {
	s.m.scansEnded.WithLabelValues(status).Inc()
	if sc, err := s.Store.Scan(ctx, scanID); err == nil && !sc.StartedAt.IsZero() && !at.Before(sc.StartedAt) {
		s.m.scanDuration.WithLabelValues(status).Observe(at.Sub(sc.StartedAt).Seconds())
	}
}

// Ingest counts the results a batch stored and observes its latency.
func (s *Store) Ingest(ctx context.Context, b store.Batch) (store.IngestStats, error) {
	start := time.Now()
	st, err := s.Store.Ingest(ctx, b)
	d := time.Since(start).Seconds()
	s.m.storeLatency.WithLabelValues("Ingest").Observe(d)
	if err == nil {
		s.m.ingestLatency.Observe(d)
		s.m.resultsIngested.Add(float64(st.Results))
	}
	return st, err
}
