package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/sshtarget"
	"github.com/vigilfleet/vigil/engine/testtarget"
)

// corpusDir is the repository's rule corpus; its proof cases live in
// rules/tests/<rule-id>.yml.
const corpusDir = "../rules"

// ruleCases is one rules/tests/<id>.yml file: ways to set up a real Debian
// 12 target so the rule passes, and so it fails.
type ruleCases struct {
	Cases []ruleCase `yaml:"cases"`
}

type ruleCase struct {
	Name   string            `yaml:"name"`
	Expect string            `yaml:"expect"` // pass or fail
	Files  map[string]string `yaml:"files"`  // path -> content, written before sshd starts
	Modes  map[string]string `yaml:"modes"`  // path -> octal mode for Files entries
	Remove []string          `yaml:"remove"`
	Run    string            `yaml:"run"` // sh script run as root in the target before the scan
	Vars   map[string]string `yaml:"vars"`
}

func loadCases(t *testing.T) map[string]ruleCases {
	t.Helper()
	out := map[string]ruleCases{}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "tests", "*.yml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rc ruleCases
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&rc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, c := range rc.Cases {
			if c.Expect != "pass" && c.Expect != "fail" {
				t.Fatalf("%s: case %d (%s): expect must be pass or fail", f, i, c.Name)
			}
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yml")] = rc
	}
	return out
}

// TestCorpusHasProofCases fails when any rule lacks a case where it passes
// and one where it fails: a rule that cannot be shown to fail is a defect.
func TestCorpusHasProofCases(t *testing.T) {
	rules, err := engine.LoadRules(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	cases := loadCases(t)
	var missing []string
	for _, r := range rules {
		has := map[string]bool{}
		for _, c := range cases[r.ID].Cases {
			has[c.Expect] = true
		}
		if !has["pass"] || !has["fail"] {
			missing = append(missing, fmt.Sprintf("%s (pass case: %v, fail case: %v)", r.ID, has["pass"], has["fail"]))
		}
	}
	for id := range cases {
		found := false
		for _, r := range rules {
			found = found || r.ID == id
		}
		if !found {
			t.Errorf("rules/tests/%s.yml has no rule", id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("rules without both a pass and a fail case:\n  %s", strings.Join(missing, "\n  "))
	}
}

// TestCorpusOnRealTargets runs every proof case: a real Debian 12 target is
// started with the case's files, the case's script runs in it, and the rule
// is scanned over SSH as an unprivileged user with sudo.
func TestCorpusOnRealTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rules, err := engine.LoadRules(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.NewConfig()
	if err := cfg.LoadCorpusDefaults(corpusDir); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*rule.Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	cases := loadCases(t)
	ids := make([]string, 0, len(cases))
	for id := range cases {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for i, c := range cases[id].Cases {
			t.Run(fmt.Sprintf("%s/%d-%s", id, i, c.Expect), func(t *testing.T) {
				t.Parallel()
				runCase(t, byID[id], rules, cfg, c)
			})
		}
	}
}

func runCase(t *testing.T, r *rule.Rule, all []*rule.Rule, cfg *engine.Config, c ruleCase) {
	opts := testtarget.Options{Files: map[string]testtarget.File{}, Remove: c.Remove}
	for p, content := range c.Files {
		f := testtarget.File{Data: []byte(content)}
		if m, ok := c.Modes[p]; ok {
			mode, err := rule.ParseMode(m)
			if err != nil {
				t.Fatalf("case %s: mode of %s: %v", c.Name, p, err)
			}
			f.Mode = os.FileMode(mode & 0o777)
		}
		opts.Files[p] = f
	}
	h := testtarget.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if c.Run != "" {
		if out, errOut, err := h.Exec(ctx, c.Run); err != nil {
			t.Fatalf("case %s: setup script: %v\n%s%s", c.Name, err, out, errOut)
		}
	}
	s, err := engine.NewSSHSession(ctx, sshtarget.Options{
		Host: h.IP(), Port: h.Port(), User: testtarget.User, KeyFiles: []string{h.UserKeyFile()},
		KnownHostsFile: h.KnownHostsFile(), Sudo: true,
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	vars := cfg.Vars(h.IP(), nil)
	for k, v := range c.Vars {
		vars[k] = v
	}
	s.Vars = vars
	rep, err := engine.Scan(ctx, s, all, engine.Filter{RuleIDs: []string{r.ID}})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("want 1 result, got %d", len(rep.Results))
	}
	res := rep.Results[0]
	if string(res.Status) != c.Expect {
		t.Fatalf("case %q: rule %s is %s, want %s: %s\nevidence: %+v", c.Name, r.ID, res.Status, c.Expect, res.Reason, res.Evidence)
	}
	for _, e := range res.Evidence {
		if e.Expected == "" || e.Actual == "" {
			t.Errorf("evidence lacks expected or actual: %+v", e)
		}
	}
}

// TestFreshDebianHasNoErrors scans an untouched Debian 12 minimal target
// with the whole corpus: every rule must evaluate to pass, fail or skipped,
// never error.
func TestFreshDebianHasNoErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	h := testtarget.Start(t, testtarget.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := engine.NewSSHSession(ctx, sshtarget.Options{
		Host: h.IP(), Port: h.Port(), User: "root", KeyFiles: []string{h.RootKeyFile()}, KnownHostsFile: h.KnownHostsFile(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rules, err := engine.LoadRules(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.NewConfig()
	if err := cfg.LoadCorpusDefaults(corpusDir); err != nil {
		t.Fatal(err)
	}
	s.Vars = cfg.Vars(h.IP(), nil)
	rep, err := engine.Scan(ctx, s, rules, engine.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Platform.ID != "debian" || rep.Platform.Major != 12 {
		t.Errorf("platform = %+v", rep.Platform)
	}
	for _, r := range rep.Results {
		if r.Status == result.Error {
			t.Errorf("%s: error: %s", r.RuleID, r.Reason)
		}
	}
	if rep.RoundTrips > 2 {
		t.Errorf("scan took %d round trips, want at most 2 (detection + one fact batch)", rep.RoundTrips)
	}
	t.Logf("%d rules: %+v in %.0f ms, %d round trips, %d facts", len(rep.Results), rep.Summary, rep.Duration, rep.RoundTrips, rep.Facts)
}
