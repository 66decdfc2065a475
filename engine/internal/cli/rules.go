package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/engine/rule"
)

// Where an installed Vigil finds its rules and its site configuration.
const (
	systemRulesDir  = "/usr/share/vigil/rules"
	systemConfigDir = "/etc/vigil"
)

const rulesUsage = `Usage: vigil rules <command> [arguments]

Commands:
  validate [DIR]   load a rule corpus and report every problem in it
  list [flags]     list the rules of a corpus, filtered
  coverage [flags] framework coverage of a corpus, per framework

Run 'vigil rules <command> -h' for a command's flags.
`

const validateUsage = `Usage: vigil rules validate [DIR]

Loads every rule under DIR (default: the corpus vigil check would use) and
the corpus's defaults.yml, then prints "N rules OK", or every problem found,
one per line as file:line: field: message, and exits 2.
`

const listUsage = `Usage: vigil rules list [flags]

Lists the rules of a corpus: id, severity, category, title and the
frameworks each maps to.
`

// runRules dispatches `vigil rules <command>`.
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return exitUsage
	}
	switch args[0] {
	case "validate":
		return runValidate(ctx, args[1:], stdout, stderr)
	case "list":
		return runList(ctx, args[1:], stdout, stderr)
	case "coverage":
		return runCoverage(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, rulesUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "vigil rules: unknown command %q\n\n%s", args[0], rulesUsage)
	return exitUsage
}

// runValidate implements `vigil rules validate [DIR]`.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules validate", flag.ContinueOnError)
	if done, code := parseFlags(fs, args, validateUsage, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "vigil rules validate: one directory at most, got %d arguments\n", fs.NArg())
		return exitUsage
	}
	dir, err := findRulesDir(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules validate: %v\n", err)
		return exitUsage
	}
	rules, err := loadCorpus(dir)
	if err == nil {
		err = engine.NewConfig().LoadCorpusDefaults(corpusDir(dir))
	}
	if err == nil {
		_, err = framework.LoadDir(filepath.Join(corpusDir(dir), "frameworks"))
	}
	if err != nil {
		n := printLoadErrors(stderr, err)
		fmt.Fprintf(stderr, "%s in %s\n", plural(n, "error"), dir)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s OK\n", plural(len(rules), "rule"))
	return exitOK
}

// listFlags are `vigil rules list`'s flags.
type listFlags struct {
	rulesDir string
	filters  filterFlags
	format   string
}

// runList implements `vigil rules list`.
func runList(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules list", flag.ContinueOnError)
	var lf listFlags
	fs.StringVar(&lf.rulesDir, "rules", "", "rule corpus `dir` (default as for vigil check)")
	lf.filters.register(fs)
	fs.StringVar(&lf.format, "format", "table", "output `format`: table or json")
	if done, code := parseFlags(fs, args, listUsage, stdout, stderr, ruleGroup, outputGroup); done {
		return code
	}
	f, err := lf.filters.filter()
	if err == nil && lf.format != "table" && lf.format != "json" {
		err = fmt.Errorf("--format %q is not table or json", lf.format)
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var dir string
	if err == nil {
		dir, err = findRulesDir(lf.rulesDir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules list: %v\n", err)
		return exitUsage
	}
	rules, err := loadCorpus(dir)
	if err != nil {
		printLoadErrors(stderr, err)
		return exitUsage
	}
	var selected []*rule.Rule
	for _, r := range rules {
		if f.Match(r) {
			selected = append(selected, r)
		}
	}
	if err := writeRuleList(stdout, lf.format, selected); err != nil {
		fmt.Fprintf(stderr, "vigil rules list: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// ruleSummary is one rule as `rules list --format json` shows it.
type ruleSummary struct {
	ID         string   `json:"id"`
	Severity   string   `json:"severity"`
	Category   string   `json:"category"`
	Title      string   `json:"title"`
	Frameworks []string `json:"frameworks"`
	File       string   `json:"file"`
}

func writeRuleList(w io.Writer, format string, rules []*rule.Rule) error {
	list := make([]ruleSummary, 0, len(rules))
	for _, r := range rules {
		fw := r.References.Frameworks()
		if fw == nil {
			fw = []string{}
		}
		list = append(list, ruleSummary{ID: r.ID, Severity: string(r.Severity), Category: r.Category, Title: r.Title, Frameworks: fw, File: r.File})
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tCATEGORY\tTITLE\tFRAMEWORKS")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Severity, r.Category, r.Title, strings.Join(r.Frameworks, ","))
	}
	return tw.Flush()
}

// findRulesDir returns the corpus to use: the one given, else ./rules, else
// ../share/vigil/rules next to the executable, else the system corpus.
func findRulesDir(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("rules: %w", err)
		}
		return explicit, nil
	}
	candidates := []string{"rules"}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "share", "vigil", "rules"))
	}
	candidates = append(candidates, systemRulesDir)
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return filepath.Clean(c), nil
		}
	}
	return "", fmt.Errorf("no rule corpus found (looked in %s); give one with --rules DIR", strings.Join(candidates, ", "))
}

// corpusDir is the directory holding the corpus's defaults.yml: the rules
// path itself, or the directory of a single rule file.
func corpusDir(rulesPath string) string {
	if st, err := os.Stat(rulesPath); err == nil && !st.IsDir() {
		return filepath.Dir(rulesPath)
	}
	return rulesPath
}

// loadCorpus loads the rules at path; the error lists every problem.
func loadCorpus(path string) ([]*rule.Rule, error) {
	rules, err := engine.LoadRules(path)
	if err != nil {
		return nil, err
	}
	return rules, nil
}

// printLoadErrors writes each problem of err on its own line and returns
// how many there were.
func printLoadErrors(w io.Writer, err error) int {
	var les rule.LoadErrors
	if errors.As(err, &les) {
		for _, e := range les {
			fmt.Fprintln(w, e.Error())
		}
		return len(les)
	}
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return len(lines)
}

// loadConfig reads the site configuration (the --config dir, else
// /etc/vigil when present), the defaults of the corpus at rulesPath (none
// when empty) and the --var and --cap flags.
func (r *ruleFlags) loadConfig(rulesPath string) (*engine.Config, error) {
	dir := r.configDir
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
	} else if st, err := os.Stat(systemConfigDir); err == nil && st.IsDir() {
		dir = systemConfigDir
	}
	cfg, err := engine.LoadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("configuration %s:\n%w", dir, err)
	}
	if rulesPath != "" {
		if err := cfg.LoadCorpusDefaults(corpusDir(rulesPath)); err != nil {
			return nil, fmt.Errorf("corpus defaults: %w", err)
		}
	}
	for k, v := range r.vars {
		cfg.CLI[k] = v
	}
	for k, v := range r.caps {
		cfg.CLICapsSet[k] = v
	}
	return cfg, nil
}
