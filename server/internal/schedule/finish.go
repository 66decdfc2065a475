package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Finisher records the end of a claimed scan, whoever ran it: the
// scheduler's own agentless scans and the scans agents report. Both must
// end a scan the same way (status, posture, next due time from the
// intervals, one confirming re-scan when a critical rule starts failing),
// so that logic lives here once. Safe for concurrent use.
type Finisher struct {
	st        store.Store
	post      Recorder
	intervals Intervals
	log       *slog.Logger
	now       func() time.Time
	wake      func()

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand
}

// FinisherConfig is what a Finisher needs; Store and Posture are required.
type FinisherConfig struct {
	Store     store.Store
	Posture   Recorder
	Intervals Intervals        // default DefaultIntervals()
	Logger    *slog.Logger     // default slog.Default()
	Now       func() time.Time // default time.Now
	// Wake is called after a confirming re-scan was requested, so that
	// whoever claims the host looks at once; nil is allowed.
	Wake func()
}

// NewFinisher checks cfg and applies defaults.
func NewFinisher(cfg FinisherConfig) (*Finisher, error) {
	if cfg.Store == nil || cfg.Posture == nil {
		return nil, errors.New("schedule: finisher: Store and Posture are required")
	}
	if cfg.Intervals == (Intervals{}) {
		cfg.Intervals = DefaultIntervals()
	}
	if err := cfg.Intervals.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	return &Finisher{st: cfg.Store, post: cfg.Posture, intervals: cfg.Intervals, log: cfg.Logger,
		now: cfg.Now, wake: cfg.Wake, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}, nil
}

// Ending describes a scan whose results are all stored.
type Ending struct {
	Host   store.Host
	ScanID int64
	Owner  string // the lease owner that claimed the host
	Reason string // the claim reason (scan trigger): first, scheduled, manual, rescan
	Counts result.Summary
	// Fallback scores the scan's own results when the posture service
	// cannot; nil means "nothing known" (no band, so the shortest interval).
	Fallback func() posture.Outcome
}

// Finished is what completing a scan decided.
type Finished struct {
	Outcome    posture.Outcome
	NextScanAt time.Time
	// Rescan is true when a confirming re-scan was requested.
	Rescan bool
	// LeaseLost is true when the owner no longer held the lease, so the
	// schedule was left to whoever holds it now.
	LeaseLost bool
}

// Complete marks the scan completed with its counts, records posture,
// ends the owner's lease with the next due time for the band and, when a
// critical rule started failing and this scan was not itself a re-scan,
// requests one confirming re-scan.
func (f *Finisher) Complete(ctx context.Context, e Ending) (Finished, error) {
	now := f.now()
	if err := f.st.FinishScan(ctx, e.ScanID, store.ScanCompleted, now, e.Counts); err != nil {
		return Finished{}, fmt.Errorf("schedule: host %s: finishing scan %d: %w", e.Host.Name, e.ScanID, err)
	}
	return f.Schedule(ctx, e)
}

// Schedule is Complete for a scan already marked completed: posture, the
// next due time and the confirming re-scan.
func (f *Finisher) Schedule(ctx context.Context, e Ending) (Finished, error) {
	log := f.log.With("host", e.Host.Name, "host_id", e.Host.ID, "scan_id", e.ScanID)
	out, err := f.post.RecordScan(ctx, e.Host.ID, e.ScanID)
	if err != nil {
		// The results are stored, so the scan stands; schedule by the
		// posture of this scan's own results instead.
		out = posture.Outcome{}
		if e.Fallback != nil {
			out = e.Fallback()
		}
		log.Error("recording posture failed; scheduling by this scan's results", "err", err, "band", out.Band)
	}
	now := f.now()
	next := f.next(out.Band, now)
	done := Finished{Outcome: out, NextScanAt: next}
	err = f.st.CompleteClaim(ctx, e.Host.ID, e.Owner, store.Completion{
		ScannedAt: now, NextScanAt: next, Score: out.Score, Band: string(out.Band),
	})
	if errors.Is(err, store.ErrNotFound) {
		// The lease expired and someone else may be scanning the host; its
		// completion will set the schedule.
		log.Warn("lease lost before the scan was recorded", "owner", e.Owner)
		done.LeaseLost = true
		return done, nil
	}
	if err != nil {
		return done, fmt.Errorf("schedule: host %s: completing claim: %w", e.Host.Name, err)
	}
	log.Info("scan completed", "pass", e.Counts.Pass, "fail", e.Counts.Fail, "error", e.Counts.Error,
		"score", out.Score, "band", out.Band, "next_scan_at", next)
	if len(out.NewCriticalFailures) == 0 || e.Reason == TriggerRescan {
		return done, nil
	}
	log.Warn("critical rules started failing; requesting a confirming re-scan",
		"rules", strings.Join(out.NewCriticalFailures, ","))
	if err := f.st.RequestScan(ctx, e.Host.ID, TriggerRescan, now); err != nil {
		return done, fmt.Errorf("schedule: host %s: requesting re-scan: %w", e.Host.Name, err)
	}
	done.Rescan = true
	f.wake()
	return done, nil
}

// Fail records a failed scan and gives the owner's lease back, the host
// due again at retry. A lease no longer held is not an error.
func (f *Finisher) Fail(ctx context.Context, hostID, scanID int64, owner, msg string, retry time.Time) error {
	var errs []error
	if err := f.st.FailScan(ctx, scanID, f.now(), msg); err != nil {
		errs = append(errs, fmt.Errorf("schedule: host %d: recording failed scan %d: %w", hostID, scanID, err))
	}
	if err := f.st.ReleaseClaim(ctx, hostID, owner, retry); err != nil && !errors.Is(err, store.ErrNotFound) {
		errs = append(errs, fmt.Errorf("schedule: host %d: releasing lease: %w", hostID, err))
	}
	return errors.Join(errs...)
}

// next is Intervals.Next with the finisher's random source.
func (f *Finisher) next(band posture.Band, now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.intervals.Next(band, now, f.rnd)
}
