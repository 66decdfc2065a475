package sshtarget

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// fakeServer is an in-process SSH server on 127.0.0.1 for tests that need
// no real sshd: it checks credentials like sshd and runs exec requests with
// the local /bin/sh, so a whole Gather runs against the test machine.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	hostKey  ssh.Signer
	userKey  ssh.Signer
	password string
	// fakeSudo, when set, is the FAKE_SUDO setting of the fake sudo in
	// PATH: "nopasswd" or "password:<pw>". Guarded by mu once serving.
	fakeSudo string
	sudoDir  string

	authTries atomic.Int32 // authentication callbacks seen
	execs     atomic.Int32 // exec requests run

	mu     sync.Mutex
	conns  []*freezeConn
	frozen bool
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeSudoScript imitates sudo's stdin handling and messages closely
// enough to test the invocations: -n fails when a password is needed, -S
// reads one line per attempt, three attempts, the same wording.
const fakeSudoScript = `#!/bin/sh
mode=${FAKE_SUDO%%:*}; want=${FAKE_SUDO#*:}; n=0
while [ $# -gt 0 ]; do
  case $1 in -n) n=1; shift;; -S|-k) shift;; -p) shift 2;; *) break;; esac
done
if [ "$mode" = password ]; then
  if [ $n = 1 ]; then echo "sudo: a password is required" >&2; exit 1; fi
  tries=0
  while [ $tries -lt 3 ]; do
    if ! IFS= read -r got; then
      echo "sudo: no password was provided" >&2
      [ $tries -gt 0 ] && echo "sudo: $tries incorrect password attempt" >&2
      exit 1
    fi
    [ "$got" = "$want" ] && exec "$@"
    echo "Sorry, try again." >&2; tries=$((tries+1))
  done
  echo "sudo: 3 incorrect password attempts" >&2; exit 1
fi
exec "$@"
`

func startFake(t *testing.T, mod func(*fakeServer)) *fakeServer {
	t.Helper()
	s := &fakeServer{t: t, hostKey: newSigner(t), userKey: newSigner(t), password: "s3cret"}
	if mod != nil {
		mod(s)
	}
	if s.fakeSudo != "" {
		s.sudoDir = t.TempDir()
		if err := os.WriteFile(filepath.Join(s.sudoDir, "sudo"), []byte(fakeSudoScript), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	t.Cleanup(func() { ln.Close(); s.dropAll() })
	go s.serve()
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// knownHosts writes a known_hosts file holding key for this server.
func (s *fakeServer) knownHosts(t *testing.T, key ssh.PublicKey) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.addr())}, key) + "\n"
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opts are working Options for this server: the user key, the server's
// key in known_hosts.
func (s *fakeServer) opts(t *testing.T) Options {
	return Options{
		Host:           s.addr(),
		User:           "tester",
		Signers:        []ssh.Signer{s.userKey},
		KnownHostsFile: s.knownHosts(t, s.hostKey.PublicKey()),
		KeepAlive:      -1,
	}
}

// dropAll closes every connection, as if the host died.
func (s *fakeServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// freeze stops the server from reading, as if the host vanished without
// closing TCP.
func (s *fakeServer) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
	for _, c := range s.conns {
		c.freeze()
	}
}

func (s *fakeServer) serve() {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.authTries.Add(1)
			if string(key.Marshal()) == string(s.userKey.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			s.authTries.Add(1)
			if s.password != "" && string(pw) == s.password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
	}
	cfg.AddHostKey(s.hostKey)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		fc := &freezeConn{Conn: c, thaw: make(chan struct{})}
		s.mu.Lock()
		s.conns = append(s.conns, fc)
		if s.frozen {
			fc.freeze()
		}
		s.mu.Unlock()
		go s.handle(fc, cfg)
	}
}

func (s *fakeServer) handle(c net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

// session runs the first exec request with /bin/sh -c, wired to the
// channel like sshd does.
func (s *fakeServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			_ = req.Reply(req.Type == "signal", nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		command := string(req.Payload[4 : 4+n])
		_ = req.Reply(true, nil)
		s.execs.Add(1)
		cmd := exec.Command("/bin/sh", "-c", command)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		s.mu.Lock()
		cmd.Env = append(os.Environ(), "FAKE_SUDO="+s.fakeSudo)
		s.mu.Unlock()
		if s.sudoDir != "" {
			cmd.Env = append(cmd.Env, "PATH="+s.sudoDir+":"+os.Getenv("PATH"))
		}
		status := 255
		if err := cmd.Run(); err == nil {
			status = 0
		} else if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			status = ee.ExitCode()
		}
		_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
		return
	}
}

// freezeConn is a connection that can be made to stop reading for ever.
type freezeConn struct {
	net.Conn
	once sync.Once
	thaw chan struct{}
	hold atomic.Bool
}

func (c *freezeConn) freeze() { c.hold.Store(true) }

func (c *freezeConn) Read(p []byte) (int, error) {
	if c.hold.Load() {
		<-c.thaw // closed by Close
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *freezeConn) Close() error {
	c.once.Do(func() { close(c.thaw) })
	return c.Conn.Close()
}
