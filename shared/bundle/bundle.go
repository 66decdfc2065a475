// Package bundle is the signed rule bundle: a tar holding manifest.json
// (format, version, created, expires, per-file SHA-256), manifest.sig
// (Ed25519 over the manifest bytes) and the corpus files under rules/.
// Agents verify a bundle offline against trusted public keys and refuse an
// unsigned, tampered, expired or older-than-seen one.
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// The refusals, each wrapped with detail naming the bundle and the file.
var (
	ErrMalformed   = errors.New("malformed bundle")
	ErrUnsigned    = errors.New("bundle is not signed")
	ErrUntrusted   = errors.New("bundle signature does not verify with any trusted key")
	ErrTampered    = errors.New("bundle content does not match its signed manifest")
	ErrExpired     = errors.New("bundle has expired")
	ErrDowngrade   = errors.New("bundle is older than one already accepted")
	ErrNotYetValid = errors.New("bundle was created in the future")
)

// Limits on what a bundle may hold, so a hostile file cannot exhaust the
// memory of the agent reading it.
const (
	MaxManifestSize = 4 << 20   // manifest.json
	MaxFileSize     = 16 << 20  // one corpus file
	MaxTotalSize    = 256 << 20 // all members' content together
	MaxMembers      = 20000     // tar members
)

// Member names inside the tar.
const (
	manifestName = "manifest.json"
	sigName      = "manifest.sig"
	rulesPrefix  = "rules/"
)

// formatVersion is the manifest format this package writes and reads.
const formatVersion = 1

// futureSkew is how far in the future a bundle's Created may be before it
// is refused, to tolerate clocks that disagree a little.
const futureSkew = 5 * time.Minute

// defaultValidity is how long a bundle lasts when BuildOptions.Expires is
// zero.
const defaultValidity = 90 * 24 * time.Hour

// Manifest describes a bundle; its exact bytes are what is signed.
type Manifest struct {
	Format  int         `json:"format"` // 1
	Version string      `json:"version"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires"`
	Files   []FileEntry `json:"files"`
}

// FileEntry is one corpus file in the bundle (path relative to the rules
// directory, slash-separated).
type FileEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// BuildOptions set the manifest's version and validity.
type BuildOptions struct {
	Version string    // empty: Created as 2006.01.02.150405
	Created time.Time // zero: now
	Expires time.Time // zero: Created + 90 days
}

// Build writes an unsigned bundle of the corpus in rulesDir (rules,
// frameworks, defaults) to w.
func Build(w io.Writer, rulesDir string, opts BuildOptions) (Manifest, error) {
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Second)
	m := Manifest{Format: formatVersion, Version: opts.Version, Created: created, Expires: opts.Expires.UTC().Truncate(time.Second)}
	if m.Version == "" {
		m.Version = created.Format("2006.01.02.150405")
	}
	if opts.Expires.IsZero() {
		m.Expires = created.Add(defaultValidity)
	}
	if !validVersion(m.Version) {
		return Manifest{}, fmt.Errorf("build bundle: version %q is not dotted numbers like 2026.11.29.1", m.Version)
	}
	if !m.Expires.After(m.Created) {
		return Manifest{}, fmt.Errorf("build bundle: expires %s is not after created %s", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	files, err := collect(rulesDir)
	if err != nil {
		return Manifest{}, err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		m.Files = append(m.Files, FileEntry{Path: p, SHA256: hexSHA256(files[p]), Size: int64(len(files[p]))})
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("build bundle: encode manifest: %w", err)
	}
	if err := write(w, mb, nil, files); err != nil {
		return Manifest{}, fmt.Errorf("build bundle of %s: %w", rulesDir, err)
	}
	return m, nil
}

// Sign reads a bundle and writes it signed with key (replacing any
// signature).
func Sign(r io.Reader, w io.Writer, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("sign bundle: not an Ed25519 private key")
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxTotalSize+int64(MaxMembers)*2048+1))
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	c, err := parse(data)
	if err != nil {
		return fmt.Errorf("sign bundle %s: %w", shortDigest(data), err)
	}
	m, err := decodeManifest(c.manifest)
	if err != nil {
		return fmt.Errorf("sign bundle %s: %w", shortDigest(data), err)
	}
	if err := checkContent(m, c.files); err != nil {
		return fmt.Errorf("sign bundle %s: refusing to sign: %w", shortDigest(data), err)
	}
	sig := ed25519.Sign(key, c.manifest)
	if err := write(w, c.manifest, sig, c.files); err != nil {
		return fmt.Errorf("sign bundle %s: %w", shortDigest(data), err)
	}
	return nil
}

