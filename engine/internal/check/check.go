// Package check implements the check methods of the rule format. Each
// method says which facts it needs (Needs) and judges them in memory (Eval),
// which is what lets the engine fetch all facts of a scan in one batch.
package check

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

// Env is what a check may know about the host besides its facts.
type Env struct {
	Kind target.Kind
	Caps map[string]bool
}

// Live reports whether the target is a running system (a kernel, processes),
// as opposed to a root directory read from outside.
func (e Env) Live() bool { return e.Kind != target.KindRootDir }

// Outcome is a check's verdict with its evidence.
type Outcome struct {
	Status   result.Status
	Reason   string
	Evidence []result.Evidence
}

type params map[string]rule.Param

func (p params) str(name string) string { return p[name].Str }

func (p params) has(name string) bool { _, ok := p[name]; return ok }

func (p params) list(name string) []string { return p[name].Strings() }

func (p params) integer(name string, def int) int {
	pr, ok := p[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(pr.Str))
	if err != nil {
		return def
	}
	return n
}

func (p params) boolean(name string) (bool, bool) {
	pr, ok := p[name]
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(pr.Str)) {
	case "true", "yes", "on":
		return true, true
	}
	return false, true
}

type method struct {
	needs func(p params, env Env) []target.Request
	eval  func(p params, env Env, f *target.Facts) Outcome
}

var methods map[string]method

func init() {
	methods = map[string]method{
		"config_value":          {needsConfigValue, evalConfigValue},
		"sshd_effective_config": {needsSSHD, evalSSHD},
		"sysctl_value":          {needsSysctl, evalSysctl},
		"package_state":         {needsPackages, evalPackageState},
		"package_installed":     {needsPackages, pkgMethod("package_installed", "present", "")},
		"package_absent":        {needsPackages, pkgMethod("package_absent", "absent", "")},
		"dpkg_installed":        {needsPackages, pkgMethod("dpkg_installed", "present", "dpkg")},
		"dpkg_absent":           {needsPackages, pkgMethod("dpkg_absent", "absent", "dpkg")},
		"service_state":         {needsService, evalServiceState},
		"service_enabled":       {needsService, evalServiceEnabled},
		"service_active":        {needsService, evalServiceActive},
		"file_permission":       {needsStat, evalFilePermissions},
		"file_permissions":      {needsStat, evalFilePermissions},
		"file_exists":           {needsStat, evalFileExists(true)},
		"file_absent":           {needsStat, evalFileExists(false)},
		"file_content":          {needsRead, evalFileContent},
		"file_content_match":    {needsRead, evalFileContentMatch},
		"mount_option":          {needsMounts, evalMountOption},
		"kernel_module_state":   {needsModule, evalModule},
		"audit_rule_exists":     {needsAudit, evalAudit},
		"grub_parameter":        {needsGrub, evalGrub},
		"selinux_state":         {needsSELinux, evalSELinux},
		"apparmor_state":        {needsAppArmor, evalAppArmor},
		"systemd_target":        {needsSystemdTarget, evalSystemdTarget},
		"command":               {needsCommand, evalCommand},
		"set_compare":           {needsSetCompare, evalSetCompare},
		"special_files":         {needsSpecial, evalSpecial},
	}
}

// Implemented reports whether the engine implements the named method; a
// test keeps this in step with rule.Methods.
func Implemented(name string) bool { _, ok := methods[name]; return ok }

// Needs returns every fact the check needs, for planning.
func Needs(c *rule.Check, env Env) []target.Request {
	switch {
	case c.Not != nil:
		return Needs(c.Not, env)
	case c.All != nil || c.Any != nil:
		var out []target.Request
		for i := range c.All {
			out = append(out, Needs(&c.All[i], env)...)
		}
		for i := range c.Any {
			out = append(out, Needs(&c.Any[i], env)...)
		}
		return out
	}
	m, ok := methods[c.Method]
	if !ok {
		return nil
	}
	return m.needs(params(c.Params), env)
}

// Eval judges the check against gathered facts.
func Eval(c *rule.Check, env Env, f *target.Facts) Outcome {
	switch {
	case c.Not != nil:
		o := Eval(c.Not, env, f)
		// The evidence states what the rule required: the opposite of
		// what the inner check looks for.
		for i := range o.Evidence {
			o.Evidence[i].Expected = "not (" + o.Evidence[i].Expected + ")"
		}
		switch o.Status {
		case result.Pass:
			o.Status, o.Reason = result.Fail, "negated check passed: "+o.Reason
		case result.Fail:
			o.Status, o.Reason = result.Pass, "negated check failed as required: "+o.Reason
		}
		return o
	case c.All != nil:
		return combine(c.All, env, f, true)
	case c.Any != nil:
		return combine(c.Any, env, f, false)
	}
	m, ok := methods[c.Method]
	if !ok {
		return Outcome{Status: result.Error, Reason: fmt.Sprintf("check method %q is not implemented", c.Method)}
	}
	return m.eval(params(c.Params), env, f)
}

