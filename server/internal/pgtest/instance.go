package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Instance is a PostgreSQL cluster of the calling test's own, which the
// test may stop and start again (to see how a server behaves while its
// database is down). It is removed when the test ends.
type Instance struct {
	s *server
}

// NewInstance initialises and starts a dedicated cluster on a free
// loopback port, with one database, "vigil". The test is skipped when
// PostgreSQL 15 is not installed.
func NewInstance(t testing.TB) *Instance {
	t.Helper()
	if _, err := os.Stat(filepath.Join(BinDir, "pg_ctl")); err != nil {
		t.Skipf("PostgreSQL 15 not found in %s; install it with `apt-get install postgresql-15`", BinDir)
	}
	s, err := start()
	if err != nil {
		t.Fatalf("pgtest: start a dedicated PostgreSQL: %v", err)
	}
	in := &Instance{s: s}
	t.Cleanup(func() {
		if in.running() {
			if err := s.stop(); err != nil {
				t.Errorf("pgtest: %v", err)
			}
			return
		}
		_ = os.RemoveAll(s.dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE vigil"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return in
}

// URL is the database URL of the instance's "vigil" database.
func (in *Instance) URL() string { return in.s.url("vigil") }

func (in *Instance) running() bool {
	return postmasterPID(filepath.Join(in.s.dir, "data")) > 0
}

// Stop shuts the cluster down (fast mode: open sessions are ended).
func (in *Instance) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := filepath.Join(in.s.dir, "data")
	pid := postmasterPID(data)
	if out, err := in.s.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "20", "stop"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	if pid > 0 {
		reap(pid)
	}
}

// Start starts a stopped cluster again on the same port and data.
func (in *Instance) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := filepath.Join(in.s.dir, "data")
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", in.s.port, in.s.dir)
	if out, err := in.s.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(in.s.dir, "log"), "-w", "-t", "30", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(in.s.dir, "log"))
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}
