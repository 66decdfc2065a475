package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The signature token every export carries, whatever its format:
//
//	vigil-sig:v1:<key id, 16 hex>:<sha256, 64 hex>:<ed25519 signature, 128 hex>
//
// A file is rendered with the placeholder (the prefix and 210 zeros), its
// bytes hashed, the digest signed and the placeholder overwritten in place
// by the token, which has the same length. A verifier zeroes the token's
// 210 characters again, so it hashes exactly the bytes that were signed.
const (
	sigPrefix  = "vigil-sig:v1:"
	sigBodyLen = 16 + 1 + 64 + 1 + 128
	// TokenLen is the length of a signature token.
	TokenLen = len(sigPrefix) + sigBodyLen
	// signedContext is prepended to the hex digest before signing, so a
	// signature over an export can never be mistaken for one over anything
	// else this key might sign.
	signedContext = "vigil-export-v1\n"
)

// placeholder is the token's stand-in while the file is rendered.
var placeholder = sigPrefix + string(bytes.Repeat([]byte{'0'}, sigBodyLen))

// ErrNoSignature means the file carries no Vigil signature token (or more
// than one, which no export Vigil writes ever does).
var ErrNoSignature = errors.New("no Vigil signature")

// ErrWrongKey means the file was signed by another key than the one given.
var ErrWrongKey = errors.New("signed by another key")

// KeyMismatchError says which key signed a file verified against another.
// It matches ErrWrongKey with errors.Is.
type KeyMismatchError struct {
	Signed string // key id in the token
	Given  string // key id of the key verified against
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("signed by key %s, not %s", e.Signed, e.Given)
}

// Is lets errors.Is(err, ErrWrongKey) match.
func (e *KeyMismatchError) Is(target error) bool { return target == ErrWrongKey }

// ErrAltered means the file's bytes are not those that were signed.
var ErrAltered = errors.New("content altered")

// KeyID returns the id Vigil shows for a public key: the first 16 hex
// digits of its SHA-256, so people can compare keys at a glance.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:16]
}

// LoadOrCreateSigner reads the signing key at path, creating it (0600) if
// absent. A key file that group or others may read is refused: whoever
// reads it can forge exports.
func LoadOrCreateSigner(path string) (*Signer, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createSigner(path)
	case err != nil:
		return nil, fmt.Errorf("export: signing key %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("export: signing key %s is accessible to group or others (mode %04o); chmod 600 it",
			path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export: signing key %s: %w", path, err)
	}
	key, err := parsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("export: signing key %s: %w", path, err)
	}
	return &Signer{key: key}, nil
}

// createSigner makes a new key and writes it to path, never overwriting a
// file another process created meanwhile.
func createSigner(path string) (*Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("export: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("export: encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("export: signing key directory %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSigner(path) // another process won the race: use its key
	}
	if err != nil {
		return nil, fmt.Errorf("export: create signing key %s: %w", path, err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("export: write signing key %s: %w", path, werr)
	}
	return &Signer{key: key}, nil
}

// parsePrivateKey decodes a PKCS#8 PEM Ed25519 private key.
func parsePrivateKey(raw []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" (PKCS#8) block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, not Ed25519", k)
	}
	return key, nil
}

// PublicKey returns the key Verify needs.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() string { return KeyID(s.PublicKey()) }

// PublicKeyPEM returns the public key as a PEM "PUBLIC KEY" (PKIX) block,
// what the API hands auditors and `vigil-server verify --public-key` reads.
func (s *Signer) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(s.PublicKey())
	if err != nil { // cannot happen for a valid Ed25519 key
		panic(fmt.Sprintf("export: encode public key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// LoadPublicKey reads the key Verify needs from a PEM file: a PKIX "PUBLIC
// KEY" block, or the PKCS#8 signing key itself (on the server, whose data
// directory holds it). It never creates anything.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export: public key %s: %w", path, err)
	}
	pub, err := ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("export: public key %s: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" or "PRIVATE KEY" Ed25519 block
// into the public key.
func ParsePublicKey(raw []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(raw)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKIX: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, not Ed25519", k)
		}
		return pub, nil
	case "PRIVATE KEY":
		key, err := parsePrivateKey(raw)
		if err != nil {
			return nil, err
		}
		return key.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("PEM block %q is neither PUBLIC KEY nor PRIVATE KEY", blk.Type)
}

// sign overwrites the placeholder in body (exactly one) with the token and
// returns the hex digest it signed.
func (s *Signer) sign(body []byte) (string, error) {
	i := bytes.Index(body, []byte(placeholder))
	if i < 0 || bytes.Count(body, []byte(sigPrefix)) != 1 {
		return "", fmt.Errorf("export: rendered file holds %d signature markers, want exactly 1",
			bytes.Count(body, []byte(sigPrefix)))
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	sig := ed25519.Sign(s.key, []byte(signedContext+digest))
	tok := sigPrefix + s.KeyID() + ":" + digest + ":" + hex.EncodeToString(sig)
	if len(tok) != TokenLen {
		return "", fmt.Errorf("export: token length %d, want %d", len(tok), TokenLen)
	}
	copy(body[i:], tok)
	return digest, nil
}

// Verify checks a signed export against pub: one token, the file's bytes
// (token zeroed) hash to the digest it names, the key id is pub's, and the
// signature over the digest is valid. Info carries what the token names
// even when the error says why it does not hold.
func Verify(body []byte, pub ed25519.PublicKey) (Info, error) {
	n := bytes.Count(body, []byte(sigPrefix))
	if n == 0 {
		return Info{}, ErrNoSignature
	}
	if n > 1 {
		return Info{}, fmt.Errorf("%w: %d signature markers, an export has exactly one", ErrNoSignature, n)
	}
	i := bytes.Index(body, []byte(sigPrefix)) + len(sigPrefix)
	if len(body)-i < sigBodyLen {
		return Info{}, fmt.Errorf("%w: truncated token", ErrNoSignature)
	}
	tok := string(body[i : i+sigBodyLen])
	keyID, digest, sigHex := tok[:16], tok[17:81], tok[82:]
	if tok[16] != ':' || tok[81] != ':' || !isHex(keyID) || !isHex(digest) || !isHex(sigHex) {
		return Info{}, fmt.Errorf("%w: malformed token", ErrNoSignature)
	}
	info := Info{SHA256: digest, KeyID: keyID}
	if want := KeyID(pub); keyID != want {
		return info, &KeyMismatchError{Signed: keyID, Given: want}
	}
	zeroed := bytes.Clone(body)
	copy(zeroed[i:], placeholder[len(sigPrefix):])
	sum := sha256.Sum256(zeroed)
	if got := hex.EncodeToString(sum[:]); got != digest {
		return info, fmt.Errorf("%w: sha256 %s, the signature covers %s", ErrAltered, got, digest)
	}
	sig, _ := hex.DecodeString(sigHex)
	if !ed25519.Verify(pub, []byte(signedContext+digest), sig) {
		return info, fmt.Errorf("%w: sha256 %s matches but the signature over it is invalid", ErrAltered, digest)
	}
	return info, nil
}

// isHex reports whether s is lower-case hexadecimal.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
