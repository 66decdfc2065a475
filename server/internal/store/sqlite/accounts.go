package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// TEMPORARY scaffolding: replaced by the real implementation. errStub must not survive.
var errStubAccounts = errors.New("Accounts: not implemented")

func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	return store.User{}, errStubAccounts
}
func (s *Store) User(ctx context.Context, id int64) (store.User, error) {
	return store.User{}, errStubAccounts
}
func (s *Store) UserByName(ctx context.Context, username string) (store.User, error) {
	return store.User{}, errStubAccounts
}
func (s *Store) Users(ctx context.Context) ([]store.User, error)    { return nil, errStubAccounts }
func (s *Store) UpdateUser(ctx context.Context, u store.User) error { return errStubAccounts }
func (s *Store) DeleteUser(ctx context.Context, id int64) error     { return errStubAccounts }
func (s *Store) TouchLogin(ctx context.Context, userID int64, at time.Time) error {
	return errStubAccounts
}
func (s *Store) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	return store.Token{}, errStubAccounts
}
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, store.User, error) {
	return store.Token{}, store.User{}, errStubAccounts
}
func (s *Store) Tokens(ctx context.Context, userID int64) ([]store.Token, error) {
	return nil, errStubAccounts
}
func (s *Store) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	return errStubAccounts
}
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error { return errStubAccounts }
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	return store.AuditEntry{}, errStubAccounts
}
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return nil, errStubAccounts
}

var _ = time.Time{}
var _ context.Context
