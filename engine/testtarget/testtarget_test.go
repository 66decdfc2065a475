package testtarget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// run executes cmd in a new session of c, feeding stdin if given, and
// returns stdout followed by stderr. (Two buffers: one bytes.Buffer shared
// by both copy goroutines loses output.)
func run(t *testing.T, c *ssh.Client, cmd, stdin string) (string, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("new session: %w", err)
	}
	defer s.Close()
	if stdin != "" {
		s.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr = &out, &errOut
	err = s.Run(cmd)
	return out.String() + errOut.String(), err
}

// mustRun is run that fails the test on a non-zero exit.
func mustRun(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := run(t, c, cmd, "")
	if err != nil {
		t.Fatalf("%q: %v\n%s", cmd, err, out)
	}
	return out
}

// dial connects as user and closes the client when the test ends.
func dial(t *testing.T, h *Host, user string) *ssh.Client {
	t.Helper()
	c, err := h.Dial(context.Background(), user)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", h.Addr(), user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartKeyLoginAndKnownHosts(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	h := Start(t, Options{})
	t.Logf("target %s up in %v", h.Addr(), time.Since(t0))

	if !strings.HasPrefix(h.IP(), "127.0.0.") || h.Port() != DefaultPort {
		t.Fatalf("address %s not on loopback port %d", h.Addr(), DefaultPort)
	}
	kh, err := os.ReadFile(h.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := fmt.Sprintf("[%s]:%d ssh-ed25519 ", h.IP(), h.Port())
	if !strings.HasPrefix(string(kh), wantPrefix) {
		t.Fatalf("known_hosts = %q, want prefix %q", kh, wantPrefix)
	}
	hostKeyCB, err := knownhosts.New(h.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user    string
		keyFile string
	}{{RootUser, h.RootKeyFile()}, {User, h.UserKeyFile()}} {
		signer := loadKeyFile(t, tc.keyFile)
		cfg := &ssh.ClientConfig{
			User:            tc.user,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: hostKeyCB,
			Timeout:         ConnectTimeout,
		}
		c, err := DialConfig(context.Background(), h.Addr(), cfg)
		if err != nil {
			t.Fatalf("login as %s with %s: %v", tc.user, tc.keyFile, err)
		}
		out := mustRun(t, c, "id -un; cat /etc/os-release")
		c.Close()
		if !strings.HasPrefix(out, tc.user+"\n") {
			t.Errorf("id -un as %s: %q", tc.user, out)
		}
		if !strings.Contains(out, "ID=debian") || !strings.Contains(out, `VERSION_ID="12"`) {
			t.Errorf("os-release is not Debian 12:\n%s", out)
		}
	}
}

// loadKeyFile parses a private key file and checks its mode.
func loadKeyFile(t *testing.T, path string) ssh.Signer {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return s
}

func TestWrongHostKeyRejected(t *testing.T) {
	t.Parallel()
	h := Start(t, Options{})
	other, _, err := newKey("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.ClientConfig(RootUser)
	cfg.HostKeyCallback = ssh.FixedHostKey(other.PublicKey())
	if c, err := DialConfig(context.Background(), h.Addr(), cfg); err == nil {
		c.Close()
		t.Fatal("login succeeded with the wrong host key pinned")
	}
}

func TestFilesAndRemove(t *testing.T) {
	t.Parallel()
	h := Start(t, Options{
		Files: map[string]File{
			"/etc/vigil/new.conf":       {Data: []byte("hello\n"), Mode: 0o600},
			"/bin/vigil-hello":          {Data: []byte("#!/bin/sh\necho hi from bin\n"), Mode: 0o755},
			"/home/vigil/.profile":      {Data: []byte("# replaced\n")},
			"/etc/ssh/sshd_config.d/x":  {Data: []byte("# not a .conf: ignored\n")},
			"/etc/vigil/link":           {Data: []byte("new.conf"), Mode: os.ModeSymlink},
			"/var/lib/vigil-empty-dir/": {Mode: os.ModeDir | 0o750},
		},
		Remove: []string{"/etc/motd", "/usr/bin/which"},
	})
	c := dial(t, h, RootUser)
	checks := map[string]string{
		"cat /etc/vigil/new.conf":                  "hello\n",
		"stat -c '%a %U' /etc/vigil/new.conf":      "600 root\n",
		"vigil-hello":                              "hi from bin\n",
		"test -L /bin && echo link":                "link\n",
		"stat -c '%a %U' /home/vigil/.profile":     "644 vigil\n",
		"cat /home/vigil/.profile":                 "# replaced\n",
		"stat -c '%a' /root":                       "700\n",
		"readlink /etc/vigil/link":                 "new.conf\n",
		"stat -c '%a %F' /var/lib/vigil-empty-dir": "750 directory\n",
		"test -e /etc/motd || echo gone":           "gone\n",
		"test -e /usr/bin/which || echo gone":      "gone\n",
		"test -e /etc/issue && echo kept":          "kept\n",
	}
	for cmd, want := range checks {
		if got := mustRun(t, c, cmd); got != want {
			t.Errorf("%q = %q, want %q", cmd, got, want)
		}
	}
	// The cached root itself is untouched.
	if _, err := os.Stat(h.root + "/etc/motd"); err != nil {
		t.Errorf("whiteout leaked into the cached root: %v", err)
	}
}

func TestSSHDConfigOverrideRejected(t *testing.T) {
	t.Parallel()
	root := Require(t)
	_, err := start(t, root, Options{Files: map[string]File{"/etc/ssh/sshd_config": {Data: []byte("x")}}})
	if err == nil {
		t.Fatal("start accepted a replacement /etc/ssh/sshd_config")
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	h := Start(t, Options{Hostname: "exec-target"})
	ctx := context.Background()
	out, errOut, err := h.Exec(ctx, "echo out; echo err >&2; hostname; cat /proc/1/comm")
	if err != nil {
		t.Fatalf("exec: %v (%s)", err, errOut)
	}
	if string(out) != "out\nexec-target\nsshd\n" || string(errOut) != "err\n" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
	_, _, err = h.Exec(ctx, "exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit 3: err = %v", err)
	}
	// Exec writes through the overlay and is seen over SSH.
	if _, _, err := h.Exec(ctx, "echo via-exec > /etc/vigil-exec"); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, dial(t, h, RootUser), "cat /etc/vigil-exec"); got != "via-exec\n" {
		t.Errorf("file written by Exec reads %q", got)
	}
	// A cancelled context kills a hanging script promptly.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, _, err := h.Exec(cctx, "sleep 30"); err == nil {
		t.Error("sleep 30 with a 300ms context succeeded")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("cancelled Exec took %v", d)
	}
}

