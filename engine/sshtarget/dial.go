package sshtarget

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Dial connects to the host, verifies its key, logs in and, with Sudo,
// checks once that sudo accepts the configured credentials, so that a
// wrong sudo setup is reported here, with a clear error, rather than as a
// failed batch. ConnectTimeout and LoginTimeout bound the connection and
// the login; ctx can cancel them too. Errors name the host and wrap ErrHostKeyMismatch,
// ErrUnknownHost, ErrAuth, ErrEncryptedKey, ErrUnreachable or one of the
// sudo errors.
func Dial(ctx context.Context, opts Options) (*Target, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	addr := o.addr()
	hk, err := newHostKeys(o.KnownHostsFile, o.AcceptUnknownHost)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	auth, closeAgent, err := authMethods(o)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", addr, err)
	}
	defer closeAgent()
	algos := hk.algorithms(addr)
	cfg := &ssh.ClientConfig{
		User:              o.User,
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: algos,
	}

	client, err := connect(ctx, addr, cfg, o.ConnectTimeout, o.LoginTimeout)
	if err != nil {
		if herr := hk.refusal(); herr != nil {
			return nil, fmt.Errorf("ssh %s: %w", addr, herr)
		}
		if algos != nil && strings.Contains(err.Error(), "no common algorithm for host key") {
			return nil, fmt.Errorf("ssh %s: %w: the host offers none of the key types %v that %s holds for it",
				addr, ErrHostKeyMismatch, algos, o.KnownHostsFile)
		}
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, fmt.Errorf("ssh %s: %w: %w", addr, ErrUnreachable, cerr)
		}
		if kind := classifyDial(err); kind != nil {
			return nil, fmt.Errorf("ssh %s as %s: %w: %w", addr, o.User, kind, err)
		}
		return nil, fmt.Errorf("ssh %s: handshake failed: %w", addr, err)
	}

	t := newTarget(o, client)
	if o.Sudo {
		if err := t.checkSudo(ctx); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// connect makes the TCP connection within connectTimeout, and the SSH
// handshake and login within loginTimeout, all within ctx. Until the
// server sends its first bytes only connectTimeout applies, so a host that
// accepts TCP but never speaks is given up as quickly as one that refuses.
func connect(ctx context.Context, addr string, cfg *ssh.ClientConfig, connectTimeout, loginTimeout time.Duration) (*ssh.Client, error) {
	d := net.Dialer{Timeout: connectTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake has no context of its own: deadlines bound it, and
	// closing the connection stops it on cancellation.
	conn := &firstReadConn{Conn: raw, later: time.Now().Add(loginTimeout)}
	if dl, ok := ctx.Deadline(); ok && dl.Before(conn.later) {
		conn.later = dl
	}
	first := time.Now().Add(connectTimeout)
	if first.After(conn.later) {
		first = conn.later
	}
	_ = raw.SetDeadline(first)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() || err != nil {
		raw.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// firstReadConn moves the connection's deadline from the connect timeout to
// the login deadline once the server has sent anything.
type firstReadConn struct {
	net.Conn
	later time.Time
	once  sync.Once
}

func (c *firstReadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() { _ = c.Conn.SetDeadline(c.later) })
	}
	return n, err
}

// authMethods assembles the credentials in the order OpenSSH tries them:
// keys (files, in-memory signers, agent) in one publickey method, then the
// password, both as "password" and as "keyboard-interactive", since sshd
// configurations enable one or the other. The returned func closes the
// agent connection once the login is done.
func authMethods(o Options) ([]ssh.AuthMethod, func(), error) {
	noop := func() {}
	signers := append([]ssh.Signer(nil), o.Signers...)
	for _, f := range o.KeyFiles {
		s, err := loadKey(f)
		if err != nil {
			return nil, noop, err
		}
		signers = append(signers, s)
	}
	var agentSigners func() ([]ssh.Signer, error)
	closeAgent := noop
	if o.UseAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, noop, errors.New("UseAgent is set but SSH_AUTH_SOCK is empty: no ssh-agent to ask")
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, noop, fmt.Errorf("connecting to ssh-agent at %s: %w", sock, err)
		}
		agentSigners = agent.NewClient(conn).Signers
		closeAgent = func() { conn.Close() }
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 || agentSigners != nil {
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			all := signers
			if agentSigners != nil {
				more, err := agentSigners()
				if err != nil {
					return nil, fmt.Errorf("listing ssh-agent keys: %w", err)
				}
				all = append(append([]ssh.Signer(nil), signers...), more...)
			}
			return all, nil
		}))
	}
	if o.Password != "" {
		pw := o.Password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] { // a hidden prompt asks for the password
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return methods, closeAgent, nil
}

// loadKey reads one unencrypted private key file.
func loadKey(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%w: %s needs a passphrase; load it into ssh-agent and set UseAgent", ErrEncryptedKey, path)
	case err != nil:
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// ctxErr is ctx.Err(), also when the deadline has passed but the context's
// own timer has not fired yet: the connection deadline, set from the same
// instant, may beat it by a hair.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}
