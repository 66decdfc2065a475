package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultWorkers    = 4
	DefaultPoll       = 15 * time.Second
	DefaultLease      = 30 * time.Minute
	DefaultRetryAfter = 15 * time.Minute
	DefaultBatchSize  = 500
)

// TriggerRescan is the claim reason (and scan trigger) of a confirming
// re-scan. A re-scan never asks for another, which is what keeps a host
// whose critical rule keeps failing from being scanned in a loop.
const TriggerRescan = "rescan"

// finishTimeout bounds the store writes that finish or release a scan
// after the scheduler's context was cancelled.
const finishTimeout = 30 * time.Second

// Scanner scans one host; agentless.Scanner is the production one.
type Scanner interface {
	Scan(ctx context.Context, h store.Host) (*engine.Report, error)
}

// Recorder turns a finished scan into posture; *posture.Service is the
// production one.
type Recorder interface {
	RecordScan(ctx context.Context, hostID, scanID int64) (posture.Outcome, error)
}

// Config is what a Scheduler needs. New applies the defaults noted on each
// field to zero values.
type Config struct {
	Store   store.Store // required
	Posture Recorder    // required
	Scanner Scanner     // required
	// Owner names this replica in leases; replicas must differ. Default
	// "<hostname>/<pid>".
	Owner     string
	Intervals Intervals // default DefaultIntervals()
	Workers   int       // hosts scanned at once; default 4
	// Poll is how often Run looks for due hosts; default 15 s.
	Poll time.Duration
	// Lease is how long a claimed host stays this replica's; a replica
	// that dies loses its hosts to others after it. Default 30 min.
	Lease time.Duration
	// RetryAfter is when a host whose scan failed is tried again; default 15 min.
	RetryAfter time.Duration
	// BatchSize is the number of results ingested per store batch; default 500.
	BatchSize int
	Logger    *slog.Logger     // default slog.Default()
	Now       func() time.Time // default time.Now
}

// Scheduler claims due agentless hosts and scans them with a bounded pool.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	fin  *Finisher

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand
}

// New checks cfg, applies defaults and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.Posture == nil || cfg.Scanner == nil {
		return nil, errors.New("schedule: Store, Posture and Scanner are required")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if cfg.Intervals == (Intervals{}) {
		cfg.Intervals = DefaultIntervals()
	}
	if err := cfg.Intervals.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scheduler{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "scheduler", "owner", cfg.Owner),
		wake: make(chan struct{}, 1),
		rnd:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	fin, err := NewFinisher(FinisherConfig{Store: cfg.Store, Posture: cfg.Posture, Intervals: cfg.Intervals,
		Logger: s.log, Now: cfg.Now, Wake: s.Wake})
	if err != nil {
		return nil, err
	}
	s.fin = fin
	return s, nil
}

