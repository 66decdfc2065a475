// Package posture turns findings into the numbers auditors and the
// scheduler act on: a score and a band per host, per group, per fleet and
// per framework, now or at any past moment, plus drift and daily trends.
package posture

import (
	"context"
	"errors"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
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

// Counts are rule states on one host (or summed over many).
type Counts struct {
	Pass         int `json:"pass"`
	Fail         int `json:"fail"`
	Error        int `json:"error"`
	Skipped      int `json:"skipped"`
	CriticalFail int `json:"critical_fail"`
}

// Score is 100 x pass / (pass + fail + error): the share of applicable
// rules that pass. Skipped rules do not count. With nothing applicable the
// score is 100.
func Score(c Counts) float64 { panic("posture: Score not implemented") }

// BandOf places a score in its band; any failing critical rule makes the
// band critical whatever the score.
func BandOf(score float64, criticalFail int) Band { panic("posture: BandOf not implemented") }

// Framework describes one framework the corpus maps rules to.
type Framework struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Controls int    `json:"controls"` // controls in the catalogue
	Covered  int    `json:"covered"`  // controls at least one rule maps to
	Rules    int    `json:"rules"`    // rules mapped, directly or derived
}

// Index is the server's rule corpus with its framework mappings, derived
// ones included (FedRAMP and CMMC through the catalogues). Immutable once
// built; safe for concurrent use.
type Index struct{}

// LoadIndex loads the rules under dir and the catalogues under
// dir/frameworks.
func LoadIndex(dir string) (*Index, error) { return nil, errors.New("posture: LoadIndex not implemented") }

// Rules returns every rule, ordered by id.
func (x *Index) Rules() []*rule.Rule { return nil }

// Rule returns a rule by id, or nil.
func (x *Index) Rule(id string) *rule.Rule { return nil }

// Refs returns a rule's framework references, derived ones included.
func (x *Index) Refs(ruleID string) []rule.Ref { return nil }

// Frameworks lists the frameworks, ordered by id.
func (x *Index) Frameworks() []Framework { return nil }

// RuleIDs returns the ids of the rules mapped to a framework, sorted; nil
// for "" (every rule). ok is false for an unknown framework.
func (x *Index) RuleIDs(framework string) (ids []string, ok bool) { return nil, false }

// Service answers posture questions from the store.
type Service struct{}

// NewService returns a Service; now is the clock (time.Now in production).
func NewService(st store.Store, idx *Index, now func() time.Time) *Service { return &Service{} }

// Index returns the rule index the service scores with.
func (s *Service) Index() *Index { return nil }

// Outcome is what recording a finished scan learned.
type Outcome struct {
	Score float64
	Band  Band
	// NewCriticalFailures are critical rules this scan saw start failing.
	NewCriticalFailures []string
}

// RecordScan computes the host's posture after scan scanID finished,
// upserts today's snapshot for every framework and for all rules, and
// reports new critical failures.
func (s *Service) RecordScan(ctx context.Context, hostID, scanID int64) (Outcome, error) {
	return Outcome{}, errors.New("posture: RecordScan not implemented")
}

// HostPosture is one host's posture.
type HostPosture struct {
	HostID     int64       `json:"host_id"`
	Name       string      `json:"name"`
	Score      float64     `json:"score"`
	Band       Band        `json:"band"`
	Counts     Counts      `json:"counts"`
	LastScanAt *time.Time  `json:"last_scan_at,omitempty"`
	Rules      []RuleState `json:"rules,omitempty"` // only when asked for
}

// RuleState is one rule's state on a host at some moment.
type RuleState struct {
	RuleID   string        `json:"rule_id"`
	Status   result.Status `json:"status"`
	Severity rule.Severity `json:"severity"`
	ScanID   int64         `json:"scan_id"`
	Since    time.Time     `json:"since"`
}

// FleetQuery selects a posture view.
type FleetQuery struct {
	At        time.Time // zero: now
	Framework string    // "": every rule
	Group     string    // "": every host
	HostID    int64     // 0: every host
	Rules     bool      // include per-rule states per host
}

// FleetPosture is the posture of a set of hosts at one moment.
type FleetPosture struct {
	At        time.Time     `json:"at"`
	Framework string        `json:"framework,omitempty"`
	Group     string        `json:"group,omitempty"`
	Score     float64       `json:"score"` // over all the hosts' summed counts
	Counts    Counts        `json:"counts"`
	Bands     map[Band]int  `json:"bands"`
	Hosts     []HostPosture `json:"hosts"`
}

// Fleet returns the posture of the selected hosts as it was at q.At, with
// rule states rebuilt from the transition log.
func (s *Service) Fleet(ctx context.Context, q FleetQuery) (FleetPosture, error) {
	return FleetPosture{}, errors.New("posture: Fleet not implemented")
}

// Change is one observed state change.
type Change struct {
	At     time.Time     `json:"at"`
	From   result.Status `json:"from"`
	To     result.Status `json:"to"`
	ScanID int64         `json:"scan_id"`
}

// Drift is a rule on a host whose state changed between two moments.
type Drift struct {
	HostID   int64         `json:"host_id"`
	HostName string        `json:"host"`
	RuleID   string        `json:"rule_id"`
	Severity rule.Severity `json:"severity"`
	Before   result.Status `json:"before"` // state at from ("" if unknown)
	After    result.Status `json:"after"`  // state at to
	Changes  []Change      `json:"changes"`
}

// Drift lists rules whose state at `to` differs from their state at `from`
// (on one host when hostID > 0), each with the scans that saw each change.
func (s *Service) Drift(ctx context.Context, from, to time.Time, hostID int64) ([]Drift, error) {
	return nil, errors.New("posture: Drift not implemented")
}

// TrendPoint is a host's posture on one day.
type TrendPoint struct {
	Day     time.Time `json:"day"`
	Score   float64   `json:"score"`
	Band    Band      `json:"band"`
	Counts  Counts    `json:"counts"`
	Carried bool      `json:"carried"` // no scan that day: the last known value
}

// Trend returns one point per day for the last `days` days (oldest first)
// for a framework ("" = all rules), carrying the last known value over days
// without a scan; days before the first scan are omitted.
func (s *Service) Trend(ctx context.Context, hostID int64, days int, framework string) ([]TrendPoint, error) {
	return nil, errors.New("posture: Trend not implemented")
}
