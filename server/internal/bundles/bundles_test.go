package bundles

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
	"github.com/vigilfleet/vigil/shared/bundle"
)

// repoRules is the repository's rule corpus.
const repoRules = "../../../rules"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newManager(t *testing.T, st store.Store, dir string, clk *clock, trusted ...string) *Manager {
	t.Helper()
	m, err := New(Config{Store: st, DataDir: dir, TrustedKeyFiles: trusted, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSigningKeyCreatedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st := openStore(t)
	clk := &clock{t: time.Now()}
	m := newManager(t, st, dir, clk)
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %04o, want 0600", fi.Mode().Perm())
	}
	pubs, err := bundle.LoadPublicKeys(m.PublicKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || !pubs[0].Equal(m.PublicKey()) {
		t.Errorf("public key file holds %d keys, not the signing key's", len(pubs))
	}
	// A second start loads the same key.
	if again := newManager(t, st, dir, clk); !again.PublicKey().Equal(m.PublicKey()) {
		t.Error("second start made a new signing key")
	}
	// A key readable by others is refused, naming the file.
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Store: st, DataDir: dir}); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("world-readable key: err = %v, want a refusal naming %s", err, KeyFile)
	}
}

func TestEnsureFromRulesStoresOnlyChanges(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Now()}
	m := newManager(t, st, t.TempDir(), clk)

	// The repository's corpus.
	b1, created, err := m.EnsureFromRules(ctx, repoRules)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("first EnsureFromRules stored nothing")
	}
	stored, err := st.Bundle(ctx, b1.Digest)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := bundle.Verify(stored.Data, bundle.VerifyOptions{Trusted: []ed25519.PublicKey{m.PublicKey()}, Now: clk.Now()})
	if err != nil {
		t.Fatalf("stored bundle does not verify with the server key: %v", err)
	}
	if vb.Manifest.Version != b1.Version || len(vb.Manifest.Files) < 10 || b1.Digest != bundle.Digest(stored.Data) {
		t.Errorf("stored bundle %+v, manifest version %s with %d files", b1, vb.Manifest.Version, len(vb.Manifest.Files))
	}

	// Unchanged rules a minute later: nothing new, the same latest.
	clk.Add(time.Minute)
	b2, created, err := m.EnsureFromRules(ctx, repoRules)
	if err != nil {
		t.Fatal(err)
	}
	if created || b2.Digest != b1.Digest {
		t.Errorf("unchanged rules: created=%v digest %s, want the stored %s", created, b2.Digest, b1.Digest)
	}

	// A copy with one rule file changed, in the same second: a new bundle
	// with a higher version.
	rules := t.TempDir()
	if err := os.CopyFS(rules, os.DirFS(repoRules)); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(rules, vb.Files()[len(vb.Files())/2])
	f, err := os.OpenFile(changed, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n# local change\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b3, created, err := m.EnsureFromRules(ctx, rules)
	if err != nil {
		t.Fatal(err)
	}
	if !created || b3.Digest == b1.Digest || bundle.CompareVersions(b3.Version, b1.Version) <= 0 {
		t.Errorf("changed rule: created=%v, %+v; want a new bundle above %s", created, b3, b1.Version)
	}
	latest, err := st.LatestBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Digest != b3.Digest {
		t.Errorf("latest bundle %s, want the rebuilt %s", latest.Digest, b3.Digest)
	}
	// Built again at once from the changed copy: nothing new.
	if _, created, _ := m.EnsureFromRules(ctx, rules); created {
		t.Error("second build of the changed copy stored another bundle")
	}
	// Close to expiry the same content is rebuilt, so agents never hold
	// only an expired bundle.
	clk.Add(90*24*time.Hour - RenewBefore + time.Hour)
	if b4, created, err := m.EnsureFromRules(ctx, rules); err != nil || !created || b4.Digest == b3.Digest {
		t.Errorf("near expiry: created=%v err=%v, want a fresh bundle", created, err)
	}
}

