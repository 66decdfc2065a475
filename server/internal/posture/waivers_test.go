package posture

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// fixedWaivers is a Waivers answering a fixed table for moments at or
// after from (nothing before), and recording the moments it was asked.
type fixedWaivers struct {
	from  time.Time
	table map[int64]map[string]int64
	err   error
	asked []time.Time
}

func (w *fixedWaivers) Accepted(_ context.Context, at time.Time, hosts []store.Host) (map[int64]map[string]int64, error) {
	w.asked = append(w.asked, at)
	if w.err != nil {
		return nil, w.err
	}
	out := map[int64]map[string]int64{}
	if at.Before(w.from) {
		return out, nil
	}
	for _, h := range hosts {
		if m, ok := w.table[h.ID]; ok {
			out[h.ID] = m
		}
	}
	return out, nil
}

// TestWaivers checks how Fleet applies accepted failures, on both stores.
func TestWaivers(t *testing.T) {
	x := loadCorpus(t)
	forEachStore(t, func(t *testing.T, st store.Store) { testWaivers(t, st, x) })
}

func testWaivers(t *testing.T, st store.Store, x *Index) {
	sc := newScenario(t, st, x)
	ctx := context.Background()
	m2, m3 := sc.t2.Add(12*time.Hour), sc.t3.Add(12*time.Hour)

	// Without waivers the figures with exceptions are the raw ones.
	for _, q := range []FleetQuery{{}, {At: m2}, {At: m2, Rules: true}, {Framework: testFramework}} {
		fp, err := sc.svc.Fleet(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if fp.ScoreWithExceptions != fp.Score {
			t.Errorf("%+v: fleet score with exceptions %v, raw %v", q, fp.ScoreWithExceptions, fp.Score)
		}
		for _, h := range fp.Hosts {
			if h.ScoreWithExceptions != h.Score || h.BandWithExceptions != h.Band || h.Counts.Accepted != 0 {
				t.Errorf("%+v: %s with exceptions %v %q accepted %d, raw %v %q", q, h.Name, h.ScoreWithExceptions, h.BandWithExceptions, h.Counts.Accepted, h.Score, h.Band)
			}
		}
	}

	// web1 after round 2: A+ B- C- D-(crit); B (id 7) and D (id 8)
	// accepted, and C on web2, which passes there (not counted). The
	// exceptions apply from t2 on.
	w := &fixedWaivers{from: sc.t2, table: map[int64]map[string]int64{
		sc.web1.ID: {sc.b: 7, sc.d: 8}, sc.web2.ID: {sc.c: 9},
	}}
	sc.svc.SetWaivers(w)
	type fig struct {
		score, with    float64
		band, bandWith Band
		acc, accCrit   int
	}
	for _, rules := range []bool{false, true} {
		fp, err := sc.svc.Fleet(ctx, FleetQuery{At: m2, Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]fig{}
		for _, h := range fp.Hosts {
			got[h.Name] = fig{h.Score, h.ScoreWithExceptions, h.Band, h.BandWithExceptions, h.Counts.Accepted, h.Counts.AcceptedCritical}
		}
		want := map[string]fig{
			"db1":  {100, 100, BandExcellent, BandExcellent, 0, 0},
			"web1": {25, 75, BandCritical, BandGood, 2, 1},
			"web2": {75, 75, BandGood, BandGood, 0, 0},
		}
		for name, wf := range want {
			if got[name] != wf {
				t.Errorf("at m2 (rules %v): %s = %+v, want %+v", rules, name, got[name], wf)
			}
		}
		// Fleet: 7 pass, 4 fail raw (63.6); 9 pass, 2 fail with (81.8).
		if fp.Score != 63.6 || fp.ScoreWithExceptions != 81.8 || fp.Counts.Accepted != 2 || fp.Counts.AcceptedCritical != 1 {
			t.Errorf("at m2 (rules %v): fleet %v / %v counts %+v", rules, fp.Score, fp.ScoreWithExceptions, fp.Counts)
		}
		if !w.asked[len(w.asked)-1].Equal(m2) {
			t.Errorf("waivers asked about %v, want %v", w.asked[len(w.asked)-1], m2)
		}
		if rules {
			for _, h := range fp.Hosts {
				for _, rs := range h.Rules {
					want := int64(0)
					if h.Name == "web1" {
						want = map[string]int64{sc.b: 7, sc.d: 8}[rs.RuleID]
					}
					if rs.ExceptionID != want || rs.Accepted != (want != 0) {
						t.Errorf("%s %s (%s): accepted %v exception %d, want %d", h.Name, rs.RuleID, rs.Status, rs.Accepted, rs.ExceptionID, want)
					}
				}
			}
		}
	}
	// The framework view counts only its rules (B and D map to it, C
	// does not): web1 has A+ B- D- there.
	fp, err := sc.svc.Fleet(ctx, FleetQuery{At: m2, Framework: testFramework, HostID: sc.web1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if h := fp.Hosts[0]; h.Counts.Accepted != 2 || h.ScoreWithExceptions != 100 || h.BandWithExceptions != BandExcellent {
		t.Errorf("framework view of web1: %+v", h)
	}
	// Before t2 nothing applies; now (after round 3: D fails, B passes)
	// only D is accepted.
	fp, err = sc.svc.Fleet(ctx, FleetQuery{At: sc.t1.Add(time.Hour), Group: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if fp.Counts.Accepted != 0 || fp.ScoreWithExceptions != fp.Score {
		t.Errorf("before t2: %+v", fp)
	}
	for _, q := range []FleetQuery{{}, {At: m3}} {
		fp, err = sc.svc.Fleet(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range fp.Hosts {
			if h.Name == "web1" && (h.Counts.Accepted != 1 || h.Counts.AcceptedCritical != 1 || h.ScoreWithExceptions != 100) {
				t.Errorf("%+v: web1 %+v", q, h)
			}
		}
	}
	// A failing waiver source fails the view rather than showing raw
	// figures as if nothing were accepted.
	w.err = errors.New("database gone")
	if _, err := sc.svc.Fleet(ctx, FleetQuery{}); err == nil || !errors.Is(err, w.err) {
		t.Errorf("Fleet with failing waivers: err = %v", err)
	}
}
