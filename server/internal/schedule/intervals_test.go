package schedule

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

func TestDefaultIntervals(t *testing.T) {
	iv := DefaultIntervals()
	if err := iv.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Intervals{Critical: 4 * time.Hour, Poor: 8 * time.Hour, Fair: 12 * time.Hour,
		Good: 24 * time.Hour, Excellent: 48 * time.Hour, Max: 48 * time.Hour, Jitter: 0.1}
	if iv != want {
		t.Fatalf("DefaultIntervals = %+v, want %+v", iv, want)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Intervals)
		want []string // substrings of the error; none means valid
	}{
		{"defaults", func(*Intervals) {}, nil},
		{"all equal to max", func(iv *Intervals) { iv.Critical, iv.Poor, iv.Fair, iv.Good = iv.Max, iv.Max, iv.Max, iv.Max }, nil},
		{"no jitter", func(iv *Intervals) { iv.Jitter = 0 }, nil},
		{"zero critical", func(iv *Intervals) { iv.Critical = 0 }, []string{"Critical interval is 0s"}},
		{"negative fair", func(iv *Intervals) { iv.Fair = -time.Hour }, []string{"Fair interval is -1h0m0s"}},
		{"good beyond max", func(iv *Intervals) { iv.Good = 72 * time.Hour }, []string{"Good interval 72h0m0s exceeds Max 48h0m0s"}},
		{"excellent beyond lowered max", func(iv *Intervals) { iv.Max = 36 * time.Hour }, []string{"Excellent interval 48h0m0s exceeds Max 36h0m0s"}},
		{"zero max", func(iv *Intervals) { iv.Max = 0 }, []string{"Max is 0s"}},
		{"jitter one", func(iv *Intervals) { iv.Jitter = 1 }, []string{"Jitter is 1"}},
		{"negative jitter", func(iv *Intervals) { iv.Jitter = -0.1 }, []string{"Jitter is -0.1"}},
		{"several at once", func(iv *Intervals) { iv.Poor, iv.Fair = 0, 0 }, []string{"Poor interval", "Fair interval"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iv := DefaultIntervals()
			c.edit(&iv)
			err := iv.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil; want an error naming %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Validate = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNextWithoutJitter(t *testing.T) {
	now := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	iv := DefaultIntervals()
	cases := []struct {
		band posture.Band
		want time.Duration
	}{
		{posture.BandCritical, 4 * time.Hour},
		{posture.BandPoor, 8 * time.Hour},
		{posture.BandFair, 12 * time.Hour},
		{posture.BandGood, 24 * time.Hour},
		{posture.BandExcellent, 48 * time.Hour},
		{posture.BandNone, 4 * time.Hour},      // never scanned: watched closely
		{posture.Band("weird"), 4 * time.Hour}, // unknown: likewise
	}
	for _, c := range cases {
		if got := iv.Next(c.band, now, nil); !got.Equal(now.Add(c.want)) {
			t.Errorf("Next(%q) = %v, want now+%v", c.band, got.Sub(now), c.want)
		}
	}
	// An interval above Max (possible only with unvalidated intervals) is cut to Max.
	iv.Excellent, iv.Max = 72*time.Hour, 48*time.Hour
	if got := iv.Next(posture.BandExcellent, now, nil); !got.Equal(now.Add(48 * time.Hour)) {
		t.Errorf("Next beyond Max = now+%v, want now+48h", got.Sub(now))
	}
}

func TestNextJitterBounds(t *testing.T) {
	now := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, jitter := range []float64{0, 0.1, 0.5, 0.99} {
		iv := DefaultIntervals()
		iv.Jitter = jitter
		for _, band := range []posture.Band{posture.BandCritical, posture.BandPoor, posture.BandFair, posture.BandGood, posture.BandExcellent} {
			d := iv.For(band)
			lo := now.Add(d - time.Duration(float64(d)*jitter))
			hi := now.Add(d)
			distinct := map[time.Time]bool{}
			for range 2000 {
				got := iv.Next(band, now, rnd)
				if got.Before(lo) || got.After(hi) || got.After(now.Add(iv.Max)) {
					t.Fatalf("jitter %v band %s: Next = now+%v, want within [now+%v, now+%v] and <= Max",
						jitter, band, got.Sub(now), lo.Sub(now), hi.Sub(now))
				}
				distinct[got] = true
			}
			if jitter == 0 && len(distinct) != 1 {
				t.Fatalf("jitter 0 band %s: %d distinct times, want 1", band, len(distinct))
			}
			if jitter > 0 && len(distinct) < 1000 {
				t.Fatalf("jitter %v band %s: only %d distinct times in 2000 draws", jitter, band, len(distinct))
			}
		}
	}
}
