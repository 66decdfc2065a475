package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	signKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	signPub = signKey.Public().(ed25519.PublicKey)
)

// corpus writes a small rules directory with files that must and must not
// go into a bundle.
func corpus(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for rel, data := range map[string]string{
		"defaults.yml":                "vars: {a: 1}\n",
		"defaults.d/ssh.yml":          "vars: {b: 2}\n",
		"frameworks/cis.yml":          "id: cis\n",
		"kernel/sysctl-aslr.yml":      "id: sysctl-aslr\nUNIQUE-ASLR-CONTENT\n",
		"network/ssh/root.yaml":       "id: ssh-root\n",
		"tests/README.md":             "proof cases\n",
		"tests/case.yml":              "not a rule\n",
		"README.md":                   "about\n",
		".hidden/x.yml":               "hidden\n",
		"kernel/.swap.yml":            "editor\n",
		"kernel/testdata/fixture.yml": "fixture\n",
	} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build returns an unsigned bundle of corpus with version v.
func build(t testing.TB, dir, v string, created time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Build(&buf, dir, BuildOptions{Version: v, Created: created}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sign returns data signed with key.
func sign(t testing.TB, data []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Sign(bytes.NewReader(data), &buf, key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func opts() VerifyOptions {
	return VerifyOptions{Trusted: []ed25519.PublicKey{signPub}, Now: t0.Add(time.Hour)}
}

func TestBuildSignVerify(t *testing.T) {
	dir := corpus(t)
	data := sign(t, build(t, dir, "2026.11.29.1", t0), signKey)
	b, err := Verify(data, opts())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"defaults.d/ssh.yml", "defaults.yml", "frameworks/cis.yml", "kernel/sysctl-aslr.yml", "network/ssh/root.yaml"}
	if got := b.Files(); !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	m := b.Manifest
	if m.Format != 1 || m.Version != "2026.11.29.1" || !m.Created.Equal(t0) || !m.Expires.Equal(t0.Add(90*24*time.Hour)) {
		t.Errorf("manifest = %+v", m)
	}
	if b.Digest != Digest(data) || !strings.HasPrefix(b.Digest, "sha256:") {
		t.Errorf("digest %s", b.Digest)
	}
	// Member order: manifest.json, manifest.sig, rules/ sorted.
	tr := tar.NewReader(bytes.NewReader(data))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: header not normalised: %+v", h.Name, h)
		}
	}
	wantNames := []string{"manifest.json", "manifest.sig"}
	for _, f := range want {
		wantNames = append(wantNames, "rules/"+f)
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("members %v, want %v", names, wantNames)
	}
}

func TestBuildDefaults(t *testing.T) {
	var buf bytes.Buffer
	m, err := Build(&buf, corpus(t), BuildOptions{Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "2026.01.02.030405" {
		t.Errorf("default version %q", m.Version)
	}
	if _, err := Build(&buf, corpus(t), BuildOptions{Version: "v1.2"}); err == nil {
		t.Error("non-numeric version accepted")
	}
	if _, err := Build(&buf, t.TempDir(), BuildOptions{}); err == nil {
		t.Error("empty corpus accepted")
	}
}

func TestBuildDeterministic(t *testing.T) {
	dir := corpus(t)
	a := build(t, dir, "5", t0)
	// Touch every file: times must not leak into the bundle.
	later := time.Now().Add(time.Hour)
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, later, later) })
	b := build(t, dir, "5", t0)
	if !bytes.Equal(a, b) {
		t.Fatal("same corpus and options gave different bytes")
	}
	if !bytes.Equal(sign(t, a, signKey), sign(t, b, signKey)) {
		t.Fatal("signed bundles differ")
	}
	// Re-signing replaces the signature rather than adding one.
	once := sign(t, a, signKey)
	if !bytes.Equal(sign(t, once, signKey), once) {
		t.Fatal("re-signing changed the bundle")
	}
}

// TestBuildRealCorpus bundles the project's corpus: proof cases and READMEs
// stay out, frameworks and defaults go in.
func TestBuildRealCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "rules")
	if _, err := os.Stat(filepath.Join(dir, "defaults.yml")); err != nil {
		t.Skipf("project corpus not found at %s: %v", dir, err)
	}
	var buf bytes.Buffer
	m, err := Build(&buf, dir, BuildOptions{Version: "1", Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	var frameworks, defaults bool
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "tests/") || strings.HasSuffix(f.Path, ".md") {
			t.Errorf("%s should not be bundled", f.Path)
		}
		frameworks = frameworks || strings.HasPrefix(f.Path, "frameworks/")
		defaults = defaults || f.Path == "defaults.yml"
	}
	if !frameworks || !defaults {
		t.Errorf("frameworks %v defaults.yml %v", frameworks, defaults)
	}
}