// VerifyOptions say what a verifier accepts.
type VerifyOptions struct {
	Trusted    []ed25519.PublicKey
	Now        time.Time // zero: time.Now()
	MinVersion string    // refuse versions older than this ("" accepts any)
}

// Bundle is a verified bundle held in memory.
type Bundle struct {
	Manifest Manifest
	Digest   string // Digest of the bundle file
	files    map[string][]byte
}

// Verify reads and verifies a bundle file's bytes.
func Verify(data []byte, opts VerifyOptions) (*Bundle, error) {
	digest := Digest(data)
	fail := func(err error) (*Bundle, error) {
		return nil, fmt.Errorf("bundle %s: %w", shortDigest(data), err)
	}
	c, err := parse(data)
	if err != nil {
		return fail(err)
	}
	if c.sig == nil {
		return fail(ErrUnsigned)
	}
	if err := checkSignature(c.manifest, c.sig, opts.Trusted); err != nil {
		return fail(err)
	}
	m, err := decodeManifest(c.manifest)
	if err != nil {
		return fail(err)
	}
	if err := checkContent(m, c.files); err != nil {
		return fail(err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if now.After(m.Expires) {
		return fail(fmt.Errorf("version %s expired at %s: %w", m.Version, m.Expires.Format(time.RFC3339), ErrExpired))
	}
	if m.Created.After(now.Add(futureSkew)) {
		return fail(fmt.Errorf("version %s created at %s, after now %s: %w", m.Version, m.Created.Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrNotYetValid))
	}
	if opts.MinVersion != "" && CompareVersions(m.Version, opts.MinVersion) < 0 {
		return fail(fmt.Errorf("version %s is older than the accepted %s: %w", m.Version, opts.MinVersion, ErrDowngrade))
	}
	return &Bundle{Manifest: m, Digest: digest, files: c.files}, nil
}

// Files returns the corpus file paths (slash-separated, relative to the
// rules directory) in manifest order.
func (b *Bundle) Files() []string {
	out := make([]string, 0, len(b.Manifest.Files))
	for _, f := range b.Manifest.Files {
		out = append(out, f.Path)
	}
	return out
}

// File returns the content of one verified corpus file.
func (b *Bundle) File(p string) ([]byte, bool) {
	d, ok := b.files[p]
	return d, ok
}

// Extract writes the verified corpus files under dir (created 0755),
// refusing paths that escape it.
func (b *Bundle) Extract(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("extract bundle %s: %w", b.Digest, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract bundle %s: %w", b.Digest, err)
	}
	defer root.Close()
	for _, f := range b.Manifest.Files {
		if !validPath(f.Path) {
			return fmt.Errorf("extract bundle %s: %s: path escapes %s: %w", b.Digest, f.Path, dir, ErrMalformed)
		}
		if d := path.Dir(f.Path); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("extract bundle %s: %s: %w", b.Digest, f.Path, err)
			}
		}
		if err := root.WriteFile(f.Path, b.files[f.Path], 0o644); err != nil {
			return fmt.Errorf("extract bundle %s: %s: %w", b.Digest, f.Path, err)
		}
	}
	return nil
}

// Digest is "sha256:" and the hex SHA-256 of data.
func Digest(data []byte) string { return "sha256:" + hexSHA256(data) }

