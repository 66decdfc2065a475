package rule

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadError is one problem found in a rule file.
type LoadError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e LoadError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// LoadErrors is every problem found while loading a corpus. The loader
// reports them all at once so an author fixes a corpus in one pass.
type LoadErrors []LoadError

func (es LoadErrors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors in rules:", len(es))
	for _, e := range es {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// MaxFileSize bounds one rule file; a rule is a few kilobytes.
const MaxFileSize = 1 << 20

// LoadDir loads every *.yml and *.yaml rule under dir (recursively). Files
// whose name starts with "_" or "." and the directories "frameworks",
// "testdata", "tests" and "defaults.d" are not rules; a top-level
// defaults.yml is the corpus's variable defaults, not a rule. It returns the rules sorted by id,
// or LoadErrors listing every problem.
func LoadDir(dir string) ([]*Rule, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(name, ".") || name == "frameworks" || name == "testdata" || name == "tests" || name == "defaults.d") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		if filepath.Dir(path) == filepath.Clean(dir) && (name == "defaults.yml" || name == "defaults.yaml") {
			return nil
		}
		if strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".yaml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rules directory %s: %w", dir, err)
	}
	sort.Strings(files)
	var rules []*Rule
	var errs LoadErrors
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			errs = append(errs, LoadError{File: f, Msg: err.Error()})
			continue
		}
		r, ferrs := Parse(f, data)
		errs = append(errs, ferrs...)
		if r != nil {
			rules = append(rules, r)
		}
	}
	errs = append(errs, CheckCorpus(rules)...)
	if len(errs) > 0 {
		return rules, errs
	}
	return rules, nil
}

func readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, larger than the %d byte limit for a rule", st.Size(), MaxFileSize)
	}
	return os.ReadFile(path)
}

// CheckCorpus checks what only the whole corpus can tell: duplicate ids,
// references to unknown rules, and dependency cycles.
func CheckCorpus(rules []*Rule) LoadErrors {
	var errs LoadErrors
	byID := map[string]*Rule{}
	for _, r := range rules {
		if prev, ok := byID[r.ID]; ok {
			errs = append(errs, LoadError{File: r.File, Line: r.Line, Field: "id", Msg: fmt.Sprintf("duplicate rule id %q (also in %s)", r.ID, prev.Location())})
			continue
		}
		byID[r.ID] = r
	}
	for _, r := range rules {
		for field, ids := range map[string][]string{"depends_on": r.DependsOn, "conflicts_with": r.ConflictsWith, "supersedes": r.Supersedes} {
			for _, id := range ids {
				if _, ok := byID[id]; !ok {
					errs = append(errs, LoadError{File: r.File, Line: r.Line, Field: field, Msg: fmt.Sprintf("unknown rule id %q", id)})
				} else if id == r.ID {
					errs = append(errs, LoadError{File: r.File, Line: r.Line, Field: field, Msg: "a rule cannot refer to itself"})
				}
			}
		}
	}
	// Cycle detection over depends_on (iterative colouring per start node).
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var visit func(id string, path []string) []string
	visit = func(id string, path []string) []string {
		switch state[id] {
		case 1:
			return append(path, id)
		case 2:
			return nil
		}
		state[id] = 1
		if r := byID[id]; r != nil {
			for _, dep := range r.DependsOn {
				if _, ok := byID[dep]; !ok || dep == id {
					continue
				}
				if cyc := visit(dep, append(path, id)); cyc != nil {
					return cyc
				}
			}
		}
		state[id] = 2
		return nil
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if state[id] == 0 {
			if cyc := visit(id, nil); cyc != nil {
				r := byID[id]
				errs = append(errs, LoadError{File: r.File, Line: r.Line, Field: "depends_on", Msg: "dependency cycle: " + strings.Join(cyc, " -> ")})
				for _, c := range cyc {
					state[c] = 2
				}
			}
		}
	}
	return errs
}

