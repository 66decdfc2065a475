package testtarget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Users and credentials inside every target.
const (
	// RootUser logs in with RootSigner only (PermitRootLogin
	// prohibit-password).
	RootUser = "root"
	// User logs in with UserSigner and may sudo without a password.
	User = "vigil"
	// PasswordUser logs in with Password and sudo asks for it.
	PasswordUser = "vigilpw"
	// Password is PasswordUser's login and sudo password.
	Password = "vigil-test-pw"
)

// DefaultPort is the port sshd listens on when Options.Port is zero.
const DefaultPort = 2222

// ConnectTimeout bounds every TCP connect and SSH handshake this package
// makes, and is what ClientConfig sets.
const ConnectTimeout = 5 * time.Second

// startTimeout bounds how long Start and Restart wait for sshd to answer.
const startTimeout = 10 * time.Second

// ErrStopped is returned by Exec and Dial on a stopped target.
var ErrStopped = errors.New("testtarget: target is stopped")

// File is one file placed into a target's overlay before sshd starts.
type File struct {
	// Data is the content; for a symlink (Mode has os.ModeSymlink) the
	// link target.
	Data []byte
	// Mode holds permission bits (setuid/setgid/sticky included) and
	// optionally os.ModeDir or os.ModeSymlink. Zero permission bits keep
	// the mode of the entry the root already has at that path, or mean
	// 0644 (0755 for a directory) for a new one.
	Mode os.FileMode
}

// Options vary one target.
type Options struct {
	// Files maps absolute paths inside the target to their new content.
	// A file replacing one of the root keeps that file's owner and group;
	// new files belong to root. Parent directories are created as needed.
	// /etc/ssh/sshd_config itself is the harness's (Start fails if set
	// here): override settings in /etc/ssh/sshd_config.d/*.conf, which the
	// main config includes first, as on Debian.
	Files map[string]File
	// Remove lists absolute paths deleted from the target (overlay
	// whiteouts), applied after Files.
	Remove []string
	// SSHDConfigExtra is appended to the generated sshd_config. sshd keeps
	// the first value of a keyword, so this suits Match blocks and keywords
	// the harness does not set; use sshd_config.d to override the others.
	SSHDConfigExtra string
	// Hostname is the target's host name; default "vigil-target-N".
	Hostname string
	// Port is the port sshd listens on; zero means DefaultPort.
	Port int
}

// Host is one running target. All methods are safe for concurrent use.
type Host struct {
	ip       string
	port     int
	hostname string
	root     string // cached lower root
	dir      string // owned by the Host: keys, known_hosts, overlay dirs
	upper    string
	work     string
	merged   string
	logPath  string
	addrLock *os.File

	hostKey     ssh.Signer
	hostKeyPEM  []byte
	rootSigner  ssh.Signer
	userSigner  ssh.Signer
	rootKeyFile string
	userKeyFile string
	knownHosts  string

	mu    sync.Mutex
	proc  *exec.Cmd     // the unshare process, nil when stopped
	child int           // its child: PID 1 of the namespace, then sshd
	done  chan struct{} // closed when proc has been waited for
}

// Start builds the root filesystem if needed, starts one target and waits
// until it accepts SSH logins. It skips the test when targets cannot run
// here and fails it when the target does not come up. The target is stopped
// and its address released when the test ends. Call it from the test's own
// goroutine; StartAll starts several at once.
func Start(t testing.TB, opts Options) *Host {
	t.Helper()
	root := Require(t)
	h, err := start(t, root, opts)
	if err != nil {
		t.Fatalf("testtarget: %v", err)
	}
	return h
}

