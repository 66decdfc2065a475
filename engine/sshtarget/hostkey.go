package sshtarget

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks one host's key against a known_hosts file and remembers
// why it refused one, so Dial can report that instead of the handshake's
// generic wrapper.
type hostKeys struct {
	file   string
	accept bool
	check  ssh.HostKeyCallback // nil when the file does not exist

	mu     sync.Mutex
	failed error
}

func newHostKeys(file string, accept bool) (*hostKeys, error) {
	hk := &hostKeys{file: file, accept: accept}
	cb, err := knownhosts.New(file)
	switch {
	case err == nil:
		hk.check = cb
	case errors.Is(err, os.ErrNotExist):
		// No file yet: every host is unknown.
	default:
		return nil, fmt.Errorf("known_hosts %s: %w", file, err)
	}
	return hk, nil
}

// known returns the keys known_hosts holds for addr ("host:port").
func (hk *hostKeys) known(addr string) []knownhosts.KnownKey {
	if hk.check == nil {
		return nil
	}
	// A key that cannot be in the file makes the callback list what is.
	probe, _ := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	var ke *knownhosts.KeyError
	if err := hk.check(addr, &net.TCPAddr{IP: net.IPv4zero}, probe); errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms lists the host key algorithms to ask the server for: those of
// the keys already known for addr. Without this the server may present a
// key of another type than the one on file (say ECDSA when known_hosts has
// Ed25519), which would look like a changed key. Nil means any.
func (hk *hostKeys) algorithms(addr string) []string {
	var algos []string
	seen := map[string]bool{}
	for _, k := range hk.known(addr) {
		t := k.Key.Type()
		if seen[t] {
			continue
		}
		seen[t] = true
		if t == ssh.KeyAlgoRSA {
			// An RSA key signs with any of these; prefer SHA-2.
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
			continue
		}
		algos = append(algos, t)
	}
	return algos
}

// callback is the ssh.HostKeyCallback for one Dial.
func (hk *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := hk.verify(hostname, remote, key)
	if err != nil {
		hk.mu.Lock()
		hk.failed = err
		hk.mu.Unlock()
	}
	return err
}

func (hk *hostKeys) verify(hostname string, remote net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	var err error = &knownhosts.KeyError{}
	if hk.check != nil {
		err = hk.check(hostname, remote, key)
	}
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%w: offered %s key %s, which %s:%d marks as revoked",
			ErrHostKeyMismatch, key.Type(), fp, re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) > 0:
		w := ke.Want[0]
		return fmt.Errorf("%w: offered %s key %s, but %s:%d holds %s key %s for this host; refusing to connect (possible man-in-the-middle; if the host was reinstalled, remove the old entry)",
			ErrHostKeyMismatch, key.Type(), fp, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key))
	case errors.As(err, &ke):
		if !hk.accept {
			return fmt.Errorf("%w: offered %s key %s, which is not in %s (verify it and add it, or set AcceptUnknownHost)",
				ErrUnknownHost, key.Type(), fp, hk.file)
		}
		if aerr := hk.add(hostname, key); aerr != nil {
			return fmt.Errorf("%w: accepting new key %s: %w", ErrUnknownHost, fp, aerr)
		}
		return nil
	}
	return fmt.Errorf("checking host key: %w", err)
}

// add appends the host's key to the known_hosts file, creating it (and
// ~/.ssh) privately if needed. One write of one line with O_APPEND, so
// concurrent Dials to different hosts do not interleave lines.
func (hk *hostKeys) add(hostname string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(hk.file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(hk.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// refusal is the host key error of the last callback, if any.
func (hk *hostKeys) refusal() error {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	return hk.failed
}
