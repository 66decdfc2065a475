package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// BenchmarkFleetListHosts measures GET /hosts over 10,000 hosts through
// real HTTP, authentication and SQLite, for the list views the UI opens
// most: the default page, worst first, and a search.
func BenchmarkFleetListHosts(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "vigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	idx, err := corpusIndex()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateGroup(ctx, store.Group{Name: "web", CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	const hosts = 10000
	for i := range hosts {
		h := store.Host{Name: fmt.Sprintf("host-%05d", i), Address: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			OS: "debian 12", Labels: map[string]string{"env": []string{"prod", "dev"}[i%2], "rack": fmt.Sprint(i % 40)}}
		if i%4 == 0 {
			h.Groups = []string{"web"}
		}
		if _, err := st.UpsertHost(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	u, err := st.CreateUser(ctx, store.User{Username: "bench", PasswordHash: "x", Role: RoleViewer, CreatedAt: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	plain, hash, err := newToken(store.TokenAPI)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, store.Token{UserID: u.ID, Kind: store.TokenAPI, Name: "bench", Hash: hash, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(Deps{Store: st, Posture: posture.NewService(st, idx, time.Now)}).Handler())
	b.Cleanup(srv.Close)

	for _, q := range []string{"", "?sort=-score&limit=100", "?q=host-09&group=web&label=env=prod", "?limit=1000&offset=5000"} {
		b.Run("query="+q, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/hosts"+q, nil)
				req.Header.Set("Authorization", "Bearer "+plain)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
