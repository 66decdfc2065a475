// Package engine is Vigil's measurement engine: rules in, verdicts and
// evidence out. Its surface is deliberately small and stable:
//
//	rules, err := engine.LoadRules("rules/")                 // load_rules
//	cfg, err := engine.LoadConfig("/etc/vigil")              // load_config
//	s := engine.NewLocalSession()                            // or NewSSHSession, NewRootDirSession
//	p, err := engine.DetectPlatform(ctx, s)                  // detect_platform
//	caps, err := engine.DetectCapabilities(ctx, s)           // detect_capabilities
//	res := engine.EvaluateRule(ctx, s, rules[0])             // evaluate_rule
//	results, err := engine.CheckRulesFromPath(ctx, s, "rules/", []string{"high"}, nil)
//	report, err := engine.Scan(ctx, s, rules, engine.Filter{}) // everything, with the summary
//
// A scan is planned, not probed rule by rule: detection is one batch, then
// every fact the selected rules need is gathered in one more batch and the
// checks are judged in memory. Over SSH a scan is two round trips.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/engine/internal/check"
	"github.com/vigilfleet/vigil/engine/localtarget"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

// Re-exported result types, so callers need one import.
type (
	Result   = result.Result
	Evidence = result.Evidence
	Status   = result.Status
	Summary  = result.Summary
	Rule     = rule.Rule
)

// Session is one host being scanned: its target, its variables and forced
// capabilities, and what detection found (cached for the session's life).
type Session struct {
	Target target.Target
	// Vars are the variable values for this host (see Config.Vars).
	Vars map[string]string
	// CapOverrides force capabilities on or off after detection.
	CapOverrides map[string]bool

	mu   sync.Mutex
	info *HostInfo
}

// NewSession wraps any target.
func NewSession(t target.Target) *Session {
	return &Session{Target: t, Vars: map[string]string{}, CapOverrides: map[string]bool{}}
}

// NewLocalSession scans the machine the engine runs on.
func NewLocalSession() *Session { return NewSession(localtarget.New()) }

// NewRootDirSession scans a directory holding a root filesystem.
func NewRootDirSession(dir string) (*Session, error) {
	t, err := localtarget.NewRootDir(dir)
	if err != nil {
		return nil, err
	}
	return NewSession(t), nil
}

// Close releases the session's connection.
func (s *Session) Close() error { return s.Target.Close() }

// Detect probes platform and capabilities once per session.
func (s *Session) Detect(ctx context.Context) (*HostInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.info != nil {
		return s.info, nil
	}
	info, err := detect(ctx, s.Target, s.CapOverrides)
	if err != nil {
		return nil, err
	}
	s.info = info
	return info, nil
}

// DetectPlatform returns the host's platform from os-release.
func DetectPlatform(ctx context.Context, s *Session) (Platform, error) {
	info, err := s.Detect(ctx)
	if err != nil {
		return Platform{}, err
	}
	return info.Platform, nil
}

// DetectCapabilities returns the host's capabilities, overrides applied.
func DetectCapabilities(ctx context.Context, s *Session) (Capabilities, error) {
	info, err := s.Detect(ctx)
	if err != nil {
		return nil, err
	}
	return info.Capabilities, nil
}

// LoadRules loads a corpus directory (or a single rule file), reporting
// every error at once as rule.LoadErrors.
func LoadRules(path string) ([]*rule.Rule, error) {
	if strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml") {
		data, err := readRuleFile(path)
		if err != nil {
			return nil, err
		}
		r, errs := rule.Parse(path, data)
		if len(errs) > 0 {
			return nil, errs
		}
		return []*rule.Rule{r}, nil
	}
	return rule.LoadDir(path)
}

// Filter selects rules. Empty fields select everything; values within a
// field are alternatives.
type Filter struct {
	Severities []string // critical, high, medium, low
	Categories []string
	Frameworks []string // cis, cis_debian12, stig_rhel9, nist_800_53, ...
	RuleIDs    []string
}

