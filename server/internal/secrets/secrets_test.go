package secrets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTestBox(t *testing.T, fill byte) *Box {
	t.Helper()
	b, err := NewBox(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	b := newTestBox(t, 7)
	for _, pt := range [][]byte{nil, []byte("x"), []byte(strings.Repeat("secret key material\n", 200))} {
		sealed, err := b.Seal(pt, []byte("host/1"))
		if err != nil {
			t.Fatal(err)
		}
		// A one-byte plaintext shows up by chance among ~45 random bytes
		// of nonce, ciphertext and tag (about one run in six), so only a
		// plaintext long enough not to occur at random is looked for.
		if len(pt) >= 16 && bytes.Contains(sealed, pt) {
			t.Fatal("sealed value contains the plaintext")
		}
		if sealed[0] != version1 {
			t.Fatalf("version byte %d, want %d", sealed[0], version1)
		}
		got, err := b.Open(sealed, []byte("host/1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("opened %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	b := newTestBox(t, 7)
	s1, _ := b.Seal([]byte("same"), nil)
	s2, _ := b.Seal([]byte("same"), nil)
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
}

func TestOpenRefuses(t *testing.T) {
	b := newTestBox(t, 7)
	sealed, err := b.Seal([]byte("hunter2"), []byte("host/1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	cases := []struct {
		name   string
		box    *Box
		sealed []byte
		aad    string
	}{
		{"tampered ciphertext", b, flip(len(sealed) - 20), "host/1"},
		{"tampered tag", b, flip(len(sealed) - 1), "host/1"},
		{"tampered nonce", b, flip(3), "host/1"},
		{"unknown version", b, flip(0), "host/1"},
		{"wrong aad", b, sealed, "host/2"},
		{"missing aad", b, sealed, ""},
		{"wrong key", newTestBox(t, 8), sealed, "host/1"},
		{"truncated", b, sealed[:10], "host/1"},
		{"empty", b, nil, "host/1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pt, err := c.box.Open(c.sealed, []byte(c.aad))
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", pt, err)
			}
		})
	}
}

func TestNewBoxKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewBox(make([]byte, n)); err == nil {
			t.Errorf("NewBox accepted a %d-byte key", n)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	b1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d", st.Mode().Perm(), st.Size(), KeySize)
	}
	sealed, err := b1.Seal([]byte("pw"), []byte("host/9"))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := LoadOrCreateKey(path) // the same key comes back
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b2.Open(sealed, []byte("host/9")); err != nil || string(pt) != "pw" {
		t.Fatalf("reloaded key opens %q, %v", pt, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	const n = 8
	boxes := make([]*Box, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { boxes[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	sealed, _ := boxes[0].Seal([]byte("shared"), nil)
	for i, b := range boxes {
		if _, err := b.Open(sealed, nil); err != nil {
			t.Fatalf("box %d holds another key: %v", i, err)
		}
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	cases := []struct {
		name string
		size int
		mode os.FileMode
		want string
	}{
		{"group readable", KeySize, 0o640, "mode 0640"},
		{"world readable", KeySize, 0o604, "mode 0604"},
		{"too short", 16, 0o600, "16 bytes"},
		{"too long", 64, 0o600, "64 bytes"},
		{"empty", 0, 0o600, "0 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret.key")
			if err := os.WriteFile(path, make([]byte, c.size), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadOrCreateKey = %v; want an error naming %s and %q", err, path, c.want)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("LoadOrCreateKey(dir) = %v; want an error naming it", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no", "secret.key")
		if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("LoadOrCreateKey = %v; want an error naming %s", err, path)
		}
	})
}
