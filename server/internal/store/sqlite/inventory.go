package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// TEMPORARY scaffolding: replaced by the real implementation. errStub must not survive.
var errStubInventory = errors.New("Inventory: not implemented")

func (s *Store) Host(ctx context.Context, id int64) (store.Host, error) {
	return store.Host{}, errStubInventory
}
func (s *Store) HostByName(ctx context.Context, name string) (store.Host, error) {
	return store.Host{}, errStubInventory
}
func (s *Store) DeleteHost(ctx context.Context, id int64) error { return errStubInventory }
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (store.Group, error) {
	return store.Group{}, errStubInventory
}
func (s *Store) Groups(ctx context.Context) ([]store.Group, error) { return nil, errStubInventory }
func (s *Store) DeleteGroup(ctx context.Context, id int64) error   { return errStubInventory }
func (s *Store) UpsertAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	return store.Agent{}, errStubInventory
}
func (s *Store) Agent(ctx context.Context, id int64) (store.Agent, error) {
	return store.Agent{}, errStubInventory
}
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) { return nil, errStubInventory }
func (s *Store) Scans(ctx context.Context, f store.ScanFilter) ([]store.Scan, error) {
	return nil, errStubInventory
}
func (s *Store) FailScan(ctx context.Context, scanID int64, at time.Time, message string) error {
	return errStubInventory
}
func (s *Store) SetCredential(ctx context.Context, hostID int64, sealed []byte) error {
	return errStubInventory
}
func (s *Store) Credential(ctx context.Context, hostID int64) ([]byte, error) {
	return nil, errStubInventory
}

var _ = time.Time{}
var _ context.Context
