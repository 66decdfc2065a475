// Package framework reads the framework catalogues of a corpus
// (rules/frameworks/*.yml) and answers coverage questions: which controls
// of a framework the rules cover, and what share of its automatable
// controls that is.
//
// Three kinds of catalogue exist. A catalog lists a framework's own
// controls (NIST SP 800-53, CIS for one OS, ...). A baseline selects
// controls of another catalog (FedRAMP Moderate and High select NIST SP
// 800-53 controls). A mapping defines its controls through another
// catalog's (each CMMC Level 2 practice is one NIST SP 800-171
// requirement). Baselines and mappings are derived: no rule names them; a
// rule covers them through its mappings to the base.
package framework

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/engine/rule"
)

// The catalogue kinds.
const (
	KindCatalog  = "catalog"
	KindBaseline = "baseline"
	KindMapping  = "mapping"
)

// Control is one control of a catalogue.
type Control struct {
	ID          string   `yaml:"id" json:"id"`
	Title       string   `yaml:"title,omitempty" json:"title,omitempty"`
	Automatable bool     `yaml:"automatable" json:"automatable"`
	Level       string   `yaml:"level,omitempty" json:"level,omitempty"`
	Severity    string   `yaml:"severity,omitempty" json:"severity,omitempty"`
	MapsTo      []string `yaml:"maps_to,omitempty" json:"maps_to,omitempty"`
}

// Catalog is one framework catalogue file.
type Catalog struct {
	ID       string    `yaml:"id" json:"id"`
	Title    string    `yaml:"title" json:"title"`
	Version  string    `yaml:"version" json:"version"`
	Kind     string    `yaml:"kind" json:"kind"`
	Base     string    `yaml:"base,omitempty" json:"base,omitempty"`
	Titles   bool      `yaml:"titles" json:"titles"`
	Controls []Control `yaml:"-" json:"controls"`
	File     string    `yaml:"-" json:"-"`

	byID map[string]*Control
}

// Control returns the control with the given id, or nil.
func (c *Catalog) Control(id string) *Control { return c.byID[id] }

