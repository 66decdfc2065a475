// Package rule is the in-memory model of Vigil rules in the Kensa v0.9 rule
// format (see docs in rules/README.md and the design's rule-format.md), and
// the strict loader that reads them.
//
// A rule is loaded once with its {{ variables }} left as placeholders, then
// resolved per host with Resolve, because variable values differ by host and
// group while the rule text does not.
package rule

import (
	"fmt"
	"sort"
	"strings"
)

// Severity orders how bad a failing rule is.
type Severity string

// The severities, from worst to least.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
)

// Rank returns 4 for critical down to 1 for low, 0 for an unknown value, so
// filters can say "high and above".
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// Categories are the folders of a corpus; a rule's category equals its folder.
var Categories = []string{"access-control", "audit", "filesystem", "kernel", "logging", "network", "services", "system"}

// Rule is one loaded rule.
type Rule struct {
	ID              string
	Title           string
	Description     string
	Rationale       string
	Severity        Severity
	Category        string
	Tags            []string
	References      References
	Platforms       []Platform
	Implementations []Implementation
	DependsOn       []string
	ConflictsWith   []string
	Supersedes      []string
	Transactional   *bool

	// File and Line locate the rule for error messages and evidence.
	File string
	Line int

	// vars maps placeholder tokens in this rule to variable names.
	vars map[string]string
}

// Variables returns the names of the variables the rule uses, sorted.
func (r *Rule) Variables() []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range r.vars {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Platform is one entry of a rule's platforms list.
type Platform struct {
	Family      string
	MinVersion  string
	MaxVersion  string
	Derivatives bool // default true
}

// Implementation is one way of checking (and fixing) the rule.
type Implementation struct {
	When        *Gate
	Default     bool
	Check       Check
	Remediation *Remediation
	Line        int
}

// Gate is a capability condition: a name, or all/any/not of gates.
type Gate struct {
	Cap string
	All []Gate
	Any []Gate
	Not *Gate
}

// Eval evaluates the gate against a capability set.
func (g *Gate) Eval(caps map[string]bool) bool {
	switch {
	case g == nil:
		return true
	case g.Cap != "":
		return caps[g.Cap]
	case g.Not != nil:
		return !g.Not.Eval(caps)
	case g.All != nil:
		for i := range g.All {
			if !g.All[i].Eval(caps) {
				return false
			}
		}
		return true
	case g.Any != nil:
		for i := range g.Any {
			if g.Any[i].Eval(caps) {
				return true
			}
		}
		return false
	}
	return true
}

// String renders the gate the way it is written.
func (g *Gate) String() string {
	switch {
	case g == nil:
		return ""
	case g.Cap != "":
		return g.Cap
	case g.Not != nil:
		return "not " + g.Not.String()
	case g.All != nil:
		return "all(" + joinGates(g.All) + ")"
	case g.Any != nil:
		return "any(" + joinGates(g.Any) + ")"
	}
	return ""
}

func joinGates(gs []Gate) string {
	parts := make([]string, len(gs))
	for i := range gs {
		parts[i] = gs[i].String()
	}
	return strings.Join(parts, ", ")
}

// Check is one check method with its parameters, or a composite: All (the
// format's `checks:`), Any (Vigil: at least one passes) or Not (Vigil: the
// inner check must fail).
type Check struct {
	Method string
	Params map[string]Param
	All    []Check
	Any    []Check
	Not    *Check
	Line   int
}

// Param is one check or remediation parameter as written. Scalars keep
// their text; lists keep their items.
type Param struct {
	Str    string
	List   []string
	IsList bool
	Line   int
}

// Strings returns a list parameter's items, or a scalar split on commas (a
// list variable arrives as a comma-joined string).
func (p Param) Strings() []string {
	if p.IsList {
		return p.List
	}
	if strings.TrimSpace(p.Str) == "" {
		return nil
	}
	var out []string
	for _, s := range strings.Split(p.Str, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Remediation describes how to fix a failing rule. Vigil records it for
// reports; it does not execute remediations yet.
type Remediation struct {
	Mechanism string
	Params    map[string]Param
	Steps     []Remediation
	Line      int
}

// References holds a rule's framework mappings.
type References struct {
	// Versioned maps a framework (cis, stig) to its per-OS entries, keyed by
	// "<os><major>" such as debian12.
	Versioned map[string]map[string][]VersionedRef
	// Flat maps a framework (nist_800_53, pci_dss_4, ...) to control ids.
	Flat map[string][]string
}

// VersionedRef is one benchmark entry for one OS release.
type VersionedRef struct {
	Section  string `json:"section,omitempty"`
	Level    string `json:"level,omitempty"`
	Type     string `json:"type,omitempty"`
	VulnID   string `json:"vuln_id,omitempty"`
	StigID   string `json:"stig_id,omitempty"`
	Severity string `json:"severity,omitempty"`
}

// Ref is one (framework, control) pair carried by a result.
type Ref struct {
	Framework string `json:"framework_id"`
	Control   string `json:"control_id"`
}

func (r Ref) String() string { return r.Framework + " " + r.Control }

// Pairs flattens the references into (framework, control) pairs, sorted:
// cis debian12 5.1.20 becomes {cis_debian12, 5.1.20}; a STIG entry uses its
// vulnerability id (or its STIG id when it has none).
func (r References) Pairs() []Ref {
	var out []Ref
	for fw, byOS := range r.Versioned {
		for os, entries := range byOS {
			for _, e := range entries {
				ctl := e.Section
				if e.VulnID != "" {
					ctl = e.VulnID
				} else if ctl == "" {
					ctl = e.StigID
				}
				if ctl != "" {
					out = append(out, Ref{Framework: fw + "_" + os, Control: ctl})
				}
			}
		}
	}
	for fw, ids := range r.Flat {
		for _, id := range ids {
			out = append(out, Ref{Framework: fw, Control: id})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Framework != out[j].Framework {
			return out[i].Framework < out[j].Framework
		}
		return out[i].Control < out[j].Control
	})
	return out
}

// Frameworks returns the framework ids the rule maps to (as in Pairs).
func (r References) Frameworks() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range r.Pairs() {
		if !seen[p.Framework] {
			seen[p.Framework] = true
			out = append(out, p.Framework)
		}
	}
	return out
}

// HasFramework reports whether the rule maps to fw, which may be a full id
// (cis_debian12, nist_800_53) or a family prefix (cis, stig).
func (r References) HasFramework(fw string) bool {
	fw = strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(fw, "-", "_"), ".", "_"))
	for _, f := range r.Frameworks() {
		if f == fw || strings.HasPrefix(f, fw+"_") {
			return true
		}
	}
	return false
}

// Location renders file:line for messages.
func (r *Rule) Location() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }
