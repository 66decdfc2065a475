package sshtarget

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine/target"
	"github.com/vigilfleet/vigil/engine/target/shellbatch"
)

func TestOptionsDefaults(t *testing.T) {
	t.Setenv("HOME", "/home/tester")
	o, err := Options{Host: "web01", User: "root", Password: "x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != 22 || o.ConnectTimeout != 5*time.Second || o.LoginTimeout != 30*time.Second || o.KeepAlive != 15*time.Second ||
		o.KnownHostsFile != "/home/tester/.ssh/known_hosts" || o.Name != "root@web01:22" || o.Sudo {
		t.Errorf("defaults: %+v", o)
	}
	o, err = Options{Host: "[::1]:2222", User: "u", Password: "x", SudoPassword: "pw", Name: "db"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "::1" || o.Port != 2222 || o.addr() != "[::1]:2222" || !o.Sudo || o.Name != "db" {
		t.Errorf("host:port form: %+v", o)
	}
	o, err = Options{Host: "10.0.0.1", Port: 2200, User: "u", Password: "x"}.withDefaults()
	if err != nil || o.Name != "u@10.0.0.1:2200" {
		t.Errorf("explicit port: %+v %v", o, err)
	}

	bad := []Options{
		{User: "u", Password: "x"},
		{Host: "h", Password: "x"},
		{Host: "h", User: "u"},
		{Host: "h:99999", User: "u", Password: "x"},
		{Host: "h", User: "u", Password: "x", SudoPassword: "a\nb"},
	}
	for _, b := range bad {
		if _, err := b.withDefaults(); err == nil {
			t.Errorf("%+v: no error", b)
		}
	}
}

func TestClassifyDial(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain"), ErrAuth},
		{errors.New("ssh: disconnect, reason 2: Too many authentication failures"), ErrAuth},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ErrUnreachable},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, ErrUnreachable},
		{errors.New("ssh: handshake failed: EOF"), nil},
		{errors.Join(errors.New("ssh: handshake failed"), io.EOF), ErrUnreachable},
		{errors.New("ssh: no common algorithm for key exchange"), nil},
	}
	for _, tt := range tests {
		if got := classifyDial(tt.err); got != tt.want {
			t.Errorf("classifyDial(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestClassifySudo(t *testing.T) {
	tests := []struct {
		stderr string
		want   error
	}{
		{"sudo: a password is required\n", ErrSudoPasswordRequired},
		{"Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n", ErrSudoPasswordWrong},
		{"sudo: 3 incorrect password attempts\n", ErrSudoPasswordWrong},
		{"sudo: no password was provided\n", ErrSudoPasswordRequired},
		{"vigil is not in the sudoers file.\nsudo: ...", ErrSudo},
		{"sh: 1: sudo: not found\n", ErrSudo},
		{"sudo: sorry, you must have a tty to run sudo\n", ErrSudo},
		{"", nil},
		{"some other noise\n", nil},
	}
	for _, tt := range tests {
		if got := classifySudo(tt.stderr); got != tt.want {
			t.Errorf("classifySudo(%q) = %v, want %v", tt.stderr, got, tt.want)
		}
	}
}

func TestInvocations(t *testing.T) {
	const sentinel = "vigil-sudo-00ff"
	tests := []struct {
		o               Options
		batch, probe    string
		batchIn, probIn string
	}{
		{Options{}, "sh -s", "env LC_ALL=C sudo -n true", "", ""},
		{Options{Sudo: true}, "env LC_ALL=C sudo -n sh -s", "env LC_ALL=C sudo -n true", "", ""},
		{Options{Sudo: true, SudoPassword: "p'w $x"},
			`env LC_ALL=C sudo -S -k -p '' sh -c 'while IFS= read -r l; do [ "$l" = vigil-sudo-00ff ] && break; done; exec sh -s'`,
			"env LC_ALL=C sudo -S -k -p '' true",
			"p'w $x\nvigil-sudo-00ff\n", "p'w $x\n"},
	}
	for _, tt := range tests {
		b := batchInvocation(tt.o, sentinel)
		if b.command != tt.batch || string(b.prefix) != tt.batchIn {
			t.Errorf("batch %+v: %q %q", tt.o, b.command, b.prefix)
		}
		if !tt.o.Sudo {
			continue
		}
		p := probeInvocation(tt.o)
		if p.command != tt.probe || string(p.prefix) != tt.probIn {
			t.Errorf("probe %+v: %q %q", tt.o, p.command, p.prefix)
		}
	}
	s1, _ := newSentinel()
	s2, _ := newSentinel()
	if s1 == s2 || !strings.HasPrefix(s1, "vigil-sudo-") {
		t.Errorf("sentinels %q %q", s1, s2)
	}
}

// TestPasswordSkipLoop runs the sudo wrapper's inner shell locally: whether
// or not sudo consumed the password line, the password is never executed
// and the script after the sentinel runs.
func TestPasswordSkipLoop(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "PWNED")
	password := "touch " + pwned
	inv := batchInvocation(Options{Sudo: true, SudoPassword: password}, "vigil-sudo-abc")
	inner := strings.TrimPrefix(inv.command, "env LC_ALL=C sudo -S -k -p '' ")
	for _, consumed := range []bool{true, false} {
		stdin := string(inv.prefix) + "echo ran\n"
		if consumed {
			stdin = strings.TrimPrefix(stdin, password+"\n")
		}
		cmd := exec.Command("/bin/sh", "-c", inner)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "ran\n" {
			t.Errorf("consumed=%v: %q %v", consumed, out, err)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("consumed=%v: the password line was executed", consumed)
		}
	}
}

func TestHostKeys(t *testing.T) {
	dir := t.TempDir()
	known := newSigner(t).PublicKey()
	other := newSigner(t).PublicKey()
	file := filepath.Join(dir, "known_hosts")
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 2222}
	addr := "127.0.0.9:2222"

	// Missing file: unknown, refused.
	hk, err := newHostKeys(file, false)
	if err != nil {
		t.Fatal(err)
	}
	err = hk.callback(addr, remote, known)
	if !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(known)) {
		t.Errorf("unknown host: %v", err)
	}
	if hk.algorithms(addr) != nil {
		t.Errorf("algorithms without file: %v", hk.algorithms(addr))
	}

	// Accept-new: written, then known.
	hk, _ = newHostKeys(filepath.Join(dir, "sub", "known_hosts"), true)
	if err := hk.callback(addr, remote, known); err != nil {
		t.Fatalf("accept new: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "sub", "known_hosts"))
	if !strings.HasPrefix(string(data), "[127.0.0.9]:2222 ssh-ed25519 ") {
		t.Errorf("known_hosts after accept: %q", data)
	}
	hk, _ = newHostKeys(filepath.Join(dir, "sub", "known_hosts"), true)
	if err := hk.callback(addr, remote, known); err != nil {
		t.Errorf("accepted key: %v", err)
	}
	// A changed key is refused even with accept-new, and not written.
	err = hk.callback(addr, remote, other)
	if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(other)) {
		t.Errorf("changed key: %v", err)
	}
	if hk.refusal() == nil {
		t.Error("refusal not remembered")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "sub", "known_hosts")); string(after) != string(data) {
		t.Error("changed key was written to known_hosts")
	}
	if got := hk.algorithms(addr); len(got) != 1 || got[0] != ssh.KeyAlgoED25519 {
		t.Errorf("algorithms: %v", got)
	}
	if got := hk.algorithms("127.0.0.10:22"); got != nil {
		t.Errorf("algorithms of another host: %v", got)
	}
}

