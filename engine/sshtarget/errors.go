package sshtarget

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// Errors callers branch on with errors.Is. Every error Dial and Gather
// return wraps one of these (or a context error) and names the host.
var (
	// ErrHostKeyMismatch: the host offered a key other than the one
	// known_hosts holds for it (or a revoked one). Possibly a
	// man-in-the-middle; never accepted, and no command is run.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrUnknownHost: known_hosts has no key for the host and
	// AcceptUnknownHost is off.
	ErrUnknownHost = errors.New("host key unknown")
	// ErrAuth: the host refused every credential offered.
	ErrAuth = errors.New("authentication failed")
	// ErrEncryptedKey: a key file needs a passphrase.
	ErrEncryptedKey = errors.New("key file is encrypted")
	// ErrUnreachable: no SSH connection could be set up in time (refused,
	// no route, timeout, dropped during the handshake).
	ErrUnreachable = errors.New("host unreachable")
	// ErrConnectionLost: the connection died while a batch ran.
	ErrConnectionLost = errors.New("connection lost")
	// ErrSudoPasswordRequired: sudo wants a password and none was given.
	ErrSudoPasswordRequired = errors.New("sudo requires a password but none is configured")
	// ErrSudoPasswordWrong: sudo rejected the configured password.
	ErrSudoPasswordWrong = errors.New("sudo rejected the password")
	// ErrSudo: sudo failed otherwise (user not in sudoers, requiretty,
	// sudo not installed).
	ErrSudo = errors.New("sudo failed")
	// ErrBatch: the remote shell did not run the batch to the end for a
	// reason other than the above.
	ErrBatch = errors.New("batch failed")
)

// classifyDial maps an error of the TCP connect or SSH handshake to
// ErrAuth or ErrUnreachable, or returns nil for other failures (such as no
// common algorithm). Host key errors never get here: the host key callback
// reports them itself.
func classifyDial(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") ||
		strings.Contains(msg, "no supported methods remain") ||
		strings.Contains(msg, "authentication failures") {
		return ErrAuth
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return ErrUnreachable
	}
	return nil
}

// classifySudo reads sudo's complaint on stderr (in the C locale the
// remote command sets). It returns nil when stderr shows no sudo failure.
func classifySudo(stderr string) error {
	switch {
	case strings.Contains(stderr, "incorrect password attempt"),
		strings.Contains(stderr, "Sorry, try again"):
		return ErrSudoPasswordWrong
	case strings.Contains(stderr, "a password is required"),
		strings.Contains(stderr, "a terminal is required"),
		strings.Contains(stderr, "no password was provided"):
		return ErrSudoPasswordRequired
	case strings.Contains(stderr, "sudo:"),
		strings.Contains(stderr, "sudo: not found"),
		strings.Contains(stderr, "sudo: command not found"):
		return ErrSudo
	}
	return nil
}

// firstLines trims remote stderr for an error message.
func firstLines(s string, n int) string {
	s = strings.TrimSpace(s)
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, " | ")
}
