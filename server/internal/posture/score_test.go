package posture

import (
	"errors"
	"testing"
)

func TestScore(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		want float64
	}{
		{"nothing applicable", Counts{}, 100},
		{"only skipped", Counts{Skipped: 7}, 100},
		{"all pass", Counts{Pass: 4}, 100},
		{"all fail", Counts{Fail: 4}, 0},
		{"error counts against", Counts{Pass: 1, Error: 1}, 50},
		{"skipped ignored", Counts{Pass: 3, Fail: 1, Skipped: 50}, 75},
		{"rounded down to one decimal", Counts{Pass: 2, Fail: 1}, 66.7},
		{"rounded up to one decimal", Counts{Pass: 1, Fail: 2}, 33.3},
		{"critical does not count twice", Counts{Pass: 1, Fail: 1, CriticalFail: 1}, 50},
		{"just under 90 rounds to 90", Counts{Pass: 1799, Fail: 200}, 90},
		{"just under 50", Counts{Pass: 499, Fail: 501}, 49.9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Score(tc.c); got != tc.want {
				t.Errorf("Score(%+v) = %v, want %v", tc.c, got, tc.want)
			}
		})
	}
}

func TestBandOf(t *testing.T) {
	tests := []struct {
		score float64
		crit  int
		want  Band
	}{
		{0, 0, BandCritical},
		{19.9, 0, BandCritical},
		{20, 0, BandPoor},
		{49.9, 0, BandPoor},
		{50, 0, BandFair},
		{69.9, 0, BandFair},
		{70, 0, BandGood},
		{89.9, 0, BandGood},
		{90, 0, BandExcellent},
		{100, 0, BandExcellent},
		{100, 1, BandCritical},
		{55, 3, BandCritical},
	}
	for _, tc := range tests {
		if got := BandOf(tc.score, tc.crit); got != tc.want {
			t.Errorf("BandOf(%v, %d) = %q, want %q", tc.score, tc.crit, got, tc.want)
		}
	}
}

func TestAssessNoStateIsNoBand(t *testing.T) {
	if s, b := assess(Counts{}); s != 0 || b != BandNone {
		t.Errorf("assess(empty) = %v, %q; want 0, none", s, b)
	}
	if s, b := assess(Counts{Skipped: 2}); s != 100 || b != BandExcellent {
		t.Errorf("assess(only skipped) = %v, %q; want 100, excellent", s, b)
	}
}

func TestArgErrorIsDetectable(t *testing.T) {
	err := unknownFramework("nope")
	var ae *ArgError
	if !errors.Is(err, ErrUnknownFramework) || !errors.As(err, &ae) || ae.Field != "framework" {
		t.Fatalf("unknownFramework error %v: not ErrUnknownFramework with field framework", err)
	}
	if errors.Is(invalid("days", "bad"), ErrUnknownFramework) {
		t.Error("an invalid-argument error matches ErrUnknownFramework")
	}
}
