// Package agentless scans hosts that run no agent: the server itself logs
// in over SSH with a credential kept sealed in the store, runs the engine
// against the host and hands the report to the scheduler.
package agentless

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/server/internal/secrets"
)

// DefaultPort is the SSH port of a credential that names none.
const DefaultPort = 22

// ErrInvalidCredential is returned (wrapped) by Credential.Validate and
// by OpenCredential for a credential the scanner could not use.
var ErrInvalidCredential = errors.New("invalid credential")

// Credential is how the server logs in to one agentless host. It is stored
// as JSON sealed by a secrets.Box bound to "host/<id>" (see
// SealCredential), so the database alone never reveals it and a sealed
// credential copied to another host's row does not open there.
type Credential struct {
	// User is the login user.
	User string `json:"user"`
	// Port is the SSH port; 0 means DefaultPort.
	Port int `json:"port,omitempty"`
	// PrivateKey is an unencrypted private key in PEM or OpenSSH format.
	PrivateKey string `json:"private_key,omitempty"`
	// Password is tried after the key. With Sudo it is also given to sudo.
	Password string `json:"password,omitempty"`
	// KnownHosts holds known_hosts lines for the host. Required: the host
	// key is always verified and never trusted on first use, so a server
	// that scans thousands of hosts cannot be led to one impostor.
	KnownHosts string `json:"known_hosts"`
	// Sudo runs the checks as root through sudo (with Password when sudo
	// asks for one).
	Sudo bool `json:"sudo,omitempty"`
}

// Validate reports every problem that would stop the credential from
// working at once, so an operator fixes them in one go.
func (c Credential) Validate() error {
	var errs []error
	if c.User == "" {
		errs = append(errs, errors.New("user is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range", c.Port))
	}
	if c.PrivateKey == "" && c.Password == "" {
		errs = append(errs, errors.New("a private key or a password is required"))
	}
	if c.PrivateKey != "" {
		if _, err := c.signer(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkKnownHosts(c.KnownHosts); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidCredential, errors.Join(errs...))
	}
	return nil
}

// signer parses the private key.
func (c Credential) signer() (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey([]byte(c.PrivateKey))
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("private key is encrypted: store it without a passphrase (it is sealed at rest)")
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return s, nil
}

// port is the port to dial.
func (c Credential) port() int {
	if c.Port == 0 {
		return DefaultPort
	}
	return c.Port
}

// checkKnownHosts requires at least one known_hosts entry and no
// malformed one (comments and blank lines are fine).
func checkKnownHosts(text string) error {
	rest := []byte(text)
	entries := 0
	for range strings.Count(text, "\n") + 1 {
		_, _, _, _, next, err := ssh.ParseKnownHosts(rest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("known_hosts entry %d: %w", entries+1, err)
		}
		entries++
		rest = next
	}
	if entries == 0 {
		return errors.New("known_hosts is required: the host key is always verified")
	}
	return nil
}

// SealCredential validates c and seals it for host hostID, ready for
// store.Inventory.SetCredential.
func SealCredential(box *secrets.Box, hostID int64, c Credential) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("credential for host %d: %w", hostID, err)
	}
	sealed, err := box.Seal(plain, aad(hostID))
	if err != nil {
		return nil, fmt.Errorf("credential for host %d: %w", hostID, err)
	}
	return sealed, nil
}

// OpenCredential opens and validates what SealCredential sealed for the
// same host.
func OpenCredential(box *secrets.Box, hostID int64, sealed []byte) (Credential, error) {
	plain, err := box.Open(sealed, aad(hostID))
	if err != nil {
		return Credential{}, fmt.Errorf("%w for host %d: %w", ErrInvalidCredential, hostID, err)
	}
	var c Credential
	if err := json.Unmarshal(plain, &c); err != nil {
		return Credential{}, fmt.Errorf("%w for host %d: %w", ErrInvalidCredential, hostID, err)
	}
	if err := c.Validate(); err != nil {
		return Credential{}, fmt.Errorf("host %d: %w", hostID, err)
	}
	return c, nil
}

// aad binds a sealed credential to its host.
func aad(hostID int64) []byte { return []byte("host/" + strconv.FormatInt(hostID, 10)) }