// external is a signer other than the server, as `vigil bundle sign` is.
type external struct {
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
	pubFile string
}

func newExternal(t *testing.T) external {
	t.Helper()
	pub, priv, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "release.pub")
	if err := bundle.WritePublicKey(f, pub); err != nil {
		t.Fatal(err)
	}
	return external{pub, priv, f}
}

// build makes a bundle of the repository's rules with version v, signed by
// key (unsigned when key is nil).
func build(t *testing.T, v string, created time.Time, key ed25519.PrivateKey) []byte {
	t.Helper()
	var unsigned, signed bytes.Buffer
	if _, err := bundle.Build(&unsigned, repoRules, bundle.BuildOptions{Version: v, Created: created}); err != nil {
		t.Fatal(err)
	}
	if key == nil {
		return unsigned.Bytes()
	}
	if err := bundle.Sign(&unsigned, &signed, key); err != nil {
		t.Fatal(err)
	}
	return signed.Bytes()
}

// tamper rewrites the bundle with one corpus file's content changed, the
// signed manifest left as it was.
func tamper(t *testing.T, data []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	done := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !done && strings.HasPrefix(hdr.Name, "rules/") {
			body = append(body, []byte("\n# tampered\n")...)
			hdr.Size = int64(len(body))
			done = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatal("no corpus file to tamper with")
	}
	return out.Bytes()
}

func TestPublishVerifiesAndRefusesDowngrade(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Now()}
	ext := newExternal(t)
	m := newManager(t, st, t.TempDir(), clk, ext.pubFile)
	if n := len(m.Trusted()); n != 2 {
		t.Fatalf("%d trusted keys, want the server's and the configured one", n)
	}
	created := clk.Now().Add(-time.Hour)
	good := build(t, "3000.1.1", created, ext.priv)
	stranger := newExternal(t)

	refusals := []struct {
		name string
		data []byte
		want error
	}{
		{"unsigned", build(t, "3000.1.2", created, nil), bundle.ErrUnsigned},
		{"untrusted", build(t, "3000.1.2", created, stranger.priv), bundle.ErrUntrusted},
		{"tampered", tamper(t, good), bundle.ErrTampered},
		{"garbage", []byte("not a tar"), bundle.ErrMalformed},
	}
	for _, r := range refusals {
		if _, err := m.Publish(ctx, r.data); !errors.Is(err, r.want) {
			t.Errorf("%s bundle: err = %v, want %v", r.name, err, r.want)
		}
	}
	if _, err := st.LatestBundle(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused bundle was stored (latest err = %v)", err)
	}

	b, err := m.Publish(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != "3000.1.1" || b.Digest != bundle.Digest(good) {
		t.Errorf("published %+v", b)
	}
	// The same file again changes nothing.
	clk.Add(time.Minute)
	if again, err := m.Publish(ctx, good); err != nil || again.Digest != b.Digest || !again.PublishedAt.Equal(b.PublishedAt) {
		t.Errorf("republish: %+v, %v; want the stored bundle unchanged", again, err)
	}
	// Older, or the same version with other content: refused as downgrades.
	for _, v := range []string{"2999.12.31", "3000.1.1"} {
		_, err := m.Publish(ctx, build(t, v, created.Add(time.Second), ext.priv))
		if !errors.Is(err, bundle.ErrDowngrade) {
			t.Errorf("version %s after 3000.1.1: err = %v, want ErrDowngrade", v, err)
		}
	}
	// A bundle signed by the server's own key is trusted too.
	own := build(t, "3000.2", created, m.key)
	if _, err := m.Publish(ctx, own); err != nil {
		t.Errorf("bundle signed with the server key: %v", err)
	}
	// The server's own build after an external publish goes above it.
	bb, createdNew, err := m.EnsureFromRules(ctx, repoRules)
	if err != nil {
		t.Fatal(err)
	}
	if createdNew {
		t.Errorf("rules unchanged since the published 3000.2 (same files), yet a new bundle %s was stored", bb.Version)
	}
}
