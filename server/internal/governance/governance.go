// Package governance holds what turns findings into decisions: exceptions
// (waivers) with approval and expiry, and alerts on compliance changes
// with their lifecycle and notifications.
package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Sink receives the alert events of one evaluation at once, in order
// (notify.Notifier implements it): handed over together, they can be
// summarised per channel (an alert storm becomes one digest) and a
// failing channel costs the evaluation once, not once per alert.
type Sink interface {
	NotifyAll(ctx context.Context, events []notify.Event)
}

// Event is one alert event handed to the Sink: Name is EventOpened or
// EventResolved.
type Event = notify.Event

// Thresholds configure the alert conditions.
type Thresholds struct {
	FailingSeverities []rule.Severity // a rule of these severities starting to fail alerts; default critical, high
	ScoreDrop         float64         // points a host's score may fall within ScoreDropWindow; default 10
	ScoreDropWindow   time.Duration   // default 24 h
	BandFloor         posture.Band    // a host in a band worse than this alerts; default fair
	MassDriftHosts    int             // hosts changing one rule within MassDriftWindow; default 5
	MassDriftWindow   time.Duration   // default 1 h
	OverdueAfter      time.Duration   // no completed scan for this long; default 48 h
	AgentOfflineAfter time.Duration   // agent silent this long; default 10 min
	ExpiringWithin    time.Duration   // approved exception expiring within; default 7 days
}

// DefaultThresholds returns the thresholds used for every zero field, so
// that configuration and documentation quote one set of defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{
		FailingSeverities: []rule.Severity{rule.Critical, rule.High},
		ScoreDrop:         10,
		ScoreDropWindow:   24 * time.Hour,
		BandFloor:         posture.BandFair,
		MassDriftHosts:    5,
		MassDriftWindow:   time.Hour,
		OverdueAfter:      48 * time.Hour,
		AgentOfflineAfter: 10 * time.Minute,
		ExpiringWithin:    7 * 24 * time.Hour,
	}
}

// withDefaults fills every zero field from DefaultThresholds.
func (t Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if len(t.FailingSeverities) == 0 {
		t.FailingSeverities = d.FailingSeverities
	}
	if t.ScoreDrop == 0 {
		t.ScoreDrop = d.ScoreDrop
	}
	if t.ScoreDropWindow == 0 {
		t.ScoreDropWindow = d.ScoreDropWindow
	}
	if t.BandFloor == posture.BandNone {
		t.BandFloor = d.BandFloor
	}
	if t.MassDriftHosts == 0 {
		t.MassDriftHosts = d.MassDriftHosts
	}
	if t.MassDriftWindow == 0 {
		t.MassDriftWindow = d.MassDriftWindow
	}
	if t.OverdueAfter == 0 {
		t.OverdueAfter = d.OverdueAfter
	}
	if t.AgentOfflineAfter == 0 {
		t.AgentOfflineAfter = d.AgentOfflineAfter
	}
	if t.ExpiringWithin == 0 {
		t.ExpiringWithin = d.ExpiringWithin
	}
	return t
}

// validate refuses thresholds no evaluation could use sensibly.
func (t Thresholds) validate() error {
	for _, s := range t.FailingSeverities {
		if s.Rank() == 0 {
			return fmt.Errorf("governance: failing severity %q is not critical, high, medium or low", s)
		}
	}
	if bandRank(t.BandFloor) < 0 {
		return fmt.Errorf("governance: band floor %q is not a band", t.BandFloor)
	}
	if t.ScoreDrop < 0 || t.ScoreDrop > 100 {
		return fmt.Errorf("governance: score drop %g is not 0..100", t.ScoreDrop)
	}
	if t.MassDriftHosts < 1 {
		return fmt.Errorf("governance: mass drift hosts %d is below 1", t.MassDriftHosts)
	}
	for _, d := range []time.Duration{t.ScoreDropWindow, t.MassDriftWindow, t.OverdueAfter, t.AgentOfflineAfter, t.ExpiringWithin} {
		if d < 0 {
			return fmt.Errorf("governance: negative duration %s in thresholds", d)
		}
	}
	return nil
}

// Config configures the Service.
type Config struct {
	Store      store.Store
	Posture    *posture.Service
	Sink       Sink // nil: alerts are recorded, not sent
	Logger     *slog.Logger
	Now        func() time.Time // nil: time.Now
	Thresholds Thresholds
	Interval   time.Duration // evaluation period of Run; default 1 min
	// SightingRefresh is how often an open alert whose condition keeps
	// holding unchanged is recorded again (LastSeenAt, Count); 0 means
	// DefaultSightingRefresh. Between refreshes an evaluation writes
	// nothing for it, so a steady fleet with thousands of open alerts
	// costs reads only. A change of severity, title, detail or labels, or
	// a lapsed silence, is written at once.
	SightingRefresh time.Duration
	// OnEvaluate is told the alert counts by state after each evaluation
	// (metrics); nil is allowed.
	OnEvaluate func(map[store.AlertState]int)
}

// DefaultInterval is how often Run evaluates when Config.Interval is zero.
const DefaultInterval = time.Minute

// DefaultSightingRefresh is Config.SightingRefresh's default.
const DefaultSightingRefresh = 15 * time.Minute

// ExceptionRequest asks to accept a failing rule.
type ExceptionRequest struct {
	RuleID        string
	HostID        int64 // one host, or
	GroupID       int64 // one group, or neither: the fleet
	Justification string
	ExpiresAt     time.Time // zero: no expiry
}

// FieldError is a refused argument, naming the field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrSelfApproval refuses an approval by the exception's requester.
var ErrSelfApproval = errors.New("the requester of an exception may not approve it")

// EvalStats says what one evaluation did.
type EvalStats struct {
	Raised   int // alerts newly opened
	Seen     int // conditions holding, alerts opened or updated
	Resolved int // alerts resolved because their condition cleared
	Expired  int // exceptions expired
}

// Service is the governance service.
type Service struct {
	cfg  Config
	st   store.Store
	post *posture.Service
	idx  *posture.Index
	log  *slog.Logger
	now  func() time.Time
	th   Thresholds

	// evalMu serialises evaluations, so that "since the previous
	// evaluation" means one thing; lastEval is that previous moment (zero
	// before the first successful rule_failing check).
	evalMu   sync.Mutex
	lastEval time.Time
}

// New returns a Service, filling defaults for every zero threshold, the
// clock, the logger and the interval.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("governance: a store is required")
	}
	if cfg.Posture == nil || cfg.Posture.Index() == nil {
		return nil, errors.New("governance: a posture service with a rule index is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.SightingRefresh <= 0 {
		cfg.SightingRefresh = DefaultSightingRefresh
	}
	cfg.Thresholds = cfg.Thresholds.withDefaults()
	if err := cfg.Thresholds.validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, st: cfg.Store, post: cfg.Posture, idx: cfg.Posture.Index(), log: cfg.Logger,
		now: func() time.Time { return cfg.Now().UTC() }, th: cfg.Thresholds}, nil
}

// Thresholds returns the thresholds in force, defaults filled, for
// displays that explain why an alert opened.
func (s *Service) Thresholds() Thresholds { return s.th }

// bandRank orders bands worst first (critical 0 .. excellent 4); -1 for
// anything else, including BandNone.
func bandRank(b posture.Band) int {
	switch b {
	case posture.BandCritical:
		return 0
	case posture.BandPoor:
		return 1
	case posture.BandFair:
		return 2
	case posture.BandGood:
		return 3
	case posture.BandExcellent:
		return 4
	}
	return -1
}
