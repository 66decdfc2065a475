package framework

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine/rule"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testCatalogs(t *testing.T) map[string]*Catalog {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "nist_800_53.yml", `id: nist_800_53
title: NIST SP 800-53
version: "Rev 5"
kind: catalog
titles: true
controls:
  - {id: AC-6, title: Least Privilege, automatable: true}
  - {id: AC-6(2), title: Non-privileged Access for Nonsecurity Functions, automatable: true}
  - {id: AT-2, title: Literacy Training and Awareness, automatable: false}
  - {id: CM-6, title: Configuration Settings, automatable: true}
`)
	write(t, dir, "fedramp_moderate.yml", "id: fedramp_moderate\ntitle: FedRAMP Moderate\nversion: \"5\"\nkind: baseline\nbase: nist_800_53\ncontrols:\n  - \"AC-6\"\n  - \"AT-2\"\n")
	write(t, dir, "nist_800_171.yml", "id: nist_800_171\ntitle: NIST SP 800-171\nversion: r2\nkind: catalog\ncontrols:\n  - {id: \"3.1.5\", automatable: true}\n  - {id: \"3.2.1\", automatable: false}\n")
	write(t, dir, "cmmc_l2.yml", "id: cmmc_l2\ntitle: CMMC Level 2\nversion: \"2.0\"\nkind: mapping\nbase: nist_800_171\ncontrols:\n  - {id: AC.L2-3.1.5, maps_to: [\"3.1.5\"], automatable: true}\n  - {id: AT.L2-3.2.1, maps_to: [\"3.2.1\"], automatable: false}\n")
	cats, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cats
}

func ruleWith(id string, flat map[string][]string) *rule.Rule {
	return &rule.Rule{ID: id, References: rule.References{Flat: flat}}
}

func TestCoverageDirectAndDerived(t *testing.T) {
	cats := testCatalogs(t)
	rules := []*rule.Rule{
		ruleWith("a", map[string][]string{"nist_800_53": {"AC-6", "XX-99"}, "nist_800_171": {"3.1.5"}}),
		ruleWith("b", map[string][]string{"nist_800_53": {"CM-6"}}),
	}
	got := map[string]Coverage{}
	for _, c := range ComputeCoverage(rules, cats) {
		got[c.Framework] = c
	}
	n := got["nist_800_53"]
	if n.Rules != 2 || n.Controls != 4 || n.Automatable != 3 || n.AutomatableCovered != 2 {
		t.Errorf("nist coverage %+v", n)
	}
	if strings.Join(n.Unknown, ",") != "XX-99" {
		t.Errorf("unknown ids %v, want XX-99", n.Unknown)
	}
	f := got["fedramp_moderate"]
	if strings.Join(f.Covered, ",") != "AC-6" || f.Automatable != 1 || f.AutomatableCovered != 1 || f.Share != 1 || f.Rules != 1 {
		t.Errorf("fedramp coverage %+v", f)
	}
	c := got["cmmc_l2"]
	if strings.Join(c.Covered, ",") != "AC.L2-3.1.5" || c.Automatable != 1 || c.Share != 1 {
		t.Errorf("cmmc coverage %+v", c)
	}
	refs := Derive(rules[0].References.Pairs(), cats)
	var s []string
	for _, r := range refs {
		s = append(s, r.String())
	}
	if strings.Join(s, ";") != "cmmc_l2 AC.L2-3.1.5;fedramp_moderate AC-6" {
		t.Errorf("derived %v", s)
	}
}

func TestLoadErrors(t *testing.T) {
	for name, c := range map[string]struct{ file, body, want string }{
		"unknown key":     {"x.yml", "id: x\nkind: catalog\ncolour: red\n", "field colour not found"},
		"id mismatch":     {"x.yml", "id: y\nkind: catalog\n", "does not match the file name"},
		"bad kind":        {"x.yml", "id: x\nkind: list\n", "kind \"list\""},
		"baseline base":   {"x.yml", "id: x\nkind: baseline\n", "needs a base"},
		"unknown base":    {"x.yml", "id: x\nkind: baseline\nbase: nope\ncontrols: [A-1]\n", "base framework \"nope\" has no catalogue"},
		"duplicate":       {"x.yml", "id: x\nkind: catalog\ncontrols: [{id: A-1}, {id: A-1}]\n", "listed twice"},
		"mapping no maps": {"x.yml", "id: x\nkind: mapping\nbase: x\ncontrols: [{id: A-1}]\n", "needs maps_to"},
		"control key":     {"x.yml", "id: x\nkind: catalog\ncontrols:\n  - {id: A-1, colour: red}\n", "x.yml:4"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, c.file, c.body)
			_, err := LoadDir(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}
