// Package posture turns findings into the numbers auditors and the
// scheduler act on: a score and a band per host, per group, per fleet and
// per framework, now or at any past moment, plus drift and daily trends.
//
// A framework view counts only the rules the corpus maps to that framework
// (directly, or derived through a catalogue: FedRAMP through NIST SP
// 800-53, CMMC through NIST SP 800-171); states of other rules are ignored.
// The all-rules view ("") counts every rule a host reported, including
// rules no longer in the corpus.
package posture

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Band is a posture band. The scheduler scans worse bands more often.
type Band string

// The bands, worst first. BandNone is a host never scanned.
const (
	BandCritical  Band = "critical"  // score < 20, or any critical rule failing
	BandPoor      Band = "poor"      // 20-49
	BandFair      Band = "fair"      // 50-69
	BandGood      Band = "good"      // 70-89
	BandExcellent Band = "excellent" // >= 90
	BandNone      Band = ""
)

// newHistogram returns a band histogram with every band at zero, so that
// clients always see every key.
func newHistogram() map[Band]int {
	return map[Band]int{BandCritical: 0, BandPoor: 0, BandFair: 0, BandGood: 0, BandExcellent: 0, BandNone: 0}
}

// Counts are rule states on one host (or summed over many).
type Counts struct {
	Pass         int `json:"pass"`
	Fail         int `json:"fail"`
	Error        int `json:"error"`
	Skipped      int `json:"skipped"`
	CriticalFail int `json:"critical_fail"`
	// Accepted counts the failures (included in Fail) that an approved
	// exception covers; AcceptedCritical those of severity critical
	// (included in CriticalFail).
	Accepted         int `json:"accepted"`
	AcceptedCritical int `json:"accepted_critical,omitempty"`
}

// add counts one rule state; critical says the rule's severity is critical.
func (c *Counts) add(st result.Status, critical bool) {
	switch st {
	case result.Pass:
		c.Pass++
	case result.Fail:
		c.Fail++
		if critical {
			c.CriticalFail++
		}
	case result.Error:
		c.Error++
	case result.Skipped:
		c.Skipped++
	}
}

// plus returns the sum of two counts.
func (c Counts) plus(o Counts) Counts {
	return Counts{Pass: c.Pass + o.Pass, Fail: c.Fail + o.Fail, Error: c.Error + o.Error,
		Skipped: c.Skipped + o.Skipped, CriticalFail: c.CriticalFail + o.CriticalFail,
		Accepted: c.Accepted + o.Accepted, AcceptedCritical: c.AcceptedCritical + o.AcceptedCritical}
}

// withExceptions returns the counts with accepted failures moved to pass,
// which is what the *WithExceptions scores and bands are computed on.
func (c Counts) withExceptions() Counts {
	c.Pass += c.Accepted
	c.Fail -= c.Accepted
	c.CriticalFail -= c.AcceptedCritical
	c.Accepted, c.AcceptedCritical = 0, 0
	return c
}

// empty reports whether no rule state was counted at all.
func (c Counts) empty() bool { return c.Pass+c.Fail+c.Error+c.Skipped == 0 }

// Score is 100 x pass / (pass + fail + error): the share of applicable
// rules that pass. Skipped rules do not count. With nothing applicable the
// score is 100. It is rounded to one decimal, so that the band a stored
// score falls in is the band it was given.
func Score(c Counts) float64 {
	n := c.Pass + c.Fail + c.Error
	if n == 0 {
		return 100
	}
	return math.Round(1000*float64(c.Pass)/float64(n)) / 10
}

// BandOf places a score in its band; any failing critical rule makes the
// band critical whatever the score.
func BandOf(score float64, criticalFail int) Band {
	switch {
	case criticalFail > 0 || score < 20:
		return BandCritical
	case score < 50:
		return BandPoor
	case score < 70:
		return BandFair
	case score < 90:
		return BandGood
	}
	return BandExcellent
}

// assess scores counts and bands them. No rule state at all is not a
// perfect score: it is BandNone with score 0, how a host that was never
// scanned (or never reported a framework's rules) shows everywhere.
func assess(c Counts) (float64, Band) {
	if c.empty() {
		return 0, BandNone
	}
	score := Score(c)
	return score, BandOf(score, c.CriticalFail)
}

// ErrUnknownFramework is wrapped by errors about a framework id the index
// does not know, so the API answers 400 rather than 500.
var ErrUnknownFramework = errors.New("unknown framework")

// ErrInvalidArgument is wrapped by errors about an argument out of range
// (a time window that ends before it starts, a day count beyond a year).
var ErrInvalidArgument = errors.New("invalid argument")

// ArgError is a caller's mistake in one argument. Field names it as the
// REST API spells it (framework, days, from), so the edge can answer 400
// naming the field; Err is ErrUnknownFramework or ErrInvalidArgument.
type ArgError struct {
	Field string
	Msg   string
	Err   error
}

func (e *ArgError) Error() string { return fmt.Sprintf("posture: %s: %s", e.Field, e.Msg) }

// Unwrap lets errors.Is match the sentinel.
func (e *ArgError) Unwrap() error { return e.Err }

func unknownFramework(id string) error {
	return &ArgError{Field: "framework", Msg: fmt.Sprintf("unknown framework %q", id), Err: ErrUnknownFramework}
}

func invalid(field, format string, args ...any) error {
	return &ArgError{Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrInvalidArgument}
}

// Waivers tells posture which failures approved exceptions accept. The
// governance package implements it; posture only applies the answer.
type Waivers interface {
	// Accepted returns, per host id, the rules an approved exception
	// covered at `at` (zero: now) mapped to that exception's id, for the
	// given hosts. Only rules failing there matter to the caller, but the
	// answer may include others.
	Accepted(ctx context.Context, at time.Time, hosts []store.Host) (map[int64]map[string]int64, error)
}