func TestVerifyRefusals(t *testing.T) {
	dir := corpus(t)
	good := sign(t, build(t, dir, "2026.11.29.1", t0), signKey)
	other := sign(t, build(t, dir, "2026.11.29.2", t0), signKey)
	_, untrustedKey, _ := GenerateKey()

	tampered := bytes.Clone(good)
	i := bytes.Index(tampered, []byte("UNIQUE-ASLR-CONTENT"))
	tampered[i] ^= 1

	swapped := replaceSig(t, good, sigOf(t, other))

	cases := []struct {
		name    string
		data    []byte
		opts    func(*VerifyOptions)
		want    error
		mention []string
	}{
		{"tampered rule file", tampered, nil, ErrTampered, []string{"rules/kernel/sysctl-aslr.yml"}},
		{"swapped signature", swapped, nil, ErrUntrusted, []string{KeyID(signPub)}},
		{"untrusted key", sign(t, build(t, dir, "1", t0), untrustedKey), nil, ErrUntrusted, []string{KeyID(signPub)}},
		{"no trusted keys", good, func(o *VerifyOptions) { o.Trusted = nil }, ErrUntrusted, nil},
		{"unsigned", build(t, dir, "1", t0), nil, ErrUnsigned, nil},
		{"expired", good, func(o *VerifyOptions) { o.Now = t0.Add(91 * 24 * time.Hour) }, ErrExpired, []string{"2027-02-27"}},
		{"created in the future", good, func(o *VerifyOptions) { o.Now = t0.Add(-10 * time.Minute) }, ErrNotYetValid, nil},
		{"downgrade", good, func(o *VerifyOptions) { o.MinVersion = "2026.11.29.10" }, ErrDowngrade, []string{"2026.11.29.1 ", "2026.11.29.10"}},
		{"garbage", []byte("not a tar at all, not at all"), nil, ErrMalformed, nil},
		{"empty", nil, nil, ErrMalformed, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts()
			if c.opts != nil {
				c.opts(&o)
			}
			_, err := Verify(c.data, o)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			for _, s := range c.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not mention %q", err, s)
				}
			}
		})
	}
	// Within the clock skew, and at the accepted version, it verifies.
	o := opts()
	o.Now, o.MinVersion = t0.Add(-4*time.Minute), "2026.11.29.1"
	if _, err := Verify(good, o); err != nil {
		t.Fatalf("skew/same version: %v", err)
	}
}

// TestVerifyStructure covers members crafted by hand: traversal, absolute
// paths, duplicates, extras and missing files, all signed by the trusted
// key so only the structure checks stand in the way.
func TestVerifyStructure(t *testing.T) {
	dir := corpus(t)
	good := sign(t, build(t, dir, "1", t0), signKey)
	c, err := parse(good)
	if err != nil {
		t.Fatal(err)
	}
	withFiles := func(edit func(map[string][]byte)) []byte {
		files := map[string][]byte{}
		for k, v := range c.files {
			files[k] = v
		}
		edit(files)
		var buf bytes.Buffer
		if err := write(&buf, c.manifest, c.sig, files); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	raw := func(names ...string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, n := range names {
			body := []byte("x")
			switch n {
			case "manifest.json":
				body = c.manifest
			case "manifest.sig":
				body = c.sig
			}
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			tw.Write(body)
		}
		tw.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name    string
		data    []byte
		want    error
		mention string
	}{
		{"dot-dot member", withFiles(func(f map[string][]byte) { f["../../etc/cron.d/x.yml"] = []byte("x") }), ErrMalformed, "../../etc/cron.d/x.yml"},
		{"absolute member", raw("manifest.json", "manifest.sig", "/etc/passwd"), ErrMalformed, "/etc/passwd"},
		{"member outside rules/", raw("manifest.json", "manifest.sig", "other/x.yml"), ErrMalformed, "other/x.yml"},
		{"manifest not first", raw("manifest.sig", "manifest.json"), ErrMalformed, "first member"},
		{"signature not second", raw("manifest.json", "rules/defaults.yml", "manifest.sig"), ErrMalformed, "manifest.sig"},
		{"duplicate member", raw("manifest.json", "manifest.sig", "rules/a.yml", "rules/a.yml"), ErrMalformed, "twice"},
		{"member not in manifest", withFiles(func(f map[string][]byte) { f["kernel/extra.yml"] = []byte("x") }), ErrTampered, "rules/kernel/extra.yml"},
		{"manifest entry missing", withFiles(func(f map[string][]byte) { delete(f, "defaults.yml") }), ErrTampered, "rules/defaults.yml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.data, opts())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.mention)
			}
		})
	}
	// A symlink member is refused as well.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Size: int64(len(c.manifest)), Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Write(c.manifest)
	tw.WriteHeader(&tar.Header{Name: "rules/x.yml", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink})
	tw.Close()
	if _, err := Verify(buf.Bytes(), opts()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("symlink member: %v", err)
	}
}