// Match reports whether the filter selects r.
func (f Filter) Match(r *rule.Rule) bool {
	if len(f.Severities) > 0 && !containsFold(f.Severities, string(r.Severity)) {
		return false
	}
	if len(f.Categories) > 0 && !containsFold(f.Categories, r.Category) {
		return false
	}
	if len(f.RuleIDs) > 0 && !containsFold(f.RuleIDs, r.ID) {
		return false
	}
	if len(f.Frameworks) > 0 {
		ok := false
		for _, fw := range f.Frameworks {
			if r.References.HasFramework(fw) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// Report is one host's scan.
type Report struct {
	Host         string          `json:"host"`
	Platform     Platform        `json:"platform"`
	Capabilities []string        `json:"capabilities"`
	Results      []result.Result `json:"results"`
	Summary      result.Summary  `json:"summary"`
	RoundTrips   int             `json:"round_trips,omitempty"`
	// Error is set when the host could not be scanned at all (unreachable,
	// bad credentials, host key mismatch); Results is then empty.
	Error    string    `json:"error,omitempty"`
	Facts    int       `json:"facts"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_ms"`
}

// EvaluateRule evaluates one rule (and, silently, the rules it depends on).
func EvaluateRule(ctx context.Context, s *Session, r *rule.Rule, deps ...*rule.Rule) result.Result {
	rep, err := Scan(ctx, s, append([]*rule.Rule{r}, deps...), Filter{RuleIDs: []string{r.ID}})
	if err != nil {
		return errorResult(s.Target.Name(), r, err.Error())
	}
	for _, res := range rep.Results {
		if res.RuleID == r.ID {
			return res
		}
	}
	return errorResult(s.Target.Name(), r, "rule was not evaluated")
}

// CheckRulesFromPath loads the rules at rulesPath (with the corpus's
// defaults.yml for variables the session does not set) and scans the
// session's host with those of the given severities and categories.
func CheckRulesFromPath(ctx context.Context, s *Session, rulesPath string, severities, categories []string) ([]result.Result, error) {
	rules, err := LoadRules(rulesPath)
	if err != nil {
		return nil, err
	}
	cfg := NewConfig()
	if err := cfg.LoadCorpusDefaults(rulesPath); err != nil {
		return nil, err
	}
	for k, v := range s.Vars {
		cfg.CLI[k] = v
	}
	s.Vars = cfg.Vars(s.Target.Name(), nil)
	rep, err := Scan(ctx, s, rules, Filter{Severities: severities, Categories: categories})
	if err != nil {
		return nil, err
	}
	return rep.Results, nil
}

func errorResult(host string, r *rule.Rule, reason string) result.Result {
	return result.Result{Host: host, RuleID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category,
		Status: result.Error, Reason: reason, References: r.References.Pairs(), Evidence: []result.Evidence{}, Time: time.Now().UTC()}
}

// planned is one selected rule on its way through a scan.
type planned struct {
	rule     *rule.Rule // resolved
	impl     *rule.Implementation
	implName string
	reported bool
	done     *result.Result
}

// Scan evaluates the rules the filter selects on the session's host. A rule
// selected by the filter pulls in its dependencies (evaluated, not reported).
// The error is set only when the host could not be scanned at all
// (unreachable, no os-release); per-rule problems are results.
func Scan(ctx context.Context, s *Session, rules []*rule.Rule, f Filter) (*Report, error) {
	start := time.Now()
	info, err := s.Detect(ctx)
	if err != nil {
		return nil, err
	}
	host := s.Target.Name()
	rep := &Report{Host: host, Platform: info.Platform, Capabilities: info.Capabilities.Names(), Started: start.UTC()}
	env := check.Env{Kind: s.Target.Kind(), Caps: info.Capabilities}

	byID := make(map[string]*rule.Rule, len(rules))
	for _, r := range rules {
		byID[r.ID] = r
	}
	plans := map[string]*planned{}
	var order []string
	var add func(r *rule.Rule, reported bool)
	add = func(r *rule.Rule, reported bool) {
		if p, ok := plans[r.ID]; ok {
			p.reported = p.reported || reported
			return
		}
		plans[r.ID] = &planned{reported: reported}
		for _, d := range r.DependsOn {
			if dr := byID[d]; dr != nil {
				add(dr, false)
			}
		}
		order = append(order, r.ID) // dependencies first
		plans[r.ID].rule = r
	}
	for _, r := range rules {
		if f.Match(r) {
			add(r, true)
		}
	}

	// Resolve, gate on platform, select an implementation, collect needs.
	var needs []target.Request
	for _, id := range order {
		p := plans[id]
		orig := p.rule
		res := result.Result{Host: host, RuleID: orig.ID, Title: orig.Title, Severity: orig.Severity,
			Category: orig.Category, References: orig.References.Pairs(), Evidence: []result.Evidence{}}
		if res.References == nil {
			res.References = []rule.Ref{}
		}
		resolved, err := orig.Resolve(s.Vars)
		var undef *rule.UndefinedError
		switch {
		case errors.As(err, &undef):
			p.done = skip(res, "undefined variable(s): "+strings.Join(undef.Names, ", "))
			continue
		case err != nil:
			res.Status, res.Reason = result.Error, err.Error()
			p.done = &res
			continue
		}
		p.rule = resolved
		if ok, why := info.Platform.Matches(resolved.Platforms); !ok {
			p.done = skip(res, why)
			continue
		}
		p.impl, p.implName = selectImpl(resolved, info.Capabilities)
		if p.impl == nil {
			p.done = skip(res, "no implementation applies to this host (gates: "+gateList(resolved)+")")
			continue
		}
		needs = append(needs, check.Needs(&p.impl.Check, env)...)
	}

	missing := info.Facts.Missing(needs)
	facts := target.NewFacts(nil)
	facts.Add(responses(info.Facts, needs))
	rep.Facts = len(target.Dedup(needs))
	var gatherErr error
	if len(missing) > 0 {
		resps, err := s.Target.Gather(ctx, missing)
		if err != nil {
			gatherErr = fmt.Errorf("gather facts from %s: %w", host, err)
		}
		facts.Add(resps)
	}

	// Judge in dependency order.
	for _, id := range order {
		p := plans[id]
		if p.done != nil {
			continue
		}
		r := p.rule
		res := result.Result{Host: host, RuleID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category,
			References: r.References.Pairs(), Implementation: p.implName, Time: time.Now().UTC()}
		if res.References == nil {
			res.References = []rule.Ref{}
		}
		if dep := failedDependency(r, plans); dep != "" {
			p.done = skip(res, dep)
			continue
		}
		if gatherErr != nil {
			res.Status, res.Reason, res.Evidence = result.Error, gatherErr.Error(), []result.Evidence{}
			p.done = &res
			continue
		}
		t0 := time.Now()
		o := check.Eval(&p.impl.Check, env, facts)
		res.Status, res.Reason, res.Evidence = o.Status, o.Reason, o.Evidence
		if res.Evidence == nil {
			res.Evidence = []result.Evidence{}
		}
		res.Duration = float64(time.Since(t0).Microseconds()) / 1000
		for _, e := range res.Evidence {
			res.Duration += e.Duration
		}
		p.done = &res
	}

	// A rule superseded by another that was assessed is not reported twice.
	for _, id := range order {
		p := plans[id]
		for _, sup := range p.rule.Supersedes {
			if q := plans[sup]; q != nil && q.reported && q.done.Status != result.Skipped && p.done.Status != result.Skipped {
				q.done = skip(*q.done, "superseded by "+id)
				q.done.Evidence = []result.Evidence{}
			}
		}
	}

	for _, id := range order {
		if p := plans[id]; p.reported {
			p.done.Time = nonZero(p.done.Time)
			rep.Results = append(rep.Results, *p.done)
		}
	}
	sort.Slice(rep.Results, func(i, j int) bool { return rep.Results[i].RuleID < rep.Results[j].RuleID })
	rep.Summary = result.Summarize(rep.Results)
	if rt, ok := s.Target.(target.RoundTripCounter); ok {
		rep.RoundTrips = rt.RoundTrips()
	}
	rep.Duration = float64(time.Since(start).Microseconds()) / 1000
	return rep, nil
}

func nonZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

// responses returns the already-gathered answers to reqs.
func responses(f *target.Facts, reqs []target.Request) []target.Response {
	var out []target.Response
	for _, r := range target.Dedup(reqs) {
		if resp := f.Get(r); resp != nil {
			out = append(out, *resp)
		}
	}
	return out
}

func skip(res result.Result, reason string) *result.Result {
	res.Status, res.Reason = result.Skipped, reason
	if res.Evidence == nil {
		res.Evidence = []result.Evidence{}
	}
	res.Time = nonZero(res.Time)
	return &res
}

// failedDependency names the first dependency that did not pass.
func failedDependency(r *rule.Rule, plans map[string]*planned) string {
	for _, d := range r.DependsOn {
		q := plans[d]
		if q == nil || q.done == nil {
			continue
		}
		switch q.done.Status {
		case result.Pass:
			continue
		case result.Fail:
			return "depends on " + d + ", which failed: " + q.done.Reason
		default:
			return fmt.Sprintf("depends on %s, which is %s: %s", d, q.done.Status, q.done.Reason)
		}
	}
	return ""
}

// selectImpl applies the format's rule: the first non-default
// implementation whose gate holds, else the default, else none.
func selectImpl(r *rule.Rule, caps Capabilities) (*rule.Implementation, string) {
	for i := range r.Implementations {
		im := &r.Implementations[i]
		if !im.Default && im.When.Eval(caps) {
			name := im.When.String()
			if name == "" {
				name = fmt.Sprintf("implementation %d", i+1)
			}
			return im, name
		}
	}
	for i := range r.Implementations {
		im := &r.Implementations[i]
		if im.Default {
			if im.When != nil && !im.When.Eval(caps) {
				return nil, ""
			}
			return im, "default"
		}
	}
	return nil, ""
}

func gateList(r *rule.Rule) string {
	var gs []string
	for _, im := range r.Implementations {
		if im.When != nil {
			gs = append(gs, im.When.String())
		}
	}
	return strings.Join(gs, "; ")
}

func readRuleFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rule %s: %w", path, err)
	}
	if len(data) > rule.MaxFileSize {
		return nil, fmt.Errorf("rule %s is larger than %d bytes", path, rule.MaxFileSize)
	}
	return data, nil
}
