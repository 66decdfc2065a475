package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/shell"
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
	Name   string `yaml:"name"`
	Expect string `yaml:"expect"` // pass or fail
	// Target is "ssh" (default: a real Debian 12 target over SSH) or
	// "rootdir" (a fixture root holding only the case's files, read as /:
	// for facts a shared-kernel target cannot vary, such as persisted
	// sysctl, audit rules, unit files and fstab).
	Target string `yaml:"target"`
	// OS replaces /etc/os-release: debian12 (default on rootdir), ubuntu22,
	// ubuntu24, rhel8, rhel9.
	OS       string            `yaml:"os"`
	Files    map[string]string `yaml:"files"`    // path -> content (before sshd starts)
	Modes    map[string]string `yaml:"modes"`    // path -> octal mode for Files entries
	Symlinks map[string]string `yaml:"symlinks"` // path -> link target (rootdir only)
	Remove   []string          `yaml:"remove"`
	// Run is a sh script run as root before the scan: inside the SSH
	// target, or on this machine with $ROOT naming the fixture root.
	Run  string            `yaml:"run"`
	Vars map[string]string `yaml:"vars"`
	Caps map[string]bool   `yaml:"caps"` // forced capabilities
}

// osRelease is the os-release text of each platform a case may claim.
var osRelease = map[string]string{
	"debian12": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
	"ubuntu22": "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n",
	"ubuntu24": "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n",
	"rhel8":    "NAME=\"Red Hat Enterprise Linux\"\nVERSION_ID=\"8.10\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 8.10 (Ootpa)\"\n",
	"rhel9":    "NAME=\"Red Hat Enterprise Linux\"\nVERSION_ID=\"9.4\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n",
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
			if c.Target != "" && c.Target != "ssh" && c.Target != "rootdir" {
				t.Fatalf("%s: case %d (%s): target must be ssh or rootdir", f, i, c.Name)
			}
			if _, ok := osRelease[c.OS]; c.OS != "" && !ok {
				t.Fatalf("%s: case %d (%s): unknown os %q", f, i, c.Name, c.OS)
			}
			if len(c.Symlinks) > 0 && c.Target != "rootdir" {
				t.Fatalf("%s: case %d (%s): symlinks need target rootdir", f, i, c.Name)
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
	// Cases that change nothing share one stock target, started here so it
	// lives until every subtest is done.
	var stock *testtarget.Host
	for _, id := range ids {
		for _, c := range cases[id].Cases {
			if stock == nil && c.stock() {
				stock = testtarget.Start(t, testtarget.Options{})
			}
		}
	}
	for _, id := range ids {
		for i, c := range cases[id].Cases {
			t.Run(fmt.Sprintf("%s/%d-%s", id, i, c.Expect), func(t *testing.T) {
				t.Parallel()
				runCase(t, byID[id], rules, cfg, c, stock)
			})
		}
	}
}

// stock reports whether the case runs on an unchanged Debian target.
func (c ruleCase) stock() bool {
	return (c.Target == "" || c.Target == "ssh") && c.OS == "" && len(c.Files) == 0 && len(c.Remove) == 0 && c.Run == ""
}

func runCase(t *testing.T, r *rule.Rule, all []*rule.Rule, cfg *engine.Config, c ruleCase, stock *testtarget.Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var s *engine.Session
	host := "fixture"
	switch {
	case c.Target == "rootdir":
		s = rootDirCase(ctx, t, c)
	case c.stock() && stock != nil:
		s, host = connect(ctx, t, stock)
	default:
		s, host = sshCase(ctx, t, c)
	}
	defer s.Close()
	vars := cfg.Vars(host, nil)
	for k, v := range c.Vars {
		vars[k] = v
	}
	s.Vars = vars
	for k, v := range c.Caps {
		s.CapOverrides[k] = v
	}
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

// sshCase starts a real target with the case's changes and connects to it
// as an unprivileged user with sudo.
func sshCase(ctx context.Context, t *testing.T, c ruleCase) (*engine.Session, string) {
	opts := testtarget.Options{Files: map[string]testtarget.File{}, Remove: c.Remove}
	var chmods []string
	for p, content := range c.Files {
		mode, set := caseMode(t, c, p)
		opts.Files[p] = testtarget.File{Data: []byte(content), Mode: mode}
		if set && mode == 0 {
			// The harness reads zero permission bits as "keep the root's
			// mode", so mode 0000 is applied once the target runs.
			chmods = append(chmods, "chmod 0000 "+shell.Quote(p))
		}
	}
	if c.OS != "" {
		// /etc/os-release links to /usr/lib/os-release on Debian: set both.
		opts.Files["/etc/os-release"] = testtarget.File{Data: []byte(osRelease[c.OS])}
		opts.Files["/usr/lib/os-release"] = testtarget.File{Data: []byte(osRelease[c.OS])}
	}
	h := testtarget.Start(t, opts)
	if setup := strings.Join(append(chmods, c.Run), "\n"); strings.TrimSpace(setup) != "" {
		if out, errOut, err := h.Exec(ctx, setup); err != nil {
			t.Fatalf("case %s: setup script: %v\n%s%s", c.Name, err, out, errOut)
		}
	}
	return connect(ctx, t, h)
}

// connect opens an SSH session to a target as the unprivileged user, with
// sudo, as an operator following least privilege would.
func connect(ctx context.Context, t *testing.T, h *testtarget.Host) (*engine.Session, string) {
	s, err := engine.NewSSHSession(ctx, sshtarget.Options{
		Host: h.IP(), Port: h.Port(), User: testtarget.User, KeyFiles: []string{h.UserKeyFile()},
		KnownHostsFile: h.KnownHostsFile(), Sudo: true,
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return s, h.IP()
}

// rootDirCase builds a fixture root from the case's files alone.
func rootDirCase(ctx context.Context, t *testing.T, c ruleCase) *engine.Session {
	root := t.TempDir()
	osName := c.OS
	if osName == "" {
		osName = "debian12"
	}
	write := func(p, content string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("/etc/os-release", osRelease[osName], 0o644)
	for p, content := range c.Files {
		mode, set := caseMode(t, c, p)
		if !set {
			mode = 0o644
		}
		write(p, content, mode)
	}
	for p, dest := range c.Symlinks {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dest, full); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.Remove {
		_ = os.RemoveAll(filepath.Join(root, p))
	}
	if c.Run != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", c.Run)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "ROOT="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %s: setup script: %v\n%s", c.Name, err, out)
		}
	}
	s, err := engine.NewRootDirSession(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// caseMode returns the mode a case gives a file, and whether it gives one.
func caseMode(t *testing.T, c ruleCase, p string) (os.FileMode, bool) {
	m, ok := c.Modes[p]
	if !ok {
		return 0, false
	}
	mode, err := rule.ParseMode(m)
	if err != nil {
		t.Fatalf("case %s: mode of %s: %v", c.Name, p, err)
	}
	return os.FileMode(mode & 0o777), true
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