// combine evaluates a list. For all: any fail fails, else any error errors,
// else the parts that could be assessed decide (skipped parts do not count,
// all skipped is skipped). For any: one pass passes, else error, else fail,
// else skipped.
func combine(list []rule.Check, env Env, f *target.Facts, all bool) Outcome {
	var out Outcome
	count := map[result.Status]int{}
	var reasons = map[result.Status][]string{}
	for i := range list {
		o := Eval(&list[i], env, f)
		count[o.Status]++
		if o.Reason != "" {
			reasons[o.Status] = append(reasons[o.Status], o.Reason)
		}
		out.Evidence = append(out.Evidence, o.Evidence...)
	}
	order := []result.Status{result.Fail, result.Error, result.Pass, result.Skipped}
	if !all {
		order = []result.Status{result.Pass, result.Error, result.Fail, result.Skipped}
	}
	for _, s := range order {
		if count[s] > 0 {
			out.Status = s
			out.Reason = strings.Join(reasons[s], "; ")
			return out
		}
	}
	out.Status = result.Skipped
	return out
}

// ev builds an evidence record from a response.
func ev(methodName string, r *target.Response, expected, actual string) result.Evidence {
	e := result.Evidence{Method: methodName, Expected: expected, Actual: actual}
	if r == nil {
		e.Time = time.Now().UTC()
		return e
	}
	e.Probe = r.Req.String()
	e.Time = r.Started.UTC()
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Duration = float64(r.Duration.Microseconds()) / 1000
	if r.Req.Op == target.OpExec {
		code := r.ExitCode
		e.ExitCode = &code
		var t1, t2 bool
		e.Stdout, t1 = result.Cap(r.Stdout)
		e.Stderr, t2 = result.Cap(r.Stderr)
		e.Truncated = t1 || t2 || r.OutputTruncated
	}
	return e
}

// unobserved turns a failed observation into an outcome: skipped when the
// target cannot observe that kind of fact, error otherwise.
func unobserved(methodName string, r *target.Response, expected string) Outcome {
	e := ev(methodName, r, expected, "")
	if r == nil {
		return Outcome{Status: result.Error, Reason: "fact was not gathered (engine bug)", Evidence: []result.Evidence{e}}
	}
	e.Actual = "not observed: " + r.Err.Error()
	if errors.Is(r.Err, target.ErrUnsupported) {
		return Outcome{Status: result.Skipped, Reason: r.Req.String() + ": " + r.Err.Error(), Evidence: []result.Evidence{e}}
	}
	return Outcome{Status: result.Error, Reason: r.Req.String() + ": " + r.Err.Error(), Evidence: []result.Evidence{e}}
}

func verdict(ok bool, reason string, e ...result.Evidence) Outcome {
	s := result.Fail
	if ok {
		s = result.Pass
	}
	return Outcome{Status: s, Reason: reason, Evidence: e}
}

func skipped(reason string, e ...result.Evidence) Outcome {
	return Outcome{Status: result.Skipped, Reason: reason, Evidence: e}
}

func errored(reason string, e ...result.Evidence) Outcome {
	return Outcome{Status: result.Error, Reason: reason, Evidence: e}
}

// compare applies a rule comparator. == and != ignore case when textual;
// ordering comparators need integers on both sides. exact makes == and !=
// case-sensitive (sysctl values).
func compare(actual, comparator, expected string, exact bool) (bool, error) {
	if comparator == "" {
		comparator = "=="
	}
	switch comparator {
	case "==", "!=":
		eq := strings.EqualFold(actual, expected)
		if exact {
			eq = actual == expected
		}
		if comparator == "==" {
			return eq, nil
		}
		return !eq, nil
	}
	want, err := strconv.ParseInt(strings.TrimSpace(expected), 10, 64)
	if err != nil {
		return false, fmt.Errorf("expected value %q is not an integer, as comparator %s requires", expected, comparator)
	}
	got, err := strconv.ParseInt(strings.TrimSpace(actual), 10, 64)
	if err != nil {
		return false, errNotNumber
	}
	switch comparator {
	case "<":
		return got < want, nil
	case "<=":
		return got <= want, nil
	case ">":
		return got > want, nil
	case ">=":
		return got >= want, nil
	}
	return false, fmt.Errorf("unknown comparator %q", comparator)
}

var errNotNumber = errors.New("observed value is not an integer")

func describe(comparator, expected string) string {
	if comparator == "" {
		comparator = "=="
	}
	return comparator + " " + expected
}

func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }
