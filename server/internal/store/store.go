// Package store defines what the server keeps about hosts, scans and
// findings, behind one interface with a SQLite and a PostgreSQL driver.
// Both drivers pass the same contract suite (storetest), so callers never
// branch on which database is underneath.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

// ErrNotFound is returned (wrapped) when a host or scan named by the caller
// does not exist, so the API edge can answer 404 rather than 500.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when a create would duplicate a unique
// name (user, group, agent), so the API edge can answer 409.
var ErrConflict = errors.New("already exists")

// ErrMigrationsPending is returned (wrapped) by Ready when the database
// answers but lacks migrations this binary embeds, so a readiness check can
// tell "database down" from "schema behind".
var ErrMigrationsPending = errors.New("migrations pending")

// Store is the server's persistence. Every method is safe for concurrent
// use; Ingest is atomic per batch and idempotent by (scan id, sequence).
type Store interface {
	Inventory  // hosts, groups, agents, scans lists, credentials (inventory.go)
	Scheduling // due hosts, leases, posture snapshots, fleet history (schedule.go)
	Accounts   // users, tokens, audit log (accounts.go)
	Enrollment // join tokens, agent certificates, bundles (enrollment.go)
	Facts      // host inventory: packages, services, ports... (facts.go)
	Governance // exceptions, alerts, notification channels (governance.go)

	// UpsertHost creates the host or replaces its address, OS, labels,
	// groups and owning agent, keyed by name, and returns it with its id.
	// Upserting the name of a deleted host brings it back, history intact.
	// A new host is due for its first scan at once.
	UpsertHost(ctx context.Context, h Host) (Host, error)
	// Hosts lists every host not deleted, ordered by name.
	Hosts(ctx context.Context) ([]Host, error)
	// CreateScan records a scan of an existing host and returns it with its id.
	CreateScan(ctx context.Context, s Scan) (Scan, error)
	// FinishScan sets a scan's final status, end time and counts.
	FinishScan(ctx context.Context, scanID int64, status ScanStatus, at time.Time, counts result.Summary) error
	// Scan returns one scan.
	Scan(ctx context.Context, scanID int64) (Scan, error)
	// Ingest applies one batch of results in a single transaction. A batch
	// already applied (same scan id and sequence) changes nothing and
	// reports Replayed.
	Ingest(ctx context.Context, b Batch) (IngestStats, error)
	// ScanResults returns the results recorded for one scan, in the order
	// they were ingested.
	ScanResults(ctx context.Context, scanID int64) ([]Finding, error)
	// CurrentState returns the latest state of every rule seen on the host,
	// ordered by rule id.
	CurrentState(ctx context.Context, hostID int64) ([]Finding, error)
	// Transitions returns the host's state changes with from <= At < to,
	// oldest first.
	Transitions(ctx context.Context, hostID int64, from, to time.Time) ([]Transition, error)
	// StateAt returns the status of every rule on the host as it was at
	// time at, rebuilt from the transition log, ordered by rule id.
	StateAt(ctx context.Context, hostID int64, at time.Time) ([]Finding, error)
	// StatesAt returns what StateAt returns for each of the hosts, in one
	// read and without References (nil: a rule's references are in the
	// rule index), keyed by host id, each host's findings ordered by rule
	// id; hosts without state at that moment are absent. Exports of a
	// whole fleet read it instead of decoding every finding's references
	// host by host.
	StatesAt(ctx context.Context, at time.Time, hostIDs []int64) (map[int64][]Finding, error)
	// Evidence returns the stored evidence records for a content hash.
	Evidence(ctx context.Context, hash string) ([]result.Evidence, error)
	// Ready answers nil when the database responds and every migration
	// embedded in this binary is applied; a wrapped ErrMigrationsPending
	// when it responds but lags (another replica is migrating, say). It is
	// cheap enough for a readiness probe: one small query.
	Ready(ctx context.Context) error
	Close() error
}

// Host is a scanned machine. Name is its unique key.
type Host struct {
	ID      int64
	Name    string
	Address string
	OS      string
	Labels  map[string]string
	Groups  []string // names of host groups
	AgentID int64    // owning agent; 0 when the server scans it agentless

	// Read-only here: written by the scheduler through CompleteClaim.
	Band       string    // posture band of the last scan; "" never scanned
	Score      float64   // score of the last scan, 0..100; valid when Band != ""
	LastScanAt time.Time // zero when never scanned
	NextScanAt time.Time // when the scheduler will next claim it
}

// ScanStatus is where a scan is in its life.
type ScanStatus string

// The scan statuses.
const (
	ScanRunning   ScanStatus = "running"
	ScanCompleted ScanStatus = "completed"
	ScanFailed    ScanStatus = "failed"
)

// Scan is one run of a bundle against one host.
type Scan struct {
	ID            int64
	HostID        int64
	Trigger       string // scheduled, manual, rescan, import...
	Status        ScanStatus
	BundleVersion string
	StartedAt     time.Time
	FinishedAt    time.Time // zero while running
	Counts        result.Summary
	Message       string // why a failed scan failed (unreachable, auth...)
}

// Batch is one chunk of a scan's results as an agent sends it. Seq numbers
// the batches of one scan; a retry resends the same Seq.
type Batch struct {
	ScanID  int64
	Seq     int64
	Results []result.Result
}

// IngestStats says what a batch changed.
type IngestStats struct {
	Replayed    bool // the batch had been applied before; nothing changed
	Results     int  // per-scan result rows appended
	Transitions int  // state changes logged
	NewEvidence int  // evidence bodies not seen before
}

// Finding is a rule's state on a host: the row shape of current state, of
// as-of queries and of transitions.
type Finding struct {
	RuleID       string
	Status       result.Status
	Severity     rule.Severity
	Reason       string
	References   []rule.Ref
	EvidenceHash string // hex SHA-256 of the evidence JSON; empty when none
	ScanID       int64  // the scan that observed it
	At           time.Time
}

// Transition is a change of a rule's status on a host. Finding holds the
// new state; From is empty for the first observation of a rule.
type Transition struct {
	Finding
	HostID int64
	From   result.Status
}
