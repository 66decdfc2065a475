// Package bundletest makes real signed rule bundles for the agent's tests:
// a small corpus copied from the repository's rules directory (its
// frameworks, defaults and the SSH and account rules), built and signed
// with the shared bundle package.
package bundletest

import (
	"bytes"
	"crypto/ed25519"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/shared/bundle"
)

// RulesDir is the repository's rules directory.
func RulesDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "rules")
	if _, err := os.Stat(filepath.Join(dir, "defaults.yml")); err != nil {
		t.Fatalf("repository rules directory: %v", err)
	}
	return dir
}

// Corpus copies a small part of the repository's corpus (frameworks,
// defaults, and the rules under access-control whose names start with one
// of prefixes) into a new directory.
func Corpus(t testing.TB, prefixes ...string) string {
	t.Helper()
	src := RulesDir(t)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		keep := rel == "defaults.yml" || strings.HasPrefix(rel, "defaults.d/") || strings.HasPrefix(rel, "frameworks/")
		if dir, name := filepath.Split(rel); dir == "access-control/" {
			for _, pre := range prefixes {
				keep = keep || strings.HasPrefix(name, pre)
			}
		}
		if !keep {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// Keys makes a signing key pair and writes the public key to a file.
func Keys(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bundle.pub")
	if err := bundle.WritePublicKey(file, pub); err != nil {
		t.Fatal(err)
	}
	return pub, priv, file
}

// Build returns an unsigned bundle of rulesDir.
func Build(t testing.TB, rulesDir, version string, created, expires time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := bundle.Build(&buf, rulesDir, bundle.BuildOptions{Version: version, Created: created, Expires: expires}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Sign signs a built bundle.
func Sign(t testing.TB, data []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.Sign(bytes.NewReader(data), &buf, key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Signed builds and signs a bundle created now, valid for 30 days.
func Signed(t testing.TB, rulesDir, version string, key ed25519.PrivateKey) []byte {
	t.Helper()
	now := time.Now()
	return Sign(t, Build(t, rulesDir, version, now.Add(-time.Minute), now.Add(30*24*time.Hour)), key)
}
