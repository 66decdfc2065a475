package store

import (
	"context"
	"time"
)

// Inventory is what the server knows about the fleet beyond findings.
type Inventory interface {
	// CreateHost adds a host, or brings back a deleted one of that name
	// with its history; a live host of that name is ErrConflict. Unlike
	// UpsertHost it never changes an existing host, so two callers creating
	// the same name at once cannot overwrite each other.
	CreateHost(ctx context.Context, h Host) (Host, error)
	// Host returns one host that is not deleted.
	Host(ctx context.Context, id int64) (Host, error)
	// HostByName returns the host with that name that is not deleted.
	HostByName(ctx context.Context, name string) (Host, error)
	// DeleteHost marks a host deleted: it leaves lists and the schedule and
	// its credential is erased, but its scans, results and transitions stay
	// so that history about it remains answerable.
	DeleteHost(ctx context.Context, id int64) error

	// CreateGroup adds a host group; a duplicate name is ErrConflict.
	CreateGroup(ctx context.Context, g Group) (Group, error)
	// Groups lists the host groups, ordered by name.
	Groups(ctx context.Context) ([]Group, error)
	// DeleteGroup removes a group and drops its name from every host.
	DeleteGroup(ctx context.Context, id int64) error

	// UpsertAgent creates or updates an agent keyed by name (status, version,
	// OS, certificate serial, labels, last seen).
	UpsertAgent(ctx context.Context, a Agent) (Agent, error)
	// Agent returns one agent.
	Agent(ctx context.Context, id int64) (Agent, error)
	// Agents lists every agent, ordered by name.
	Agents(ctx context.Context) ([]Agent, error)

	// Scans lists scans, newest first, matching the filter.
	Scans(ctx context.Context, f ScanFilter) ([]Scan, error)
	// FailScan marks a running scan failed with a message (host unreachable,
	// authentication refused, ...).
	FailScan(ctx context.Context, scanID int64, at time.Time, message string) error

	// SetCredential stores a host's sealed (already encrypted) SSH
	// credential, replacing any earlier one.
	SetCredential(ctx context.Context, hostID int64, sealed []byte) error
	// Credential returns the sealed credential; ErrNotFound when none.
	Credential(ctx context.Context, hostID int64) ([]byte, error)
}

// Group is a named set of hosts; membership is the host's Groups list.
type Group struct {
	ID          int64
	Name        string
	Description string
	CreatedAt   time.Time
}

// AgentStatus says whether an agent may still call the server.
type AgentStatus string

// The agent statuses.
const (
	AgentActive  AgentStatus = "active"
	AgentRevoked AgentStatus = "revoked"
)

// Agent is an enrolled vigil-agent.
type Agent struct {
	ID         int64
	Name       string
	Status     AgentStatus
	Version    string
	OS         string
	CertSerial string
	Labels     map[string]string
	EnrolledAt time.Time
	LastSeenAt time.Time // zero until the first call after enrolment
	RevokedAt  time.Time // zero unless revoked
	// Hostname is the name of the agent's own host, given at enrolment:
	// its assignments for that host scan locally, any other over SSH.
	Hostname string
	// From the latest heartbeat (TouchAgent).
	SpoolBatches int64
	SpoolBytes   int64
	BundleDigest string
}

// ScanFilter selects scans. Zero fields do not filter.
type ScanFilter struct {
	HostID   int64
	Status   ScanStatus
	BeforeID int64 // page: only scans with id < BeforeID
	Limit    int   // at most this many; 0 means 100
}
