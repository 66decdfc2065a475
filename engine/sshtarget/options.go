// Package sshtarget observes a host over SSH: one connection per host, and
// one SSH session per Gather that runs the whole batch of fact requests as a
// single shell script (package shellbatch). A scan therefore costs a
// handful of round trips however many facts its checks need.
//
// Host keys are always verified against a known_hosts file; a changed key
// is refused, an unknown one only accepted when asked to (accept-new).
package sshtarget

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults applied by Dial to zero Options fields.
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 5 * time.Second
	DefaultLoginTimeout   = 30 * time.Second
	DefaultKeepAlive      = 15 * time.Second
)

// Options say how to reach and log in to one host. Dial applies the
// defaults noted on each field to a copy; the caller's value is not changed.
type Options struct {
	// Host is the address to connect to: an IP address or a DNS name. A
	// "host:port" (or "[v6addr]:port") form is accepted when Port is zero.
	Host string
	// Port is the SSH port. Default 22.
	Port int
	// User is the login user. Required.
	User string

	// KeyFiles are private key files (OpenSSH or PEM format) offered for
	// public key authentication. Keys must be unencrypted: an encrypted key
	// is a clear error (ErrEncryptedKey); put such a key into ssh-agent and
	// set UseAgent instead, so no passphrase has to live in a config.
	KeyFiles []string
	// Signers are further keys for public key authentication, for callers
	// that hold keys in memory (tests, a secrets store).
	Signers []ssh.Signer
	// Password enables password and keyboard-interactive authentication,
	// tried after the keys.
	Password string
	// UseAgent offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	UseAgent bool

	// KnownHostsFile is the known_hosts file the host key is checked
	// against. Default ~/.ssh/known_hosts. A missing file is an empty one.
	KnownHostsFile string
	// AcceptUnknownHost makes a host that KnownHostsFile does not know at
	// all trusted on first use: its key is appended to KnownHostsFile
	// (created 0600 if need be), like OpenSSH's StrictHostKeyChecking
	// accept-new. A host whose key differs from a known one is refused
	// regardless (ErrHostKeyMismatch).
	AcceptUnknownHost bool

	// Sudo runs the batch as root through sudo. Without SudoPassword,
	// sudo must not ask for one (NOPASSWD); otherwise Dial fails with
	// ErrSudoPasswordRequired.
	Sudo bool
	// SudoPassword is sent to `sudo -S` on the session's stdin, never on a
	// command line. Setting it implies Sudo.
	SudoPassword string

	// ConnectTimeout bounds the TCP connect and the wait for the server's
	// first bytes, so a dead or silent host is given up quickly, as with
	// OpenSSH's ConnectTimeout. Default 5 s.
	ConnectTimeout time.Duration
	// LoginTimeout bounds the whole login once the server has answered:
	// key exchange, authentication (which PAM, LDAP or a loaded host can
	// make slow) and Dial's sudo check. Default 30 s.
	LoginTimeout time.Duration
	// KeepAlive is how often an idle or busy connection is probed with an
	// OpenSSH keepalive request; a probe without answer within the same
	// interval closes the connection, so a host that vanished fails a
	// running Gather instead of hanging it. Default 15 s; negative disables.
	KeepAlive time.Duration
	// Name is how the host is named in results and errors. Default
	// "user@host:port".
	Name string
}

// withDefaults validates o and returns a copy with defaults applied.
func (o Options) withDefaults() (Options, error) {
	if o.Host == "" {
		return o, errors.New("sshtarget: no host given")
	}
	if o.Port == 0 {
		if h, p, err := net.SplitHostPort(o.Host); err == nil {
			port, perr := strconv.Atoi(p)
			if perr != nil || port <= 0 || port > 65535 {
				return o, fmt.Errorf("sshtarget: bad port in host %q", o.Host)
			}
			o.Host, o.Port = h, port
		} else {
			o.Port = DefaultPort
		}
	}
	o.Host = strings.TrimSuffix(strings.TrimPrefix(o.Host, "["), "]")
	if o.Port < 0 || o.Port > 65535 {
		return o, fmt.Errorf("sshtarget: bad port %d for %s", o.Port, o.Host)
	}
	if o.User == "" {
		return o, fmt.Errorf("sshtarget: no user given for %s", o.addr())
	}
	if len(o.KeyFiles) == 0 && len(o.Signers) == 0 && o.Password == "" && !o.UseAgent {
		return o, fmt.Errorf("sshtarget: no credentials for %s: set KeyFiles, Signers, Password or UseAgent", o.addr())
	}
	if strings.ContainsAny(o.SudoPassword, "\n\r\x00") {
		return o, fmt.Errorf("sshtarget: sudo password for %s contains a line break or NUL", o.addr())
	}
	if o.SudoPassword != "" {
		o.Sudo = true
	}
	if o.KnownHostsFile == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("sshtarget: no KnownHostsFile and no home directory: %w", err)
		}
		o.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = DefaultLoginTimeout
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Name == "" {
		o.Name = o.User + "@" + o.addr()
	}
	return o, nil
}

// addr is "host:port", bracketed for IPv6.
func (o Options) addr() string { return net.JoinHostPort(o.Host, strconv.Itoa(o.Port)) }