func TestVerifyLimits(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Size: MaxManifestSize + 1, Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Write(make([]byte, MaxManifestSize+1))
	tw.Close()
	if _, err := Verify(buf.Bytes(), opts()); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized manifest: %v", err)
	}
}

func TestSignRefusesTampered(t *testing.T) {
	data := build(t, corpus(t), "1", t0)
	i := bytes.Index(data, []byte("UNIQUE-ASLR-CONTENT"))
	data[i] ^= 1
	if err := Sign(bytes.NewReader(data), &bytes.Buffer{}, signKey); !errors.Is(err, ErrTampered) {
		t.Fatalf("signing a tampered bundle: %v", err)
	}
}

func TestExtract(t *testing.T) {
	src := corpus(t)
	b, err := Verify(sign(t, build(t, src, "1", t0), signKey), opts())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := b.Extract(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files() {
		got, err := os.ReadFile(filepath.Join(out, f))
		want, _ := os.ReadFile(filepath.Join(src, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v, content %q want %q", f, err, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "tests")); err == nil {
		t.Error("tests/ extracted")
	}
	// A Bundle whose manifest names an escaping path is refused.
	evil := &Bundle{Manifest: Manifest{Files: []FileEntry{{Path: "../escape.yml"}}}, files: map[string][]byte{"../escape.yml": []byte("x")}}
	if err := evil.Extract(out); err == nil {
		t.Fatal("escaping path extracted")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escape.yml")); err == nil {
		t.Fatal("file written outside the directory")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1", "1", 0}, {"1", "2", -1}, {"2", "1", 1},
		{"2026.11.29.1", "2026.11.29.10", -1}, {"2026.11.29.9", "2026.11.29.10", -1},
		{"2026.11.29", "2026.11.29.0", 0}, {"2026.11.29", "2026.11.29.1", -1},
		{"2026.01.02", "2026.1.2", 0}, {"10", "9", 1}, {"99999999999999999999999", "1", 1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, pp := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := WritePrivateKey(kp, priv); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicKey(pp, pub); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(kp); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	got, err := LoadPrivateKey(kp)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	pubs, err := LoadPublicKeys(pp)
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(pub) {
		t.Fatalf("LoadPublicKeys: %v", err)
	}
	// Two keys in one file.
	a, _ := os.ReadFile(pp)
	WritePublicKey(pp, signPub)
	b, _ := os.ReadFile(pp)
	os.WriteFile(pp, append(a, b...), 0o644)
	if pubs, err := LoadPublicKeys(pp); err != nil || len(pubs) != 2 {
		t.Fatalf("two keys: %d, %v", len(pubs), err)
	}
	os.Chmod(kp, 0o640)
	if _, err := LoadPrivateKey(kp); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v", err)
	}
	if len(KeyID(pub)) != 16 || KeyID(pub) == KeyID(signPub) {
		t.Errorf("KeyID %q", KeyID(pub))
	}
}

// replaceSig returns data with its manifest.sig replaced.
func replaceSig(t *testing.T, data, sig []byte) []byte {
	t.Helper()
	c, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf, c.manifest, sig, c.files); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sigOf returns a bundle's manifest.sig.
func sigOf(t *testing.T, data []byte) []byte {
	t.Helper()
	c, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return c.sig
}
