package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/posture"
)

// refSeverities are the severities a rule may have, most severe first.
var refSeverities = [...]string{string(rule.Critical), string(rule.High), string(rule.Medium), string(rule.Low)}

// refRulesView is what rules.html receives.
type refRulesView struct {
	Query      url.Values
	Q          string
	Category   string
	Severity   string
	Framework  string
	Categories []string
	Severities []string
	Frameworks []posture.Framework
	Total      int // rules in the corpus
	Rules      []refRuleRow
}

// refRuleRow is one rule of the list.
type refRuleRow struct {
	ID, Title, Category string
	Severity            rule.Severity
	Frameworks          []string
}

// rulesPage answers GET /rules: the rule corpus, filtered by text,
// category, severity and framework.
func (u *UI) rulesPage(c *gin.Context) {
	idx := u.d.Posture.Index()
	q := c.Request.URL.Query()
	v := &refRulesView{Query: q, Q: strings.TrimSpace(q.Get("q")), Category: q.Get("category"), Severity: q.Get("severity"),
		Framework: q.Get("framework"), Categories: rule.Categories, Severities: refSeverities[:], Frameworks: idx.Frameworks()}
	page := Page{Title: "Rules", Data: v, Nav: "rules"}
	all := idx.Rules()
	v.Total = len(all)
	inFramework, ok := idx.RuleIDs(v.Framework)
	switch {
	case !ok:
		page.Error = fmt.Sprintf("framework: unknown framework %q", historyClip(v.Framework, 80))
	case v.Category != "" && !slices.Contains(rule.Categories, v.Category):
		page.Error = fmt.Sprintf("category: must be one of %s, got %q", strings.Join(rule.Categories, ", "), historyClip(v.Category, 40))
	case v.Severity != "" && !slices.Contains(v.Severities, v.Severity):
		page.Error = fmt.Sprintf("severity: must be one of %s, got %q", strings.Join(v.Severities, ", "), historyClip(v.Severity, 40))
	}
	if page.Error != "" {
		u.render(c, http.StatusBadRequest, "rules", page)
		return
	}
	inFw := make(map[string]bool, len(inFramework))
	for _, rid := range inFramework {
		inFw[rid] = true
	}
	needle := strings.ToLower(v.Q)
	for _, r := range all {
		if (v.Framework != "" && !inFw[r.ID]) ||
			(v.Category != "" && r.Category != v.Category) ||
			(v.Severity != "" && string(r.Severity) != v.Severity) ||
			(needle != "" && !strings.Contains(strings.ToLower(r.ID), needle) && !strings.Contains(strings.ToLower(r.Title), needle)) {
			continue
		}
		row := refRuleRow{ID: r.ID, Title: r.Title, Category: r.Category, Severity: r.Severity}
		for _, ref := range idx.Refs(r.ID) {
			if n := len(row.Frameworks); n == 0 || row.Frameworks[n-1] != ref.Framework {
				row.Frameworks = append(row.Frameworks, ref.Framework)
			}
		}
		v.Rules = append(v.Rules, row)
	}
	u.render(c, http.StatusOK, "rules", page)
}

// refRuleView is what rule.html receives.
type refRuleView struct {
	api.RuleView
	Implementations []refImpl
	Refs            []refFramework
	Benchmarks      string // versioned benchmark entries as YAML; "" when none
	Related         []refRelatedGroup
}

// refImpl is one implementation of a rule, its check and fix as YAML.
type refImpl struct {
	When        string
	Default     bool
	Check       string
	Remediation string // "" when the implementation has no remediation
	Note        string // the human-readable fix, when the rule gives one
}

// refFramework is a rule's references to one framework.
type refFramework struct {
	Framework string
	Title     string
	Derived   bool // the rule maps there only through another framework
	Controls  []string
}

// refRelatedGroup is one kind of link between rules.
type refRelatedGroup struct {
	Label string
	Rules []refRelated
}

// refRelated is a rule named by another; Known is false when the corpus
// does not hold it, so no link is drawn.
type refRelated struct {
	ID    string
	Known bool
}