// LoadDir reads every *.yml catalogue in dir. A missing directory gives no
// catalogues. Errors name the file and line.
func LoadDir(dir string) (map[string]*Catalog, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := map[string]*Catalog{}
	var errs []string
	for _, f := range files {
		c, err := loadFile(f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if prev, dup := out[c.ID]; dup {
			errs = append(errs, fmt.Sprintf("%s: framework %s is also defined in %s", f, c.ID, prev.File))
			continue
		}
		out[c.ID] = c
	}
	for _, c := range out {
		if c.Kind != KindCatalog && out[c.Base] == nil {
			errs = append(errs, fmt.Sprintf("%s: base framework %q has no catalogue", c.File, c.Base))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("framework catalogues:\n  %s", strings.Join(errs, "\n  "))
	}
	return out, nil
}

// catalogFile is the on-disk form; controls are either objects or, in a
// baseline, plain ids.
type catalogFile struct {
	Catalog  `yaml:",inline"`
	Controls []yaml.Node `yaml:"controls"`
}

func loadFile(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cf catalogFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	c := cf.Catalog
	c.File = path
	c.byID = map[string]*Control{}
	stem := strings.TrimSuffix(filepath.Base(path), ".yml")
	switch {
	case c.ID == "":
		return nil, fmt.Errorf("%s: id is missing", path)
	case c.ID != stem:
		return nil, fmt.Errorf("%s: id %q does not match the file name", path, c.ID)
	case c.Kind != KindCatalog && c.Kind != KindBaseline && c.Kind != KindMapping:
		return nil, fmt.Errorf("%s: kind %q is not catalog, baseline or mapping", path, c.Kind)
	case c.Kind != KindCatalog && c.Base == "":
		return nil, fmt.Errorf("%s: a %s needs a base framework", path, c.Kind)
	}
	for _, n := range cf.Controls {
		var ctl Control
		if n.Kind == yaml.ScalarNode {
			ctl.ID = n.Value
		} else {
			d := yaml.NewDecoder(strings.NewReader(nodeText(&n)))
			d.KnownFields(true)
			if err := d.Decode(&ctl); err != nil {
				return nil, fmt.Errorf("%s:%d: control: %v", path, n.Line, err)
			}
		}
		if ctl.ID == "" {
			return nil, fmt.Errorf("%s:%d: control without id", path, n.Line)
		}
		if _, dup := c.byID[ctl.ID]; dup {
			return nil, fmt.Errorf("%s:%d: control %s listed twice", path, n.Line, ctl.ID)
		}
		if c.Kind == KindMapping && len(ctl.MapsTo) == 0 {
			return nil, fmt.Errorf("%s:%d: control %s of a mapping needs maps_to", path, n.Line, ctl.ID)
		}
		c.Controls = append(c.Controls, ctl)
		c.byID[ctl.ID] = &c.Controls[len(c.Controls)-1]
	}
	// Pointers into the slice are stable only once it stops growing.
	for i := range c.Controls {
		c.byID[c.Controls[i].ID] = &c.Controls[i]
	}
	return &c, nil
}

func nodeText(n *yaml.Node) string {
	b, _ := yaml.Marshal(n)
	return string(b)
}

// Coverage is how far a corpus covers one framework.
type Coverage struct {
	Framework string `json:"framework"`
	Title     string `json:"title,omitempty"`
	Kind      string `json:"kind"`
	// Rules is the number of rules that map to the framework (directly, or
	// through the base of a derived framework).
	Rules int `json:"rules"`
	// Covered lists the framework's controls some rule covers, sorted.
	Covered []string `json:"covered"`
	// Catalogue figures; zero when the framework has no catalogue.
	Controls           int     `json:"controls"`
	Automatable        int     `json:"automatable"`
	AutomatableCovered int     `json:"automatable_covered"`
	Share              float64 `json:"automatable_share"`
	// Unknown lists ids rules use that the catalogue does not have: typos
	// or controls missing from the catalogue.
	Unknown []string `json:"unknown,omitempty"`
}

// ComputeCoverage reports every framework the rules map to or a catalogue
// defines, sorted by framework id.
func ComputeCoverage(rules []*rule.Rule, cats map[string]*Catalog) []Coverage {
	direct := map[string]map[string][]string{} // framework -> control -> rule ids
	for _, r := range rules {
		for _, p := range r.References.Pairs() {
			if direct[p.Framework] == nil {
				direct[p.Framework] = map[string][]string{}
			}
			direct[p.Framework][p.Control] = append(direct[p.Framework][p.Control], r.ID)
		}
	}
	ids := map[string]bool{}
	for fw := range direct {
		ids[fw] = true
	}
	for fw := range cats {
		ids[fw] = true
	}
	var out []Coverage
	for fw := range ids {
		out = append(out, coverageOf(fw, direct, cats))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Framework < out[j].Framework })
	return out
}

func coverageOf(fw string, direct map[string]map[string][]string, cats map[string]*Catalog) Coverage {
	cov := Coverage{Framework: fw, Kind: KindCatalog}
	cat := cats[fw]
	covered := map[string][]string{} // control -> rule ids
	if cat != nil {
		cov.Title, cov.Kind = cat.Title, cat.Kind
	}
	switch {
	case cat == nil || cat.Kind == KindCatalog:
		for ctl, rs := range direct[fw] {
			covered[ctl] = rs
		}
	case cat.Kind == KindBaseline:
		for _, ctl := range cat.Controls {
			if rs := direct[cat.Base][ctl.ID]; len(rs) > 0 {
				covered[ctl.ID] = rs
			}
		}
	case cat.Kind == KindMapping:
		for _, ctl := range cat.Controls {
			for _, m := range ctl.MapsTo {
				covered[ctl.ID] = append(covered[ctl.ID], direct[cat.Base][m]...)
			}
			if len(covered[ctl.ID]) == 0 {
				delete(covered, ctl.ID)
			}
		}
	}
	rules := map[string]bool{}
	for ctl, rs := range covered {
		cov.Covered = append(cov.Covered, ctl)
		for _, r := range rs {
			rules[r] = true
		}
	}
	sort.Strings(cov.Covered)
	cov.Rules = len(rules)
	if cat == nil {
		return cov
	}
	base := cat
	if cat.Kind != KindCatalog {
		base = cats[cat.Base]
	}
	for _, ctl := range cat.Controls {
		cov.Controls++
		auto := ctl.Automatable
		if cat.Kind == KindBaseline && base != nil {
			if bc := base.Control(ctl.ID); bc != nil {
				auto = bc.Automatable
			}
		}
		if auto {
			cov.Automatable++
			if len(covered[ctl.ID]) > 0 {
				cov.AutomatableCovered++
			}
		}
	}
	if cov.Automatable > 0 {
		cov.Share = float64(cov.AutomatableCovered) / float64(cov.Automatable)
	}
	if cat.Kind == KindCatalog {
		for ctl := range direct[fw] {
			if cat.Control(ctl) == nil {
				cov.Unknown = append(cov.Unknown, ctl)
			}
		}
		sort.Strings(cov.Unknown)
	}
	return cov
}

// Derive returns the derived (framework, control) pairs a set of direct
// references implies: FedRAMP baseline controls from NIST SP 800-53, CMMC
// practices from NIST SP 800-171.
func Derive(refs []rule.Ref, cats map[string]*Catalog) []rule.Ref {
	have := map[string]map[string]bool{}
	for _, r := range refs {
		if have[r.Framework] == nil {
			have[r.Framework] = map[string]bool{}
		}
		have[r.Framework][r.Control] = true
	}
	var out []rule.Ref
	for _, cat := range cats {
		if cat.Kind == KindCatalog {
			continue
		}
		for _, ctl := range cat.Controls {
			hit := false
			if cat.Kind == KindBaseline {
				hit = have[cat.Base][ctl.ID]
			}
			for _, m := range ctl.MapsTo {
				hit = hit || have[cat.Base][m]
			}
			if hit {
				out = append(out, rule.Ref{Framework: cat.ID, Control: ctl.ID})
			}
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
