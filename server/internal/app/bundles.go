package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfleet/vigil/server/internal/bundles"
	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/server/internal/importer"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/pki"
)

// maxArchiveBytes bounds a results archive read for import: a full scan of
// a host is a few MiB; this leaves room without reading anything at all.
const maxArchiveBytes = 512 << 20

// EnsureBundle makes sure the server's bundle signing key exists in the
// data directory and that the latest stored bundle holds the rules
// directory's content, building and signing a new one when it does not.
// Serve calls it at start; trusted are extra public key files whose
// bundles `bundle publish` accepts.
func EnsureBundle(ctx context.Context, cfg config.Config, st store.Store, trusted []string, log *slog.Logger) (*bundles.Manager, error) {
	m, err := bundles.New(bundles.Config{Store: st, DataDir: cfg.DataDir, TrustedKeyFiles: trusted, Logger: log})
	if err != nil {
		return nil, err
	}
	b, created, err := m.EnsureFromRules(ctx, cfg.RulesDir)
	if err != nil {
		return nil, err
	}
	if !created {
		log.Info("rule bundle up to date", "version", b.Version, "digest", b.Digest)
	}
	return m, nil
}

// PublishBundle verifies the bundle file at path against the server's own
// bundle key and the trusted key files, refuses a downgrade, and stores it
// as the latest bundle; the action is audited with actor "cli".
func PublishBundle(ctx context.Context, cfg config.Config, st store.Store, path string, trusted []string, now time.Time) (store.StoredBundle, error) {
	m, err := bundles.New(bundles.Config{Store: st, DataDir: cfg.DataDir, TrustedKeyFiles: trusted})
	if err != nil {
		return store.StoredBundle{}, err
	}
	data, err := readCapped(path, maxArchiveBytes)
	if err != nil {
		return store.StoredBundle{}, err
	}
	b, err := m.Publish(ctx, data)
	if err != nil {
		return store.StoredBundle{}, fmt.Errorf("%s: %w", path, err)
	}
	_, err = st.AppendAudit(ctx, store.AuditEntry{At: now, Actor: "cli", Action: "bundle.publish",
		Target: "bundle/" + b.Digest, Detail: fmt.Sprintf(`{"version":%q,"file":%q}`, b.Version, path), Source: "local"})
	if err != nil {
		return b, fmt.Errorf("audit bundle publish: %w", err)
	}
	return b, nil
}

// ImportResults verifies the offline results archive at path against the
// server's CA and ingests it like a live scan (see importer.Import). The
// CA must exist already (the first `serve` creates it): an import never
// creates one.
func ImportResults(ctx context.Context, cfg config.Config, st store.Store, path string, now time.Time) (importer.Report, error) {
	dir := filepath.Join(cfg.DataDir, "ca")
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if cfg.CACert != "" {
		certFile, keyFile = cfg.CACert, cfg.CAKey
	}
	ca, err := pki.LoadCA(certFile, keyFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return importer.Report{}, fmt.Errorf("no CA in %s: start the server once (vigil-server serve) to create it: %w", dir, err)
		}
		return importer.Report{}, err
	}
	idx, err := posture.LoadIndex(cfg.RulesDir)
	if err != nil {
		return importer.Report{}, fmt.Errorf("rules %s: %w", cfg.RulesDir, err)
	}
	data, err := readCapped(path, maxArchiveBytes)
	if err != nil {
		return importer.Report{}, err
	}
	rep, err := importer.Import(ctx, st, posture.NewService(st, idx, time.Now), ca, data, now)
	if err != nil {
		return rep, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}

// readCapped reads a whole file, refusing one larger than limit.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit", path, fi.Size(), limit)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
