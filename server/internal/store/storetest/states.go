package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// statesTests cover StatesAt, the many-host read of StateAt.
var statesTests = []contractTest{
	{"StatesAtMatchesStateAt", testStatesAt},
}

// StatesAt answers, for any moment and host set, exactly StateAt's
// findings per host without references; hosts without state are absent.
func testStatesAt(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := buildHistory(t, s)
	empty := host(t, s, "never-scanned")
	all := []int64{empty.ID}
	for _, ho := range h.hosts {
		all = append(all, ho.ID)
	}
	moments := []time.Time{base.Add(-time.Second), base, base.Add(7 * time.Hour), base.Add(13 * time.Hour),
		h.steps[len(h.steps)-1].at, base.Add(30 * 24 * time.Hour)}
	sets := [][]int64{all, {h.hosts[2].ID}, {h.hosts[1].ID, h.hosts[0].ID, 987654}, {}}
	checked := 0
	for _, at := range moments {
		for _, set := range sets {
			got, err := s.StatesAt(ctx, at, set)
			if err != nil {
				t.Fatalf("StatesAt(%s, %v): %v", at, set, err)
			}
			want := map[int64][]store.Finding{}
			for _, id := range set {
				fs, err := s.StateAt(ctx, id, at)
				if err != nil {
					t.Fatal(err)
				}
				if len(fs) == 0 {
					continue
				}
				for i := range fs {
					if len(fs[i].References) == 0 {
						t.Fatalf("StateAt of host %d lost references: %+v", id, fs[i])
					}
					fs[i].References = nil
				}
				want[id] = fs
				checked += len(fs)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("StatesAt(%s, %v) =\n%+v\nwant (StateAt per host)\n%+v", at, set, got, want)
			}
		}
	}
	if checked == 0 {
		t.Fatal("the history gave no state to compare")
	}
}