func TestLoadKeyEncrypted(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_enc")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(t.Context(), Options{Host: "127.0.0.1", Port: 1, User: "u", KeyFiles: []string{p}, KnownHostsFile: filepath.Join(t.TempDir(), "kh")})
	if !errors.Is(err, ErrEncryptedKey) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("encrypted key: %v", err)
	}
}

// writeKey stores s's private key as an OpenSSH key file.
func writeKey(t *testing.T, priv any) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialFake(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	fileSigner, _ := ssh.NewSignerFromKey(priv)
	srv := startFake(t, func(s *fakeServer) { s.userKey = fileSigner })
	keyFile := writeKey(t, priv)

	t.Run("key file", func(t *testing.T) {
		o := srv.opts(t)
		o.Signers, o.KeyFiles = nil, []string{keyFile}
		tg, err := Dial(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		if tg.Kind() != target.KindSSH || tg.Name() != "tester@"+srv.addr() || tg.RoundTrips() != 0 {
			t.Errorf("target: %s %s %d", tg.Kind(), tg.Name(), tg.RoundTrips())
		}
		if err := tg.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := tg.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("password", func(t *testing.T) {
		o := srv.opts(t)
		o.Signers, o.Password = nil, "s3cret"
		tg, err := Dial(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		tg.Close()
	})
	t.Run("wrong password", func(t *testing.T) {
		o := srv.opts(t)
		o.Signers, o.Password = nil, "nope"
		_, err := Dial(t.Context(), o)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), srv.addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		o := srv.opts(t)
		o.Signers = []ssh.Signer{newSigner(t)}
		_, err := Dial(t.Context(), o)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), srv.addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		o := srv.opts(t)
		o.KnownHostsFile = srv.knownHosts(t, newSigner(t).PublicKey())
		o.AcceptUnknownHost = true
		before := srv.authTries.Load()
		_, err := Dial(t.Context(), o)
		if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), srv.addr()) ||
			!strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey.PublicKey())) {
			t.Errorf("err = %v", err)
		}
		if srv.authTries.Load() != before {
			t.Error("credentials were sent to a host with the wrong key")
		}
	})
	t.Run("known key of another type", func(t *testing.T) {
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ecPub, _ := ssh.NewPublicKey(&ec.PublicKey)
		o := srv.opts(t)
		o.KnownHostsFile = srv.knownHosts(t, ecPub)
		_, err := Dial(t.Context(), o)
		if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), srv.addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		o := srv.opts(t)
		o.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		_, err := Dial(t.Context(), o)
		if !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), srv.addr()) {
			t.Errorf("err = %v", err)
		}
		if _, serr := os.Stat(o.KnownHostsFile); serr == nil {
			t.Error("refused host was written to known_hosts")
		}
		o.AcceptUnknownHost = true
		tg, err := Dial(t.Context(), o)
		if err != nil {
			t.Fatalf("accept-new: %v", err)
		}
		tg.Close()
		o.AcceptUnknownHost = false
		tg, err = Dial(t.Context(), o)
		if err != nil {
			t.Fatalf("after accept-new: %v", err)
		}
		tg.Close()
	})
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	o := Options{Host: closed, User: "u", Password: "x", KnownHostsFile: filepath.Join(t.TempDir(), "kh")}
	_, err = Dial(t.Context(), o)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), closed) {
		t.Errorf("refused: %v", err)
	}

	// A listener that accepts and never speaks: the handshake times out.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o.Host, o.ConnectTimeout = silent.Addr().String(), 300*time.Millisecond
	start := time.Now()
	_, err = Dial(t.Context(), o)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), o.Host) || time.Since(start) > 3*time.Second {
		t.Errorf("silent: %v after %v", err, time.Since(start))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	o.ConnectTimeout = 10 * time.Second
	start = time.Now()
	_, err = Dial(ctx, o)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("ctx: %v after %v", err, time.Since(start))
	}
}

