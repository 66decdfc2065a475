package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine/framework"
)

// TestCoverageOnCorpus runs `vigil rules coverage` on the repository's
// corpus and catalogues: direct frameworks count rules, derived ones
// (FedRAMP, CMMC) are computed, and a filter narrows the report.
func TestCoverageOnCorpus(t *testing.T) {
	code, out, errOut := runCLI(t, testEnv(t, nil), "rules", "coverage", "--rules", "../../../rules", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var covs []framework.Coverage
	if err := json.Unmarshal([]byte(out), &covs); err != nil {
		t.Fatal(err)
	}
	by := map[string]framework.Coverage{}
	for _, c := range covs {
		by[c.Framework] = c
	}
	for _, fw := range []string{"nist_800_53", "fedramp_moderate", "fedramp_high", "cmmc_l2", "nist_800_171", "stig_rhel9", "cis_rhel9"} {
		c, ok := by[fw]
		if !ok || c.Rules == 0 || len(c.Covered) == 0 || c.Automatable == 0 || c.Share <= 0 || c.Share > 1 {
			t.Errorf("%s: %+v", fw, c)
		}
	}
	if by["fedramp_moderate"].Kind != framework.KindBaseline || by["cmmc_l2"].Kind != framework.KindMapping {
		t.Error("derived frameworks have the wrong kind")
	}
	code, out, _ = runCLI(t, testEnv(t, nil), "rules", "coverage", "--rules", "../../../rules", "--framework", "cmmc_l2")
	if code != exitOK || !strings.Contains(out, "cmmc_l2") || strings.Contains(out, "nist_800_53 ") {
		t.Errorf("filtered table (exit %d):\n%s", code, out)
	}
	if code, _, _ := runCLI(t, testEnv(t, nil), "rules", "coverage", "--rules", "../../../rules", "--framework", "nope"); code != exitUsage {
		t.Errorf("unknown framework: exit %d, want %d", code, exitUsage)
	}
}
