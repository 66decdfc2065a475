package store

import (
	"context"
	"errors"
	"time"
)

// Enrollment holds join tokens, the agents' issued certificates and the
// published rule bundles.
type Enrollment interface {
	// CreateJoinToken stores a join token (only its hash).
	CreateJoinToken(ctx context.Context, t JoinToken) (JoinToken, error)
	// UseJoinToken atomically consumes one use of the token with that hash
	// at `at`: ErrNotFound when unknown, ErrTokenSpent when expired, revoked
	// or used up. Concurrent uses never exceed Uses.
	UseJoinToken(ctx context.Context, hash string, at time.Time) (JoinToken, error)
	// JoinTokens lists tokens, newest first.
	JoinTokens(ctx context.Context) ([]JoinToken, error)

	// CreateAgent inserts a new agent (status active, enrolled at
	// EnrolledAt or now); a name already taken is ErrConflict, so enrolment
	// can pick another instead of taking over an existing agent.
	CreateAgent(ctx context.Context, a Agent) (Agent, error)
	// RecordCertificate notes a certificate issued to an agent (serial hex,
	// validity); the agent's CertSerial becomes this serial. An unknown agent
	// is ErrNotFound.
	RecordCertificate(ctx context.Context, agentID int64, serial string, notBefore, notAfter time.Time) error
	// RevokeAgent marks the agent revoked at `at`; its next call is refused.
	// Revoking again keeps the first time; an unknown agent is ErrNotFound.
	RevokeAgent(ctx context.Context, agentID int64, at time.Time) error
	// TouchAgent records a heartbeat: last seen, version, OS, spool depth,
	// bundle digest. Empty Version, OS or BundleDigest keep the recorded
	// value. An unknown agent is ErrNotFound.
	TouchAgent(ctx context.Context, agentID int64, hb AgentHeartbeat) error
	// TouchAgents records many heartbeats in one transaction, each as
	// TouchAgent would (last seen never moves back; empty Version, OS or
	// BundleDigest keep the recorded value). Agents that do not exist are
	// skipped, so one removed agent cannot fail the batch. The agent API
	// buffers heartbeats and flushes them with it every few seconds.
	TouchAgents(ctx context.Context, hbs []AgentTouch) error
	// RevokedAgents returns the ids of the agents that may no longer call
	// (status not active), ascending; the agent dispatcher reads it once per
	// pass to close the open streams of revoked agents.
	RevokedAgents(ctx context.Context) ([]int64, error)

	// PutBundle stores a signed bundle file by digest; storing the same
	// digest again changes nothing.
	PutBundle(ctx context.Context, b StoredBundle) error
	// Bundle returns a bundle with its data; ErrNotFound when unknown.
	Bundle(ctx context.Context, digest string) (StoredBundle, error)
	// LatestBundle returns the newest published bundle (by published time),
	// without its data; ErrNotFound when none was published.
	LatestBundle(ctx context.Context) (StoredBundle, error)
}

// ErrTokenSpent is returned (wrapped) for an expired, revoked or used-up
// join token.
var ErrTokenSpent = errors.New("join token expired, revoked or used up")

// JoinToken lets an agent enrol. Only Hash (hex SHA-256) is stored.
type JoinToken struct {
	ID        int64
	Hash      string
	Uses      int // how many enrolments it allows
	Used      int
	Labels    map[string]string // given to agents enrolled with it
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// AgentHeartbeat is what an agent reports about itself.
type AgentHeartbeat struct {
	At           time.Time
	Version      string
	OS           string
	SpoolBatches int64
	SpoolBytes   int64
	BundleDigest string
}

// AgentTouch is one agent's heartbeat for TouchAgents.
type AgentTouch struct {
	AgentID int64
	AgentHeartbeat
}

// StoredBundle is a published, signed rule bundle.
type StoredBundle struct {
	Digest      string // "sha256:<hex>" of Data
	Version     string
	Created     time.Time
	Expires     time.Time
	PublishedAt time.Time
	Data        []byte // empty in listings
}
