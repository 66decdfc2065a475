package export

// The JSON export's schema as Go types: the reference renderJSON is
// compared with (TestJSONMatchesReference).

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

// The JSON export's own schema, version 1. Field order is the order people
// read: what it is, what it covers, the figures, the detail, the signature
// last.
type jsonDoc struct {
	Version     int             `json:"vigil_export"`
	Issuer      string          `json:"issuer"`
	GeneratedAt time.Time       `json:"generated_at"`
	GeneratedBy string          `json:"generated_by"`
	Scope       jsonScope       `json:"scope"`
	AsOf        time.Time       `json:"as_of"`
	Framework   *jsonFramework  `json:"framework,omitempty"`
	Summary     jsonSummary     `json:"summary"`
	Controls    []jsonControl   `json:"controls,omitempty"`
	Hosts       []jsonHost      `json:"hosts"`
	Exceptions  []jsonException `json:"exceptions"`
	Signature   string          `json:"signature"`
}

type jsonScope struct {
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	ScanID int64  `json:"scan_id,omitempty"`
	HostID int64  `json:"host_id,omitempty"`
	Group  string `json:"group,omitempty"`
}

type jsonFramework struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type jsonSummary struct {
	Hosts               int            `json:"hosts"`
	Score               float64        `json:"score"`
	ScoreWithExceptions float64        `json:"score_with_exceptions"`
	Counts              posture.Counts `json:"counts"`
	Bands               map[string]int `json:"bands"`
}

type jsonControl struct {
	ID       string   `json:"id"`
	Title    string   `json:"title,omitempty"`
	Status   string   `json:"status"`
	Rules    []string `json:"rules"`
	Pass     int      `json:"pass"`
	Fail     int      `json:"fail"`
	Accepted int      `json:"accepted"`
	Error    int      `json:"error"`
	Skipped  int      `json:"skipped"`
}

type jsonHost struct {
	ID                  int64             `json:"id"`
	Name                string            `json:"name"`
	Address             string            `json:"address,omitempty"`
	OS                  string            `json:"os,omitempty"`
	Labels              map[string]string `json:"labels,omitempty"`
	Groups              []string          `json:"groups,omitempty"`
	Score               float64           `json:"score"`
	Band                string            `json:"band"`
	ScoreWithExceptions float64           `json:"score_with_exceptions"`
	BandWithExceptions  string            `json:"band_with_exceptions"`
	Counts              posture.Counts    `json:"counts"`
	Rules               []jsonRule        `json:"rules"`
	Failures            []jsonFailure     `json:"failures"`
	FailuresOmitted     int               `json:"failures_omitted,omitempty"`
}

type jsonRule struct {
	RuleID      string    `json:"rule_id"`
	Title       string    `json:"title"`
	Severity    string    `json:"severity"`
	Status      string    `json:"status"`
	Accepted    bool      `json:"accepted"`
	ExceptionID int64     `json:"exception_id,omitempty"`
	Controls    []string  `json:"controls"`
	ScanID      int64     `json:"scan_id"`
	ObservedAt  time.Time `json:"observed_at"`
	Reason      string    `json:"reason,omitempty"`
}