// Wake makes Run look for due hosts now rather than at the next poll (after
// a manual scan request, say). It never blocks; wakes while one is pending
// merge into one.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run scans due hosts until ctx is done, then returns nil once the scans
// in flight have been recorded or released. A pass that filled every
// worker is followed at once by another; otherwise Run waits for Poll
// (jittered) or Wake. Store errors are logged and retried with backoff.
func (s *Scheduler) Run(ctx context.Context) error {
	s.log.Info("scheduler started", "workers", s.cfg.Workers, "poll", s.cfg.Poll)
	failures := 0
	for ctx.Err() == nil {
		n, err := s.RunOnce(ctx)
		wait := s.jittered(s.cfg.Poll)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			wait = s.jittered(s.cfg.Poll << min(failures, 5))
			s.log.Error("scheduling pass failed", "err", err, "retry_in", wait)
		case n >= s.cfg.Workers:
			failures = 0
			continue // more may be due
		default:
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
	s.log.Info("scheduler stopped")
	return nil
}

// jittered returns d shortened or lengthened by up to 10% at random.
func (s *Scheduler) jittered(d time.Duration) time.Duration {
	s.mu.Lock()
	f := 0.9 + 0.2*s.rnd.Float64()
	s.mu.Unlock()
	return time.Duration(float64(d) * f)
}

// RunOnce claims up to Workers due agentless hosts and scans them
// concurrently, returning how many it claimed. A host whose scan fails is
// recorded as a failed scan and retried after RetryAfter; that is not an
// error here, and never stops the other hosts. The error reports only what
// the store would not record (claiming, finishing or releasing).
func (s *Scheduler) RunOnce(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	claims, err := s.cfg.Store.ClaimDue(ctx, store.ClaimRequest{
		Owner: s.cfg.Owner, Now: s.cfg.Now(), Limit: s.cfg.Workers, Lease: s.cfg.Lease,
	})
	if err != nil {
		return 0, fmt.Errorf("schedule: claiming due hosts: %w", err)
	}
	errs := make([]error, len(claims))
	var g errgroup.Group
	g.SetLimit(s.cfg.Workers)
	for i, c := range claims {
		g.Go(func() error {
			errs[i] = s.process(ctx, c)
			return nil
		})
	}
	_ = g.Wait() // process never fails the group: one host never stops the others
	return len(claims), errors.Join(errs...)
}

// process runs one claimed host's scan from start to recorded posture. The
// scan itself stops when ctx does; what follows it runs on a context
// detached from ctx (see detached), so a scan that finished is recorded and
// a lease is always completed or released, even during shutdown.
func (s *Scheduler) process(ctx context.Context, c store.Claim) error {
	log := s.log.With("host_id", c.HostID, "reason", c.Reason)
	h, err := s.cfg.Store.Host(ctx, c.HostID)
	if errors.Is(err, store.ErrNotFound) {
		log.Info("claimed host was deleted; skipping")
		return nil
	}
	if err != nil {
		return s.release(ctx, c.HostID, s.retryAt(ctx), fmt.Errorf("schedule: host %d: %w", c.HostID, err))
	}
	log = log.With("host", h.Name)
	scan, err := s.cfg.Store.CreateScan(ctx, store.Scan{
		HostID: h.ID, Trigger: c.Reason, Status: store.ScanRunning, StartedAt: s.cfg.Now(),
	})
	if err != nil {
		return s.release(ctx, h.ID, s.retryAt(ctx), fmt.Errorf("schedule: host %s: creating scan: %w", h.Name, err))
	}
	log = log.With("scan_id", scan.ID)

	rep, err := s.cfg.Scanner.Scan(ctx, h)
	if err != nil {
		msg := err.Error()
		if ctx.Err() != nil { // shutdown, not the host's fault
			msg = "scan interrupted: scheduler stopping: " + msg
		}
		retry := s.retryAt(ctx)
		log.Warn("scan failed", "err", err, "retry_at", retry)
		return s.fail(ctx, h, scan.ID, msg, retry)
	}
	fctx, cancel := detached(ctx)
	defer cancel()
	if err := s.ingest(fctx, scan, rep); err != nil {
		log.Error("storing scan failed", "err", err)
		return s.fail(ctx, h, scan.ID, err.Error(), s.cfg.Now().Add(s.cfg.RetryAfter))
	}
	return s.complete(fctx, h, c, scan, rep)
}

// detached returns a context that outlives ctx's cancellation for at most
// finishTimeout, for the store writes that must follow a scan.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// retryAt is when a host whose attempt failed is due again: after
// RetryAfter, or at once when the failure came from shutting down, so
// that another replica takes the host over without waiting.
func (s *Scheduler) retryAt(ctx context.Context) time.Time {
	if ctx.Err() != nil {
		return s.cfg.Now()
	}
	return s.cfg.Now().Add(s.cfg.RetryAfter)
}

// ingest stores the report's results in batches numbered from 1, then
// marks the scan completed with its counts.
func (s *Scheduler) ingest(ctx context.Context, scan store.Scan, rep *engine.Report) error {
	seq := int64(0)
	for start := 0; start < len(rep.Results); start += s.cfg.BatchSize {
		seq++
		end := min(start+s.cfg.BatchSize, len(rep.Results))
		b := store.Batch{ScanID: scan.ID, Seq: seq, Results: rep.Results[start:end]}
		if _, err := s.cfg.Store.Ingest(ctx, b); err != nil {
			return fmt.Errorf("storing results (batch %d): %w", seq, err)
		}
	}
	if err := s.cfg.Store.FinishScan(ctx, scan.ID, store.ScanCompleted, s.cfg.Now(), rep.Summary); err != nil {
		return fmt.Errorf("finishing scan: %w", err)
	}
	return nil
}

// complete records posture, schedules the next scan and, when a critical
// rule started failing, asks for one confirming re-scan (see Finisher).
func (s *Scheduler) complete(ctx context.Context, h store.Host, c store.Claim, scan store.Scan, rep *engine.Report) error {
	_, err := s.fin.Schedule(ctx, Ending{Host: h, ScanID: scan.ID, Owner: s.cfg.Owner, Reason: c.Reason,
		Counts: rep.Summary, Fallback: func() posture.Outcome { return reportOutcome(rep) }})
	return err
}

// reportOutcome scores a report's own results, for when the posture
// service cannot say.
func reportOutcome(rep *engine.Report) posture.Outcome {
	var c posture.Counts
	for _, r := range rep.Results {
		switch r.Status {
		case result.Pass:
			c.Pass++
		case result.Fail:
			c.Fail++
			if r.Severity == rule.Critical {
				c.CriticalFail++
			}
		case result.Error:
			c.Error++
		}
	}
	score := posture.Score(c)
	return posture.Outcome{Score: score, Band: posture.BandOf(score, c.CriticalFail)}
}

// fail records a failed scan and releases the host for a retry at retry,
// even when ctx is done.
func (s *Scheduler) fail(ctx context.Context, h store.Host, scanID int64, msg string, retry time.Time) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := s.fin.Fail(ctx, h.ID, scanID, s.cfg.Owner, msg, retry); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// release gives the host's lease back, due again at retry, even when ctx
// is done; cause (if any) is returned joined with a release failure.
func (s *Scheduler) release(ctx context.Context, hostID int64, retry time.Time, cause error) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	err := s.cfg.Store.ReleaseClaim(ctx, hostID, s.cfg.Owner, retry)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return errors.Join(cause, fmt.Errorf("schedule: host %d: releasing lease: %w", hostID, err))
	}
	return cause
}
