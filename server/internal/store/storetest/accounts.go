package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// accountsTests are the contract cases for the store.Accounts methods.
var accountsTests = []contractTest{
	{"Users", testUsers},
	{"Tokens", testTokens},
	{"DeleteUserRevokesTokens", testDeleteUser},
	{"AuditChainConcurrent", testAuditChain},
	{"AuditFilters", testAuditFilters},
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	created := base.Add(555555 * time.Nanosecond)
	bob, err := s.CreateUser(ctx, store.User{Username: "bob", PasswordHash: "$argon2id$bob", Role: "viewer", CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	want := store.User{ID: bob.ID, Username: "bob", PasswordHash: "$argon2id$bob", Role: "viewer", CreatedAt: store.Micro(created)}
	if bob.ID == 0 || !reflect.DeepEqual(bob, want) {
		t.Errorf("created user %+v\nwant %+v", bob, want)
	}
	alice, err := s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: "$argon2id$alice", Role: "admin", Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if alice.CreatedAt.IsZero() || !alice.Disabled {
		t.Errorf("created user %+v: want a creation time and disabled", alice)
	}
	if _, err := s.CreateUser(ctx, store.User{Username: "bob", PasswordHash: "x", Role: "admin"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate username: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateUser(ctx, store.User{Role: "admin"}); err == nil {
		t.Error("user without a name was accepted")
	}
	for _, get := range []func() (store.User, error){
		func() (store.User, error) { return s.User(ctx, bob.ID) },
		func() (store.User, error) { return s.UserByName(ctx, "bob") },
	} {
		if got, err := get(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("read user %+v, %v\nwant %+v", got, err, want)
		}
	}
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(users, []store.User{alice, want}) {
		t.Errorf("users = %+v\nwant alice then bob", users)
	}
	// UpdateUser replaces hash, role and disabled; the username stays.
	if err := s.UpdateUser(ctx, store.User{ID: bob.ID, Username: "robert", PasswordHash: "$argon2id$new", Role: "operator", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	login := base.Add(time.Hour + 42*time.Nanosecond)
	if err := s.TouchLogin(ctx, bob.ID, login); err != nil {
		t.Fatal(err)
	}
	want.PasswordHash, want.Role, want.Disabled, want.LastLoginAt = "$argon2id$new", "operator", true, store.Micro(login)
	if got, err := s.User(ctx, bob.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("updated user %+v, %v\nwant %+v", got, err, want)
	}
	missing := alice.ID + bob.ID + 1000
	if _, err := s.User(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByName(ctx, "robert"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown username: err = %v, want ErrNotFound", err)
	}
	if err := s.UpdateUser(ctx, store.User{ID: missing, Role: "admin"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update unknown user: err = %v, want ErrNotFound", err)
	}
	if err := s.TouchLogin(ctx, missing, login); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("touch login of unknown user: err = %v, want ErrNotFound", err)
	}
}

func user(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), store.User{Username: name, PasswordHash: "$argon2id$" + name, Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func token(t *testing.T, s store.Store, tok store.Token) store.Token {
	t.Helper()
	out, err := s.CreateToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tokenIDs(t *testing.T, s store.Store, userID int64) []int64 {
	t.Helper()
	ts, err := s.Tokens(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, x := range ts {
		ids = append(ids, x.ID)
	}
	return ids
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	ann, ben := user(t, s, "ann"), user(t, s, "ben")
	expires := base.Add(24*time.Hour + 3*time.Nanosecond)
	t1 := token(t, s, store.Token{UserID: ann.ID, Kind: store.TokenSession, Hash: "h1", CreatedAt: base, ExpiresAt: expires})
	want := store.Token{ID: t1.ID, UserID: ann.ID, Kind: store.TokenSession, Hash: "h1", CreatedAt: base, ExpiresAt: store.Micro(expires)}
	if t1.ID == 0 || !reflect.DeepEqual(t1, want) {
		t.Errorf("created token %+v\nwant %+v", t1, want)
	}
	t2 := token(t, s, store.Token{UserID: ben.ID, Kind: store.TokenAPI, Name: "ci", Hash: "h2", CreatedAt: base.Add(time.Minute)})
	t3 := token(t, s, store.Token{UserID: ann.ID, Kind: store.TokenAPI, Name: "backup", Hash: "h3", CreatedAt: base.Add(2 * time.Minute)})
	if _, err := s.CreateToken(ctx, store.Token{UserID: ben.ID, Kind: store.TokenAPI, Hash: "h1"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate token hash: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateToken(ctx, store.Token{UserID: ann.ID + ben.ID + 1000, Kind: store.TokenAPI, Hash: "h9"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of unknown user: err = %v, want ErrNotFound", err)
	}
	if got, want := tokenIDs(t, s, ann.ID), []int64{t3.ID, t1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("ann's tokens = %v, want %v (newest first)", got, want)
	}
	if got, want := tokenIDs(t, s, 0), []int64{t3.ID, t2.ID, t1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("all tokens = %v, want %v", got, want)
	}

	revoked, used := base.Add(time.Hour+7*time.Nanosecond), base.Add(30*time.Minute)
	if err := s.TouchToken(ctx, t1.ID, used); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, t1.ID, revoked); err != nil {
		t.Fatal(err)
	}
	// A second revocation keeps the first time.
	if err := s.RevokeToken(ctx, t1.ID, revoked.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want.LastUsedAt, want.RevokedAt = used, store.Micro(revoked)
	gotTok, gotUser, err := s.TokenByHash(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotTok, want) || !reflect.DeepEqual(gotUser, ann) {
		t.Errorf("token by hash = %+v, %+v\nwant %+v, %+v", gotTok, gotUser, want, ann)
	}
	if _, u, err := s.TokenByHash(ctx, "h2"); err != nil || u.Username != "ben" {
		t.Errorf("token h2 belongs to %+v (%v), want ben", u, err)
	}
	if _, _, err := s.TokenByHash(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token hash: err = %v, want ErrNotFound", err)
	}
	missing := t1.ID + t2.ID + t3.ID + 1000
	if err := s.RevokeToken(ctx, missing, revoked); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown token: err = %v, want ErrNotFound", err)
	}
	if err := s.TouchToken(ctx, missing, used); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("touch unknown token: err = %v, want ErrNotFound", err)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone, stay := user(t, s, "gone"), user(t, s, "stay")
	token(t, s, store.Token{UserID: gone.ID, Kind: store.TokenSession, Hash: "g1"})
	token(t, s, store.Token{UserID: gone.ID, Kind: store.TokenAPI, Hash: "g2"})
	kept := token(t, s, store.Token{UserID: stay.ID, Kind: store.TokenAPI, Hash: "s1"})
	if err := s.DeleteUser(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of a deleted user: err = %v, want ErrNotFound", err)
	}
	if _, err := s.User(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user: err = %v, want ErrNotFound", err)
	}
	for _, h := range []string{"g1", "g2"} {
		if tok, _, err := s.TokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %s of a deleted user = %+v, %v; want ErrNotFound", h, tok, err)
		}
	}
	if got := tokenIDs(t, s, 0); !reflect.DeepEqual(got, []int64{kept.ID}) {
		t.Errorf("tokens after deleting a user = %v, want only %d", got, kept.ID)
	}
	// The name is free again and the new account holds no old token.
	again := user(t, s, "gone")
	if len(tokenIDs(t, s, again.ID)) != 0 {
		t.Error("a recreated user inherited tokens")
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	appended := make(chan store.AuditEntry, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.AppendAudit(ctx, store.AuditEntry{Actor: fmt.Sprintf("user%d", i%3), Action: "host.create",
				Target: fmt.Sprintf("host/%d", i), Detail: fmt.Sprintf(`{"i":%d}`, i), Source: "127.0.0.1", RequestID: fmt.Sprint(i)})
			if err != nil {
				errs <- err
				return
			}
			appended <- e
		}()
	}
	wg.Wait()
	close(appended)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, err := s.Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d audit entries, want %d", len(entries), n)
	}
	if err := store.VerifyAudit(entries); err != nil {
		t.Fatalf("concurrent appends broke the chain: %v", err)
	}
	for e := range appended {
		if got := entries[e.ID-1]; !reflect.DeepEqual(got, e) {
			t.Errorf("stored entry %+v\ndiffers from the one AppendAudit returned %+v", got, e)
		}
	}
	// The next append continues the chain.
	e, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "system", Action: "audit.verify"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != n+1 || e.PrevHash != entries[n-1].Hash || e.Detail != "{}" || e.At.IsZero() {
		t.Errorf("entry after the chain = %+v", e)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	actors, actions := []string{"alice", "bob"}, []string{"host.create", "user.update", "auth.login_failed"}
	for i := range 12 {
		at := base.Add(time.Duration(i)*time.Minute + 999*time.Nanosecond)
		e, err := s.AppendAudit(ctx, store.AuditEntry{At: at, Actor: actors[i%2], Action: actions[i%3], Target: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != int64(i+1) || !e.At.Equal(store.Micro(at)) || e.Hash != store.AuditHash(e) {
			t.Fatalf("appended entry %+v: want id %d, time %s, a valid hash", e, i+1, store.Micro(at))
		}
	}
	ids := func(f store.AuditFilter) []int64 {
		t.Helper()
		es, err := s.Audit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"all", store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"actor", store.AuditFilter{Actor: "bob"}, []int64{2, 4, 6, 8, 10, 12}},
		{"action", store.AuditFilter{Action: "user.update"}, []int64{2, 5, 8, 11}},
		{"actor and action", store.AuditFilter{Actor: "alice", Action: "host.create"}, []int64{1, 7}},
		{"from inclusive, to exclusive", store.AuditFilter{From: base.Add(3*time.Minute + 999*time.Nanosecond),
			To: base.Add(6*time.Minute + 999*time.Nanosecond)}, []int64{4, 5, 6}},
		{"from only", store.AuditFilter{From: base.Add(10*time.Minute + time.Microsecond)}, []int64{12}},
		{"after id", store.AuditFilter{AfterID: 9}, []int64{10, 11, 12}},
		{"limit", store.AuditFilter{Limit: 3}, []int64{1, 2, 3}},
		{"desc", store.AuditFilter{Desc: true, Limit: 4}, []int64{12, 11, 10, 9}},
		{"desc after id", store.AuditFilter{Desc: true, AfterID: 10, Actor: "alice"}, []int64{11}},
		{"nothing", store.AuditFilter{Actor: "carol"}, nil},
	}
	for _, c := range cases {
		if got := ids(c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ids %v, want %v", c.name, got, c.want)
		}
	}
	// Limit 0 means 100, and no request reads more than 1000 at once.
	for i := 12; i < 1001; i++ {
		if _, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "system", Action: "fill"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(store.AuditFilter{}); len(got) != 100 || got[0] != 1 || got[99] != 100 {
		t.Errorf("default page: %d entries (%v...), want ids 1..100", len(got), got[:min(len(got), 3)])
	}
	all, err := s.Audit(ctx, store.AuditFilter{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1000 {
		t.Errorf("limit 5000 read %d entries, want the cap of 1000", len(all))
	}
	if err := store.VerifyAudit(all); err != nil {
		t.Errorf("chain: %v", err)
	}
}

// AuditTamper appends ten audit entries, checks they verify, then has the
// driver's test alter entry 7 with raw SQL (which the Store interface
// cannot do) and checks that VerifyAudit names entry 7.
func AuditTamper(t *testing.T, s store.Store, alter func(id int64) error) {
	t.Helper()
	ctx := context.Background()
	for i := range 10 {
		if _, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "alice", Action: "host.delete", Target: fmt.Sprintf("host/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []store.AuditEntry {
		t.Helper()
		es, err := s.Audit(ctx, store.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	if err := store.VerifyAudit(read()); err != nil {
		t.Fatalf("untouched log does not verify: %v", err)
	}
	if err := alter(7); err != nil {
		t.Fatal(err)
	}
	err := store.VerifyAudit(read())
	if err == nil || !strings.HasPrefix(err.Error(), "audit entry 7:") {
		t.Errorf("after altering entry 7: VerifyAudit = %v, want an error naming entry 7", err)
	}
}