// CompareVersions orders dotted numeric versions ("2026.11.29.1"):
// -1, 0 or 1.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := compareNumber(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// compareNumber orders two decimal strings of any length numerically
// (leading zeros ignored); a non-numeric part falls back to byte order.
func compareNumber(x, y string) int {
	x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	if isDigits(x) && isDigits(y) && len(x) != len(y) {
		if len(x) < len(y) {
			return -1
		}
		return 1
	}
	return strings.Compare(x, y)
}

// isDigits reports whether s is only ASCII digits (the empty string is).
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validVersion accepts dotted numbers: "1", "2026.11.29.150405".
func validVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, p := range strings.Split(v, ".") {
		if p == "" || !isDigits(p) {
			return false
		}
	}
	return true
}

// checkSignature verifies sig over manifest with each trusted key.
func checkSignature(manifest, sig []byte, trusted []ed25519.PublicKey) error {
	if len(trusted) == 0 {
		return fmt.Errorf("no trusted keys configured: %w", ErrUntrusted)
	}
	ids := make([]string, 0, len(trusted))
	for _, k := range trusted {
		if len(k) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, manifest, sig) {
			return nil
		}
		ids = append(ids, KeyID(k))
	}
	return fmt.Errorf("tried keys %s: %w", strings.Join(ids, ", "), ErrUntrusted)
}

// decodeManifest parses and checks a manifest's own consistency.
func decodeManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %v: %w", manifestName, err, ErrMalformed)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%s: data after the JSON object: %w", manifestName, ErrMalformed)
	}
	switch {
	case m.Format != formatVersion:
		return Manifest{}, fmt.Errorf("%s: format %d, this build reads %d: %w", manifestName, m.Format, formatVersion, ErrMalformed)
	case !validVersion(m.Version):
		return Manifest{}, fmt.Errorf("%s: version %q is not dotted numbers: %w", manifestName, m.Version, ErrMalformed)
	case m.Created.IsZero() || m.Expires.IsZero():
		return Manifest{}, fmt.Errorf("%s: created and expires must be set: %w", manifestName, ErrMalformed)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if !validPath(f.Path) {
			return Manifest{}, fmt.Errorf("%s: file path %q is not a relative path inside the corpus: %w", manifestName, f.Path, ErrMalformed)
		}
		if seen[f.Path] {
			return Manifest{}, fmt.Errorf("%s: file %s listed twice: %w", manifestName, f.Path, ErrMalformed)
		}
		seen[f.Path] = true
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size || f.Size < 0 {
			return Manifest{}, fmt.Errorf("%s: file %s has a malformed digest or size: %w", manifestName, f.Path, ErrMalformed)
		}
	}
	return m, nil
}

// checkContent compares the tar's corpus files with the manifest.
func checkContent(m Manifest, files map[string][]byte) error {
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = true
		data, ok := files[f.Path]
		switch {
		case !ok:
			return fmt.Errorf("%s%s is in the manifest but not in the bundle: %w", rulesPrefix, f.Path, ErrTampered)
		case int64(len(data)) != f.Size || hexSHA256(data) != strings.ToLower(f.SHA256):
			return fmt.Errorf("%s%s: content does not match its manifest digest: %w", rulesPrefix, f.Path, ErrTampered)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if !listed[p] {
			return fmt.Errorf("%s%s is in the bundle but not in the manifest: %w", rulesPrefix, p, ErrTampered)
		}
	}
	return nil
}

// validPath accepts a clean, relative, slash-separated path with no ".."
// element, no backslash and no NUL.
func validPath(p string) bool {
	if p == "" || len(p) > 1024 || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	if path.Clean(p) != p {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." || e == "" {
			return false
		}
	}
	return true
}

// hexSHA256 is the hex SHA-256 of data.
func hexSHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// shortDigest names a bundle in errors.
func shortDigest(data []byte) string { return Digest(data)[:len("sha256:")+12] }