func TestGatherFake(t *testing.T) {
	srv := startFake(t, nil)
	tg, err := Dial(t.Context(), srv.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	reqs := []target.Request{
		{Op: target.OpRead, Path: filepath.Join(dir, "f")},
		{Op: target.OpExec, Script: "echo hi; exit 4"},
		{Op: target.OpStat, Path: filepath.Join(dir, "*")},
		{Op: target.OpRead, Path: "bad\npath"},
	}
	start := time.Now()
	r, err := tg.Gather(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if string(r[0].Data) != "content" || string(r[1].Stdout) != "hi\n" || r[1].ExitCode != 4 || len(r[2].Files) != 1 || r[3].Err == nil {
		t.Errorf("responses: %+v", r)
	}
	if r[0].Started.Before(start) || r[0].Duration <= 0 || r[1].Duration <= 0 {
		t.Errorf("timing: %v %v %v", r[0].Started, r[0].Duration, r[1].Duration)
	}
	if tg.RoundTrips() != 1 || srv.execs.Load() != 1 {
		t.Errorf("round trips %d, execs %d; want 1, 1", tg.RoundTrips(), srv.execs.Load())
	}
	if r, err := tg.Gather(t.Context(), nil); r != nil || err != nil || tg.RoundTrips() != 1 {
		t.Errorf("empty Gather: %v %v", r, err)
	}
}

func TestGatherCancel(t *testing.T) {
	srv := startFake(t, nil)
	tg, err := Dial(t.Context(), srv.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := tg.Gather(ctx, []target.Request{{Op: target.OpExec, Script: "sleep 5"}})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), srv.addr()) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancelled Gather: %v after %v", err, time.Since(start))
	}
	if !errors.Is(r[0].Err, context.DeadlineExceeded) {
		t.Errorf("response error: %v", r[0].Err)
	}
	// The connection survives a cancelled batch.
	r, err = tg.Gather(t.Context(), []target.Request{{Op: target.OpExec, Script: "echo again"}})
	if err != nil || string(r[0].Stdout) != "again\n" {
		t.Errorf("after cancel: %v %q", err, r[0].Stdout)
	}
}

