package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// createHostTests cover CreateHost, which must never overwrite a live host.
var createHostTests = []contractTest{
	{"CreateHostConflictsAndRevives", testCreateHost},
}

func testCreateHost(t *testing.T, s store.Store) {
	ctx := context.Background()
	h, err := s.CreateHost(ctx, store.Host{Name: "web1", Address: "127.0.0.2", Labels: map[string]string{"env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == 0 || h.NextScanAt.IsZero() {
		t.Fatalf("created host %+v: want an id and a first scan due", h)
	}
	if _, err := s.CreateHost(ctx, store.Host{Name: "web1", Address: "127.0.0.9"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create of web1: %v, want ErrConflict", err)
	}
	got, err := s.Host(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != "127.0.0.2" || got.Labels["env"] != "prod" {
		t.Errorf("a refused create changed the host: %+v", got)
	}
	// A deleted host's name may be created again: it comes back, same id.
	if err := s.DeleteHost(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	back, err := s.CreateHost(ctx, store.Host{Name: "web1", Address: "127.0.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != h.ID || back.Address != "127.0.0.3" {
		t.Errorf("revived host %+v, want id %d at 127.0.0.3", back, h.ID)
	}
	// Creators racing for one name: exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, conflicts := 0, 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateHost(ctx, store.Host{Name: "db1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || conflicts != n-1 {
		t.Errorf("racing creates: %d won, %d conflicts; want 1 and %d", won, conflicts, n-1)
	}
}
