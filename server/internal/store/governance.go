package store

import (
	"context"
	"time"

	"github.com/vigilfleet/vigil/engine/rule"
)

// Governance holds exceptions (waivers), alerts, notification channels and
// the delivery log.
type Governance interface {
	// CreateException stores a new exception in state requested and returns
	// it with its id. Exactly one of HostID and GroupID may be set; neither
	// means the whole fleet.
	CreateException(ctx context.Context, e Exception) (Exception, error)
	// Exception returns one exception.
	Exception(ctx context.Context, id int64) (Exception, error)
	// Exceptions lists exceptions matching the filter, newest first.
	Exceptions(ctx context.Context, f ExceptionFilter) ([]Exception, error)
	// DecideException moves exception d.ID from one of d.From to d.To in one
	// statement and returns it. approved/rejected fill DecidedBy/At/Note,
	// revoked fills RevokedBy/At/Note, expired fills ExpiredAt. When the
	// exception is in none of d.From nothing changes and the error wraps
	// ErrConflict naming the state it is in; a missing id is ErrNotFound.
	DecideException(ctx context.Context, d ExceptionDecision) (Exception, error)
	// ExpireExceptions moves every approved exception whose ExpiresAt is set
	// and <= now to expired (ExpiredAt = now) and returns those it moved.
	// Replicas calling it at once each get a disjoint set.
	ExpireExceptions(ctx context.Context, now time.Time) ([]Exception, error)
	// FailingAt returns, for the given rules (must be non-empty) and hosts
	// (nil: all hosts not deleted), every (host, rule) whose status was fail
	// at `at` (zero: now, from current state), ordered by host, rule.
	FailingAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]HostRule, error)

	// RaiseAlert records that the condition a.Key describes holds at a.At.
	// If an alert with that key is not resolved, it is updated (LastSeenAt,
	// Count+1, Title, Detail, Severity; a silenced alert whose SilencedUntil
	// has passed becomes active again) and Created is false; otherwise a new
	// active alert is inserted (OpenedAt = LastSeenAt = a.At, Count 1) and
	// Created is true. At most one unresolved alert exists per key, also with
	// several replicas raising at once.
	RaiseAlert(ctx context.Context, a Alert) (alert Alert, created bool, err error)
	// ResolveAlerts resolves (ResolvedBy "system", ResolvedAt at) every
	// unresolved alert of the given kinds whose key is not in keep, and
	// returns those it resolved. The evaluator calls it with the keys whose
	// condition still holds.
	ResolveAlerts(ctx context.Context, kinds []string, keep []string, at time.Time) ([]Alert, error)
	// SetAlertState changes one alert's lifecycle state by an operator:
	// acknowledged (AckBy/AckAt), silenced (SilencedUntil, AckBy/AckAt),
	// resolved (ResolvedBy/ResolvedAt), or active (clears ack and silence).
	// A resolved alert cannot change: ErrConflict. Missing: ErrNotFound.
	SetAlertState(ctx context.Context, ch AlertChange) (Alert, error)
	// Alert returns one alert.
	Alert(ctx context.Context, id int64) (Alert, error)
	// Alerts lists alerts matching the filter, newest LastSeenAt first.
	Alerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// AlertCounts returns how many alerts are in each state, for metrics
	// and the dashboard (resolved counts only those resolved in the last
	// 24 h before now).
	AlertCounts(ctx context.Context, now time.Time) (map[AlertState]int, error)

	// CreateChannel stores a notification channel (secrets already
	// sealed); a duplicate name is ErrConflict.
	CreateChannel(ctx context.Context, ch Channel) (Channel, error)
	// Channel returns one channel.
	Channel(ctx context.Context, id int64) (Channel, error)
	// Channels lists channels ordered by name.
	Channels(ctx context.Context) ([]Channel, error)
	// UpdateChannel replaces a channel's name, filters, config, sealed
	// secret and enabled flag.
	UpdateChannel(ctx context.Context, ch Channel) error
	// DeleteChannel removes a channel and its delivery log.
	DeleteChannel(ctx context.Context, id int64) error
	// AppendDelivery records one delivery attempt series (after retries)
	// and returns it with its id.
	AppendDelivery(ctx context.Context, d Delivery) (Delivery, error)
	// Deliveries lists a channel's deliveries (channelID 0: all), newest
	// first, at most limit (<= 0: 100).
	Deliveries(ctx context.Context, channelID int64, limit int) ([]Delivery, error)
}