type jsonFailure struct {
	RuleID      string        `json:"rule_id"`
	Title       string        `json:"title"`
	Severity    string        `json:"severity"`
	Status      string        `json:"status"`
	Accepted    bool          `json:"accepted"`
	ExceptionID int64         `json:"exception_id,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	Description string        `json:"description,omitempty"`
	Fix         string        `json:"fix,omitempty"`
	Evidence    []jsonExcerpt `json:"evidence"`
}

type jsonExcerpt struct {
	Method    string `json:"method"`
	Command   string `json:"command"`
	Expected  string `json:"expected"`
	Actual    string `json:"actual"`
	Output    string `json:"output,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

type jsonException struct {
	ID            int64      `json:"id"`
	RuleID        string     `json:"rule_id"`
	RuleTitle     string     `json:"rule_title"`
	Scope         string     `json:"scope"`
	ScopeName     string     `json:"scope_name"`
	Justification string     `json:"justification"`
	RequestedBy   string     `json:"requested_by"`
	RequestedAt   time.Time  `json:"requested_at"`
	ApprovedBy    string     `json:"approved_by"`
	ApprovedAt    time.Time  `json:"approved_at"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
}

// renderJSONReference is the straightforward encoding/json rendering the
// streaming renderJSON must match byte for byte.
func renderJSONReference(r *report) ([]byte, error) {
	d := jsonDoc{
		Version: 1, Issuer: r.Issuer, GeneratedAt: r.GeneratedAt, GeneratedBy: r.GeneratedBy,
		Scope: jsonScope{Kind: r.Scope.Kind, Name: r.Scope.Name, ScanID: r.Scope.ScanID, HostID: r.Scope.HostID, Group: r.Scope.Name},
		AsOf:  r.At,
		Summary: jsonSummary{Hosts: r.Summary.Hosts, Score: r.Summary.Score, ScoreWithExceptions: r.Summary.ScoreWithExceptions,
			Counts: r.Summary.Counts, Bands: r.Summary.Bands},
		Hosts:      make([]jsonHost, 0, len(r.Hosts)),
		Exceptions: make([]jsonException, 0, len(r.Exceptions)),
		Signature:  placeholder,
	}
	if r.Scope.Kind != "group" {
		d.Scope.Group = ""
	}
	if r.Framework != nil {
		d.Framework = &jsonFramework{ID: r.Framework.ID, Title: r.Framework.Title}
		d.Controls = make([]jsonControl, 0, len(r.Controls))
		for _, c := range r.Controls {
			rules := c.Rules
			if rules == nil {
				rules = []string{}
			}
			d.Controls = append(d.Controls, jsonControl{ID: c.ID, Title: c.Title, Status: c.Status, Rules: rules,
				Pass: c.Pass, Fail: c.Fail, Accepted: c.Accepted, Error: c.Error, Skipped: c.Skipped})
		}
	}
	for _, h := range r.Hosts {
		jh := jsonHost{ID: h.ID, Name: h.Name, Address: h.Address, OS: h.OS, Labels: h.Labels, Groups: h.Groups,
			Score: h.Score, Band: h.Band, ScoreWithExceptions: h.ScoreWithExceptions, BandWithExceptions: h.BandWithExceptions,
			Counts: h.Counts, Rules: make([]jsonRule, 0, len(h.Rules)), Failures: make([]jsonFailure, 0, len(h.Failures)),
			FailuresOmitted: h.FailuresOmitted}
		for _, ru := range h.Rules {
			ctl := ru.Controls
			if ctl == nil {
				ctl = []string{}
			}
			jh.Rules = append(jh.Rules, jsonRule{RuleID: ru.RuleID, Title: ru.Title, Severity: ru.Severity,
				Status: string(ru.Status), Accepted: ru.Accepted, ExceptionID: ru.ExceptionID, Controls: ctl,
				ScanID: ru.ScanID, ObservedAt: ru.ObservedAt, Reason: ru.Reason})
		}
		for _, f := range h.Failures {
			jf := jsonFailure{RuleID: f.RuleID, Title: f.Title, Severity: f.Severity, Status: string(f.Status),
				Accepted: f.Accepted, ExceptionID: f.ExceptionID, Reason: f.Reason, Description: f.Description,
				Fix: f.Fix, Evidence: make([]jsonExcerpt, 0, len(f.Evidence))}
			for _, x := range f.Evidence {
				jf.Evidence = append(jf.Evidence, jsonExcerpt(x))
			}
			jh.Failures = append(jh.Failures, jf)
		}
		d.Hosts = append(d.Hosts, jh)
	}
	for _, x := range r.Exceptions {
		jx := jsonException{ID: x.ID, RuleID: x.RuleID, RuleTitle: x.RuleTitle, Scope: x.Scope, ScopeName: x.ScopeName,
			Justification: x.Justification, RequestedBy: x.RequestedBy, RequestedAt: x.RequestedAt,
			ApprovedBy: x.ApprovedBy, ApprovedAt: x.ApprovedAt}
		if !x.ExpiresAt.IsZero() {
			t := x.ExpiresAt
			jx.ExpiresAt = &t
		}
		d.Exceptions = append(d.Exceptions, jx)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
