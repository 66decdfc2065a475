package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bundleCorpus is a valid corpus with defaults.yml, as vigil check wants.
func bundleCorpus(t *testing.T) string {
	t.Helper()
	rules, _ := localCorpus(t)
	writeFile(t, rules, "defaults.yml", "variables:\n  test_file: /etc/passwd\n")
	writeFile(t, rules, "tests/README.md", "proof cases\n")
	return rules
}

// keygen makes a key pair under dir and returns its prefix.
func keygen(t *testing.T, dir, name string) string {
	t.Helper()
	prefix := filepath.Join(dir, name)
	code, stdout, stderr := runCLI(t, testEnv(t, nil), "bundle", "keygen", "--out", prefix)
	if code != exitOK || !strings.Contains(stdout, "key id ") {
		t.Fatalf("keygen: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	return prefix
}

func TestBundleBuildSignVerify(t *testing.T) {
	env := testEnv(t, nil)
	dir := t.TempDir()
	rules := bundleCorpus(t)
	prefix := keygen(t, dir, "signing")
	if st, err := os.Stat(prefix + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code, _, stderr := runCLI(t, env, "bundle", "keygen", "--out", prefix); code != exitFail || !strings.Contains(stderr, "exists") {
		t.Errorf("keygen over an existing key: exit %d, %q", code, stderr)
	}

	unsigned := filepath.Join(dir, "b.tar")
	code, stdout, stderr := runCLI(t, env, "bundle", "build", "--rules", rules, "--out", unsigned, "--version", "2026.11.29.3", "--expires", "30d")
	if code != exitOK || !strings.Contains(stdout, "version 2026.11.29.3") || !strings.Contains(stdout, "3 files") {
		t.Fatalf("build: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Unsigned: refused with the precise reason.
	code, _, stderr = runCLI(t, env, "bundle", "verify", "--trusted", prefix+".pub", unsigned)
	if code != exitFail || !strings.Contains(stderr, "not signed") {
		t.Errorf("verify unsigned: exit %d, stderr %q", code, stderr)
	}

	signed := filepath.Join(dir, "signed.tar")
	code, stdout, stderr = runCLI(t, env, "bundle", "sign", "--key", prefix+".key", "--in", unsigned, "--out", signed)
	if code != exitOK {
		t.Fatalf("sign: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "bundle", "verify", "--trusted", prefix+".pub", signed)
	if code != exitOK {
		t.Fatalf("verify: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"version  2026.11.29.3", "files    3", "digest   sha256:", "created  ", "expires  "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr := runCLI(t, env, "bundle", "verify", "--trusted", prefix+".pub", "--min-version", "2026.11.30", signed); code != exitFail || !strings.Contains(stderr, "older") {
		t.Errorf("downgrade: exit %d, %q", code, stderr)
	}

	// Signing in place gives the same bytes as --in/--out.
	if code, _, stderr := runCLI(t, env, "bundle", "sign", "--key", prefix+".key", unsigned); code != exitOK {
		t.Fatalf("sign in place: exit %d, %q", code, stderr)
	}
	a, _ := os.ReadFile(unsigned)
	b, _ := os.ReadFile(signed)
	if !bytes.Equal(a, b) {
		t.Error("in-place signature differs from --out signature")
	}

	// Another key, trusted alongside: still verifies; trusted alone: refused
	// naming the key tried.
	other := keygen(t, dir, "other")
	if code, _, stderr := runCLI(t, env, "bundle", "verify", "--trusted", other+".pub,"+prefix+".pub", signed); code != exitOK {
		t.Errorf("two trusted keys: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, env, "bundle", "verify", "--trusted", other+".pub", signed)
	if code != exitFail || !strings.Contains(stderr, "does not verify with any trusted key") || !strings.Contains(stderr, "tried keys") {
		t.Errorf("untrusted: exit %d, %q", code, stderr)
	}

	// One flipped byte in a rule file.
	data := bytes.Clone(b)
	i := bytes.Index(data, []byte("id: perm-bad")) // in the rule file, not the manifest
	if i < 0 {
		t.Fatal("rule content not found in the bundle")
	}
	data[i] ^= 1
	tampered := filepath.Join(dir, "tampered.tar")
	os.WriteFile(tampered, data, 0o644)
	code, _, stderr = runCLI(t, env, "bundle", "verify", "--trusted", prefix+".pub", tampered)
	if code != exitFail || !strings.Contains(stderr, "does not match") || !strings.Contains(stderr, "perm-bad.yml") {
		t.Errorf("tampered: exit %d, %q", code, stderr)
	}
}

func TestBundleBuildRefusesInvalidCorpus(t *testing.T) {
	rules := bundleCorpus(t)
	writeFile(t, rules, "filesystem/broken.yml", strings.Replace(permRule("broken", "low", "/etc/passwd", "0644"), "severity: low", "severity: urgent", 1))
	out := filepath.Join(t.TempDir(), "b.tar")
	code, _, stderr := runCLI(t, testEnv(t, nil), "bundle", "build", "--rules", rules, "--out", out)
	if code != exitUsage || !strings.Contains(stderr, "broken.yml") || !strings.Contains(stderr, "not building") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a bundle was written for an invalid corpus")
	}
}

func TestBundleUsageErrors(t *testing.T) {
	env := testEnv(t, nil)
	for _, args := range [][]string{
		{"bundle"},
		{"bundle", "frobnicate"},
		{"bundle", "build", "--rules", t.TempDir()},
		{"bundle", "build", "--out", "x", "--expires", "soon"},
		{"bundle", "sign", "--key", "k"},
		{"bundle", "sign", "a", "b"},
		{"bundle", "verify", "file"},
	} {
		if code, _, _ := runCLI(t, env, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	for _, args := range [][]string{{"bundle", "-h"}, {"bundle", "build", "-h"}, {"help", "bundle", "verify"}} {
		if code, stdout, _ := runCLI(t, env, args...); code != exitOK || !strings.Contains(stdout, "Usage: vigil bundle") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90d":        now.Add(90 * 24 * time.Hour),
		"36h":        now.Add(36 * time.Hour),
		"2027-03-01": time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0d", "-5h", "2020-01-01", "soon"} {
		if _, err := parseExpiry(bad, now); err == nil {
			t.Errorf("parseExpiry(%q) accepted", bad)
		}
	}
}
