package postgres

import (
	"context"
	"io"
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
	if n != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", n)
	}
}