// StartAll starts one target per Options concurrently, like Start, and
// returns them in the same order.
func StartAll(t testing.TB, opts ...Options) []*Host {
	t.Helper()
	root := Require(t)
	hosts := make([]*Host, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Go(func() { hosts[i], errs[i] = start(t, root, o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testtarget: %v", err)
	}
	return hosts
}

// start does the work of Start without failing t, so that it can run on
// any goroutine. t is used only for Cleanup.
func start(t testing.TB, root string, opts Options) (*Host, error) {
	if _, ok := opts.Files["/etc/ssh/sshd_config"]; ok {
		return nil, errors.New("Options.Files may not replace /etc/ssh/sshd_config; " +
			"use /etc/ssh/sshd_config.d/NAME.conf or SSHDConfigExtra")
	}
	h := &Host{root: root, port: opts.Port}
	if h.port == 0 {
		h.port = DefaultPort
	}
	ip, lock, err := claimAddr(h.port)
	if err != nil {
		return nil, err
	}
	h.ip, h.addrLock = ip, lock
	// Not t.TempDir: its name follows the test name, and a comma or colon
	// in it would break the overlay mount options.
	if h.dir, err = os.MkdirTemp("", "vigil-target-"); err != nil {
		unlockFile(lock)
		return nil, fmt.Errorf("create target dir: %w", err)
	}
	t.Cleanup(func() { h.cleanup(t) })
	h.hostname = opts.Hostname
	if h.hostname == "" {
		h.hostname = "vigil-target-" + strings.TrimPrefix(ip, "127.0.0.")
	}
	if err := h.prepare(opts); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", h.Addr(), err)
	}
	return h, h.launchAndWait()
}

// cleanup stops the target, shows its log if the test failed and releases
// the address.
func (h *Host) cleanup(t testing.TB) {
	stopped := h.stop()
	if t.Failed() {
		t.Logf("testtarget: sshd log of %s:\n%s", h.Addr(), tailFile(h.logPath, 8192))
	}
	// The mounts lived in the target's namespace; once it is gone the
	// directory is plain files. If it is not gone, leave the files alone.
	if stopped {
		if err := removeUnmounted(h.dir); err != nil {
			t.Logf("testtarget: %v", err)
		}
	} else {
		t.Logf("testtarget: %s did not stop; leaving %s", h.Addr(), h.dir)
	}
	unlockFile(h.addrLock)
}

// launchAndWait starts sshd and waits until it accepts a login. On failure
// the error carries the end of sshd's log.
func (h *Host) launchAndWait() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.launch(); err != nil {
		return fmt.Errorf("start %s: %w", h.Addr(), err)
	}
	if err := h.waitReady(ctx); err != nil {
		h.Stop()
		return fmt.Errorf("%s did not come up: %w\nsshd log:\n%s",
			h.Addr(), err, tailFile(h.logPath, 8192))
	}
	return nil
}

// Addr is the target's SSH address, "127.0.0.N:PORT".
func (h *Host) Addr() string { return net.JoinHostPort(h.ip, strconv.Itoa(h.port)) }

// IP is the target's loopback address, "127.0.0.N".
func (h *Host) IP() string { return h.ip }

// Port is the port sshd listens on.
func (h *Host) Port() int { return h.port }

// Hostname is the target's host name (its UTS namespace).
func (h *Host) Hostname() string { return h.hostname }

// KnownHostsFile is a known_hosts file holding only this target's host key,
// as "[127.0.0.N]:PORT ssh-ed25519 ...".
func (h *Host) KnownHostsFile() string { return h.knownHosts }

// HostPublicKey is the target's ed25519 host key.
func (h *Host) HostPublicKey() ssh.PublicKey { return h.hostKey.PublicKey() }

// RootKeyFile is an OpenSSH private key file (mode 0600) that logs in as
// RootUser.
func (h *Host) RootKeyFile() string { return h.rootKeyFile }

// UserKeyFile is an OpenSSH private key file (mode 0600) that logs in as
// User.
func (h *Host) UserKeyFile() string { return h.userKeyFile }

// RootSigner is the key behind RootKeyFile.
func (h *Host) RootSigner() ssh.Signer { return h.rootSigner }

// UserSigner is the key behind UserKeyFile.
func (h *Host) UserSigner() ssh.Signer { return h.userSigner }

// Upper is the overlay's upper directory: the target's changes to the root.
// Write to it only while the target is stopped (then Restart); while it
// runs, use Exec.
func (h *Host) Upper() string { return h.upper }

// LogFile is the file collecting sshd's log (-e) across restarts.
func (h *Host) LogFile() string { return h.logPath }

// ClientConfig returns an x/crypto/ssh client configuration for RootUser,
// User or PasswordUser with their credentials, this target's host key pinned
// and ConnectTimeout set. Other users get no authentication methods.
func (h *Host) ClientConfig(user string) *ssh.ClientConfig {
	var auth []ssh.AuthMethod
	switch user {
	case RootUser:
		auth = []ssh.AuthMethod{ssh.PublicKeys(h.rootSigner)}
	case User:
		auth = []ssh.AuthMethod{ssh.PublicKeys(h.userSigner)}
	case PasswordUser:
		auth = []ssh.AuthMethod{ssh.Password(Password)}
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   ssh.FixedHostKey(h.HostPublicKey()),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           ConnectTimeout,
	}
}

// Dial connects to the target as user (see ClientConfig).
func (h *Host) Dial(ctx context.Context, user string) (*ssh.Client, error) {
	h.mu.Lock()
	running := h.proc != nil
	h.mu.Unlock()
	if !running {
		return nil, ErrStopped
	}
	return DialConfig(ctx, h.Addr(), h.ClientConfig(user))
}

// DialConfig connects to addr with cfg, bounding the TCP connect and the
// handshake by ConnectTimeout as well as ctx.
func DialConfig(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(ConnectTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Exec runs `sh -c script` as root inside the running target: in its mount,
// PID, UTS and IPC namespaces, chrooted into its root. A non-zero exit
// status is returned as an error wrapping *exec.ExitError. Cancelling ctx
// kills the script and everything it started.
func (h *Host) Exec(ctx context.Context, script string) (stdout, stderr []byte, err error) {
	h.mu.Lock()
	child, running := h.child, h.proc != nil
	h.mu.Unlock()
	if !running {
		return nil, nil, ErrStopped
	}
	nsenter, err := lookTool("nsenter")
	if err != nil {
		return nil, nil, err
	}
	chroot, err := lookTool("chroot")
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, nsenter, "--target", strconv.Itoa(child),
		"--mount", "--uts", "--ipc", "--pid", "--",
		chroot, h.merged, "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "LC_ALL=C"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	killGroupOnCancel(cmd)
	if err := cmd.Run(); err != nil {
		return out.Bytes(), errOut.Bytes(), fmt.Errorf("exec in %s: %w", h.Addr(), err)
	}
	return out.Bytes(), errOut.Bytes(), nil
}

// Stop kills the target now, as if the host died: open connections break
// and new ones are refused. It is idempotent; Restart brings it back.
func (h *Host) Stop() { h.stop() }

// stop does Stop and reports whether the target is known to be gone.
func (h *Host) stop() bool {
	h.mu.Lock()
	proc, child, done := h.proc, h.child, h.done
	h.proc, h.child = nil, 0
	h.mu.Unlock()
	if proc == nil {
		return true
	}
	h.logNote("stopping (SIGKILL); unshare then reports 'sigprocmask unblock failed', which is expected")
	// Killing the namespace's PID 1 kills everything in it, and unshare,
	// still alive, reaps it: no orphan is left to a PID 1 that may not reap.
	if child > 0 && parentOf(child) == proc.Process.Pid {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	select {
	case <-done:
		return true
	case <-time.After(ConnectTimeout):
	}
	// --kill-child takes the namespace down with unshare.
	_ = proc.Process.Kill()
	select {
	case <-done:
		return true
	case <-time.After(ConnectTimeout):
		return false
	}
}

// logNote adds a line of the harness's own to the sshd log.
func (h *Host) logNote(msg string) {
	f, err := os.OpenFile(h.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "--- testtarget: %s at %s\n", msg, time.Now().Format(time.RFC3339Nano))
}

// Restart stops the target if it runs and starts sshd again on the same
// address with the same overlay (changes made by Exec persist) and host key.
// It fails the test if sshd does not come back.
func (h *Host) Restart(t testing.TB) {
	t.Helper()
	h.Stop()
	if err := h.launchAndWait(); err != nil {
		t.Fatalf("testtarget: restart: %v", err)
	}
}

// Log returns what sshd has logged so far.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}

// parentOf returns the parent PID of pid, or 0 when it is gone.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may contain spaces: parse after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// keyFileMode is the mode of private key files: ssh refuses laxer ones.
const keyFileMode = 0o600

// setDirs creates the Host's own directories under h.dir.
func (h *Host) setDirs() error {
	h.upper = filepath.Join(h.dir, "upper")
	h.work = filepath.Join(h.dir, "work")
	h.merged = filepath.Join(h.dir, "merged")
	h.logPath = filepath.Join(h.dir, "sshd.log")
	for _, d := range []string{h.upper, h.work, h.merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// The upper dir's root becomes the target's "/": same mode as the root.
	return os.Chmod(h.upper, 0o755)
}
