// Package pgtest starts a throwaway PostgreSQL 15 for tests: one server per
// test process on 127.0.0.1 and a free port, one fresh database per test.
// It follows shared/design/testing.md: the server refuses to run as root,
// so initdb and pg_ctl run as the postgres OS user when the tests are root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian's postgresql-15 package installs the server.
const BinDir = "/usr/lib/postgresql/15/bin"

// The harness is the one place allowed package state: a test process shares
// one server, started on first use and stopped by Main.
var (
	once     sync.Once
	srv      *server
	errStart error
	dbSeq    atomic.Int64
)

type server struct {
	dir  string
	port int
	asPG bool // run commands as the postgres OS user
}

// Main runs the tests of a package that uses DB and stops the server
// afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	os.Exit(code)
}

// DB creates an empty database for the calling test and returns its URL.
// The database is dropped when the test ends, after any cleanups the test
// registers later (such as closing a pool). The test is skipped when
// PostgreSQL 15 is not installed. The package's TestMain must call Main, or
// the server outlives the test binary.
func DB(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(BinDir, "pg_ctl")); err != nil {
		t.Skipf("PostgreSQL 15 not found in %s; install it with `apt-get install postgresql-15`", BinDir)
	}
	once.Do(func() { srv, errStart = start() })
	if errStart != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", errStart)
	}
	name := fmt.Sprintf("vigil_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return srv.url(name)
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.port, db)
}

func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return fmt.Errorf("connect to 127.0.0.1:%d: %w", s.port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func start() (*server, error) {
	dir, err := os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, asPG: os.Geteuid() == 0}
	adoptOrphans()
	if s.asPG {
		if err := chownToPostgres(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := s.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", s.port, dir)
	if out, err := s.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return s, nil
}

func (s *server) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := filepath.Join(s.dir, "data")
	pid := postmasterPID(data)
	out, err := s.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "20", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	if pid > 0 {
		reap(pid)
	}
	return os.RemoveAll(s.dir)
}

// postmasterPID reads the server's pid from the first line of
// postmaster.pid, or returns 0.
func postmasterPID(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// run runs a PostgreSQL binary, as the postgres user when we are root.
func (s *server) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	path := filepath.Join(BinDir, bin)
	var cmd *exec.Cmd
	if s.asPG {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir // postgres must be able to read its working directory
	return cmd.CombinedOutput()
}

func chownToPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs the postgres OS user: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("postgres user ids: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", dir, err)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before PostgreSQL binds; pg_ctl then fails loudly, not silently.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
