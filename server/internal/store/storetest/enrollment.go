package storetest

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// enrollmentTests are the contract cases for the store.Enrollment methods.
var enrollmentTests = []contractTest{
	{"JoinTokenRoundTrip", testJoinTokenRoundTrip},
	{"JoinTokenRefusals", testJoinTokenRefusals},
	{"JoinTokenConcurrentUse", testJoinTokenConcurrentUse},
	{"CreateAgentConflict", testCreateAgentConflict},
	{"CertificateRevokeTouch", testCertificateRevokeTouch},
	{"Bundles", testBundles},
}

func joinToken(t *testing.T, s store.Store, hash string, uses int, expires time.Time) store.JoinToken {
	t.Helper()
	tok, err := s.CreateJoinToken(context.Background(), store.JoinToken{Hash: hash, Uses: uses,
		Labels: map[string]string{"site": "lab"}, CreatedBy: "admin", CreatedAt: base, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testJoinTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := joinToken(t, s, "aa01", 2, base.Add(time.Hour))
	want := store.JoinToken{ID: tok.ID, Hash: "aa01", Uses: 2, Labels: map[string]string{"site": "lab"},
		CreatedBy: "admin", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	if tok.ID == 0 || !reflect.DeepEqual(tok, want) {
		t.Fatalf("created token %+v\nwant %+v", tok, want)
	}
	newer, err := s.CreateJoinToken(ctx, store.JoinToken{Hash: "aa02", Uses: 1, CreatedAt: base.Add(time.Minute), ExpiresAt: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateJoinToken(ctx, store.JoinToken{Hash: "aa01", Uses: 1, ExpiresAt: base.Add(time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate hash: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateJoinToken(ctx, store.JoinToken{Hash: "aa03", Uses: 0, ExpiresAt: base.Add(time.Hour)}); err == nil {
		t.Error("token with zero uses accepted")
	}
	used, err := s.UseJoinToken(ctx, "aa01", base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want.Used = 1
	if !reflect.DeepEqual(used, want) {
		t.Errorf("used token %+v\nwant %+v", used, want)
	}
	list, err := s.JoinTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != newer.ID || !reflect.DeepEqual(list[1], want) {
		t.Errorf("join tokens = %+v, want the newer first, then %+v", list, want)
	}
}

func testJoinTokenRefusals(t *testing.T, s store.Store) {
	ctx := context.Background()
	joinToken(t, s, "once", 1, base.Add(time.Hour))
	joinToken(t, s, "old", 5, base.Add(time.Hour))
	if _, err := s.UseJoinToken(ctx, "nope", base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UseJoinToken(ctx, "once", base); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseJoinToken(ctx, "once", base); !errors.Is(err, store.ErrTokenSpent) {
		t.Errorf("second use of a one-use token: err = %v, want ErrTokenSpent", err)
	}
	// Expiry is exclusive: at the expiry instant the token is spent.
	if _, err := s.UseJoinToken(ctx, "old", base.Add(time.Hour)); !errors.Is(err, store.ErrTokenSpent) {
		t.Errorf("expired token: err = %v, want ErrTokenSpent", err)
	}
	tok, err := s.UseJoinToken(ctx, "old", base.Add(time.Hour-time.Second))
	if err != nil || tok.Used != 1 {
		t.Errorf("use just before expiry: %+v, %v; want used once", tok, err)
	}
}

func testJoinTokenConcurrentUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	joinToken(t, s, "shared", 3, base.Add(time.Hour))
	const tries = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, spent := 0, 0
	var other []error
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UseJoinToken(ctx, "shared", base)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrTokenSpent):
				spent++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range other {
		t.Error(err)
	}
	if ok != 3 || spent != tries-3 {
		t.Errorf("%d uses succeeded and %d were refused, want 3 and %d", ok, spent, tries-3)
	}
	list, err := s.JoinTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Used != 3 {
		t.Errorf("token after the race: %+v, want used 3", list)
	}
}

func testCreateAgentConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, store.Agent{Name: "web1", Hostname: "web1.lab", OS: "debian 12", Labels: map[string]string{"site": "lab"}, EnrolledAt: base})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Status != store.AgentActive || !a.EnrolledAt.Equal(base) || a.Labels["site"] != "lab" || a.Hostname != "web1.lab" {
		t.Errorf("created agent %+v", a)
	}
	if _, err := s.CreateAgent(ctx, store.Agent{Name: "web1"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("taken name: err = %v, want ErrConflict", err)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("agent after refused duplicate %+v\nwant %+v", got, a)
	}
}

func testCertificateRevokeTouch(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, store.Agent{Name: "jump1", EnrolledAt: base})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCertificate(ctx, a.ID, "0a1b", base, base.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCertificate(ctx, a.ID+1000, "0a1c", base, base.Add(24*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate for unknown agent: err = %v, want ErrNotFound", err)
	}
	hb := store.AgentHeartbeat{At: base.Add(time.Minute), Version: "1.2.0", OS: "debian 12",
		SpoolBatches: 3, SpoolBytes: 4096, BundleDigest: "sha256:ab"}
	if err := s.TouchAgent(ctx, a.ID, hb); err != nil {
		t.Fatal(err)
	}
	// An older heartbeat arriving late does not move last seen back, and
	// empty strings keep what was recorded.
	if err := s.TouchAgent(ctx, a.ID, store.AgentHeartbeat{At: base, SpoolBatches: 1, SpoolBytes: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchAgent(ctx, a.ID+1000, hb); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("heartbeat of unknown agent: err = %v, want ErrNotFound", err)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Agent{ID: a.ID, Name: "jump1", Status: store.AgentActive, Version: "1.2.0", OS: "debian 12",
		CertSerial: "0a1b", Labels: map[string]string{}, EnrolledAt: base, LastSeenAt: base.Add(time.Minute),
		SpoolBatches: 1, SpoolBytes: 10, BundleDigest: "sha256:ab"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("agent after certificate and heartbeats %+v\nwant %+v", got, want)
	}
	if err := s.RevokeAgent(ctx, a.ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAgent(ctx, a.ID, base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAgent(ctx, a.ID+1000, base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown agent: err = %v, want ErrNotFound", err)
	}
	got, err = s.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.AgentRevoked || !got.RevokedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("revoked agent: status %q revoked at %v, want revoked at the first revocation", got.Status, got.RevokedAt)
	}
}

func testBundles(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.LatestBundle(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("latest bundle of an empty store: err = %v, want ErrNotFound", err)
	}
	b1 := store.StoredBundle{Digest: "sha256:01", Version: "1.0.0", Created: base, Expires: base.Add(90 * 24 * time.Hour),
		PublishedAt: base.Add(time.Minute), Data: []byte("bundle one")}
	b2 := store.StoredBundle{Digest: "sha256:02", Version: "1.1.0", Created: base.Add(time.Hour),
		PublishedAt: base.Add(time.Hour), Data: bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<16)}
	for _, b := range []store.StoredBundle{b1, b2} {
		if err := s.PutBundle(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// The same digest again changes nothing, not even the published time.
	again := b1
	again.PublishedAt = base.Add(2 * time.Hour)
	if err := s.PutBundle(ctx, again); err != nil {
		t.Fatal(err)
	}
	for _, want := range []store.StoredBundle{b1, b2} {
		got, err := s.Bundle(ctx, want.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("bundle %s round trip: version %q created %v expires %v published %v, %d bytes; want %+v",
				want.Digest, got.Version, got.Created, got.Expires, got.PublishedAt, len(got.Data), want.Version)
		}
	}
	latest, err := s.LatestBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := b2
	wantLatest.Data = nil
	if !reflect.DeepEqual(latest, wantLatest) {
		t.Errorf("latest bundle %+v, want %s without data", latest, b2.Digest)
	}
	if _, err := s.Bundle(ctx, "sha256:ff"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown bundle: err = %v, want ErrNotFound", err)
	}
}
