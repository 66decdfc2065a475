package sshtarget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine/target"
	"github.com/vigilfleet/vigil/engine/target/shellbatch"
)

// MaxBatchOutput caps what one Gather accepts from the host. Each file and
// command output is already capped at target.ReadLimit by the script; this
// guards the scanner's memory against a host that sends without end.
const MaxBatchOutput = 512 << 20

// maxStderr caps the remote shell's own stderr, kept for error messages.
const maxStderr = 64 << 10

// cancelGrace is how long Gather waits for a cancelled session to wind down
// before it concludes the connection itself is stuck and closes it.
const cancelGrace = 2 * time.Second

// Target is a host reached over one SSH connection. It implements
// target.Target and target.RoundTripCounter; all methods are safe for
// concurrent use (concurrent Gathers use separate SSH sessions).
type Target struct {
	opts   Options
	addr   string
	client *ssh.Client

	roundTrips atomic.Int64
	closeOnce  sync.Once
	closeErr   error
	stop       chan struct{} // closed by Close; stops the keepalive loop
	dead       chan struct{} // closed when the connection has ended
}

var (
	_ target.Target           = (*Target)(nil)
	_ target.RoundTripCounter = (*Target)(nil)
)

func newTarget(o Options, client *ssh.Client) *Target {
	t := &Target{
		opts:   o,
		addr:   o.addr(),
		client: client,
		stop:   make(chan struct{}),
		dead:   make(chan struct{}),
	}
	go func() {
		_ = client.Wait()
		close(t.dead)
	}()
	if o.KeepAlive > 0 {
		go t.keepAlive(o.KeepAlive)
	}
	return t
}

// Name is Options.Name, by default user@host:port.
func (t *Target) Name() string { return t.opts.Name }

// Kind is target.KindSSH.
func (t *Target) Kind() target.Kind { return target.KindSSH }

// RoundTrips counts the batches sent, one per Gather. Connection setup
// (handshake, login, Dial's sudo check) is not counted.
func (t *Target) RoundTrips() int { return int(t.roundTrips.Load()) }

// Close closes the connection. It is idempotent.
func (t *Target) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		t.closeErr = t.client.Close()
		if errors.Is(t.closeErr, net.ErrClosed) {
			t.closeErr = nil
		}
	})
	return t.closeErr
}

// keepAlive probes the connection every interval and closes it when a
// probe goes unanswered for another interval: a host that vanished
// without closing TCP would otherwise leave a Gather waiting for ever.
func (t *Target) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-t.dead:
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() {
			// OpenSSH answers unknown global requests with a failure,
			// which is an answer all the same.
			_, _, _ = t.client.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-t.stop:
			return
		case <-time.After(interval):
			t.client.Close()
			return
		}
	}
}

// Gather answers every request in one SSH session: the batch script goes to
// the remote shell on stdin, the framed answers come back on stdout.
//
// The error is set when the batch as a whole failed, naming the host: the
// connection died (ErrConnectionLost), sudo refused (ErrSudo...), ctx was
// cancelled, or the output was cut short. Every response then carries the
// same error in Response.Err, since the batch cannot be trusted in part.
func (t *Target) Gather(ctx context.Context, reqs []target.Request) ([]target.Response, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	b, err := shellbatch.New(reqs)
	if err != nil {
		return failAll(reqs, time.Now(), 0, fmt.Errorf("ssh %s: %w", t.addr, err))
	}
	sentinel, err := newSentinel()
	if err != nil {
		return failAll(reqs, time.Now(), 0, fmt.Errorf("ssh %s: %w", t.addr, err))
	}
	inv := batchInvocation(t.opts, sentinel)
	stdin := append(append([]byte(nil), inv.prefix...), b.Script()...)

	t.roundTrips.Add(1)
	started := time.Now()
	out, stderr, runErr := t.run(ctx, inv.command, stdin, MaxBatchOutput)
	elapsed := time.Since(started)

	resps, perr := b.Parse(out.Bytes(), started, elapsed)
	if perr == nil {
		return resps, nil
	}
	return failAll(reqs, started, elapsed, t.batchError(ctx, perr, runErr, out, stderr))
}

