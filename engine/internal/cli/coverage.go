package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/vigilfleet/vigil/engine/framework"
)

const coverageUsage = `Usage: vigil rules coverage [flags]

Per framework: how many rules map to it, how many of its controls they
cover and, where the corpus has a catalogue (rules/frameworks/), the share
of the catalogue's automatable controls covered. FedRAMP baselines and CMMC
practices are derived from the NIST SP 800-53 and 800-171 mappings. Ids a
rule uses that the catalogue lacks are listed as unknown.
`

// runCoverage implements `vigil rules coverage`.
func runCoverage(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules coverage", flag.ContinueOnError)
	rulesDir := fs.String("rules", "", "rule corpus `dir` (default as for vigil check)")
	format := fs.String("format", "table", "output `format`: table or json")
	fwFlag := listFlag{split: true}
	fs.Var(&fwFlag, "framework", "only this framework `id` (repeatable, comma-separated)")
	if done, code := parseFlags(fs, args, coverageUsage, stdout, stderr); done {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "vigil rules coverage: --format %q is not table or json\n", *format)
		return exitUsage
	}
	dir, err := findRulesDir(*rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules coverage: %v\n", err)
		return exitUsage
	}
	rules, err := loadCorpus(dir)
	if err != nil {
		printLoadErrors(stderr, err)
		return exitUsage
	}
	cats, err := framework.LoadDir(filepath.Join(corpusDir(dir), "frameworks"))
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules coverage: %v\n", err)
		return exitUsage
	}
	fws := fwFlag.values
	all := framework.ComputeCoverage(rules, cats)
	var out []framework.Coverage
	for _, c := range all {
		if len(fws) == 0 || containsStr(fws, c.Framework) {
			out = append(out, c)
		}
	}
	if len(fws) > 0 && len(out) == 0 {
		fmt.Fprintf(stderr, "vigil rules coverage: no framework %s in the corpus or its catalogues\n", strings.Join(fws, ", "))
		return exitUsage
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return exitUsage
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FRAMEWORK\tKIND\tRULES\tCONTROLS COVERED\tAUTOMATABLE COVERED\tSHARE\tUNKNOWN IDS")
	for _, c := range out {
		auto, share := "-", "-"
		if c.Controls > 0 {
			auto = fmt.Sprintf("%d/%d", c.AutomatableCovered, c.Automatable)
			if c.Automatable > 0 {
				share = fmt.Sprintf("%.0f%%", 100*c.Share)
			}
		}
		unknown := "-"
		if len(c.Unknown) > 0 {
			unknown = strings.Join(c.Unknown, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Framework, c.Kind, c.Rules, len(c.Covered), auto, share, unknown)
	}
	if err := tw.Flush(); err != nil {
		return exitUsage
	}
	return exitOK
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
