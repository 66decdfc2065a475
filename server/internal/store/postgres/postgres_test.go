package postgres

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"testing"

	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t testing.TB) store.Store {
	t.Helper()
	url := pgtest.DB(t)
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func BenchmarkIngest500(b *testing.B) { storetest.Bench(b, open) }

// Replicas starting together serialise on the advisory lock: each
// migration is applied once and every replica opens.
func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	url := pgtest.DB(t)
	storetest.OpenConcurrently(t, 4, func() (io.Closer, error) { return Open(context.Background(), url) })
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows, want %d (one per embedded migration)", n, len(files))
	}
}

// Altering a stored audit entry behind the store's back must be caught by
// VerifyAudit, naming the altered entry.
func TestAuditTamperDetected(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AuditTamper(t, s, func(id int64) error {
		_, err := s.pool.Exec(ctx, `UPDATE audit_log SET actor = 'x' WHERE id = $1`, id)
		return err
	})
}

// Two stores on one database stand for two replicas: their concurrent
// appends must still form one chain, which only a lock held in the
// database (not in the process) can give.
func TestAuditChainAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	var replicas []*Store
	for range 2 {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		replicas = append(replicas, s)
	}
	const perReplica = 25
	errs := make(chan error, 2*perReplica)
	var wg sync.WaitGroup
	for _, s := range replicas {
		for i := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "system", Action: "replica.test", Target: fmt.Sprint(i)})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, err := replicas[1].Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2*perReplica {
		t.Fatalf("%d entries, want %d", len(entries), 2*perReplica)
	}
	if err := store.VerifyAudit(entries); err != nil {
		t.Fatal(err)
	}
}
