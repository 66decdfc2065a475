// Package state is the agent's state directory: its key, certificate, the
// CA bundle and identity from enrolment, and the status the daemon writes
// for `vigil-agent status`. Files are replaced atomically (temporary file,
// fsync, rename, directory fsync) so a crash never leaves half a file.
package state

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfleet/vigil/shared/pki"
)

// File names inside the state directory.
const (
	KeyFile      = "agent.key"
	CertFile     = "agent.crt"
	CAFile       = "ca.pem"
	IdentityFile = "agent.json"
	StatusFile   = "status.json"
	BundlesDir   = "bundles"
	SpoolDir     = "spool"
)

// ErrNotEnrolled is returned when the state directory holds no identity.
var ErrNotEnrolled = errors.New("agent is not enrolled (run vigil-agent enroll)")

// Identity is what enrolment established (agent.json).
type Identity struct {
	Server     string    `json:"server"`
	AgentID    int64     `json:"agent_id"`
	AgentName  string    `json:"agent_name"`
	Hostname   string    `json:"hostname"` // the host name enrolled with; the server matches local assignments on it
	CAPin      string    `json:"ca_pin"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// LastAssignment is the most recent assignment the daemon worked on.
type LastAssignment struct {
	ScanID   int64     `json:"scan_id"`
	Target   string    `json:"target"`
	Received time.Time `json:"received"`
	Status   string    `json:"status"` // running, completed, failed
	Message  string    `json:"message,omitempty"`
}

// Status is what the running daemon last reported (status.json).
type Status struct {
	UpdatedAt      time.Time       `json:"updated_at"`
	Connected      bool            `json:"connected"`
	LastContact    time.Time       `json:"last_contact,omitempty"` // last successful heartbeat
	LastError      string          `json:"last_error,omitempty"`
	LastAssignment *LastAssignment `json:"last_assignment,omitempty"`
	BundleDigest   string          `json:"bundle_digest,omitempty"`
	BundleVersion  string          `json:"bundle_version,omitempty"`
	CertNotAfter   time.Time       `json:"cert_not_after"`
}

// Dir is a state directory.
type Dir struct {
	Path string
}

// Open makes sure the directory exists (0700) and returns it.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", path, err)
	}
	return &Dir{Path: path}, nil
}

// File returns the path of name inside the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// WriteAtomic replaces dir/name with data (mode perm) so that readers see
// the old or the new content, never a mix, even across a crash.
func WriteAtomic(dir, name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err == nil {
		err = SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// SyncDir fsyncs a directory so a rename or removal in it is durable.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Enrolled reports whether an identity exists.
func (d *Dir) Enrolled() bool {
	_, err := os.Stat(d.File(IdentityFile))
	return err == nil
}

// SaveEnrolment stores the key, certificate, CA bundle and identity; the
// identity is written last, so its presence means the rest is complete.
func (d *Dir) SaveEnrolment(keyPEM, certPEM, caPEM []byte, id Identity) error {
	if err := WriteAtomic(d.Path, KeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteAtomic(d.Path, CertFile, certPEM, 0o644); err != nil {
		return err
	}
	if err := WriteAtomic(d.Path, CAFile, caPEM, 0o644); err != nil {
		return err
	}
	return d.saveJSON(IdentityFile, id, 0o644)
}

// SaveCertificate replaces the key and certificate after a renewal, and
// the CA bundle when the server sent one.
func (d *Dir) SaveCertificate(keyPEM, certPEM, caPEM []byte) error {
	// The new key is written under a side name first so that the pair on
	// disk is never mismatched for longer than two renames.
	if err := WriteAtomic(d.Path, KeyFile+".new", keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteAtomic(d.Path, CertFile+".new", certPEM, 0o644); err != nil {
		return err
	}
	if err := os.Rename(d.File(KeyFile+".new"), d.File(KeyFile)); err != nil {
		return fmt.Errorf("install renewed key: %w", err)
	}
	if err := os.Rename(d.File(CertFile+".new"), d.File(CertFile)); err != nil {
		return fmt.Errorf("install renewed certificate: %w", err)
	}
	if err := SyncDir(d.Path); err != nil {
		return fmt.Errorf("install renewed certificate: %w", err)
	}
	if len(caPEM) > 0 {
		return WriteAtomic(d.Path, CAFile, caPEM, 0o644)
	}
	return nil
}

// Identity reads agent.json.
func (d *Dir) Identity() (Identity, error) {
	var id Identity
	err := d.loadJSON(IdentityFile, &id)
	if errors.Is(err, os.ErrNotExist) {
		return id, fmt.Errorf("%s: %w", d.Path, ErrNotEnrolled)
	}
	return id, err
}

// Key reads the agent's private key.
func (d *Dir) Key() (crypto.Signer, error) {
	data, err := os.ReadFile(d.File(KeyFile))
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	k, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("agent key %s: %w", d.File(KeyFile), err)
	}
	return k, nil
}

// CertPEM reads the agent's certificate file.
func (d *Dir) CertPEM() ([]byte, error) {
	data, err := os.ReadFile(d.File(CertFile))
	if err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	return data, nil
}

// Certificate parses the agent's certificate.
func (d *Dir) Certificate() (*x509.Certificate, error) {
	data, err := d.CertPEM()
	if err != nil {
		return nil, err
	}
	return ParseCertPEM(data)
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// TLSCertificate loads the key pair for mutual TLS.
func (d *Dir) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(d.File(CertFile), d.File(KeyFile))
	if err != nil {
		return c, fmt.Errorf("agent key pair in %s: %w", d.Path, err)
	}
	return c, nil
}

// CAPool reads ca.pem into a pool.
func (d *Dir) CAPool() (*x509.CertPool, error) {
	data, err := os.ReadFile(d.File(CAFile))
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA bundle %s: no certificates", d.File(CAFile))
	}
	return pool, nil
}

// SaveStatus writes status.json.
func (d *Dir) SaveStatus(s Status) error { return d.saveJSON(StatusFile, s, 0o644) }

// Status reads status.json; a missing file is a zero Status.
func (d *Dir) Status() (Status, error) {
	var s Status
	err := d.loadJSON(StatusFile, &s)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	return s, err
}

func (d *Dir) saveJSON(name string, v any, perm os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return WriteAtomic(d.Path, name, append(data, '\n'), perm)
}

func (d *Dir) loadJSON(name string, v any) error {
	data, err := os.ReadFile(d.File(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", d.File(name), err)
	}
	return nil
}
