package bundle

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzVerify seed files")

// seeds are the named seed inputs for FuzzVerify: a valid signed bundle and
// near misses of it.
func seeds(t testing.TB) map[string][]byte {
	dir := corpus(t)
	good := sign(t, build(t, dir, "2026.11.29.1", t0), signKey)
	tampered := bytes.Clone(good)
	tampered[bytes.Index(tampered, []byte("UNIQUE-ASLR-CONTENT"))] ^= 1
	return map[string][]byte{
		"signed":    good,
		"unsigned":  build(t, dir, "1", t0),
		"tampered":  tampered,
		"truncated": good[:len(good)/2],
	}
}

// TestFuzzSeeds keeps the checked-in seed corpus in step with the format
// (go test -run TestFuzzSeeds -update-seeds rewrites it) and checks the
// valid seed still verifies, so the fuzzer starts from a real bundle.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	for name, data := range seeds(t) {
		p := filepath.Join(dir, name)
		if *updateSeeds {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(p, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("seed %s missing (go test -run TestFuzzSeeds -update-seeds): %v", name, err)
		}
	}
	if _, err := Verify(seeds(t)["signed"], opts()); err != nil {
		t.Fatalf("valid seed does not verify: %v", err)
	}
}

// FuzzVerify feeds arbitrary bytes to the bundle reader: it must never
// panic, every refusal must be one of the package's errors, and anything
// accepted must be consistent with its manifest.
func FuzzVerify(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	known := []error{ErrMalformed, ErrUnsigned, ErrUntrusted, ErrTampered, ErrExpired, ErrDowngrade, ErrNotYetValid}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := opts()
		o.MinVersion = "2026.11.29.1"
		b, err := Verify(data, o)
		if err != nil {
			for _, k := range known {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("refusal is not a package error: %v", err)
		}
		if b.Digest != Digest(data) {
			t.Fatalf("digest %s of %s", b.Digest, Digest(data))
		}
		if len(b.files) != len(b.Manifest.Files) {
			t.Fatalf("%d files for %d manifest entries", len(b.files), len(b.Manifest.Files))
		}
		for _, e := range b.Manifest.Files {
			d, ok := b.files[e.Path]
			if !ok || hexSHA256(d) != e.SHA256 || !validPath(e.Path) {
				t.Fatalf("accepted file %q does not match its entry", e.Path)
			}
		}
	})
}
