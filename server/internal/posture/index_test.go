package posture

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/engine/rule"
)

// corpusDir is the repository's rule corpus, relative to this package.
const corpusDir = "../../../rules"

func loadCorpus(t testing.TB) *Index {
	t.Helper()
	x, err := LoadIndex(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestIndex loads the real corpus once (it takes seconds under -race) and
// checks the index built from it.
func TestIndex(t *testing.T) {
	x := loadCorpus(t)
	t.Run("LoadsCorpus", func(t *testing.T) { testIndexLoadsCorpus(t, x) })
	t.Run("DerivedFrameworks", func(t *testing.T) { testIndexDerivedFrameworks(t, x) })
	t.Run("FrameworksMatchCoverage", func(t *testing.T) { testIndexFrameworksMatchCoverage(t, x) })
	t.Run("Immutable", func(t *testing.T) { testIndexIsImmutable(t, x) })
}

func testIndexLoadsCorpus(t *testing.T, x *Index) {
	rules := x.Rules()
	if len(rules) != 448 {
		t.Errorf("index has %d rules, want the corpus's 448", len(rules))
	}
	if !slices.IsSortedFunc(rules, func(a, b *rule.Rule) int { return cmpStr(a.ID, b.ID) }) {
		t.Error("rules are not ordered by id")
	}
	if r := x.Rule(rules[0].ID); r != rules[0] {
		t.Errorf("Rule(%q) = %v", rules[0].ID, r)
	}
	if x.Rule("no-such-rule") != nil {
		t.Error("Rule of an unknown id is not nil")
	}
	ids, ok := x.RuleIDs("")
	if ids != nil || !ok {
		t.Errorf(`RuleIDs("") = %v, %v; want nil, true`, ids, ok)
	}
	if _, ok := x.RuleIDs("no_such_framework"); ok {
		t.Error("an unknown framework is known")
	}
	// A catalogue no rule maps to yet is known and selects nothing.
	ids, ok = x.RuleIDs("cis_debian12")
	if !ok || ids == nil || len(ids) != 0 {
		t.Errorf("RuleIDs(cis_debian12) = %v, %v; want an empty non-nil list", ids, ok)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testIndexDerivedFrameworks(t *testing.T, x *Index) {
	nist53, _ := x.RuleIDs("nist_800_53")
	nist171, _ := x.RuleIDs("nist_800_171")
	for _, tc := range []struct{ fw, base string }{
		{"fedramp_moderate", "nist_800_53"},
		{"fedramp_high", "nist_800_53"},
		{"cmmc_l2", "nist_800_171"},
	} {
		ids, ok := x.RuleIDs(tc.fw)
		if !ok || len(ids) == 0 {
			t.Errorf("%s has no rules (ok %v): derivation through %s failed", tc.fw, ok, tc.base)
			continue
		}
		base := nist53
		if tc.base == "nist_800_171" {
			base = nist171
		}
		for _, id := range ids {
			if _, found := slices.BinarySearch(base, id); !found {
				t.Errorf("%s rule %s does not map to its base %s", tc.fw, id, tc.base)
			}
			if !hasFramework(x, id, tc.fw) {
				t.Errorf("Refs(%s) lacks a derived %s reference", id, tc.fw)
			}
			// Derived frameworks are not in the rule file itself.
			if x.Rule(id).References.HasFramework(tc.fw) {
				t.Errorf("rule %s names %s directly; the test proves nothing", id, tc.fw)
			}
		}
	}
}

func hasFramework(x *Index, ruleID, fw string) bool {
	for _, r := range x.Refs(ruleID) {
		if r.Framework == fw {
			return true
		}
	}
	return false
}

// The index's figures agree with `vigil rules coverage`, which uses the
// same framework package.
func testIndexFrameworksMatchCoverage(t *testing.T, x *Index) {
	cats, err := framework.LoadDir(filepath.Join(corpusDir, "frameworks"))
	if err != nil {
		t.Fatal(err)
	}
	covs := framework.ComputeCoverage(x.Rules(), cats)
	fws := x.Frameworks()
	if len(fws) != len(covs) || len(fws) < 15 {
		t.Fatalf("%d frameworks, coverage lists %d (want >= 15)", len(fws), len(covs))
	}
	for i, fw := range fws {
		c := covs[i]
		if fw.ID != c.Framework || fw.Title != c.Title || fw.Controls != c.Controls ||
			fw.Covered != len(c.Covered) || fw.Rules != c.Rules {
			t.Errorf("framework %+v, coverage says %s %q controls %d covered %d rules %d",
				fw, c.Framework, c.Title, c.Controls, len(c.Covered), c.Rules)
		}
		ids, ok := x.RuleIDs(fw.ID)
		if !ok || len(ids) != fw.Rules || !slices.IsSorted(ids) {
			t.Errorf("RuleIDs(%s): %d ids (ok %v, sorted %v), framework says %d", fw.ID, len(ids), ok, slices.IsSorted(ids), fw.Rules)
		}
	}
	if !slices.IsSortedFunc(fws, func(a, b Framework) int { return cmpStr(a.ID, b.ID) }) {
		t.Error("frameworks are not ordered by id")
	}
}

// Refs and Rules hand out copies: the index stays immutable.
func testIndexIsImmutable(t *testing.T, x *Index) {
	id := x.Rules()[0].ID
	refs := x.Refs(id)
	if len(refs) == 0 {
		t.Fatalf("rule %s has no references", id)
	}
	refs[0].Framework = "mutated"
	if x.Refs(id)[0].Framework == "mutated" {
		t.Error("Refs shares its slice with the index")
	}
	ids, _ := x.RuleIDs("nist_800_53")
	ids[0] = "mutated"
	if again, _ := x.RuleIDs("nist_800_53"); again[0] == "mutated" {
		t.Error("RuleIDs shares its slice with the index")
	}
}
