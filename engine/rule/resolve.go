package rule

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vigilfleet/vigil/engine/shell"
)

// UndefinedError names the variables a rule uses that have no value. The
// engine reports such a rule as skipped with these names.
type UndefinedError struct {
	Rule  string
	Names []string
}

func (e *UndefinedError) Error() string {
	return fmt.Sprintf("rule %s: undefined variable(s): %s", e.Rule, strings.Join(e.Names, ", "))
}

// Resolve returns a copy of r with every {{ variable }} replaced by its value
// from vars. A value placed into a shell script parameter (command run/cmd,
// set_compare observed_command) is quoted for sh, so write such placeholders
// unquoted in the script. A rule without variables is returned as is.
// Missing variables give an *UndefinedError; a value that makes a parameter
// invalid (a non-integer where an integer belongs) gives an error naming the
// field.
func (r *Rule) Resolve(vars map[string]string) (*Rule, error) {
	if len(r.vars) == 0 {
		return r, nil
	}
	var missing []string
	seen := map[string]bool{}
	for _, name := range r.vars {
		if _, ok := vars[name]; !ok && !seen[name] {
			seen[name] = true
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, &UndefinedError{Rule: r.ID, Names: missing}
	}
	rs := resolver{tokens: r.vars, vars: vars}
	out := *r
	out.Title = rs.text(r.Title, false)
	out.Description = rs.text(r.Description, false)
	out.Rationale = rs.text(r.Rationale, false)
	out.Implementations = make([]Implementation, len(r.Implementations))
	for i, im := range r.Implementations {
		im.Check = rs.check(im.Check, fmt.Sprintf("implementations[%d].check", i))
		if im.Remediation != nil {
			rem := rs.remediation(*im.Remediation)
			im.Remediation = &rem
		}
		out.Implementations[i] = im
	}
	out.vars = nil
	if len(rs.errs) > 0 {
		return nil, fmt.Errorf("rule %s (%s): %s", r.ID, r.Location(), strings.Join(rs.errs, "; "))
	}
	return &out, nil
}

type resolver struct {
	tokens map[string]string // token -> variable name
	vars   map[string]string
	errs   []string
}

var anyToken = regexp.MustCompile(`__vigilvar_[0-9]+__`)

func (rs *resolver) text(s string, quote bool) string {
	if !strings.Contains(s, "__vigilvar_") {
		return s
	}
	return anyToken.ReplaceAllStringFunc(s, func(tok string) string {
		name, ok := rs.tokens[tok]
		if !ok {
			return tok
		}
		v := rs.vars[name]
		if quote {
			return shell.Quote(v)
		}
		return v
	})
}

func (rs *resolver) check(c Check, field string) Check {
	out := c
	if c.Not != nil {
		inner := rs.check(*c.Not, field+".not")
		out.Not = &inner
		return out
	}
	if c.All != nil {
		out.All = make([]Check, len(c.All))
		for i := range c.All {
			out.All[i] = rs.check(c.All[i], fmt.Sprintf("%s.checks[%d]", field, i))
		}
		return out
	}
	if c.Any != nil {
		out.Any = make([]Check, len(c.Any))
		for i := range c.Any {
			out.Any[i] = rs.check(c.Any[i], fmt.Sprintf("%s.any[%d]", field, i))
		}
		return out
	}
	spec := Methods[c.Method]
	out.Params = make(map[string]Param, len(c.Params))
	for name, p := range c.Params {
		ps := spec.Params[name]
		np := p
		if p.IsList {
			np.List = make([]string, len(p.List))
			for i, item := range p.List {
				np.List[i] = rs.text(item, false)
			}
		} else {
			np.Str = rs.text(p.Str, ps.Kind == KindShell)
			if np.Str != p.Str {
				if err := ValidateParam(np, ps); err != nil {
					rs.errs = append(rs.errs, fmt.Sprintf("%s.%s (line %d): %v", field, name, p.Line, err))
				}
			}
		}
		out.Params[name] = np
	}
	return out
}

func (rs *resolver) remediation(r Remediation) Remediation {
	out := r
	out.Params = make(map[string]Param, len(r.Params))
	for k, p := range r.Params {
		np := p
		np.Str = rs.text(p.Str, false)
		if p.IsList {
			np.List = make([]string, len(p.List))
			for i, s := range p.List {
				np.List[i] = rs.text(s, false)
			}
		}
		out.Params[k] = np
	}
	if r.Steps != nil {
		out.Steps = make([]Remediation, len(r.Steps))
		for i := range r.Steps {
			out.Steps[i] = rs.remediation(r.Steps[i])
		}
	}
	return out
}
