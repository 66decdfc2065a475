package resultsarchive

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzRead seed files")

var seedNames = []string{"valid", "tampered", "truncated"}

// makeSeeds returns a valid archive and near misses of it.
func makeSeeds(t testing.TB) map[string][]byte {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ag := newAgent(t, now)
	good := write(t, sample(now), ag.key, ag.certPEM)
	pb, sig, cert := members(t, good)
	bad := append([]byte(nil), pb...)
	bad[len(bad)-1] ^= 1
	return map[string][]byte{
		"valid":     good,
		"tampered":  rawTar([]byte(resultsName), bad, []byte(sigName), sig, []byte(certName), cert),
		"truncated": good[:len(good)/2],
	}
}

// TestFuzzSeeds keeps the checked-in seed corpus present (go test -run
// TestFuzzSeeds -update-seeds rewrites it) and checks the valid seed reads.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	if *updateSeeds {
		os.MkdirAll(dir, 0o755)
		for name, data := range makeSeeds(t) {
			if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range seedNames {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("seed %s missing (go test -run TestFuzzSeeds -update-seeds): %v", name, err)
		}
	}
}

// FuzzRead feeds arbitrary bytes to the archive reader: no panic, every
// refusal one of the package's errors, and anything accepted has a
// certificate and an archive.
func FuzzRead(f *testing.F) {
	for _, s := range makeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
				t.Fatalf("refusal is not a package error: %v", err)
			}
			return
		}
		if a.Archive == nil || a.Cert == nil || a.Digest != sum(data) {
			t.Fatalf("accepted archive incomplete: %+v", a)
		}
	})
}
