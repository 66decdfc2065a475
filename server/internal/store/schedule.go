package store

import (
	"context"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

// Scheduling is the scheduler's and the posture history's view of the store.
type Scheduling interface {
	// ClaimDue leases up to Limit hosts that are due (next scan time <= Now,
	// not deleted, not leased or lease expired, owned by AgentID; 0 means
	// agentless hosts), earliest due first, to Owner until Now+Lease.
	// Replicas sharing one database never claim the same host twice while a
	// lease holds (PostgreSQL: FOR UPDATE SKIP LOCKED).
	ClaimDue(ctx context.Context, r ClaimRequest) ([]Claim, error)
	// RequestScan makes a host due at `at` (or earlier if it already is) for
	// reason (manual, rescan). A request made while the host is leased
	// survives that lease's completion.
	RequestScan(ctx context.Context, hostID int64, reason string, at time.Time) error
	// CompleteClaim ends owner's lease after a scan: records the scan time,
	// the posture (score, band) and the next due time, which a pending
	// RequestScan made during the lease pulls earlier. A lease no longer held
	// by owner is ErrNotFound and changes nothing.
	CompleteClaim(ctx context.Context, hostID int64, owner string, c Completion) error
	// ReleaseClaim ends owner's lease without a result (the scan failed) and
	// makes the host due again at retryAt.
	ReleaseClaim(ctx context.Context, hostID int64, owner string, retryAt time.Time) error
	// DueAgents returns, without writing, the distinct ids of the agents
	// owning at least one host that ClaimDue would hand out at now (not
	// deleted, next scan time <= now, not leased or lease expired, agent_id
	// set), in ascending order. The agent dispatcher asks it once per pass so
	// that only agents with work claim, instead of every stream taking the
	// single writer every poll.
	DueAgents(ctx context.Context, now time.Time) ([]int64, error)

	// PutSnapshots upserts daily posture snapshots keyed by (host,
	// framework, day): the last write of a day wins.
	PutSnapshots(ctx context.Context, snaps []Snapshot) error
	// Snapshots returns snapshots with From <= Day <= To, ordered by host,
	// framework, day.
	Snapshots(ctx context.Context, f SnapshotFilter) ([]Snapshot, error)

	// CountsAt returns, per host, how many of the given rules (nil: all)
	// were in each status at time at, rebuilt from the transition log, for
	// the given hosts (nil: all). Hosts with no state at that time are
	// absent. This is the query behind posture?at=.
	CountsAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]HostCounts, error)
	// CurrentCounts is CountsAt for the present, aggregated over current
	// state (which is the state now) instead of rebuilt from the log: per
	// host, how many of the given rules (nil: all) are in each status, for
	// the given hosts (nil: all); hosts with no state are absent. Posture
	// asks it for every "now" view, the dashboard's most frequent query.
	CurrentCounts(ctx context.Context, ruleIDs []string, hostIDs []int64) ([]HostCounts, error)
	// TopFailing returns the rules among ruleIDs (nil: all) failing now on
	// the most hosts not deleted, most hosts first, then by rule id, at most
	// limit of them (limit <= 0: none), in one grouped query instead of a
	// read per host.
	TopFailing(ctx context.Context, ruleIDs []string, limit int) ([]RuleFailures, error)
	// RuleStatusCounts returns, for every rule, how many hosts (not
	// deleted) are in each status now, by severity: one grouped read from
	// which a caller sums the fleet's counts for any set of rules (every
	// framework at once) without a query per framework.
	RuleStatusCounts(ctx context.Context) ([]RuleStatusCount, error)
	// RecentChanges returns up to limit real status changes (a rule's first
	// observation is not one) at or after since on hosts not deleted,
	// newest first (limit <= 0: none), for the dashboard's recent drift.
	RecentChanges(ctx context.Context, since time.Time, limit int) ([]Transition, error)
	// FleetTransitions returns state changes with from <= At < to for one
	// host (hostID > 0) or every host, ordered by host, rule, time.
	FleetTransitions(ctx context.Context, from, to time.Time, hostID int64) ([]Transition, error)
	// PruneResults deletes per-scan result rows observed before `before` and
	// returns how many; transitions, current state, snapshots and evidence
	// stay, so history remains answerable.
	PruneResults(ctx context.Context, before time.Time) (int64, error)
}

// ClaimRequest asks for due hosts.
type ClaimRequest struct {
	Owner   string // replica or worker identity holding the lease
	Now     time.Time
	Limit   int
	Lease   time.Duration
	AgentID int64 // 0: hosts the server scans itself
}

// Claim is a leased due host.
type Claim struct {
	HostID int64
	Reason string // first, scheduled, manual, rescan
	Until  time.Time
}

// Completion is what a finished scan tells the schedule.
type Completion struct {
	ScannedAt  time.Time
	NextScanAt time.Time
	Score      float64
	Band       string
}

// Snapshot is a host's posture on one UTC day for one framework ("" = all
// rules).
type Snapshot struct {
	HostID    int64
	Framework string
	Day       time.Time // UTC midnight
	Score     float64
	Pass      int
	Fail      int
	Error     int
	Skipped   int
	Band      string
	ScanID    int64
}

// SnapshotFilter selects snapshots. HostIDs nil means every host; an empty
// Framework means the all-rules series (it is a value, not a wildcard).
type SnapshotFilter struct {
	HostIDs   []int64
	Framework string
	From, To  time.Time
}

// HostCounts is a host's status counts at one moment. CriticalFail counts
// failing rules of severity critical.
type HostCounts struct {
	HostID       int64
	Counts       map[result.Status]int
	CriticalFail int
}

// RuleStatusCount is how many hosts are in Status for RuleID now.
type RuleStatusCount struct {
	RuleID   string
	Status   result.Status
	Severity rule.Severity
	Hosts    int
}

// RuleFailures is how many hosts a rule fails on now, with the rule's
// severity as last observed.
type RuleFailures struct {
	RuleID   string
	Hosts    int
	Severity rule.Severity
}