func TestStopAndRestart(t *testing.T) {
	t.Parallel()
	h := Start(t, Options{})
	ctx := context.Background()
	c := dial(t, h, RootUser)
	key := h.HostPublicKey().Marshal()

	h.Stop()
	h.Stop() // idempotent
	if _, err := run(t, c, "true", ""); err == nil {
		t.Error("session on a stopped target succeeded")
	}
	cfg := h.ClientConfig(RootUser)
	if c2, err := DialConfig(ctx, h.Addr(), cfg); err == nil {
		c2.Close()
		t.Fatal("connection to a stopped target succeeded")
	}
	if _, _, err := h.Exec(ctx, "true"); !errors.Is(err, ErrStopped) {
		t.Errorf("Exec on stopped target: %v", err)
	}

	h.Restart(t)
	c = dial(t, h, PasswordUser)
	mustRun(t, c, "true")
	if !bytes.Equal(h.HostPublicKey().Marshal(), key) {
		t.Error("host key changed across Restart")
	}
	// A config change made with Exec takes effect on Restart; the
	// sshd_config.d drop-in wins over the main config as on Debian.
	if _, _, err := h.Exec(ctx, "echo 'PasswordAuthentication no' > /etc/ssh/sshd_config.d/10-nopw.conf"); err != nil {
		t.Fatal(err)
	}
	h.Restart(t)
	if c2, err := h.Dial(ctx, PasswordUser); err == nil {
		c2.Close()
		t.Error("password login still works after PasswordAuthentication no")
	}
	mustRun(t, dial(t, h, RootUser), "true")
}

func TestTwoTargets(t *testing.T) {
	t.Parallel()
	hosts := StartAll(t,
		Options{Files: map[string]File{"/etc/vigil-which": {Data: []byte("0\n")}}},
		Options{Files: map[string]File{"/etc/vigil-which": {Data: []byte("1\n")}}},
	)
	if hosts[0].Addr() == hosts[1].Addr() {
		t.Fatalf("both targets got %s", hosts[0].Addr())
	}
	for i, h := range hosts {
		if got := mustRun(t, dial(t, h, User), "cat /etc/vigil-which"); got != fmt.Sprintf("%d\n", i) {
			t.Errorf("target %d (%s) reads %q", i, h.Addr(), got)
		}
	}
}

func TestPasswordAndSudo(t *testing.T) {
	t.Parallel()
	h := Start(t, Options{})
	pw := dial(t, h, PasswordUser)
	if got := mustRun(t, pw, "id -un"); got != PasswordUser+"\n" {
		t.Errorf("id -un = %q", got)
	}
	if out, err := run(t, pw, "sudo -n true", ""); err == nil {
		t.Errorf("sudo -n succeeded for %s: %s", PasswordUser, out)
	}
	out, err := run(t, pw, "sudo -S -p '' id -u", Password+"\n")
	if err != nil || out != "0\n" {
		t.Errorf("sudo -S with the password: %v %q", err, out)
	}
	// One wrong attempt, then EOF: pam_unix delays each failure by 2 s.
	if out, err := run(t, pw, "sudo -S -p '' true", "wrong\n"); err == nil {
		t.Errorf("sudo -S with a wrong password succeeded: %q", out)
	}
	if got := mustRun(t, dial(t, h, User), "sudo -n id -u"); got != "0\n" {
		t.Errorf("sudo -n as %s = %q", User, got)
	}
	// Keys for other users are not accepted.
	cfg := h.ClientConfig(RootUser)
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(h.UserSigner())}
	if c, err := DialConfig(context.Background(), h.Addr(), cfg); err == nil {
		c.Close()
		t.Error("root login with vigil's key succeeded")
	}
	cfg = h.ClientConfig(RootUser)
	cfg.Auth = []ssh.AuthMethod{ssh.Password(Password)}
	if c, err := DialConfig(context.Background(), h.Addr(), cfg); err == nil {
		c.Close()
		t.Error("root password login succeeded despite prohibit-password")
	}
}

func TestTwentyTargets(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts 20 targets")
	}
	Require(t)
	const n = 20
	t0 := time.Now()
	hosts := StartAll(t, make([]Options, n)...)
	t.Logf("%d targets up in %v", n, time.Since(t0))
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h.Addr()] {
			t.Errorf("address %s handed out twice", h.Addr())
		}
		seen[h.Addr()] = true
		c, err := h.Dial(context.Background(), RootUser)
		if err != nil {
			t.Errorf("%s: %v", h.Addr(), err)
			continue
		}
		c.Close()
	}
}
