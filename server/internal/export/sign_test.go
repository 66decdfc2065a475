package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignatureRoundTripEveryFormat(t *testing.T) {
	f := newFixture(t)
	f.populate()
	other, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fm := range Formats() {
		file := f.export(Scope{HostID: f.web.ID}, fm)
		if bytes.Count(file.Body, []byte(sigPrefix)) != 1 || bytes.Contains(file.Body, []byte(placeholder)) {
			t.Fatalf("%s: token not placed exactly once", fm)
		}
		info, err := Verify(file.Body, f.signer.PublicKey())
		if err != nil {
			t.Fatalf("%s: %v", fm, err)
		}
		if info.SHA256 != file.SHA256 || info.KeyID != file.KeyID || file.KeyID != f.signer.KeyID() {
			t.Fatalf("%s: info %+v, file sha %s key %s", fm, info, file.SHA256, file.KeyID)
		}
		// The digest is over the file with the token zeroed.
		i := bytes.Index(file.Body, []byte(sigPrefix))
		z := bytes.Clone(file.Body)
		copy(z[i:], placeholder)
		if sum := sha256.Sum256(z); hex.EncodeToString(sum[:]) != file.SHA256 {
			t.Fatalf("%s: sha256 is not over the zeroed file", fm)
		}

		// One byte changed anywhere outside the token: altered.
		for _, pos := range []int{0, len(file.Body) / 2, len(file.Body) - 1} {
			if pos >= i && pos < i+TokenLen {
				pos = i - 1
			}
			bad := bytes.Clone(file.Body)
			bad[pos] ^= 0x01
			if _, err := Verify(bad, f.signer.PublicKey()); !errors.Is(err, ErrAltered) ||
				!strings.HasPrefix(err.Error(), "content altered: sha256 ") {
				t.Fatalf("%s: byte %d flipped: %v", fm, pos, err)
			}
		}
		// A changed digest in the token: the signature no longer holds.
		bad := bytes.Clone(file.Body)
		d := i + len(sigPrefix) + 17
		bad[d] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", bad[d])+1)%16]
		if _, err := Verify(bad, f.signer.PublicKey()); !errors.Is(err, ErrAltered) {
			t.Fatalf("%s: digest edited: %v", fm, err)
		}
		// A changed signature byte.
		bad = bytes.Clone(file.Body)
		s := i + TokenLen - 1
		bad[s] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", bad[s])+1)%16]
		if _, err := Verify(bad, f.signer.PublicKey()); !errors.Is(err, ErrAltered) {
			t.Fatalf("%s: signature edited: %v", fm, err)
		}
		// Another key.
		_, err = Verify(file.Body, other.PublicKey())
		var km *KeyMismatchError
		if !errors.Is(err, ErrWrongKey) || !errors.As(err, &km) || km.Signed != f.signer.KeyID() || km.Given != other.KeyID() ||
			err.Error() != "signed by key "+f.signer.KeyID()+", not "+other.KeyID() {
			t.Fatalf("%s: wrong key: %v", fm, err)
		}
	}
}

func TestVerifyRefusesUnsigned(t *testing.T) {
	_, pub := mustKey(t)
	for name, body := range map[string]string{
		"empty":       "",
		"plain":       `{"vigil_export":1}`,
		"two tokens":  sigPrefix + strings.Repeat("0", sigBodyLen) + " " + sigPrefix + strings.Repeat("0", sigBodyLen),
		"truncated":   "x " + sigPrefix + "abcd",
		"not hex":     sigPrefix + strings.Repeat("z", sigBodyLen),
		"bad colons":  sigPrefix + strings.Repeat("a", sigBodyLen),
		"placeholder": placeholder,
	} {
		_, err := Verify([]byte(body), pub)
		if !errors.Is(err, ErrNoSignature) || !strings.HasPrefix(err.Error(), "no Vigil signature") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustKey(t *testing.T) (*Signer, ed25519.PublicKey) {
	t.Helper()
	s, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s, s.PublicKey()
}

func TestSignerKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "export-signing.key")
	s1, err := LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if !bytes.HasPrefix(raw, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("key file is not PKCS#8 PEM: %.40q", raw)
	}
	s2, err := LoadOrCreateSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if s1.KeyID() != s2.KeyID() || len(s1.KeyID()) != 16 {
		t.Fatalf("reloaded key id %s, created %s", s2.KeyID(), s1.KeyID())
	}
	sum := sha256.Sum256(s1.PublicKey())
	if s1.KeyID() != hex.EncodeToString(sum[:8]) {
		t.Fatal("key id is not the first 16 hex of sha256(public key)")
	}
	// Public key PEM and the key file itself both give the verifier's key.
	pubFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, s1.PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pubFile, path} {
		pub, err := LoadPublicKey(p)
		if err != nil || !pub.Equal(s1.PublicKey()) {
			t.Fatalf("LoadPublicKey(%s): %v", p, err)
		}
	}
	// A key readable by group or others is refused.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateSigner(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
	// Garbage is refused, not replaced.
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSigner(bad); err == nil {
		t.Fatal("garbage key file accepted")
	}
	if raw, _ := os.ReadFile(bad); string(raw) != "not a key" {
		t.Fatal("garbage key file overwritten")
	}
	// Not Ed25519 material in a PUBLIC KEY block.
	_, edPub, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ParsePublicKey(append([]byte("-----BEGIN CERTIFICATE-----\n"), edPub...)); err == nil {
		t.Fatal("non-PEM input accepted")
	}
}
