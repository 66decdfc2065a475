// Package result defines what a scan reports: per-rule verdicts with
// evidence an auditor can read. The types are part of the engine's stable
// API and of the wire format agents send to the server.
package result

import (
	"time"

	"github.com/vigilfleet/vigil/engine/rule"
)

// Status is a rule's verdict.
type Status string

// The verdicts. A probe that runs and says "no" is Fail; Error means the
// engine could not observe (transport failure, bad parameter); Skipped means
// the rule does not apply or cannot be assessed here, with the reason.
const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Skipped Status = "skipped"
	Error   Status = "error"
)

// OutputCap bounds the stdout and stderr kept in one evidence record.
const OutputCap = 8 << 10

// Evidence records one observation: what was probed and what was seen.
type Evidence struct {
	Method    string    `json:"method"`
	Probe     string    `json:"probe"` // the command run or the file read
	Stdout    string    `json:"stdout,omitempty"`
	Stderr    string    `json:"stderr,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Expected  string    `json:"expected"`
	Actual    string    `json:"actual"`
	Time      time.Time `json:"time"`
	Duration  float64   `json:"duration_ms"`
}

// Result is the verdict for one rule on one host.
type Result struct {
	Host           string        `json:"host"`
	RuleID         string        `json:"rule_id"`
	Title          string        `json:"title"`
	Severity       rule.Severity `json:"severity"`
	Category       string        `json:"category"`
	Status         Status        `json:"status"`
	Reason         string        `json:"reason,omitempty"`
	Detail         string        `json:"detail,omitempty"`
	Implementation string        `json:"implementation,omitempty"` // the gate that selected it, or "default"
	References     []rule.Ref    `json:"references"`
	Evidence       []Evidence    `json:"evidence"`
	Time           time.Time     `json:"time"`
	Duration       float64       `json:"duration_ms"`
}

// Cap trims s to OutputCap bytes and reports whether it cut anything.
func Cap(b []byte) (string, bool) {
	if len(b) <= OutputCap {
		return string(b), false
	}
	return string(b[:OutputCap]), true
}

// Summary counts results by status.
type Summary struct {
	Total   int `json:"total"`
	Pass    int `json:"pass"`
	Fail    int `json:"fail"`
	Skipped int `json:"skipped"`
	Error   int `json:"error"`
}

// Summarize counts the statuses of rs.
func Summarize(rs []Result) Summary {
	s := Summary{Total: len(rs)}
	for _, r := range rs {
		switch r.Status {
		case Pass:
			s.Pass++
		case Fail:
			s.Fail++
		case Skipped:
			s.Skipped++
		case Error:
			s.Error++
		}
	}
	return s
}