// rulePage answers GET /rules/:id: everything about one rule.
func (u *UI) rulePage(c *gin.Context) {
	id := c.Param("id")
	d, ok := u.d.API.RuleDetail(id)
	if !ok {
		u.renderError(c, req(c), http.StatusNotFound, fmt.Sprintf("There is no rule %q in the server's corpus.", historyClip(id, 120)))
		return
	}
	idx := u.d.Posture.Index()
	v := &refRuleView{RuleView: d}
	for _, im := range d.Implementations {
		iv := refImpl{When: im.When, Default: im.Default, Check: refYAML(im.Check)}
		if im.Remediation != nil {
			iv.Note = im.Remediation.Note
			rem := *im.Remediation
			rem.Note = ""
			iv.Remediation = refYAML(rem)
		}
		v.Implementations = append(v.Implementations, iv)
	}
	if len(d.Benchmarks) > 0 {
		v.Benchmarks = refYAML(d.Benchmarks)
	}
	titles := map[string]string{}
	for _, fw := range idx.Frameworks() {
		titles[fw.ID] = fw.Title
	}
	r := idx.Rule(id)
	direct := map[string]bool{}
	for _, p := range r.References.Pairs() {
		direct[p.Framework] = true
	}
	for _, ref := range d.FrameworkRefs {
		n := len(v.Refs)
		if n == 0 || v.Refs[n-1].Framework != ref.Framework {
			v.Refs = append(v.Refs, refFramework{Framework: ref.Framework, Title: titles[ref.Framework], Derived: !direct[ref.Framework]})
			n++
		}
		v.Refs[n-1].Controls = append(v.Refs[n-1].Controls, ref.Control)
	}
	for _, g := range []struct {
		label string
		ids   []string
	}{{"Depends on", d.DependsOn}, {"Conflicts with", d.ConflictsWith}, {"Supersedes", d.Supersedes}} {
		if len(g.ids) == 0 {
			continue
		}
		rg := refRelatedGroup{Label: g.label}
		for _, other := range g.ids {
			rg.Rules = append(rg.Rules, refRelated{ID: other, Known: idx.Rule(other) != nil})
		}
		v.Related = append(v.Related, rg)
	}
	u.render(c, http.StatusOK, "rule", Page{Title: d.ID, Data: v, Nav: "rules"})
}

// refYAML renders a REST view as YAML: through its JSON form, so the field
// names and omissions are exactly the API's, with map keys sorted.
func refYAML(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(cannot render: %v)", err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return fmt.Sprintf("(cannot render: %v)", err)
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return fmt.Sprintf("(cannot render: %v)", err)
	}
	return strings.TrimRight(out.String(), "\n")
}

// frameworksPage answers GET /frameworks: every framework with how much
// of it the corpus covers.
func (u *UI) frameworksPage(c *gin.Context) {
	u.render(c, http.StatusOK, "frameworks", Page{Title: "Frameworks", Data: u.d.Posture.Index().Frameworks(), Nav: "frameworks"})
}

// refFrameworkView is what framework.html receives.
type refFrameworkView struct {
	posture.Framework
	ControlList []posture.Control
	Fleet       posture.FleetPosture
	FleetBand   posture.Band // band of the fleet's score; none when no host has state
}

// frameworkPage answers GET /frameworks/:id: a framework's controls with
// the rules covering each, and the fleet's score against it now.
func (u *UI) frameworkPage(c *gin.Context) {
	id := c.Param("id")
	idx := u.d.Posture.Index()
	ctls, ok := idx.Controls(id)
	if !ok {
		u.renderError(c, req(c), http.StatusNotFound, fmt.Sprintf("There is no framework %q; the frameworks page lists them.", historyClip(id, 80)))
		return
	}
	v := &refFrameworkView{ControlList: ctls}
	for _, fw := range idx.Frameworks() {
		if fw.ID == id {
			v.Framework = fw
		}
	}
	fp, err := u.d.Posture.Fleet(c.Request.Context(), posture.FleetQuery{Framework: id})
	if err != nil {
		u.log.Error("ui framework", "framework", id, "request_id", api.RequestID(c), "err", err)
		u.renderError(c, req(c), http.StatusInternalServerError, "The server could not compute the fleet's posture; see the server log for request "+api.RequestID(c)+".")
		return
	}
	v.Fleet = fp
	if n := fp.Counts; n.Pass+n.Fail+n.Error+n.Skipped > 0 {
		v.FleetBand = posture.BandOf(fp.Score, n.CriticalFail)
	}
	title := v.Title
	if title == "" {
		title = id
	}
	u.render(c, http.StatusOK, "framework", Page{Title: title, Data: v, Nav: "frameworks"})
}