func TestGatherConnectionDies(t *testing.T) {
	for _, how := range []string{"dropped", "frozen"} {
		t.Run(how, func(t *testing.T) {
			srv := startFake(t, nil)
			o := srv.opts(t)
			o.KeepAlive = 200 * time.Millisecond
			tg, err := Dial(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			time.AfterFunc(300*time.Millisecond, func() {
				if how == "dropped" {
					srv.dropAll()
				} else {
					srv.freeze()
				}
			})
			reqs := []target.Request{{Op: target.OpRead, Path: "/etc/hostname"}, {Op: target.OpExec, Script: "sleep 5"}}
			start := time.Now()
			r, err := tg.Gather(t.Context(), reqs)
			if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), srv.addr()) || time.Since(start) > 3*time.Second {
				t.Fatalf("Gather: %v after %v", err, time.Since(start))
			}
			for i := range r {
				if !errors.Is(r[i].Err, ErrConnectionLost) {
					t.Errorf("response %d: %v", i, r[i].Err)
				}
			}
			_, err = tg.Gather(t.Context(), reqs)
			if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), srv.addr()) {
				t.Errorf("Gather on a dead connection: %v", err)
			}
		})
	}
}

func TestSudoFake(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err == nil {
		// The fake sudo is put first in PATH, so a real one does not
		// interfere; this only notes it.
		t.Log("a real sudo exists; the fake one shadows it")
	}
	read := []target.Request{{Op: target.OpExec, Script: "echo as-root"}}
	tests := []struct {
		name     string
		fakeSudo string
		sudoPW   string
		want     error
	}{
		{"nopasswd", "nopasswd", "", nil},
		{"nopasswd with a password set", "nopasswd", "touch PWNED", nil},
		{"password", "password:pw1", "pw1", nil},
		{"password missing", "password:pw1", "", ErrSudoPasswordRequired},
		{"password wrong", "password:pw1", "nope", ErrSudoPasswordWrong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, func(s *fakeServer) { s.fakeSudo = tt.fakeSudo })
			o := srv.opts(t)
			o.Sudo, o.SudoPassword = true, tt.sudoPW
			tg, err := Dial(t.Context(), o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Dial: %v, want %v", err, tt.want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), srv.addr()) {
					t.Errorf("error does not name the host: %v", err)
				}
				return
			}
			defer tg.Close()
			r, err := tg.Gather(t.Context(), read)
			if err != nil || string(r[0].Stdout) != "as-root\n" {
				t.Errorf("Gather: %v %q", err, r[0].Stdout)
			}
		})
	}
	// Dial checks sudo, but Gather still explains a sudo that changed its
	// mind since.
	srv := startFake(t, func(s *fakeServer) { s.fakeSudo = "nopasswd" })
	o := srv.opts(t)
	o.Sudo = true
	tg, err := Dial(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	srv.mu.Lock()
	srv.fakeSudo = "password:x"
	srv.mu.Unlock()
	_, err = tg.Gather(t.Context(), read)
	if !errors.Is(err, ErrSudoPasswordRequired) || !strings.Contains(err.Error(), srv.addr()) {
		t.Errorf("Gather after sudo changed: %v", err)
	}
}

func TestBatchQuotingOverSSH(t *testing.T) {
	srv := startFake(t, nil)
	tg, err := Dial(t.Context(), srv.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	dir := t.TempDir()
	name := filepath.Join(dir, `it's $(touch PWNED) "x" `+"`y`")
	if err := os.WriteFile(name, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := tg.Gather(t.Context(), []target.Request{
		{Op: target.OpRead, Path: name},
		{Op: target.OpExec, Script: "printf %s " + shellbatch.Quote("a'b")},
	})
	if err != nil || string(r[0].Data) != "ok" || string(r[1].Stdout) != "a'b" {
		t.Errorf("%v %q %q", err, r[0].Data, r[1].Stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
		t.Error("a path ran a command")
	}
}

func TestGatherConcurrent(t *testing.T) {
	srv := startFake(t, nil)
	tg, err := Dial(t.Context(), srv.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		go func() {
			want := fmt.Sprintf("batch %d\n", i)
			r, err := tg.Gather(t.Context(), []target.Request{{Op: target.OpExec, Script: "echo " + shellbatch.Quote(strings.TrimSpace(want))}})
			if err == nil && string(r[0].Stdout) != want {
				err = fmt.Errorf("got %q, want %q", r[0].Stdout, want)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if tg.RoundTrips() != n {
		t.Errorf("round trips %d, want %d", tg.RoundTrips(), n)
	}
}
