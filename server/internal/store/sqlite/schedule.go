package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// TEMPORARY scaffolding: replaced by the real implementation. errStub must not survive.
var errStubScheduling = errors.New("Scheduling: not implemented")

func (s *Store) ClaimDue(ctx context.Context, r store.ClaimRequest) ([]store.Claim, error) {
	return nil, errStubScheduling
}
func (s *Store) RequestScan(ctx context.Context, hostID int64, reason string, at time.Time) error {
	return errStubScheduling
}
func (s *Store) CompleteClaim(ctx context.Context, hostID int64, owner string, c store.Completion) error {
	return errStubScheduling
}
func (s *Store) ReleaseClaim(ctx context.Context, hostID int64, owner string, retryAt time.Time) error {
	return errStubScheduling
}
func (s *Store) PutSnapshots(ctx context.Context, snaps []store.Snapshot) error {
	return errStubScheduling
}
func (s *Store) Snapshots(ctx context.Context, f store.SnapshotFilter) ([]store.Snapshot, error) {
	return nil, errStubScheduling
}
func (s *Store) CountsAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]store.HostCounts, error) {
	return nil, errStubScheduling
}
func (s *Store) FleetTransitions(ctx context.Context, from, to time.Time, hostID int64) ([]store.Transition, error) {
	return nil, errStubScheduling
}
func (s *Store) PruneResults(ctx context.Context, before time.Time) (int64, error) {
	return 0, errStubScheduling
}

var _ = time.Time{}
var _ context.Context
