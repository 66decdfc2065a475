package bundlecache

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/scan"
	"github.com/vigilfleet/vigil/shared/bundle"
)

// server stands in for FetchBundle: it serves bundles by digest and counts
// the fetches.
type server struct {
	bundles map[string][]byte
	fetches int
}

func (s *server) add(data []byte) string {
	d := bundle.Digest(data)
	s.bundles[d] = data
	return d
}

func (s *server) fetch(_ context.Context, digest string) ([]byte, error) {
	s.fetches++
	data, ok := s.bundles[digest]
	if !ok {
		return nil, errors.New("no such bundle")
	}
	return data, nil
}

func TestCacheHitAvoidsRefetch(t *testing.T) {
	pub, priv, _ := bundletest.Keys(t)
	corpus := bundletest.Corpus(t, "ssh-permit-root")
	srv := &server{bundles: map[string][]byte{}}
	d := srv.add(bundletest.Signed(t, corpus, "2026.1.1", priv))
	dir := t.TempDir()
	c, err := Open(dir, []ed25519.PublicKey{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Ensure(t.Context(), d, srv.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != "2026.1.1" || e.Digest != d {
		t.Errorf("entry = %+v", e)
	}
	co, err := scan.LoadCorpus(e.RulesDir)
	if err != nil || len(co.Rules) == 0 {
		t.Fatalf("extracted corpus: %d rules, %v", len(co.Rules), err)
	}
	// A new cache over the same directory (an agent restart) hits as well.
	c2, _ := Open(dir, []ed25519.PublicKey{pub}, nil)
	if _, err := c2.Ensure(t.Context(), d, srv.fetch); err != nil {
		t.Fatal(err)
	}
	if srv.fetches != 1 {
		t.Errorf("fetches = %d, want 1", srv.fetches)
	}
	if got := c2.Digests(); len(got) != 1 || got[0] != d {
		t.Errorf("Digests = %v", got)
	}
	acc, _ := c2.Accepted()
	if acc.Version != "2026.1.1" || acc.Digest != d {
		t.Errorf("accepted = %+v", acc)
	}
}

func TestRefusals(t *testing.T) {
	pub, priv, _ := bundletest.Keys(t)
	_, otherPriv, _ := bundletest.Keys(t)
	corpus := bundletest.Corpus(t, "ssh-permit-root")
	now := time.Now()
	unsigned := bundletest.Build(t, corpus, "2026.2.1", now.Add(-time.Hour), now.Add(time.Hour))
	good := bundletest.Sign(t, unsigned, priv)
	tampered := bytes.Replace(good, []byte("Refuse direct root logins"), []byte("Allow  direct root logins"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("tamper did not change the bundle")
	}
	expired := bundletest.Sign(t, bundletest.Build(t, corpus, "2026.2.2", now.Add(-48*time.Hour), now.Add(-time.Hour)), priv)
	older := bundletest.Signed(t, corpus, "2026.1.9", priv)
	untrusted := bundletest.Signed(t, corpus, "2026.3.1", otherPriv)

	dir := t.TempDir()
	c, err := Open(dir, []ed25519.PublicKey{pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{bundles: map[string][]byte{}}
	if _, err := c.Ensure(t.Context(), srv.add(good), srv.fetch); err != nil {
		t.Fatalf("good bundle: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"unsigned", unsigned, bundle.ErrUnsigned, "bundle is not signed"},
		{"tampered", tampered, bundle.ErrTampered, "does not match its signed manifest"},
		{"expired", expired, bundle.ErrExpired, "has expired"},
		{"downgrade", older, bundle.ErrDowngrade, "older than one already accepted"},
		{"untrusted", untrusted, bundle.ErrUntrusted, "does not verify with any trusted key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := srv.add(tc.data)
			_, err := c.Ensure(t.Context(), d, srv.fetch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), d) {
				t.Errorf("error %q should say %q and name %s", err, tc.text, d)
			}
			if c.Has(d) {
				t.Errorf("refused bundle was cached")
			}
		})
	}
	if acc, _ := c.Accepted(); acc.Version != "2026.2.1" {
		t.Errorf("accepted version moved to %q", acc.Version)
	}
	// A server that answers with other bytes than the digest asked for.
	wrong := srv.add(good)
	srv.bundles[wrong] = older
	os.Remove(filepath.Join(dir, strings.TrimPrefix(wrong, "sha256:")+".tar"))
	os.RemoveAll(filepath.Join(dir, strings.TrimPrefix(wrong, "sha256:")))
	if _, err := c.Ensure(t.Context(), wrong, srv.fetch); !errors.Is(err, bundle.ErrTampered) {
		t.Errorf("digest mismatch: %v", err)
	}
}
