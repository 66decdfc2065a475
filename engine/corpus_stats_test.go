package engine_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/engine/rule"
)

// usesMethod reports whether any implementation of r uses the method.
func usesMethod(r *rule.Rule, method string) bool {
	var walk func(c *rule.Check) bool
	walk = func(c *rule.Check) bool {
		if c.Method == method {
			return true
		}
		if c.Not != nil && walk(c.Not) {
			return true
		}
		for i := range c.All {
			if walk(&c.All[i]) {
				return true
			}
		}
		for i := range c.Any {
			if walk(&c.Any[i]) {
				return true
			}
		}
		return false
	}
	for i := range r.Implementations {
		if walk(&r.Implementations[i].Check) {
			return true
		}
	}
	return false
}

// TestCorpusInvariants holds the corpus to its rules: every rule maps to
// NIST SP 800-53, every id a rule uses exists in that framework's
// catalogue, and at most a quarter of the rules need a shell script. It
// logs the corpus's figures per category, platform and framework.
func TestCorpusInvariants(t *testing.T) {
	rules, err := engine.LoadRules(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	cats, err := framework.LoadDir(filepath.Join(corpusDir, "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	commands := 0
	perCategory := map[string]int{}
	for _, r := range rules {
		perCategory[r.Category]++
		if len(r.References.Flat["nist_800_53"]) == 0 {
			t.Errorf("%s: no nist_800_53 mapping", r.ID)
		}
		if usesMethod(r, "command") {
			commands++
		}
	}
	if 4*commands > len(rules) {
		t.Errorf("%d of %d rules use `command`; at most a quarter may", commands, len(rules))
	}
	for _, c := range framework.ComputeCoverage(rules, cats) {
		if len(c.Unknown) > 0 && cats[c.Framework] != nil && len(cats[c.Framework].Controls) > 0 {
			t.Errorf("%s: rules use ids its catalogue lacks: %s", c.Framework, strings.Join(c.Unknown, ", "))
		}
		t.Logf("framework %-18s rules %4d  controls covered %4d  automatable %d/%d", c.Framework, c.Rules, len(c.Covered), c.AutomatableCovered, c.Automatable)
	}
	t.Logf("%d rules, %d (%.0f%%) use command", len(rules), commands, 100*float64(commands)/float64(max(1, len(rules))))
	var lines []string
	for c, n := range perCategory {
		lines = append(lines, fmt.Sprintf("%s %d", c, n))
	}
	sort.Strings(lines)
	t.Logf("per category: %s", strings.Join(lines, ", "))
	for _, p := range []string{"debian12", "ubuntu22", "ubuntu24", "rhel8", "rhel9"} {
		t.Logf("platform %s: %d rules apply", p, applicable(rules, p))
	}
}

// applicable counts the rules whose platform list admits the platform.
func applicable(rules []*rule.Rule, osName string) int {
	p, err := engine.ParseOSRelease([]byte(osReleaseText(osName)))
	if err != nil {
		return 0
	}
	n := 0
	for _, r := range rules {
		if ok, _ := p.Matches(r.Platforms); ok {
			n++
		}
	}
	return n
}

func osReleaseText(name string) string { return osRelease[name] }
