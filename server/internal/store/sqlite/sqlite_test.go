package sqlite

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/storetest"
)

func open(t testing.TB) store.Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func BenchmarkIngest500(b *testing.B) { storetest.Bench(b, open) }

// Opening one file from several goroutines at once must apply each
// migration exactly once and leave every opener working.
func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	storetest.OpenConcurrently(t, 4, func() (io.Closer, error) { return Open(context.Background(), path) })
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
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
	s, err := Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AuditTamper(t, s, func(id int64) error {
		_, err := s.w.ExecContext(ctx, `UPDATE audit_log SET actor = 'x' WHERE id = ?`, id)
		return err
	})
}