// ExceptionState is where an exception is in its life.
type ExceptionState string

// The exception states: requested -> approved | rejected; approved ->
// revoked | expired.
const (
	ExceptionRequested ExceptionState = "requested"
	ExceptionApproved  ExceptionState = "approved"
	ExceptionRejected  ExceptionState = "rejected"
	ExceptionRevoked   ExceptionState = "revoked"
	ExceptionExpired   ExceptionState = "expired"
)

// Exception accepts a failing rule on one host, a host group or the whole
// fleet. It never changes a stored result; posture applies it on top.
type Exception struct {
	ID            int64
	RuleID        string
	HostID        int64 // set for a host exception
	GroupID       int64 // set for a group exception; neither: fleet
	Justification string
	ExpiresAt     time.Time // zero: no expiry
	State         ExceptionState
	RequestedBy   string
	RequestedAt   time.Time
	DecidedBy     string // approver or rejecter
	DecidedAt     time.Time
	DecisionNote  string
	RevokedBy     string
	RevokedAt     time.Time
	RevokeNote    string
	ExpiredAt     time.Time
}

// ExceptionFilter selects exceptions. Zero fields do not filter.
type ExceptionFilter struct {
	States  []ExceptionState
	RuleID  string
	HostID  int64 // exceptions scoped to exactly this host
	GroupID int64 // exceptions scoped to exactly this group
	Limit   int   // 0: 500
}

// ExceptionDecision is one lifecycle move.
type ExceptionDecision struct {
	ID   int64
	From []ExceptionState
	To   ExceptionState
	By   string
	At   time.Time
	Note string
}

// HostRule is one rule on one host.
type HostRule struct {
	HostID   int64
	RuleID   string
	Severity rule.Severity
	ScanID   int64
}

// AlertState is where an alert is in its life.
type AlertState string

// The alert states: active -> acknowledged | silenced (until a time) |
// resolved; resolution is automatic when the condition clears.
const (
	AlertActive       AlertState = "active"
	AlertAcknowledged AlertState = "acknowledged"
	AlertSilenced     AlertState = "silenced"
	AlertResolved     AlertState = "resolved"
)

// Alert is one incident: a condition identified by Key, open from
// OpenedAt until resolved, however many times it was seen meanwhile.
type Alert struct {
	ID            int64
	Kind          string // rule_failing, score_drop, band_drop, mass_drift, scan_overdue, agent_offline, bundle_refused, exception_expiring
	Key           string // dedup key: Kind plus its subject, e.g. "rule_failing/host/12/sshd_permit_root"
	Severity      string // critical, high, medium, low
	HostID        int64  // 0 when not about one host
	AgentID       int64  // 0 when not about an agent
	RuleID        string // "" when not about one rule
	ExceptionID   int64  // 0 when not about an exception
	Labels        map[string]string
	Title         string
	Detail        string // JSON object
	State         AlertState
	OpenedAt      time.Time
	LastSeenAt    time.Time
	Count         int
	AckBy         string
	AckAt         time.Time
	SilencedUntil time.Time
	ResolvedBy    string
	ResolvedAt    time.Time
	At            time.Time // input to RaiseAlert: when the condition was seen
}

// AlertChange is an operator's lifecycle action on an alert.
type AlertChange struct {
	ID    int64
	To    AlertState
	By    string
	At    time.Time
	Until time.Time // for AlertSilenced
}

// AlertFilter selects alerts. Zero fields do not filter.
type AlertFilter struct {
	States []AlertState
	Kind   string
	HostID int64
	Limit  int // 0: 500
}

// Channel is a notification destination.
type Channel struct {
	ID          int64
	Name        string
	Kind        string            // webhook, slack, email
	Config      map[string]string // non-secret settings (url host shown, smtp host, from, to...)
	Secret      []byte            // sealed JSON of the secret settings (url, hmac key, smtp password)
	MinSeverity string            // deliver alerts at or above: critical, high, medium, low
	Labels      map[string]string // deliver only alerts whose labels contain all of these
	Kinds       []string          // deliver only these alert kinds; empty: all
	Enabled     bool
	CreatedBy   string
	CreatedAt   time.Time
}

// Delivery is one notification sent (or not) to a channel.
type Delivery struct {
	ID        int64
	ChannelID int64
	AlertID   int64  // 0 for a test message
	Event     string // opened, resolved, test
	At        time.Time
	OK        bool
	Attempts  int
	Status    string // HTTP status or SMTP reply, or the error
	Duration  time.Duration
}
