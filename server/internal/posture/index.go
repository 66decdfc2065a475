package posture

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/engine/rule"
)

// Framework describes one framework the corpus maps rules to.
type Framework struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Controls int    `json:"controls"` // controls in the catalogue
	Covered  int    `json:"covered"`  // controls at least one rule maps to
	Rules    int    `json:"rules"`    // rules mapped, directly or derived
}

// Control is one control of a framework with the rules that cover it, so
// an auditor can walk from a control to its checks and see the gaps.
type Control struct {
	ID    string   `json:"id"`
	Title string   `json:"title,omitempty"`
	Rules []string `json:"rules"` // covering rules, direct or derived, sorted; empty: not covered
}

// Index is the server's rule corpus with its framework mappings, derived
// ones included (FedRAMP and CMMC through the catalogues). Immutable once
// built; safe for concurrent use.
type Index struct {
	rules      []*rule.Rule
	byID       map[string]*rule.Rule
	refs       map[string][]rule.Ref // rule id -> direct and derived refs, sorted
	fwOfRule   map[string][]string   // rule id -> framework ids, sorted
	ruleIDs    map[string][]string   // framework id -> rule ids, sorted
	frameworks []Framework
	controls   map[string][]Control // framework id -> controls, catalogue order
}

// LoadIndex loads the rules under dir and the catalogues under
// dir/frameworks.
func LoadIndex(dir string) (*Index, error) {
	rules, err := engine.LoadRules(dir)
	if err != nil {
		return nil, fmt.Errorf("posture: load rules %s: %w", dir, err)
	}
	cats, err := framework.LoadDir(filepath.Join(dir, "frameworks"))
	if err != nil {
		return nil, fmt.Errorf("posture: load catalogues %s: %w", dir, err)
	}
	return newIndex(rules, cats), nil
}

// newIndex builds an index from loaded rules and catalogues.
func newIndex(rules []*rule.Rule, cats map[string]*framework.Catalog) *Index {
	x := &Index{
		rules:    slices.Clone(rules),
		byID:     make(map[string]*rule.Rule, len(rules)),
		refs:     make(map[string][]rule.Ref, len(rules)),
		fwOfRule: make(map[string][]string, len(rules)),
		ruleIDs:  map[string][]string{},
	}
	sort.Slice(x.rules, func(i, j int) bool { return x.rules[i].ID < x.rules[j].ID })
	for _, r := range x.rules {
		x.byID[r.ID] = r
		direct := r.References.Pairs()
		refs := append(direct, framework.Derive(direct, cats)...)
		sort.Slice(refs, func(i, j int) bool {
			if refs[i].Framework != refs[j].Framework {
				return refs[i].Framework < refs[j].Framework
			}
			return refs[i].Control < refs[j].Control
		})
		refs = slices.Compact(refs)
		x.refs[r.ID] = refs
		for _, ref := range refs {
			fws := x.fwOfRule[r.ID]
			if len(fws) == 0 || fws[len(fws)-1] != ref.Framework {
				x.fwOfRule[r.ID] = append(fws, ref.Framework)
				x.ruleIDs[ref.Framework] = append(x.ruleIDs[ref.Framework], r.ID)
			}
		}
	}
	// Rules are visited in id order, so every list is already sorted.
	for _, cov := range framework.ComputeCoverage(x.rules, cats) {
		if _, ok := x.ruleIDs[cov.Framework]; !ok {
			x.ruleIDs[cov.Framework] = []string{} // a catalogue no rule maps to yet
		}
		x.frameworks = append(x.frameworks, Framework{
			ID: cov.Framework, Title: cov.Title, Controls: cov.Controls,
			Covered: len(cov.Covered), Rules: len(x.ruleIDs[cov.Framework]),
		})
	}
	x.controls = buildControls(x, cats)
	return x
}

// buildControls lists every framework's controls in catalogue order with
// their covering rules; controls rules name that the catalogue lacks (or
// all of them, for a framework without a catalogue) follow, sorted.
func buildControls(x *Index, cats map[string]*framework.Catalog) map[string][]Control {
	covering := map[string]map[string][]string{} // framework -> control -> rule ids
	for _, r := range x.rules {
		for _, ref := range x.refs[r.ID] {
			if covering[ref.Framework] == nil {
				covering[ref.Framework] = map[string][]string{}
			}
			covering[ref.Framework][ref.Control] = append(covering[ref.Framework][ref.Control], r.ID)
		}
	}
	out := make(map[string][]Control, len(x.frameworks))
	for _, fw := range x.frameworks {
		var ctls []Control
		listed := map[string]bool{}
		if cat := cats[fw.ID]; cat != nil {
			base := cats[cat.Base]
			for _, c := range cat.Controls {
				title := c.Title
				if title == "" && base != nil {
					if bc := base.Control(c.ID); bc != nil {
						title = bc.Title
					}
				}
				listed[c.ID] = true
				ctls = append(ctls, Control{ID: c.ID, Title: title, Rules: covering[fw.ID][c.ID]})
			}
		}
		var extra []string
		for id := range covering[fw.ID] {
			if !listed[id] {
				extra = append(extra, id)
			}
		}
		sort.Strings(extra)
		for _, id := range extra {
			ctls = append(ctls, Control{ID: id, Rules: covering[fw.ID][id]})
		}
		out[fw.ID] = ctls
	}
	return out
}

// Rules returns every rule, ordered by id.
func (x *Index) Rules() []*rule.Rule { return slices.Clone(x.rules) }

// Rule returns a rule by id, or nil.
func (x *Index) Rule(id string) *rule.Rule { return x.byID[id] }

// Refs returns a rule's framework references, derived ones included.
func (x *Index) Refs(ruleID string) []rule.Ref { return slices.Clone(x.refs[ruleID]) }

// Frameworks lists the frameworks, ordered by id.
func (x *Index) Frameworks() []Framework { return slices.Clone(x.frameworks) }

// Controls returns a framework's controls with their covering rules;
// ok is false for an unknown framework.
func (x *Index) Controls(fw string) (ctls []Control, ok bool) {
	src, ok := x.controls[fw]
	if !ok {
		return nil, false
	}
	out := make([]Control, len(src))
	for i, c := range src {
		out[i] = Control{ID: c.ID, Title: c.Title, Rules: slices.Clone(c.Rules)}
	}
	return out, true
}

// RuleIDs returns the ids of the rules mapped to a framework, sorted; nil
// for "" (every rule). ok is false for an unknown framework. A known
// framework no rule maps to gives an empty, non-nil list: it selects no
// rule, unlike nil, which selects every rule.
func (x *Index) RuleIDs(framework string) (ids []string, ok bool) {
	if framework == "" {
		return nil, true
	}
	ids, ok = x.ruleIDs[framework]
	if !ok {
		return nil, false
	}
	return slices.Clone(ids), true
}

// frameworksOf returns the frameworks a rule maps to; the caller must not
// modify the result.
func (x *Index) frameworksOf(ruleID string) []string { return x.fwOfRule[ruleID] }

// inFramework returns a membership test for a framework's rules; nil for
// "" (every rule counts). ok is false for an unknown framework.
func (x *Index) inFramework(fw string) (in func(ruleID string) bool, ok bool) {
	if fw == "" {
		return nil, true
	}
	ids, ok := x.ruleIDs[fw]
	if !ok {
		return nil, false
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return func(id string) bool { return set[id] }, true
}
