// Package bundles is the server's side of signed rule bundles: it holds the
// server's Ed25519 signing key, builds and signs a bundle from the server's
// own rules directory whenever its content changed, and accepts bundles
// built and signed elsewhere (publish, or import on an air-gapped site)
// only when they verify against the keys the server trusts and are not
// older than the latest one. Agents are offered the latest stored bundle.
package bundles

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/bundle"
)

// KeyFile is the signing key's file name in the data directory; its public
// key is KeyFile + ".pub", the file to ship to agents' trusted keys.
const KeyFile = "bundle-signing.key"

// RenewBefore is how long before its expiry the server's latest bundle is
// rebuilt even though the rules did not change, so that agents never hold
// only an expired bundle.
const RenewBefore = 30 * 24 * time.Hour

// Config is what a Manager needs.
type Config struct {
	Store   store.Store // required
	DataDir string      // required: holds KeyFile
	// TrustedKeyFiles are PEM public key files of other signers whose
	// bundles Publish accepts; the server's own key is always trusted.
	TrustedKeyFiles []string
	Now             func() time.Time // default time.Now
	Logger          *slog.Logger     // default: discard
}

// Manager builds, verifies and stores bundles. Safe for concurrent use.
type Manager struct {
	st      store.Store
	key     ed25519.PrivateKey
	trusted []ed25519.PublicKey
	keyPath string
	now     func() time.Time
	log     *slog.Logger
}

// New loads the signing key from DataDir (creating it, mode 0600, with its
// public key alongside, on first start) and the extra trusted keys.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.DataDir == "" {
		return nil, errors.New("bundles: Store and DataDir are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{st: cfg.Store, keyPath: filepath.Join(cfg.DataDir, KeyFile), now: cfg.Now, log: cfg.Logger}
	if err := m.loadOrCreateKey(); err != nil {
		return nil, err
	}
	m.trusted = []ed25519.PublicKey{m.PublicKey()}
	for _, f := range cfg.TrustedKeyFiles {
		keys, err := bundle.LoadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("bundles: %w", err)
		}
		m.trusted = append(m.trusted, keys...)
	}
	return m, nil
}

func (m *Manager) loadOrCreateKey() error {
	pubPath := m.keyPath + ".pub"
	_, err := os.Stat(m.keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(m.keyPath), 0o700); err != nil {
			return fmt.Errorf("bundles: %w", err)
		}
		_, priv, err := bundle.GenerateKey()
		if err != nil {
			return fmt.Errorf("bundles: %w", err)
		}
		if err := bundle.WritePrivateKey(m.keyPath, priv); err != nil {
			return fmt.Errorf("bundles: %w", err)
		}
		m.key = priv
		m.log.Info("created the bundle signing key; give its public key to agents as a trusted bundle key",
			"key", m.keyPath, "public_key", pubPath, "key_id", bundle.KeyID(m.PublicKey()))
	case err != nil:
		return fmt.Errorf("bundles: %w", err)
	default:
		if m.key, err = bundle.LoadPrivateKey(m.keyPath); err != nil {
			return fmt.Errorf("bundles: %w", err)
		}
	}
	// The public key is derived, so (re)write it when missing.
	if _, err := os.Stat(pubPath); errors.Is(err, os.ErrNotExist) {
		if err := bundle.WritePublicKey(pubPath, m.PublicKey()); err != nil {
			return fmt.Errorf("bundles: %w", err)
		}
	}
	return nil
}

// PublicKey is the server's bundle signing public key.
func (m *Manager) PublicKey() ed25519.PublicKey { return m.key.Public().(ed25519.PublicKey) }

// PublicKeyFile is the path of the server's public key file.
func (m *Manager) PublicKeyFile() string { return m.keyPath + ".pub" }

// Trusted returns the keys Publish accepts: the server's own first.
func (m *Manager) Trusted() []ed25519.PublicKey { return slices.Clone(m.trusted) }

// EnsureFromRules builds and signs a bundle of the corpus in rulesDir and
// stores it, unless the latest stored bundle already holds the same files
// (by the manifest's digests: version and creation time always differ) and
// is not within RenewBefore of expiring. It returns the latest bundle and
// whether it stored a new one. A new bundle's version is always above the
// latest one's, so agents never see it as a downgrade.
func (m *Manager) EnsureFromRules(ctx context.Context, rulesDir string) (store.StoredBundle, bool, error) {
	now := m.now()
	latest, latestM, err := m.latest(ctx)
	if err != nil {
		return store.StoredBundle{}, false, err
	}
	version := now.UTC().Format("2006.01.02.150405")
	if latest.Version != "" && bundle.CompareVersions(version, latest.Version) <= 0 {
		version = nextVersion(latest.Version)
	}
	var unsigned, signed bytes.Buffer
	man, err := bundle.Build(&unsigned, rulesDir, bundle.BuildOptions{Version: version, Created: now})
	if err != nil {
		return store.StoredBundle{}, false, fmt.Errorf("bundles: %w", err)
	}
	if latestM != nil && slices.Equal(latestM.Files, man.Files) && now.Add(RenewBefore).Before(latestM.Expires) {
		return latest, false, nil
	}
	if err := bundle.Sign(&unsigned, &signed, m.key); err != nil {
		return store.StoredBundle{}, false, fmt.Errorf("bundles: %w", err)
	}
	b, err := m.store(ctx, signed.Bytes(), man, now)
	if err != nil {
		return store.StoredBundle{}, false, err
	}
	m.log.Info("built and stored a rule bundle from the rules directory", "rules", rulesDir,
		"version", b.Version, "digest", b.Digest, "files", len(man.Files), "expires", b.Expires)
	return b, true, nil
}

// latest returns the latest stored bundle and its manifest; the manifest is
// nil when there is no bundle, or when the latest one no longer verifies
// (expired, or signed by a key no longer trusted), so that it is replaced.
func (m *Manager) latest(ctx context.Context) (store.StoredBundle, *bundle.Manifest, error) {
	latest, err := m.st.LatestBundle(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return store.StoredBundle{}, nil, nil
	}
	if err != nil {
		return store.StoredBundle{}, nil, fmt.Errorf("bundles: %w", err)
	}
	full, err := m.st.Bundle(ctx, latest.Digest)
	if err != nil {
		return store.StoredBundle{}, nil, fmt.Errorf("bundles: %w", err)
	}
	vb, err := bundle.Verify(full.Data, bundle.VerifyOptions{Trusted: m.trusted, Now: m.now()})
	full.Data = nil
	if err != nil {
		m.log.Warn("the latest stored bundle no longer verifies; it will be replaced", "digest", latest.Digest, "err", err)
		return full, nil, nil
	}
	return full, &vb.Manifest, nil
}

// Publish verifies a bundle built and signed elsewhere (vigil bundle build
// + sign) against the trusted keys and stores it. It refuses an unsigned,
// untrusted, tampered, expired or not-yet-valid bundle, and one older than
// the latest stored bundle (bundle.ErrDowngrade), as agents would. The
// same file published again changes nothing.
func (m *Manager) Publish(ctx context.Context, data []byte) (store.StoredBundle, error) {
	now := m.now()
	latest, err := m.st.LatestBundle(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.StoredBundle{}, fmt.Errorf("bundles: %w", err)
	}
	vb, err := bundle.Verify(data, bundle.VerifyOptions{Trusted: m.trusted, Now: now, MinVersion: latest.Version})
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("publish: %w", err)
	}
	if vb.Digest == latest.Digest {
		return latest, nil
	}
	if latest.Version != "" && bundle.CompareVersions(vb.Manifest.Version, latest.Version) == 0 {
		return store.StoredBundle{}, fmt.Errorf("publish: bundle %s: version %s is already published with other content (%s): %w",
			vb.Digest, latest.Version, latest.Digest, bundle.ErrDowngrade)
	}
	b, err := m.store(ctx, data, vb.Manifest, now)
	if err != nil {
		return store.StoredBundle{}, err
	}
	m.log.Info("published a rule bundle", "version", b.Version, "digest", b.Digest, "files", len(vb.Manifest.Files))
	return b, nil
}

func (m *Manager) store(ctx context.Context, data []byte, man bundle.Manifest, now time.Time) (store.StoredBundle, error) {
	b := store.StoredBundle{Digest: bundle.Digest(data), Version: man.Version, Created: man.Created,
		Expires: man.Expires, PublishedAt: store.Micro(now), Data: data}
	if err := m.st.PutBundle(ctx, b); err != nil {
		return store.StoredBundle{}, fmt.Errorf("bundles: %w", err)
	}
	b.Data = nil
	return b, nil
}

// nextVersion increments the last part of a dotted numeric version
// ("2026.11.29.150405" -> "2026.11.29.150406"), or appends ".1" when that
// part does not fit an integer.
func nextVersion(v string) string {
	i := strings.LastIndexByte(v, '.')
	n, err := strconv.ParseUint(v[i+1:], 10, 63)
	if err != nil {
		return v + ".1"
	}
	return v[:i+1] + strconv.FormatUint(n+1, 10)
}
