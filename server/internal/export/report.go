package export

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Bounds on what one export carries, so that a fleet export stays a file
// an auditor can open.
const (
	maxExcerptsPerHost = 200 // failing rules per host whose evidence is quoted
	maxExcerptLen      = 600 // characters of command output quoted per evidence record
	maxEvidencePerRule = 3   // evidence records quoted per failing rule
	maxExceptions      = 100_000
)

// report is everything an export shows, gathered once and rendered by
// each format. Strings in it are already sanitised (see clean).
type report struct {
	Issuer      string
	GeneratedAt time.Time
	GeneratedBy string
	Scope       scopeInfo
	At          time.Time // the as-of moment
	Framework   *frameworkInfo
	Summary     summary
	Hosts       []hostReport
	Controls    []controlRow // only with a framework
	Exceptions  []exceptionRow
}

// scopeInfo names what the export covers.
type scopeInfo struct {
	Kind   string // scan, host, group, fleet
	Name   string // host name, group name or scan id; "" for the fleet
	ScanID int64
	HostID int64
	Group  string
}

// Label names the scope for people: "host web1", "fleet".
func (s scopeInfo) Label() string {
	if s.Kind == "fleet" {
		return "fleet"
	}
	return s.Kind + " " + s.Name
}

type frameworkInfo struct {
	ID    string
	Title string
}

// summary is the scope's headline figures.
type summary struct {
	Hosts               int
	Score               float64
	ScoreWithExceptions float64
	Counts              posture.Counts
	Bands               map[string]int // raw band -> hosts; "" never scanned
}

// hostReport is one host's posture and rules.
type hostReport struct {
	ID                  int64
	Name                string
	Address             string
	OS                  string
	Labels              map[string]string
	Groups              []string
	Score               float64
	Band                string
	ScoreWithExceptions float64
	BandWithExceptions  string
	Counts              posture.Counts
	Rules               []ruleRow
	Failures            []failure // failing (and erroring) rules, worst first, evidence quoted
	FailuresOmitted     int       // failing rules beyond maxExcerptsPerHost, listed in Rules only
}

// ruleRow is one rule's state on one host.
type ruleRow struct {
	RuleID      string
	Title       string
	Severity    string
	Status      result.Status
	Accepted    bool
	ExceptionID int64
	Controls    []string // the framework's control ids; without a framework "framework control" pairs
	ScanID      int64
	ObservedAt  time.Time
	Reason      string
	hash        string // evidence hash, for the failures section
}

// failure is a failing rule with what the auditor needs to judge it.
type failure struct {
	RuleID      string
	Title       string
	Severity    string
	Status      result.Status
	Accepted    bool
	ExceptionID int64
	Reason      string
	Description string
	Fix         string
	Evidence    []excerpt
}

// excerpt is one evidence record, cut to size.
type excerpt struct {
	Method    string
	Command   string
	Expected  string
	Actual    string
	Output    string
	Truncated bool
}

// controlRow is one framework control across the scope's hosts.
type controlRow struct {
	ID       string
	Title    string
	Rules    []string
	Pass     int // host x rule results
	Fail     int
	Accepted int // of Fail
	Error    int
	Skipped  int
	Status   string // satisfied, not-satisfied, satisfied-with-exceptions, not-assessed
}

// exceptionRow is an approved exception in force at the report's moment.
type exceptionRow struct {
	ID            int64
	RuleID        string
	RuleTitle     string
	Scope         string // host, group, fleet
	ScopeName     string
	Justification string
	RequestedBy   string
	RequestedAt   time.Time
	ApprovedBy    string
	ApprovedAt    time.Time
	ExpiresAt     time.Time // zero: none
}

// build gathers the report for scope s.
func (e *Exporter) build(ctx context.Context, s Scope, by string) (*report, error) {
	if err := validScope(s); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	idx := e.d.Posture.Index()
	in := func(string) bool { return true }
	r := &report{
		Issuer:      clean(e.d.ServerName),
		GeneratedAt: e.d.Now().UTC().Truncate(time.Second),
		GeneratedBy: clean(by),
	}
	if s.Framework != "" {
		ids, ok := idx.RuleIDs(s.Framework)
		if !ok {
			return nil, fmt.Errorf("export: %w: %w", ErrInvalidScope, &posture.ArgError{Field: "framework",
				Msg: fmt.Sprintf("unknown framework %q", s.Framework), Err: posture.ErrUnknownFramework})
		}
		set := make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		in = func(id string) bool { return set[id] }
		r.Framework = &frameworkInfo{ID: s.Framework, Title: s.Framework}
		for _, fw := range idx.Frameworks() {
			if fw.ID == s.Framework {
				r.Framework.Title = clean(fw.Title)
			}
		}
	}
	// With the waivers at hand, posture's aggregated counts suffice and
	// each host's state is read once (here); without, posture's per-rule
	// states carry the accepted flags.
	q := posture.FleetQuery{At: s.At, Framework: s.Framework, Group: s.Group, HostID: s.HostID, Rules: e.d.Waivers == nil}
	var scanRows []store.Finding
	switch {
	case s.ScanID > 0:
		sc, err := e.d.Store.Scan(ctx, s.ScanID)
		if err != nil {
			return nil, fmt.Errorf("export: scan %d: %w", s.ScanID, err)
		}
		q.HostID, q.Group = sc.HostID, ""
		q.At = sc.FinishedAt
		if q.At.IsZero() {
			q.At = sc.StartedAt
		}
		if scanRows, err = e.d.Store.ScanResults(ctx, sc.ID); err != nil {
			return nil, fmt.Errorf("export: results of scan %d: %w", sc.ID, err)
		}
		r.Scope = scopeInfo{Kind: "scan", Name: strconv.FormatInt(sc.ID, 10), ScanID: sc.ID, HostID: sc.HostID}
	case s.HostID > 0:
		r.Scope = scopeInfo{Kind: "host", HostID: s.HostID}
	case s.Group != "":
		if err := e.groupExists(ctx, s.Group); err != nil {
			return nil, err
		}
		r.Scope = scopeInfo{Kind: "group", Name: clean(s.Group), Group: s.Group}
	default:
		r.Scope = scopeInfo{Kind: "fleet"}
	}
	fp, err := e.d.Posture.Fleet(ctx, q)
	if err != nil {
		if errors.Is(err, posture.ErrUnknownFramework) || errors.Is(err, posture.ErrInvalidArgument) {
			return nil, fmt.Errorf("export: %w: %w", ErrInvalidScope, err)
		}
		return nil, fmt.Errorf("export: posture of %s: %w", r.Scope.Label(), err)
	}
	if limit := e.maxHosts(); len(fp.Hosts) > limit {
		return nil, fmt.Errorf("export: %w: %s holds %d hosts, at most %d fit one export (exports.max_hosts); export it group by group",
			ErrTooLarge, r.Scope.Label(), len(fp.Hosts), limit)
	}
	r.At = fp.At.UTC()
	hosts, err := e.hostsByID(ctx, fp, s.ScanID > 0)
	if err != nil {
		return nil, err
	}
	acc, err := e.accepted(ctx, fp, hosts)
	if err != nil {
		return nil, err
	}
	if r.Scope.Kind == "host" && len(fp.Hosts) == 1 {
		r.Scope.Name = clean(fp.Hosts[0].Name)
	}
	ev := &evidenceCache{st: e.d.Store, byHash: map[string][]excerpt{}}
	rc := newRuleCache(idx)
	r.Summary = summary{Score: fp.Score, ScoreWithExceptions: fp.ScoreWithExceptions, Counts: fp.Counts,
		Bands: map[string]int{}, Hosts: len(fp.Hosts)}
	for b, n := range fp.Bands {
		r.Summary.Bands[string(b)] = n
	}
	// Every host's state in one read, without the references each stored
	// finding repeats (the index has them): for a fleet that decoding was
	// most of an export's time.
	var states map[int64][]store.Finding
	if s.ScanID == 0 && len(fp.Hosts) > 0 {
		ids := make([]int64, len(fp.Hosts))
		for i, hp := range fp.Hosts {
			ids[i] = hp.HostID
		}
		if states, err = e.d.Store.StatesAt(ctx, r.At, ids); err != nil {
			return nil, fmt.Errorf("export: state of %s: %w", r.Scope.Label(), err)
		}
	}
	for _, hp := range fp.Hosts {
		h := hosts[hp.HostID]
		fs := states[hp.HostID]
		if s.ScanID > 0 {
			fs = scanRows
		}
		hr := hostReport{
			ID: hp.HostID, Name: clean(hp.Name), Address: clean(h.Address), OS: clean(h.OS),
			Labels: cleanMap(h.Labels), Groups: cleanList(h.Groups),
			Score: hp.Score, Band: string(hp.Band), Counts: hp.Counts,
			ScoreWithExceptions: hp.ScoreWithExceptions, BandWithExceptions: string(hp.BandWithExceptions),
		}
		hostAcc := acc[hp.HostID]
		for _, rs := range hp.Rules {
			if rs.Accepted && rs.Status == result.Fail {
				if hostAcc == nil {
					hostAcc = map[string]int64{}
				}
				hostAcc[rs.RuleID] = rs.ExceptionID
			}
		}
		hr.Rules = make([]ruleRow, 0, len(fs))
		for _, f := range fs {
			if !in(f.RuleID) {
				continue
			}
			info := rc.shown(f.RuleID, s.Framework)
			row := ruleRow{
				RuleID: info.id, Title: info.title, Severity: string(f.Severity), Status: f.Status,
				ScanID: f.ScanID, ObservedAt: f.At.UTC(), Reason: rc.clean(f.Reason), hash: f.EvidenceHash,
				Controls: info.controls,
			}
			if id, ok := hostAcc[f.RuleID]; ok && f.Status == result.Fail {
				row.Accepted, row.ExceptionID = true, id
			}
			hr.Rules = append(hr.Rules, row)
		}
		sort.Slice(hr.Rules, func(i, j int) bool { return hr.Rules[i].RuleID < hr.Rules[j].RuleID })
		if s.ScanID > 0 {
			hr.Counts, hr.Score, hr.Band, hr.ScoreWithExceptions, hr.BandWithExceptions = scanFigures(hr.Rules)
			r.Summary.Counts, r.Summary.Score, r.Summary.ScoreWithExceptions = hr.Counts, hr.Score, hr.ScoreWithExceptions
			r.Summary.Bands = map[string]int{hr.Band: 1}
		}
		if err := hr.addFailures(ctx, rc, ev); err != nil {
			return nil, err
		}
		r.Hosts = append(r.Hosts, hr)
	}
	if r.Framework != nil {
		r.Controls = controlTable(idx, s.Framework, r.Hosts)
	}
	if r.Exceptions, err = e.exceptions(ctx, r, in, rc); err != nil {
		return nil, err
	}
	return r, nil
}

// accepted asks the waivers, when the exporter has them, which rules
// approved exceptions covered on each host at the report's moment; nil
// otherwise (the posture's rule states then say it).
func (e *Exporter) accepted(ctx context.Context, fp posture.FleetPosture, hosts map[int64]store.Host) (map[int64]map[string]int64, error) {
	if e.d.Waivers == nil || len(fp.Hosts) == 0 {
		return nil, nil
	}
	list := make([]store.Host, 0, len(fp.Hosts))
	for _, hp := range fp.Hosts {
		if h, ok := hosts[hp.HostID]; ok {
			list = append(list, h)
		}
	}
	acc, err := e.d.Waivers.Accepted(ctx, fp.At, list)
	if err != nil {
		return nil, fmt.Errorf("export: exceptions at %s: %w", fp.At.Format(time.RFC3339), err)
	}
	return acc, nil
}

// validScope refuses scopes naming more than one of scan, host and group.
func validScope(s Scope) error {
	n := 0
	if s.ScanID != 0 {
		n++
	}
	if s.HostID != 0 {
		n++
	}
	if s.Group != "" {
		n++
	}
	if n > 1 {
		return fmt.Errorf("%w: name at most one of scan, host and group", ErrInvalidScope)
	}
	if s.ScanID < 0 || s.HostID < 0 {
		return fmt.Errorf("%w: negative id", ErrInvalidScope)
	}
	return nil
}

// groupExists answers store.ErrNotFound for a group name nobody created,
// so a typo is not an empty report.
func (e *Exporter) groupExists(ctx context.Context, name string) error {
	gs, err := e.d.Store.Groups(ctx)
	if err != nil {
		return fmt.Errorf("export: list groups: %w", err)
	}
	for _, g := range gs {
		if g.Name == name {
			return nil
		}
	}
	return fmt.Errorf("export: group %q: %w", name, store.ErrNotFound)
}

// hostsByID returns the inventory records of the posture's hosts. For a
// scan of a host deleted since, the host itself is gone from the
// inventory; posture then lists nothing and the caller sees an empty scope.
func (e *Exporter) hostsByID(ctx context.Context, fp posture.FleetPosture, one bool) (map[int64]store.Host, error) {
	out := make(map[int64]store.Host, len(fp.Hosts))
	if one || len(fp.Hosts) == 1 {
		for _, hp := range fp.Hosts {
			h, err := e.d.Store.Host(ctx, hp.HostID)
			if err != nil {
				return nil, fmt.Errorf("export: host %d: %w", hp.HostID, err)
			}
			out[h.ID] = h
		}
		return out, nil
	}
	all, err := e.d.Store.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: list hosts: %w", err)
	}
	for _, h := range all {
		out[h.ID] = h
	}
	return out, nil
}

// scanFigures counts a scan's own rows (a scan's figures are its results,
// not the host's state at the moment it ended) and scores them.
func scanFigures(rows []ruleRow) (c posture.Counts, score float64, band string, scoreEx float64, bandEx string) {
	for _, r := range rows {
		crit := r.Severity == string(rule.Critical)
		switch r.Status {
		case result.Pass:
			c.Pass++
		case result.Fail:
			c.Fail++
			if crit {
				c.CriticalFail++
			}
			if r.Accepted {
				c.Accepted++
				if crit {
					c.AcceptedCritical++
				}
			}
		case result.Error:
			c.Error++
		case result.Skipped:
			c.Skipped++
		}
	}
	if c.Pass+c.Fail+c.Error+c.Skipped == 0 {
		return c, 0, "", 0, ""
	}
	score = posture.Score(c)
	ex := c
	ex.Pass, ex.Fail, ex.CriticalFail = c.Pass+c.Accepted, c.Fail-c.Accepted, c.CriticalFail-c.AcceptedCritical
	scoreEx = posture.Score(ex)
	return c, score, string(posture.BandOf(score, c.CriticalFail)), scoreEx, string(posture.BandOf(scoreEx, ex.CriticalFail))
}

// controlsOf lists the rule's controls in the framework, or without one
// every "framework control" pair it maps to.
func controlsOf(idx *posture.Index, ruleID, fw string) []string {
	var out []string
	for _, ref := range idx.Refs(ruleID) {
		switch {
		case fw == "":
			out = append(out, clean(ref.Framework+" "+ref.Control))
		case ref.Framework == fw:
			out = append(out, clean(ref.Control))
		}
	}
	return out
}

// addFailures quotes the evidence of the host's failing and erroring
// rules, worst severity first, at most maxExcerptsPerHost of them.
func (h *hostReport) addFailures(ctx context.Context, rc *ruleCache, ev *evidenceCache) error {
	var bad []ruleRow
	for _, r := range h.Rules {
		if r.Status == result.Fail || r.Status == result.Error {
			bad = append(bad, r)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool {
		if a, b := rule.Severity(bad[i].Severity).Rank(), rule.Severity(bad[j].Severity).Rank(); a != b {
			return a > b
		}
		if bad[i].Status != bad[j].Status {
			return bad[i].Status == result.Fail
		}
		return bad[i].RuleID < bad[j].RuleID
	})
	if len(bad) > maxExcerptsPerHost {
		h.FailuresOmitted = len(bad) - maxExcerptsPerHost
		bad = bad[:maxExcerptsPerHost]
	}
	for _, r := range bad {
		f := failure{RuleID: r.RuleID, Title: r.Title, Severity: r.Severity, Status: r.Status,
			Accepted: r.Accepted, ExceptionID: r.ExceptionID, Reason: r.Reason}
		if ru := rc.get(r.RuleID); ru != nil {
			f.Description = clip(clean(ru.Description), 1200)
			f.Fix = clip(clean(fixText(ru)), 1200)
		}
		exs, err := ev.get(ctx, r.hash)
		if err != nil {
			return fmt.Errorf("export: evidence of %s on host %s: %w", r.RuleID, h.Name, err)
		}
		f.Evidence = exs
		h.Failures = append(h.Failures, f)
	}
	return nil
}

// fixText describes a rule's remediation: its mechanism and parameters, the
// text a rule carries for fixing (it has no prose fix field).
func fixText(r *rule.Rule) string {
	var parts []string
	var walk func(rm *rule.Remediation)
	walk = func(rm *rule.Remediation) {
		if rm == nil {
			return
		}
		if rm.Mechanism != "" {
			keys := make([]string, 0, len(rm.Params))
			for k := range rm.Params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var ps []string
			for _, k := range keys {
				p := rm.Params[k]
				v := p.Str
				if p.IsList {
					v = "[" + strings.Join(p.List, ", ") + "]"
				}
				ps = append(ps, k+"="+v)
			}
			parts = append(parts, strings.TrimSpace(rm.Mechanism+" "+strings.Join(ps, " ")))
		}
		for i := range rm.Steps {
			walk(&rm.Steps[i])
		}
	}
	for _, im := range r.Implementations {
		if im.Default || len(r.Implementations) == 1 {
			walk(im.Remediation)
			break
		}
	}
	if len(parts) == 0 && len(r.Implementations) > 0 {
		walk(r.Implementations[0].Remediation)
	}
	return strings.Join(parts, "; ")
}

// ruleCache hands out rules as a report shows them: variables (which differ
// per host and group) appear as "{{ name }}" rather than as the loader's
// internal placeholder tokens. Each rule is rendered once per export, and
// what every row of a rule repeats (its cleaned id and title, its
// controls) is computed once and shared: the rows of a fleet export are
// hosts x rules, the distinct rules a few hundred.
type ruleCache struct {
	idx    *posture.Index
	m      map[string]*rule.Rule
	rows   map[string]shownRule
	reason map[string]string // cleaned texts repeated across rows (reasons)
}

// shownRule is what every row of one rule shows. Its slice is shared by
// those rows and must not be modified.
type shownRule struct {
	id, title string
	controls  []string
}

func newRuleCache(idx *posture.Index) *ruleCache {
	return &ruleCache{idx: idx, m: map[string]*rule.Rule{}, rows: map[string]shownRule{}, reason: map[string]string{}}
}

// shown returns the cleaned id, title and controls (in framework fw, or
// every pair without one) of rule id, computed once per export.
func (c *ruleCache) shown(id, fw string) shownRule {
	if s, ok := c.rows[id]; ok {
		return s
	}
	s := shownRule{id: clean(id), controls: controlsOf(c.idx, id, fw)}
	s.title = s.id
	if ru := c.get(id); ru != nil {
		s.title = clean(ru.Title)
	}
	c.rows[id] = s
	return s
}

// clean cleans s, remembering short results: the same reasons recur on
// many rows. Long texts are cleaned each time rather than held.
func (c *ruleCache) clean(s string) string {
	if len(s) > 256 {
		return clean(s)
	}
	if out, ok := c.reason[s]; ok {
		return out
	}
	out := clean(s)
	if len(c.reason) < 100_000 {
		c.reason[s] = out
	}
	return out
}

func (c *ruleCache) get(id string) *rule.Rule {
	if r, ok := c.m[id]; ok {
		return r
	}
	r := c.idx.Rule(id)
	if r != nil && len(r.Variables()) > 0 {
		vars := make(map[string]string, len(r.Variables()))
		for _, v := range r.Variables() {
			vars[v] = "{{ " + v + " }}"
		}
		if shown, err := r.Resolve(vars); err == nil {
			r = shown
		}
	}
	c.m[id] = r
	return r
}

// evidenceCache reads each evidence body once per export: many hosts
// failing the same way share one hash.
type evidenceCache struct {
	st     store.Store
	byHash map[string][]excerpt
}

func (c *evidenceCache) get(ctx context.Context, hash string) ([]excerpt, error) {
	if hash == "" {
		return nil, nil
	}
	if exs, ok := c.byHash[hash]; ok {
		return exs, nil
	}
	evs, err := c.st.Evidence(ctx, hash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var exs []excerpt
	for i, ev := range evs {
		if i == maxEvidencePerRule {
			break
		}
		out := ev.Stdout
		if ev.Stderr != "" {
			if out != "" {
				out += "\n"
			}
			out += ev.Stderr
		}
		x := excerpt{Method: clean(ev.Method), Command: clip(clean(ev.Probe), maxExcerptLen),
			Expected: clip(clean(ev.Expected), maxExcerptLen), Actual: clip(clean(ev.Actual), maxExcerptLen),
			Truncated: ev.Truncated}
		x.Output = clean(out)
		if utf8.RuneCountInString(x.Output) > maxExcerptLen {
			x.Output, x.Truncated = clip(x.Output, maxExcerptLen), true
		}
		exs = append(exs, x)
	}
	c.byHash[hash] = exs
	return exs, nil
}

// controlTable tallies, per control of the framework, the host x rule
// results of its covering rules in the report.
func controlTable(idx *posture.Index, fw string, hosts []hostReport) []controlRow {
	ctls, _ := idx.Controls(fw)
	type tally struct{ pass, fail, acc, err, skip int }
	byRule := map[string]*tally{}
	for _, h := range hosts {
		for _, r := range h.Rules {
			t := byRule[r.RuleID]
			if t == nil {
				t = &tally{}
				byRule[r.RuleID] = t
			}
			switch r.Status {
			case result.Pass:
				t.pass++
			case result.Fail:
				t.fail++
				if r.Accepted {
					t.acc++
				}
			case result.Error:
				t.err++
			case result.Skipped:
				t.skip++
			}
		}
	}
	out := make([]controlRow, 0, len(ctls))
	for _, c := range ctls {
		row := controlRow{ID: clean(c.ID), Title: clean(c.Title), Rules: cleanList(c.Rules)}
		for _, id := range c.Rules {
			if t := byRule[id]; t != nil {
				row.Pass += t.pass
				row.Fail += t.fail
				row.Accepted += t.acc
				row.Error += t.err
				row.Skipped += t.skip
			}
		}
		switch {
		case row.Fail > row.Accepted || row.Error > 0:
			row.Status = "not-satisfied"
		case row.Fail > 0:
			row.Status = "satisfied-with-exceptions"
		case row.Pass > 0:
			row.Status = "satisfied"
		default:
			row.Status = "not-assessed"
		}
		out = append(out, row)
	}
	return out
}

// exceptions lists the approved exceptions in force at the report's moment
// whose scope touches one of its hosts and whose rule it covers.
func (e *Exporter) exceptions(ctx context.Context, r *report, in func(string) bool, rc *ruleCache) ([]exceptionRow, error) {
	xs, err := e.d.Store.Exceptions(ctx, store.ExceptionFilter{
		States: []store.ExceptionState{store.ExceptionApproved, store.ExceptionRevoked, store.ExceptionExpired},
		Limit:  maxExceptions,
	})
	if err != nil {
		return nil, fmt.Errorf("export: list exceptions: %w", err)
	}
	groups, err := e.d.Store.Groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: list groups: %w", err)
	}
	groupName := make(map[int64]string, len(groups))
	for _, g := range groups {
		groupName[g.ID] = g.Name
	}
	hostName := map[int64]string{}
	inGroup := map[string]bool{}
	for _, h := range r.Hosts {
		hostName[h.ID] = h.Name
		for _, g := range h.Groups {
			inGroup[g] = true
		}
	}
	var out []exceptionRow
	for _, x := range xs {
		if !governance.ActiveAt(x, r.At) || !in(x.RuleID) {
			continue
		}
		row := exceptionRow{ID: x.ID, RuleID: clean(x.RuleID), RuleTitle: clean(x.RuleID),
			Justification: clean(x.Justification), RequestedBy: clean(x.RequestedBy), RequestedAt: x.RequestedAt.UTC(),
			ApprovedBy: clean(x.DecidedBy), ApprovedAt: x.DecidedAt.UTC(), ExpiresAt: x.ExpiresAt}
		if !row.ExpiresAt.IsZero() {
			row.ExpiresAt = row.ExpiresAt.UTC()
		}
		if ru := rc.get(x.RuleID); ru != nil {
			row.RuleTitle = clean(ru.Title)
		}
		switch {
		case x.HostID != 0:
			name, ok := hostName[x.HostID]
			if !ok {
				continue
			}
			row.Scope, row.ScopeName = "host", name
		case x.GroupID != 0:
			name := groupName[x.GroupID]
			if !inGroup[name] {
				continue
			}
			row.Scope, row.ScopeName = "group", clean(name)
		default:
			if len(r.Hosts) == 0 {
				continue
			}
			row.Scope, row.ScopeName = "fleet", "fleet"
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b exceptionRow) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, nil
}

// maxHosts is Deps.MaxHosts with its default.
func (e *Exporter) maxHosts() int {
	if e.d.MaxHosts > 0 {
		return e.d.MaxHosts
	}
	return DefaultMaxHosts
}
