package api

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/engine/rule"
)

// ruleSummary is a rule in the list view.
type ruleSummary struct {
	ID         string        `json:"id"`
	Title      string        `json:"title"`
	Severity   rule.Severity `json:"severity"`
	Category   string        `json:"category"`
	Frameworks []refJSON     `json:"frameworks"`
}

// listRules answers GET /rules?framework=&severity=&category=&q=.
func (s *Server) listRules(c *gin.Context) {
	inFramework, ok := s.frameworkRules(c, c.Query("framework"))
	if !ok {
		return
	}
	sevs, ok := queryEnum(c, "severity", severities)
	if !ok {
		return
	}
	cats, ok := queryEnum(c, "category", rule.Categories)
	if !ok {
		return
	}
	q := strings.ToLower(c.Query("q"))
	out := []ruleSummary{}
	for _, r := range s.index().Rules() {
		if (inFramework != nil && !inFramework[r.ID]) ||
			(sevs != nil && !slices.Contains(sevs, string(r.Severity))) ||
			(cats != nil && !slices.Contains(cats, r.Category)) ||
			(q != "" && !containsFold(r.ID, q) && !containsFold(r.Title, q) && !containsFold(r.Description, q)) {
			continue
		}
		out = append(out, ruleSummary{ID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category, Frameworks: s.refs(r.ID, nil)})
	}
	c.JSON(http.StatusOK, gin.H{"rules": out})
}

// ruleDetail is everything an auditor reads about one rule: what it
// checks, why, where it applies, how it is fixed, what it maps to.
type ruleDetail struct {
	ID              string                    `json:"id"`
	Title           string                    `json:"title"`
	Description     string                    `json:"description"`
	Rationale       string                    `json:"rationale"`
	Severity        rule.Severity             `json:"severity"`
	Category        string                    `json:"category"`
	Tags            []string                  `json:"tags"`
	Platforms       []platformJSON            `json:"platforms"`
	Implementations []implementationJSON      `json:"implementations"`
	FrameworkRefs   []refJSON                 `json:"framework_refs"`
	Benchmarks      map[string]map[string]any `json:"benchmarks"` // cis/stig entries per OS release
	Variables       []string                  `json:"variables"`
	DependsOn       []string                  `json:"depends_on"`
	ConflictsWith   []string                  `json:"conflicts_with"`
	Supersedes      []string                  `json:"supersedes"`
	Transactional   *bool                     `json:"transactional"`
}

type platformJSON struct {
	Family      string `json:"family"`
	MinVersion  string `json:"min_version,omitempty"`
	MaxVersion  string `json:"max_version,omitempty"`
	Derivatives bool   `json:"derivatives"`
}

type implementationJSON struct {
	When        string           `json:"when,omitempty"` // capability gate as written
	Default     bool             `json:"default"`
	Check       checkJSON        `json:"check"`
	Remediation *remediationJSON `json:"remediation"`
}