// batchError explains a batch whose output did not parse to the end.
func (t *Target) batchError(ctx context.Context, perr, runErr error, out, stderr *capBuffer) error {
	errText := stderr.String()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("ssh %s: batch cancelled: %w", t.addr, ctx.Err())
	case out.overflow:
		return fmt.Errorf("ssh %s: %w: output exceeds %d bytes", t.addr, ErrBatch, MaxBatchOutput)
	case errors.Is(runErr, ErrConnectionLost), errors.Is(runErr, ErrBatch):
		return fmt.Errorf("ssh %s: %w", t.addr, runErr)
	}
	if t.opts.Sudo && !bytes.Contains(out.Bytes(), []byte(" start ")) {
		if kind := classifySudo(errText); kind != nil {
			return fmt.Errorf("ssh %s: %w (as %s): %s", t.addr, kind, t.opts.User, firstLines(errText, 3))
		}
	}
	var exit *ssh.ExitError
	if errors.As(runErr, &exit) {
		return fmt.Errorf("ssh %s: %w: remote shell exited with status %d: %w: %s", t.addr, ErrBatch, exit.ExitStatus(), perr, firstLines(errText, 3))
	}
	if runErr != nil {
		return fmt.Errorf("ssh %s: %w: %w", t.addr, ErrBatch, runErr)
	}
	return fmt.Errorf("ssh %s: %w: %w: %s", t.addr, ErrBatch, perr, firstLines(errText, 3))
}

// run executes command in a new session with stdin, and returns stdout
// (capped at limit), stderr (capped at maxStderr) and the session's error:
// nil, *ssh.ExitError, an error wrapping ErrConnectionLost, or ctx's
// error.
func (t *Target) run(ctx context.Context, command string, stdin []byte, limit int) (*capBuffer, *capBuffer, error) {
	stdout := &capBuffer{limit: limit}
	stderr := &capBuffer{limit: maxStderr}
	sess, err := t.client.NewSession()
	if err != nil {
		if _, refused := errors.AsType[*ssh.OpenChannelError](err); refused {
			// The server said no (MaxSessions, say): it is alive.
			return stdout, stderr, fmt.Errorf("%w: opening a session: %w", ErrBatch, err)
		}
		return stdout, stderr, fmt.Errorf("%w: opening a session: %w", ErrConnectionLost, err)
	}
	defer sess.Close()
	sess.Stdin = bytes.NewReader(stdin)
	sess.Stdout, sess.Stderr = stdout, stderr
	if err := sess.Start(command); err != nil {
		return stdout, stderr, fmt.Errorf("%w: starting %q: %w", ErrConnectionLost, command, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		return stdout, stderr, t.sessionError(err)
	case <-ctx.Done():
	}
	// Closing the channel makes sshd close the remote shell's pipes, so it
	// stops at its next write. The buffers are not read again once we
	// return, so the copying goroutines may finish on their own.
	_ = sess.Signal(ssh.SIGTERM)
	_ = sess.Close()
	select {
	case <-done:
	case <-time.After(cancelGrace):
		// The session does not even close: the connection is stuck.
		t.client.Close()
	}
	return stdout, stderr, ctx.Err()
}

// sessionError sorts what Session.Wait returned. An exit status means the
// remote shell ran and ended; anything else (no exit status, EOF) means the
// connection went away underneath the session.
func (t *Target) sessionError(err error) error {
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		select {
		case <-t.dead:
			return fmt.Errorf("%w: %w", ErrConnectionLost, err)
		default:
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// checkSudo runs sudo once with the configured credentials.
func (t *Target) checkSudo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.opts.LoginTimeout)
	defer cancel()
	inv := probeInvocation(t.opts)
	_, stderr, err := t.run(ctx, inv.command, inv.prefix, 64<<10)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("ssh %s: checking sudo: %w", t.addr, ctx.Err())
	}
	if errors.Is(err, ErrConnectionLost) {
		return fmt.Errorf("ssh %s: checking sudo: %w", t.addr, err)
	}
	kind := classifySudo(stderr.String())
	if kind == nil {
		kind = ErrSudo
	}
	return fmt.Errorf("ssh %s: %w (as %s): %s", t.addr, kind, t.opts.User, firstLines(stderr.String(), 3))
}

// failAll answers every request with err.
func failAll(reqs []target.Request, started time.Time, elapsed time.Duration, err error) ([]target.Response, error) {
	resps := make([]target.Response, len(reqs))
	for i, r := range reqs {
		resps[i] = target.Response{Req: r, Err: err, Started: started, Duration: elapsed}
	}
	return resps, err
}

// capBuffer keeps the first limit bytes written to it and notes that more
// came. It never fails a write: failing would make the SSH library stop
// reading the channel and stall the remote side.
type capBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	limit    int
	overflow bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - c.buf.Len()
	if len(p) > room {
		c.overflow = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Bytes()
}

func (c *capBuffer) String() string { return string(c.Bytes()) }

var _ io.Writer = (*capBuffer)(nil)
