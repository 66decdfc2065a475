// Package secrets encrypts what the server must keep but never show: SSH
// credentials for agentless scanning above all. A Box seals with AES-256-GCM
// under one key kept in a file beside the database, so a stolen database
// backup alone reveals no secret.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the length of a Box key: AES-256.
const KeySize = 32

// version1 prefixes every sealed value, so that a future change of
// algorithm or key can be told apart from today's format.
const version1 byte = 1

const nonceSize = 12

// ErrOpen is returned (wrapped) when a sealed value cannot be opened: it was
// tampered with, sealed under another key or for other additional data, or
// is not a sealed value at all. Callers never learn which, by design.
var ErrOpen = errors.New("secrets: cannot open sealed value")

// Box seals and opens values with one AES-256-GCM key. It is safe for
// concurrent use.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad (additional data that is
// authenticated but not stored, such as "host/42", so that a sealed value
// copied to another row does not open there). The result is a version
// byte, a random 12-byte nonce and the ciphertext with its tag.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+b.aead.Overhead())
	out[0] = version1
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:], plaintext, aad), nil
}

// Open decrypts a value Seal produced with the same key and aad; anything
// else is ErrOpen.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize+b.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrOpen, len(sealed))
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrOpen, sealed[0])
	}
	nonce, ct := sealed[1:1+nonceSize], sealed[1+nonceSize:]
	pt, err := b.aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: wrong key, wrong context or tampered", ErrOpen)
	}
	return pt, nil
}

// LoadOrCreateKey returns a Box for the key in the file at path, creating
// the file with 32 random bytes (mode 0600, never overwriting) on first
// use. A key file readable by group or others, or not exactly 32 bytes, is
// refused: the first would leak every secret, the second means the file is
// not what we wrote.
func LoadOrCreateKey(path string) (*Box, error) {
	key, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(path)
		if errors.Is(err, fs.ErrExist) { // another process created it first
			key, err = readKey(path)
		}
	}
	if err != nil {
		return nil, err
	}
	return NewBox(key)
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: key file %s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, perm, path)
	}
	if st.Size() != KeySize {
		return nil, fmt.Errorf("secrets: key file %s is %d bytes, want %d", path, st.Size(), KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", path, err)
	}
	return key, nil
}

// createKey writes a new key into a private temporary file (O_EXCL, 0600)
// and then links it into place, which fails if path exists: two servers
// starting at once never overwrite each other's key, and no reader ever
// sees a half-written one. The loser reads the winner's key.
func createKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("secrets: new key: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("secrets: create key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: write key file %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return nil, fmt.Errorf("secrets: create key file %s: %w", path, err)
	}
	return key, nil
}
