// Package schedule decides when each agentless host is scanned next and
// runs those scans: worse posture means shorter intervals, a critical rule
// that starts failing gets a confirming re-scan at once, and any number of
// server replicas share the work through leases in the store.
package schedule

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

// Intervals are the times between scans per posture band. Operators tune
// them; DefaultIntervals is where the defaults live.
type Intervals struct {
	Critical  time.Duration
	Poor      time.Duration
	Fair      time.Duration
	Good      time.Duration
	Excellent time.Duration
	// Max is the longest any host may go unscanned; no interval may exceed it.
	Max time.Duration
	// Jitter is the fraction (0 <= Jitter < 1) by which an interval is
	// shortened at random, so hosts scanned together drift apart instead of
	// stampeding the fleet at the same moment every day.
	Jitter float64
}

// DefaultIntervals returns the intervals used when the operator sets none.
func DefaultIntervals() Intervals {
	return Intervals{
		Critical:  4 * time.Hour,
		Poor:      8 * time.Hour,
		Fair:      12 * time.Hour,
		Good:      24 * time.Hour,
		Excellent: 48 * time.Hour,
		Max:       48 * time.Hour,
		Jitter:    0.1,
	}
}

// Validate reports every interval that is not positive or exceeds Max, and
// a Jitter outside [0, 1), naming each field.
func (iv Intervals) Validate() error {
	var errs []error
	if iv.Max <= 0 {
		errs = append(errs, fmt.Errorf("schedule: Max is %v, must be positive", iv.Max))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Critical", iv.Critical}, {"Poor", iv.Poor}, {"Fair", iv.Fair}, {"Good", iv.Good}, {"Excellent", iv.Excellent}} {
		switch {
		case f.d <= 0:
			errs = append(errs, fmt.Errorf("schedule: %s interval is %v, must be positive", f.name, f.d))
		case iv.Max > 0 && f.d > iv.Max:
			errs = append(errs, fmt.Errorf("schedule: %s interval %v exceeds Max %v", f.name, f.d, iv.Max))
		}
	}
	if iv.Jitter < 0 || iv.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("schedule: Jitter is %v, must be in [0, 1)", iv.Jitter))
	}
	return errors.Join(errs...)
}

// For returns the interval for a band. A host without a band (never scanned
// successfully, or a band this version does not know) gets the Critical
// interval: what we know least about we look at most often.
func (iv Intervals) For(band posture.Band) time.Duration {
	var d time.Duration
	switch band {
	case posture.BandPoor:
		d = iv.Poor
	case posture.BandFair:
		d = iv.Fair
	case posture.BandGood:
		d = iv.Good
	case posture.BandExcellent:
		d = iv.Excellent
	default:
		d = iv.Critical
	}
	return min(d, iv.Max)
}

// Next returns when a host of the given band is due after a scan at now.
// Jitter only ever brings the time earlier (by up to Jitter of the
// interval), so a host is never scanned later than Max after its last
// scan. A nil rnd means no jitter.
func (iv Intervals) Next(band posture.Band, now time.Time, rnd *rand.Rand) time.Time {
	d := iv.For(band)
	if rnd != nil && iv.Jitter > 0 {
		d -= time.Duration(float64(d) * iv.Jitter * rnd.Float64())
	}
	return now.Add(d)
}
