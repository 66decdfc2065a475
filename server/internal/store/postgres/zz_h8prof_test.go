package postgres

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/storetest"
)

// Temporary profiling hook of H8; removed before the report.
func BenchmarkH8Prof(b *testing.B) {
	storetest.Bench(b, func(t testing.TB) store.Store {
		u := pgtest.DB(t) + "&options=" + strings.ReplaceAll(url.QueryEscape(os.Getenv("H8_OPTS")), "+", "%20")
		s, err := Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		var dir string
		if err := s.pool.QueryRow(context.Background(), `SHOW data_directory`).Scan(&dir); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			s.Close()
			body, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), "log"))
			os.WriteFile("/tmp/h8log.txt", body, 0o644)
		})
		return s
	})
}
