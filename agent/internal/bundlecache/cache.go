// Package bundlecache keeps the signed rule bundles an agent has verified,
// by digest, so a bundle is fetched only when it changes, and remembers the
// highest version accepted so an older bundle is refused as a downgrade.
package bundlecache

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/shared/bundle"
)

// AcceptedFile records the highest bundle version accepted.
const AcceptedFile = "accepted.json"

// Accepted is the content of accepted.json.
type Accepted struct {
	Version  string    `json:"version"`
	Digest   string    `json:"digest"`
	Accepted time.Time `json:"accepted"`
}

// Entry is a verified bundle ready to scan with.
type Entry struct {
	Digest   string
	Version  string
	RulesDir string // the extracted corpus
}

// Fetcher downloads a bundle's bytes by digest.
type Fetcher func(ctx context.Context, digest string) ([]byte, error)

// Cache is a bundles/ directory. Safe for concurrent use.
type Cache struct {
	dir     string
	trusted []ed25519.PublicKey
	now     func() time.Time

	mu      sync.Mutex // guards accepted.json and extraction
	fetchMu sync.Mutex // one fetch at a time, so concurrent scans share one download
}

// Open opens (creating) the cache in dir, trusting the given keys.
func Open(dir string, trusted []ed25519.PublicKey, now func() time.Time) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bundle cache %s: %w", dir, err)
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{dir: dir, trusted: trusted, now: now}, nil
}

// LoadTrustedKeys reads every public key file.
func LoadTrustedKeys(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		ks, err := bundle.LoadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("trusted bundle key %s: %w", f, err)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("bundle digest %q: not sha256:<64 hex>", digest)
	}
	return h, nil
}

// Accepted reads the highest accepted version (zero when none yet).
func (c *Cache) Accepted() (Accepted, error) {
	var a Accepted
	data, err := os.ReadFile(filepath.Join(c.dir, AcceptedFile))
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("bundle cache: %w", err)
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("bundle cache %s: %w", AcceptedFile, err)
	}
	return a, nil
}

// Digests lists the cached bundles' digests.
func (c *Cache) Digests() []string {
	des, _ := os.ReadDir(c.dir)
	var out []string
	for _, de := range des {
		if h, ok := strings.CutSuffix(de.Name(), ".tar"); ok && len(h) == 64 {
			out = append(out, "sha256:"+h)
		}
	}
	sort.Strings(out)
	return out
}

// Has reports whether the bundle is cached.
func (c *Cache) Has(digest string) bool {
	h, err := hexOf(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(c.dir, h+".tar"))
	return err == nil
}

// Ensure returns the verified bundle with this digest, fetching it only
// when it is not cached. Every use re-verifies (signature, expiry, no
// downgrade below the highest accepted version); a refusal wraps the
// bundle package's error and is never cached.
func (c *Cache) Ensure(ctx context.Context, digest string, fetch Fetcher) (*Entry, error) {
	h, err := hexOf(digest)
	if err != nil {
		return nil, err
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	data, err := os.ReadFile(filepath.Join(c.dir, h+".tar"))
	if errors.Is(err, os.ErrNotExist) {
		if data, err = fetch(ctx, digest); err != nil {
			return nil, fmt.Errorf("fetch bundle %s: %w", digest, err)
		}
		if got := bundle.Digest(data); got != digest {
			return nil, fmt.Errorf("fetched bundle %s has digest %s: %w", digest, got, bundle.ErrTampered)
		}
	} else if err != nil {
		return nil, fmt.Errorf("bundle cache: %w", err)
	}
	return c.Accept(data)
}

// Accept verifies a bundle's bytes, caches and extracts it, and raises the
// accepted version when it is the highest seen.
func (c *Cache) Accept(data []byte) (*Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	acc, err := c.Accepted()
	if err != nil {
		return nil, err
	}
	digest := bundle.Digest(data)
	b, err := bundle.Verify(data, bundle.VerifyOptions{Trusted: c.trusted, Now: c.now(), MinVersion: acc.Version})
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", digest, err)
	}
	h, _ := hexOf(digest)
	tarPath := filepath.Join(c.dir, h+".tar")
	if _, err := os.Stat(tarPath); err != nil {
		if err := state.WriteAtomic(c.dir, h+".tar", data, 0o600); err != nil {
			return nil, err
		}
	}
	rulesDir := filepath.Join(c.dir, h)
	if _, err := os.Stat(filepath.Join(rulesDir, ".complete")); err != nil {
		if err := extract(b, c.dir, h); err != nil {
			return nil, err
		}
	}
	if acc.Version == "" || bundle.CompareVersions(b.Manifest.Version, acc.Version) > 0 {
		a := Accepted{Version: b.Manifest.Version, Digest: digest, Accepted: c.now().UTC()}
		enc, _ := json.MarshalIndent(a, "", "  ")
		if err := state.WriteAtomic(c.dir, AcceptedFile, append(enc, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return &Entry{Digest: digest, Version: b.Manifest.Version, RulesDir: rulesDir}, nil
}

// extract writes the corpus to dir/<hex> through a temporary directory, so
// a half-extracted corpus is never scanned with.
func extract(b *bundle.Bundle, dir, h string) error {
	tmp, err := os.MkdirTemp(dir, "."+h+"-*")
	if err != nil {
		return fmt.Errorf("extract bundle %s: %w", h, err)
	}
	defer os.RemoveAll(tmp)
	if err := b.Extract(tmp); err != nil {
		return fmt.Errorf("extract bundle %s: %w", h, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return fmt.Errorf("extract bundle %s: %w", h, err)
	}
	final := filepath.Join(dir, h)
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("extract bundle %s: %w", h, err)
	}
	return nil
}