var (
	varPattern   = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}`)
	tokenPattern = regexp.MustCompile(`__vigilvar_[0-9]+__`)
	idPattern    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// Parse parses one rule file. It returns the rule (nil when it could not be
// built at all) and every problem found, each with file, line and field.
func Parse(file string, data []byte) (*Rule, LoadErrors) {
	p := &parser{file: file, vars: map[string]string{}}
	// Placeholders become plain tokens so the YAML parses whatever the
	// variable's value will be; Resolve substitutes them per host.
	n := 0
	text := varPattern.ReplaceAllFunc(data, func(m []byte) []byte {
		name := string(varPattern.FindSubmatch(m)[1])
		tok := fmt.Sprintf("__vigilvar_%d__", n)
		n++
		p.vars[tok] = name
		return []byte(tok)
	})
	if bytes.Contains(text, []byte("{{")) {
		line := 1 + bytes.Count(text[:bytes.Index(text, []byte("{{"))], []byte("\n"))
		p.errf(line, "", "malformed variable placeholder: use {{ name }} with a name of letters, digits and _")
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&doc); err != nil {
		p.errs = append(p.errs, yamlError(file, err))
		return nil, p.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errf(extra.Line, "", "a rule file holds exactly one YAML document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errf(1, "", "empty rule file")
		return nil, p.errs
	}
	r := p.rule(doc.Content[0])
	if r == nil {
		return nil, p.errs
	}
	r.vars = p.vars
	p.checkLocation(r)
	return r, p.errs
}

func yamlError(file string, err error) LoadError {
	msg := err.Error()
	line := 0
	if m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = strings.Join(te.Errors, "; ")
	}
	return LoadError{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

type parser struct {
	file string
	errs LoadErrors
	vars map[string]string
}

func (p *parser) errf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, LoadError{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping checks that n is a mapping with only allowed keys and returns its
// entries by key. Duplicate keys are errors too.
func (p *parser) mapping(n *yaml.Node, field string, allowed map[string]bool) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, field, "must be a mapping, got %s", kindName(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if _, dup := out[key]; dup {
			p.errf(k.Line, join(field, key), "duplicate key")
			continue
		}
		if allowed != nil && !allowed[key] {
			p.errf(k.Line, join(field, key), "unknown key (allowed: %s)", keysOf(allowed))
			continue
		}
		out[key] = v
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func keysOf(m map[string]bool) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func (p *parser) str(n *yaml.Node, field string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.errf(n.Line, field, "must be a string, got %s", kindName(n))
		return ""
	}
	return n.Value
}

func (p *parser) strList(n *yaml.Node, field string) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			return nil
		}
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, field, "must be a list of strings, got %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			p.errf(c.Line, fmt.Sprintf("%s[%d]", field, i), "must be a string, got %s", kindName(c))
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	if n == nil {
		return false, false
	}
	if n.Kind == yaml.ScalarNode && !strings.Contains(n.Value, "__vigilvar_") {
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			return true, true
		case "false", "no", "off":
			return false, true
		}
	}
	p.errf(n.Line, field, "must be true or false, got %s", kindName(n))
	return false, false
}

var ruleKeys = set("id", "title", "description", "rationale", "severity", "category", "tags",
	"references", "platforms", "implementations", "depends_on", "conflicts_with", "supersedes", "transactional")

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func (p *parser) rule(n *yaml.Node) *Rule {
	m := p.mapping(n, "", ruleKeys)
	if m == nil {
		return nil
	}
	r := &Rule{File: p.file, Line: n.Line}
	for _, req := range []string{"id", "title", "description", "rationale", "severity", "category", "implementations"} {
		if m[req] == nil {
			p.errf(n.Line, req, "required field is missing")
		}
	}
	r.ID = p.str(m["id"], "id")
	if r.ID != "" && !idPattern.MatchString(r.ID) {
		p.errf(m["id"].Line, "id", "%q is not kebab-case (lower-case letters, digits and single hyphens)", r.ID)
	}
	r.Title = p.str(m["title"], "title")
	r.Description = p.str(m["description"], "description")
	r.Rationale = p.str(m["rationale"], "rationale")
	for _, f := range []string{"title", "description", "rationale"} {
		if v := m[f]; v != nil && v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == "" {
			p.errf(v.Line, f, "must not be empty")
		}
	}
	if s := p.str(m["severity"], "severity"); s != "" {
		r.Severity = Severity(s)
		if r.Severity.Rank() == 0 {
			p.errf(m["severity"].Line, "severity", "%q is not one of critical, high, medium, low", s)
		}
	}
	r.Category = p.str(m["category"], "category")
	if r.Category != "" && !contains(Categories, r.Category) {
		p.errf(m["category"].Line, "category", "%q is not one of %s", r.Category, strings.Join(Categories, ", "))
	}
	r.Tags = p.strList(m["tags"], "tags")
	if v := m["references"]; v != nil {
		r.References = p.references(v)
	}
	if v := m["platforms"]; v != nil {
		r.Platforms = p.platforms(v)
	}
	if v := m["implementations"]; v != nil {
		r.Implementations = p.implementations(v)
	}
	r.DependsOn = p.strList(m["depends_on"], "depends_on")
	r.ConflictsWith = p.strList(m["conflicts_with"], "conflicts_with")
	r.Supersedes = p.strList(m["supersedes"], "supersedes")
	if v := m["transactional"]; v != nil {
		if b, ok := p.boolean(v, "transactional"); ok {
			r.Transactional = &b
		}
	}
	return r
}

// checkLocation enforces id == file stem and category == folder name when
// the rule lives in a category folder.
func (p *parser) checkLocation(r *Rule) {
	base := filepath.Base(p.file)
	stem := strings.TrimSuffix(strings.TrimSuffix(base, ".yml"), ".yaml")
	if r.ID != "" && stem != r.ID && stem != base {
		p.errf(r.Line, "id", "id %q does not match the file name %q", r.ID, base)
	}
	dir := filepath.Base(filepath.Dir(p.file))
	if contains(Categories, dir) && r.Category != "" && r.Category != dir {
		p.errf(r.Line, "category", "category %q does not match the folder %q", r.Category, dir)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var versionedRefKeys = set("section", "level", "type", "vuln_id", "stig_id", "severity")

var (
	osKeyPattern = regexp.MustCompile(`^[a-z]+[0-9]+$`)
	fwPattern    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

func (p *parser) references(n *yaml.Node) References {
	refs := References{Versioned: map[string]map[string][]VersionedRef{}, Flat: map[string][]string{}}
	m := p.mapping(n, "references", nil)
	for fw, v := range m {
		field := "references." + fw
		if !fwPattern.MatchString(fw) {
			p.errf(v.Line, field, "framework id must be lower-case letters, digits and _")
			continue
		}
		if v.Kind == yaml.SequenceNode || v.Kind == yaml.ScalarNode {
			ids := p.strList(v, field)
			for i, id := range ids {
				if strings.TrimSpace(id) == "" {
					p.errf(v.Line, fmt.Sprintf("%s[%d]", field, i), "empty control id")
				}
			}
			refs.Flat[fw] = ids
			continue
		}
		byOS := p.mapping(v, field, nil)
		refs.Versioned[fw] = map[string][]VersionedRef{}
		for osKey, e := range byOS {
			ef := field + "." + osKey
			if !osKeyPattern.MatchString(osKey) {
				p.errf(e.Line, ef, "must be <os><major> such as debian12 or rhel9")
				continue
			}
			items := []*yaml.Node{e}
			if e.Kind == yaml.SequenceNode {
				items = e.Content
			}
			for _, it := range items {
				em := p.mapping(it, ef, versionedRefKeys)
				if em == nil {
					continue
				}
				vr := VersionedRef{
					Section: p.str(em["section"], ef+".section"), Level: p.str(em["level"], ef+".level"),
					Type: p.str(em["type"], ef+".type"), VulnID: p.str(em["vuln_id"], ef+".vuln_id"),
					StigID: p.str(em["stig_id"], ef+".stig_id"), Severity: p.str(em["severity"], ef+".severity"),
				}
				if vr.Section == "" && vr.VulnID == "" && vr.StigID == "" {
					p.errf(it.Line, ef, "needs a section, vuln_id or stig_id")
				}
				refs.Versioned[fw][osKey] = append(refs.Versioned[fw][osKey], vr)
			}
		}
	}
	return refs
}

var platformKeys = set("family", "min_version", "max_version", "derivatives")

func (p *parser) platforms(n *yaml.Node) []Platform {
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "platforms", "must be a list, got %s", kindName(n))
		return nil
	}
	var out []Platform
	for i, c := range n.Content {
		field := fmt.Sprintf("platforms[%d]", i)
		m := p.mapping(c, field, platformKeys)
		if m == nil {
			continue
		}
		pl := Platform{Derivatives: true}
		pl.Family = strings.ToLower(p.str(m["family"], field+".family"))
		if pl.Family == "" {
			p.errf(c.Line, field+".family", "required field is missing")
		}
		pl.MinVersion = p.str(m["min_version"], field+".min_version")
		pl.MaxVersion = p.str(m["max_version"], field+".max_version")
		for _, f := range []string{"min_version", "max_version"} {
			if v := m[f]; v != nil {
				if _, ok := MajorVersion(v.Value); !ok {
					p.errf(v.Line, field+"."+f, "%q is not a version number", v.Value)
				}
			}
		}
		if v := m["derivatives"]; v != nil {
			pl.Derivatives, _ = p.boolean(v, field+".derivatives")
		}
		out = append(out, pl)
	}
	return out
}

// MajorVersion returns the major number of a version such as "22.04".
func MajorVersion(v string) (int, bool) {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, ".-_ "); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

var implKeys = set("when", "default", "check", "remediation")

func (p *parser) implementations(n *yaml.Node) []Implementation {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errf(n.Line, "implementations", "must be a non-empty list")
		return nil
	}
	var out []Implementation
	defaults, ungated := 0, 0
	for i, c := range n.Content {
		field := fmt.Sprintf("implementations[%d]", i)
		m := p.mapping(c, field, implKeys)
		if m == nil {
			continue
		}
		im := Implementation{Line: c.Line}
		if v := m["when"]; v != nil {
			im.When = p.gate(v, field+".when")
		}
		if v := m["default"]; v != nil {
			im.Default, _ = p.boolean(v, field+".default")
		}
		if im.Default {
			defaults++
		} else if im.When == nil {
			ungated++
		}
		if v := m["check"]; v != nil {
			im.Check = p.check(v, field+".check")
		} else {
			p.errf(c.Line, field+".check", "required field is missing")
		}
		if v := m["remediation"]; v != nil {
			r := p.remediation(v, field+".remediation")
			im.Remediation = &r
		}
		out = append(out, im)
	}
	if defaults > 1 {
		p.errf(n.Line, "implementations", "%d implementations are marked default; at most one may be", defaults)
	}
	// A lone implementation without a gate is the default; with several, an
	// ungated one must say it is the default, or selection would be ambiguous.
	if len(out) > 1 && ungated > 0 {
		p.errf(n.Line, "implementations", "an implementation without `when` must be marked `default: true`")
	}
	if len(out) == 1 && out[0].When == nil {
		out[0].Default = true
	}
	return out
}

func (p *parser) gate(n *yaml.Node, field string) *Gate {
	switch n.Kind {
	case yaml.ScalarNode:
		if !Capabilities[n.Value] {
			p.errf(n.Line, field, "unknown capability %q (known: %s)", n.Value, strings.Join(CapabilityNames(), ", "))
		}
		return &Gate{Cap: n.Value}
	case yaml.MappingNode:
		m := p.mapping(n, field, set("all", "any", "not"))
		if len(m) != 1 {
			if m != nil {
				p.errf(n.Line, field, "must have exactly one of all, any, not")
			}
			return &Gate{Cap: "__invalid__"}
		}
		if v := m["not"]; v != nil {
			return &Gate{Not: p.gate(v, field+".not")}
		}
		for key, v := range m {
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.errf(v.Line, field+"."+key, "must be a non-empty list")
				return &Gate{Cap: "__invalid__"}
			}
			gs := make([]Gate, 0, len(v.Content))
			for i, c := range v.Content {
				gs = append(gs, *p.gate(c, fmt.Sprintf("%s.%s[%d]", field, key, i)))
			}
			if key == "all" {
				return &Gate{All: gs}
			}
			return &Gate{Any: gs}
		}
	}
	p.errf(n.Line, field, "must be a capability name or {all|any|not: ...}, got %s", kindName(n))
	return &Gate{Cap: "__invalid__"}
}

func (p *parser) check(n *yaml.Node, field string) Check {
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, field, "must be a mapping with `method` or `checks`, got %s", kindName(n))
		return Check{Line: n.Line}
	}
	m := p.mapping(n, field, nil)
	c := Check{Line: n.Line}
	for _, comp := range []string{"checks", "any", "not"} {
		v, ok := m[comp]
		if !ok {
			continue
		}
		if len(m) != 1 {
			p.errf(n.Line, field, "`%s` cannot be combined with other keys", comp)
		}
		if comp == "not" {
			inner := p.check(v, field+".not")
			c.Not = &inner
			return c
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errf(v.Line, field+"."+comp, "must be a non-empty list of checks")
			return c
		}
		list := make([]Check, 0, len(v.Content))
		for i, it := range v.Content {
			list = append(list, p.check(it, fmt.Sprintf("%s.%s[%d]", field, comp, i)))
		}
		if comp == "checks" {
			c.All = list
		} else {
			c.Any = list
		}
		return c
	}
	mv := m["method"]
	if mv == nil {
		p.errf(n.Line, field, "needs `method` (or `checks`, `any`, `not`)")
		return c
	}
	c.Method = p.str(mv, field+".method")
	spec, ok := Methods[c.Method]
	if !ok {
		p.errf(mv.Line, field+".method", "unknown check method %q (known: %s)", c.Method, strings.Join(MethodNames(), ", "))
		return c
	}
	c.Params = map[string]Param{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "method" {
			continue
		}
		ps, ok := spec.Params[k.Value]
		pf := field + "." + k.Value
		if !ok {
			p.errf(k.Line, pf, "unknown parameter for method %s (allowed: %s)", c.Method, paramNames(spec))
			continue
		}
		c.Params[k.Value] = p.param(v, pf, ps)
	}
	for name, ps := range spec.Params {
		if _, ok := c.Params[name]; ps.Required && !ok {
			p.errf(n.Line, field+"."+name, "required parameter of method %s is missing", c.Method)
		}
	}
	for _, group := range spec.OneOf {
		found := false
		for _, name := range group {
			if _, ok := c.Params[name]; ok {
				found = true
			}
		}
		if !found {
			p.errf(n.Line, field, "method %s needs at least one of %s", c.Method, strings.Join(group, ", "))
		}
	}
	for _, name := range []string{"path", "scan_pattern"} {
		if pr, ok := c.Params[name]; ok && !tokenPattern.MatchString(pr.Str) && strings.ContainsAny(pr.Str, "*?[") {
			if _, err := path.Match(pr.Str, ""); err != nil {
				p.errf(pr.Line, field+"."+name, "%q is not a valid glob pattern: %v", pr.Str, err)
			}
		}
	}
	if c.Method == "command" {
		if _, a := c.Params["run"]; a {
			if _, b := c.Params["cmd"]; b {
				p.errf(n.Line, field, "give `run` or `cmd`, not both")
			}
		}
	}
	return c
}

func paramNames(spec MethodSpec) string {
	names := make([]string, 0, len(spec.Params))
	for k := range spec.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// param reads one check parameter and validates what can be validated before
// variables are substituted; ValidateParam repeats it after substitution.
func (p *parser) param(n *yaml.Node, field string, spec ParamSpec) Param {
	pr := Param{Line: n.Line}
	switch n.Kind {
	case yaml.ScalarNode:
		pr.Str = n.Value
		if n.Tag == "!!null" {
			pr.Str = ""
		}
	case yaml.SequenceNode:
		if spec.Kind != KindList {
			p.errf(n.Line, field, "must be a single value, got a list")
			return pr
		}
		pr.IsList = true
		pr.List = p.strList(n, field)
		return pr
	default:
		p.errf(n.Line, field, "must be a value, got %s", kindName(n))
		return pr
	}
	if !tokenPattern.MatchString(pr.Str) {
		if err := ValidateParam(pr, spec); err != nil {
			p.errf(n.Line, field, "%v", err)
		}
	}
	return pr
}

// ValidateParam checks a parameter value against its spec.
func ValidateParam(pr Param, spec ParamSpec) error {
	if pr.IsList {
		return nil
	}
	v := strings.TrimSpace(pr.Str)
	switch spec.Kind {
	case KindInt:
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("%q is not an integer", pr.Str)
		}
	case KindBool:
		switch strings.ToLower(v) {
		case "true", "false", "yes", "no", "on", "off":
		default:
			return fmt.Errorf("%q is not true or false", pr.Str)
		}
	case KindMode:
		if _, err := ParseMode(v); err != nil {
			return err
		}
	}
	if len(spec.Enum) > 0 && !contains(spec.Enum, v) {
		return fmt.Errorf("%q is not one of %s", pr.Str, strings.Join(spec.Enum, ", "))
	}
	return nil
}

// ParseMode parses an octal file mode such as "0600", "600" or "4755".
func ParseMode(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty file mode")
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 07777 {
		return 0, fmt.Errorf("%q is not an octal file mode", s)
	}
	return uint32(n), nil
}

func (p *parser) remediation(n *yaml.Node, field string) Remediation {
	rem := Remediation{Line: n.Line, Params: map[string]Param{}}
	m := p.mapping(n, field, nil)
	if m == nil {
		return rem
	}
	if v, ok := m["steps"]; ok {
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errf(v.Line, field+".steps", "must be a non-empty list")
			return rem
		}
		for i, c := range v.Content {
			rem.Steps = append(rem.Steps, p.remediation(c, fmt.Sprintf("%s.steps[%d]", field, i)))
		}
	} else if mv := m["mechanism"]; mv == nil {
		p.errf(n.Line, field, "needs `mechanism` or `steps`")
	} else {
		rem.Mechanism = p.str(mv, field+".mechanism")
		if !Mechanisms[rem.Mechanism] {
			p.errf(mv.Line, field+".mechanism", "unknown remediation mechanism %q", rem.Mechanism)
		}
	}
	for k, v := range m {
		if k == "steps" || k == "mechanism" {
			continue
		}
		pr := Param{Line: v.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			pr.Str = v.Value
		case yaml.SequenceNode:
			pr.IsList = true
			for _, c := range v.Content {
				if c.Kind == yaml.ScalarNode {
					pr.List = append(pr.List, c.Value)
				} else {
					// Structured remediation values are kept as YAML text.
					b, _ := yaml.Marshal(c)
					pr.List = append(pr.List, strings.TrimSpace(string(b)))
				}
			}
		default:
			b, _ := yaml.Marshal(v)
			pr.Str = strings.TrimSpace(string(b))
		}
		rem.Params[k] = pr
	}
	return rem
}