// checkJSON is a check method with its parameters, or a composite.
type checkJSON struct {
	Method string         `json:"method,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	All    []checkJSON    `json:"all,omitempty"`
	Any    []checkJSON    `json:"any,omitempty"`
	Not    *checkJSON     `json:"not,omitempty"`
}

type remediationJSON struct {
	Mechanism string            `json:"mechanism,omitempty"`
	Note      string            `json:"note,omitempty"` // the human-readable fix, when the rule gives one
	Params    map[string]any    `json:"params,omitempty"`
	Steps     []remediationJSON `json:"steps,omitempty"`
}

// getRule answers GET /rules/:id.
func (s *Server) getRule(c *gin.Context) {
	id := c.Param("id")
	d, ok := s.RuleDetail(id)
	if !ok {
		fail(c, http.StatusNotFound, "not_found", "id", fmt.Sprintf("no rule %q in the server's corpus", truncate(id, 120)))
		return
	}
	c.JSON(http.StatusOK, d)
}

// RuleView is a rule as GET /rules/:id serves it, placeholders restored;
// the web UI's rule page renders the same view.
type RuleView = ruleDetail

// RuleDetail returns the detail of rule id; false for a rule the corpus
// does not hold.
func (s *Server) RuleDetail(id string) (RuleView, bool) {
	r := s.index().Rule(id)
	if r == nil {
		return ruleDetail{}, false
	}
	t := newPlaceholderText(r)
	d := ruleDetail{
		ID: r.ID, Title: t.text(r.Title), Description: strings.TrimSpace(t.text(r.Description)), Rationale: strings.TrimSpace(t.text(r.Rationale)),
		Severity: r.Severity, Category: r.Category, Tags: nonNil(r.Tags),
		Platforms: []platformJSON{}, Implementations: []implementationJSON{},
		FrameworkRefs: s.refs(r.ID, nil), Benchmarks: map[string]map[string]any{},
		Variables: nonNil(r.Variables()), DependsOn: nonNil(r.DependsOn),
		ConflictsWith: nonNil(r.ConflictsWith), Supersedes: nonNil(r.Supersedes), Transactional: r.Transactional,
	}
	for _, p := range r.Platforms {
		d.Platforms = append(d.Platforms, platformJSON{Family: p.Family, MinVersion: p.MinVersion, MaxVersion: p.MaxVersion, Derivatives: p.Derivatives})
	}
	for _, im := range r.Implementations {
		ij := implementationJSON{When: im.When.String(), Default: im.Default, Check: t.check(im.Check)}
		if im.Remediation != nil {
			rj := t.remediation(*im.Remediation)
			ij.Remediation = &rj
		}
		d.Implementations = append(d.Implementations, ij)
	}
	for fw, byOS := range r.References.Versioned {
		d.Benchmarks[fw] = map[string]any{}
		for os, entries := range byOS {
			d.Benchmarks[fw][os] = entries
		}
	}
	return d, true
}

func (t placeholderText) check(ch rule.Check) checkJSON {
	out := checkJSON{Method: ch.Method, Params: t.params(ch.Params)}
	for _, sub := range ch.All {
		out.All = append(out.All, t.check(sub))
	}
	for _, sub := range ch.Any {
		out.Any = append(out.Any, t.check(sub))
	}
	if ch.Not != nil {
		n := t.check(*ch.Not)
		out.Not = &n
	}
	return out
}

func (t placeholderText) remediation(r rule.Remediation) remediationJSON {
	out := remediationJSON{Mechanism: r.Mechanism, Params: t.params(r.Params)}
	if n, ok := r.Params["note"]; ok && !n.IsList {
		out.Note = strings.TrimSpace(t.text(n.Str))
		delete(out.Params, "note")
		if len(out.Params) == 0 {
			out.Params = nil
		}
	}
	for _, st := range r.Steps {
		out.Steps = append(out.Steps, t.remediation(st))
	}
	return out
}

// params renders parameters as written: scalars as strings, lists as
// arrays, {{ variables }} as placeholders (values differ by host).
func (t placeholderText) params(ps map[string]rule.Param) map[string]any {
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]any, len(ps))
	for k, p := range ps {
		if !p.IsList {
			out[k] = t.text(p.Str)
			continue
		}
		items := make([]string, len(p.List))
		for i, it := range p.List {
			items[i] = t.text(it)
		}
		out[k] = items
	}
	return out
}

// loaderToken is how the rule loader stands in for a {{ variable }} until a
// host's values resolve it.
var loaderToken = regexp.MustCompile(`__vigilvar_[0-9]+__`)

// placeholderText turns the loader's tokens back into {{ name }}, so the
// rule reads as its author wrote it.
type placeholderText map[string]string // token -> "{{ name }}"

// newPlaceholderText learns which variable each token of r stands for by
// resolving a copy of r whose title lists the tokens, with every variable
// bound to its own placeholder text; the checks are left out of the copy,
// so no parameter validation can refuse the placeholder values.
func newPlaceholderText(r *rule.Rule) placeholderText {
	names := r.Variables()
	if len(names) == 0 {
		return nil
	}
	var toks []string
	seen := map[string]bool{}
	collect := func(s string) {
		for _, tok := range loaderToken.FindAllString(s, -1) {
			if !seen[tok] {
				seen[tok] = true
				toks = append(toks, tok)
			}
		}
	}
	walkRuleText(r, collect)
	vars := make(map[string]string, len(names))
	for _, n := range names {
		vars[n] = "{{ " + n + " }}"
	}
	cp := *r
	cp.Title, cp.Description, cp.Rationale, cp.Implementations = strings.Join(toks, "\x00"), "", "", nil
	res, err := cp.Resolve(vars)
	if err != nil {
		return nil
	}
	parts := strings.Split(res.Title, "\x00")
	if len(parts) != len(toks) {
		return nil
	}
	t := placeholderText{}
	for i, tok := range toks {
		if parts[i] != tok {
			t[tok] = parts[i]
		}
	}
	return t
}

func (t placeholderText) text(s string) string {
	if len(t) == 0 || !strings.Contains(s, "__vigilvar_") {
		return s
	}
	return loaderToken.ReplaceAllStringFunc(s, func(tok string) string {
		if v, ok := t[tok]; ok {
			return v
		}
		return tok
	})
}

// walkRuleText calls f on every text of r that may hold a placeholder.
func walkRuleText(r *rule.Rule, f func(string)) {
	f(r.Title)
	f(r.Description)
	f(r.Rationale)
	params := func(ps map[string]rule.Param) {
		for _, p := range ps {
			f(p.Str)
			for _, it := range p.List {
				f(it)
			}
		}
	}
	var check func(rule.Check)
	check = func(c rule.Check) {
		params(c.Params)
		for _, sub := range c.All {
			check(sub)
		}
		for _, sub := range c.Any {
			check(sub)
		}
		if c.Not != nil {
			check(*c.Not)
		}
	}
	var rem func(rule.Remediation)
	rem = func(rm rule.Remediation) {
		params(rm.Params)
		for _, st := range rm.Steps {
			rem(st)
		}
	}
	for _, im := range r.Implementations {
		check(im.Check)
		if im.Remediation != nil {
			rem(*im.Remediation)
		}
	}
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
