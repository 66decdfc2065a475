package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

// writeTree writes files (path relative to dir -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") { // a directory
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	osDebian12   = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n"
	osUbuntu2204 = "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n"
	osUbuntu2404 = "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n"
	osRHEL8      = "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.9 (Ootpa)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\n"
	osRHEL9      = "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n"
	osRocky9     = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n"
	osMint21     = "NAME=\"Linux Mint\"\nVERSION=\"21.3 (Virginia)\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"\n"
	osFedora40   = "NAME=\"Fedora Linux\"\nVERSION_ID=40\nID=fedora\n"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name, text string
		want       Platform
		wantErr    bool
	}{
		{"debian 12", osDebian12, Platform{ID: "debian", VersionID: "12", Major: 12, PrettyName: "Debian GNU/Linux 12 (bookworm)"}, false},
		{"ubuntu 22.04", osUbuntu2204, Platform{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "22.04", Major: 22, PrettyName: "Ubuntu 22.04.4 LTS"}, false},
		{"rhel 9.4", osRHEL9, Platform{ID: "rhel", IDLike: []string{"fedora"}, VersionID: "9.4", Major: 9, PrettyName: "Red Hat Enterprise Linux 9.4 (Plow)"}, false},
		{"rocky 9.3", osRocky9, Platform{ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.3", Major: 9}, false},
		{"linux mint", osMint21, Platform{ID: "linuxmint", IDLike: []string{"ubuntu", "debian"}, VersionID: "21.3", Major: 21}, false},
		{"unquoted, comments, case, single quotes", "# comment\n\n  ID=Debian\nVERSION_ID='13'\n#ID=rhel\n", Platform{ID: "debian", VersionID: "13", Major: 13}, false},
		{"rolling release without a version", "ID=arch\n", Platform{ID: "arch"}, false},
		{"no ID", "NAME=Mystery\nVERSION_ID=1\n", Platform{}, true},
		{"empty", "", Platform{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOSRelease([]byte(tt.text))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.want.ID || got.VersionID != tt.want.VersionID || got.Major != tt.want.Major ||
				strings.Join(got.IDLike, " ") != strings.Join(tt.want.IDLike, " ") ||
				(tt.want.PrettyName != "" && got.PrettyName != tt.want.PrettyName) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if p, _ := ParseOSRelease([]byte(osRocky9)); p.Family() != "rhel" || p.String() != "rocky 9.3" {
		t.Errorf("rocky: family %s string %s", p.Family(), p.String())
	}
	if p, _ := ParseOSRelease([]byte(osUbuntu2204)); p.Family() != "ubuntu" {
		t.Errorf("ubuntu: family %s", p.Family())
	}
}

func TestPlatformMatches(t *testing.T) {
	pf := func(fam, min, max string) rule.Platform {
		return rule.Platform{Family: fam, MinVersion: min, MaxVersion: max, Derivatives: true}
	}
	noDeriv := func(p rule.Platform) rule.Platform { p.Derivatives = false; return p }
	list := func(ps ...rule.Platform) []rule.Platform { return ps }
	tests := []struct {
		name string
		host string
		list []rule.Platform
		want bool
	}{
		{"no platforms: everywhere", osFedora40, nil, true},
		{"debian 12", osDebian12, list(pf("debian", "12", "")), true},
		{"debian 12 below the minimum", osDebian12, list(pf("debian", "13", "")), false},
		{"debian 12 above the maximum", osDebian12, list(pf("debian", "", "11")), false},
		{"debian on an rhel rule", osDebian12, list(pf("rhel", "8", "")), false},
		{"ubuntu 22.04 in 22-22", osUbuntu2204, list(pf("ubuntu", "22", "22")), true},
		{"ubuntu 24.04 not in 22-22", osUbuntu2404, list(pf("ubuntu", "22", "22")), false},
		{"ubuntu 24.04 in 22-", osUbuntu2404, list(pf("ubuntu", "22.04", "")), true},
		{"ubuntu through ID_LIKE debian, bounds not applied", osUbuntu2204, list(pf("debian", "12", "12")), true},
		// ID_LIKE applies only to a host whose own ID the rule does not list.
		{"ubuntu listed: no fallback to ID_LIKE", osUbuntu2404, list(pf("debian", "12", ""), pf("ubuntu", "22", "22")), false},
		{"ubuntu listed and in bounds", osUbuntu2204, list(pf("debian", "12", ""), pf("ubuntu", "22", "22")), true},
		{"rhel 8", osRHEL8, list(pf("rhel", "8", "8")), true},
		{"rhel 9 not in 8-8", osRHEL9, list(pf("rhel", "8", "8")), false},
		{"rhel 9 in 8-9", osRHEL9, list(pf("rhel", "8", "9")), true},
		{"rocky 9 through the EL family", osRocky9, list(pf("rhel", "9", "")), true},
		{"rocky 9: EL family keeps the bounds", osRocky9, list(pf("rhel", "8", "8")), false},
		{"rocky 9 with derivatives false", osRocky9, list(noDeriv(pf("rhel", "9", ""))), false},
		{"rocky listed by name with derivatives false", osRocky9, list(noDeriv(pf("rocky", "9", ""))), true},
		{"rhel on a centos rule", osRHEL9, list(pf("centos", "9", "")), true},
		{"fedora is not EL", osFedora40, list(pf("rhel", "", "")), false},
		{"linuxmint through ID_LIKE ubuntu, no bounds", osMint21, list(pf("ubuntu", "22", "24")), true},
		{"linuxmint with derivatives false", osMint21, list(noDeriv(pf("ubuntu", "22", "24"))), false},
		{"linuxmint on a debian rule through ID_LIKE", osMint21, list(pf("debian", "12", "")), true},
		{"linuxmint on an rhel rule", osMint21, list(pf("rhel", "", "")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseOSRelease([]byte(tt.host))
			if err != nil {
				t.Fatal(err)
			}
			got, why := p.Matches(tt.list)
			if got != tt.want {
				t.Errorf("%s on %+v: %t (%s), want %t", p, tt.list, got, why, tt.want)
			}
			if !got && !strings.Contains(why, p.String()) {
				t.Errorf("reason %q does not name the platform %s", why, p)
			}
		})
	}
}

// ruleFile renders one rule of the test corpus.
func ruleFile(id, category, severity, extra, impls string) string {
	return fmt.Sprintf("id: %s\ntitle: Test rule %s\ndescription: A rule of the engine tests.\nrationale: Testing.\nseverity: %s\ncategory: %s\n%simplementations:\n%s",
		id, id, severity, category, extra, impls)
}

// simple is an implementation list with one ungated check.
func simple(check string) string {
	var b strings.Builder
	b.WriteString("  - check:\n")
	for _, l := range strings.Split(strings.TrimSpace(check), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

func fileExists(path string) string { return "method: file_exists\npath: " + path }

// testImage is a Debian 12 root directory with what detection looks for.
func testImage(t *testing.T, extra map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":                     osDebian12,
		"usr/bin/dpkg":                       "ELF",
		"var/lib/dpkg/status":                "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n",
		"etc/ssh/sshd_config":                "PermitRootLogin no\n",
		"etc/ssh/sshd_config.d/":             "",
		"etc/selinux/config":                 "SELINUX=enforcing\n",
		"boot/loader/entries/abc-6.1.0.conf": "options root=/dev/sda1 ro\n",
		"marker-rpm":                         "", "marker-dpkg": "", "marker-default": "",
		"etc/shadow": "",
	}
	for k, v := range extra {
		files[k] = v
	}
	writeTree(t, root, files)
	return root
}

// corpus writes the rules under dir/<category>/<id>.yml and loads them.
func corpus(t *testing.T, rules ...string) []*rule.Rule {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, r := range rules {
		var id, cat string
		for _, l := range strings.Split(r, "\n") {
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(l, "category: "); ok {
				cat = v
			}
		}
		files[filepath.Join(cat, id+".yml")] = r
	}
	writeTree(t, dir, files)
	rs, err := LoadRules(dir)
	if err != nil {
		t.Fatalf("corpus does not load: %v", err)
	}
	return rs
}

func scan(t *testing.T, s *Session, rules []*rule.Rule, f Filter) map[string]result.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Scan(ctx, s, rules, f)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	out := map[string]result.Result{}
	for _, r := range rep.Results {
		if _, dup := out[r.RuleID]; dup {
			t.Errorf("rule %s reported twice", r.RuleID)
		}
		out[r.RuleID] = r
		if r.Reason == "" && r.Status != result.Pass {
			t.Errorf("rule %s: %s without a reason", r.RuleID, r.Status)
		}
		if r.Evidence == nil || r.References == nil || r.Time.IsZero() || r.Host != s.Target.Name() {
			t.Errorf("rule %s: incomplete result %+v", r.RuleID, r)
		}
	}
	if rep.Summary.Total != len(rep.Results) {
		t.Errorf("summary total %d, %d results", rep.Summary.Total, len(rep.Results))
	}
	return out
}

func rootSession(t *testing.T, root string, caps map[string]bool, vars map[string]string) *Session {
	t.Helper()
	s, err := NewRootDirSession(root)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range caps {
		s.CapOverrides[k] = v
	}
	for k, v := range vars {
		s.Vars[k] = v
	}
	return s
}

func want(t *testing.T, res map[string]result.Result, id string, status result.Status, reason string) result.Result {
	t.Helper()
	r, ok := res[id]
	if !ok {
		t.Errorf("rule %s was not reported", id)
		return r
	}
	if r.Status != status || !strings.Contains(r.Reason, reason) {
		t.Errorf("rule %s: %s %q, want %s with %q", id, r.Status, r.Reason, status, reason)
	}
	return r
}

func TestScanGatingAndVariables(t *testing.T) {
	root := testImage(t, nil)
	gated := "" +
		"  - when: rpm\n    check:\n      " + strings.ReplaceAll(fileExists("/marker-rpm"), "\n", "\n      ") + "\n" +
		"  - when: dpkg\n    check:\n      " + strings.ReplaceAll(fileExists("/marker-dpkg"), "\n", "\n      ") + "\n" +
		"  - default: true\n    check:\n      " + strings.ReplaceAll(fileExists("/marker-default"), "\n", "\n      ") + "\n"
	gatedOnly := "" +
		"  - when: {all: [rpm, selinux]}\n    check:\n      " + strings.ReplaceAll(fileExists("/marker-rpm"), "\n", "\n      ") + "\n" +
		"  - when: {not: dpkg}\n    check:\n      " + strings.ReplaceAll(fileExists("/marker-default"), "\n", "\n      ") + "\n"
	rules := corpus(t,
		ruleFile("undefined-var", "system", "low", "", simple("method: file_exists\npath: \"{{ missing_path }}\"")),
		ruleFile("defined-var", "system", "low", "", simple("method: config_value\npath: /etc/ssh/sshd_config\ndelimiter: \" \"\nkey: PermitRootLogin\nexpected: \"{{ root_login }}\"")),
		ruleFile("two-undefined", "system", "low", "", simple("method: config_value\npath: \"{{ zeta }}\"\nkey: \"{{ alpha }}\"\nexpected: \"{{ root_login }}\"")),
		ruleFile("rhel-only", "system", "low", "platforms:\n  - family: rhel\n    min_version: \"8\"\n", simple(fileExists("/etc/shadow"))),
		ruleFile("debian-only", "system", "low", "platforms:\n  - family: debian\n    min_version: \"12\"\n", simple(fileExists("/etc/shadow"))),
		ruleFile("gated", "system", "low", "", gated),
		ruleFile("gated-only", "system", "low", "", gatedOnly),
	)
	vars := map[string]string{"root_login": "no"}

	// Detection on the image: dpkg yes, rpm no, selinux yes.
	res := scan(t, rootSession(t, root, nil, vars), rules, Filter{})
	want(t, res, "undefined-var", result.Skipped, "undefined variable(s): missing_path")
	want(t, res, "two-undefined", result.Skipped, "undefined variable(s): alpha, zeta")
	want(t, res, "defined-var", result.Pass, "")
	want(t, res, "rhel-only", result.Skipped, "platform debian 12 is not among the rule's platforms (rhel 8-)")
	want(t, res, "debian-only", result.Pass, "")
	if r := want(t, res, "gated", result.Pass, ""); r.Implementation != "dpkg" {
		t.Errorf("gated: implementation %q, want dpkg (rpm is false)", r.Implementation)
	}
	want(t, res, "gated-only", result.Skipped, "no implementation applies to this host (gates: all(rpm, selinux); not dpkg)")

	// The first gate that holds wins, in order.
	res = scan(t, rootSession(t, root, map[string]bool{"rpm": true}, vars), rules, Filter{})
	if r := res["gated"]; r.Implementation != "rpm" || r.Status != result.Pass {
		t.Errorf("gated with rpm forced: %s via %q, want pass via rpm", r.Status, r.Implementation)
	}
	if r := res["gated-only"]; r.Implementation != "all(rpm, selinux)" || r.Status != result.Pass {
		t.Errorf("gated-only with rpm forced: %s via %q (%s)", r.Status, r.Implementation, r.Reason)
	}
	// No gate holds: the default.
	res = scan(t, rootSession(t, root, map[string]bool{"dpkg": false}, vars), rules, Filter{})
	if r := res["gated"]; r.Implementation != "default" || r.Status != result.Pass {
		t.Errorf("gated with dpkg off: %s via %q, want pass via default", r.Status, r.Implementation)
	}
	if r := res["gated-only"]; r.Implementation != "not dpkg" {
		t.Errorf("gated-only with dpkg off: via %q, want not dpkg", r.Implementation)
	}
	// A variable's value that breaks a typed parameter is an error naming it.
	bad := corpus(t, ruleFile("bad-mode", "system", "low", "", simple("method: file_permissions\npath: /etc/shadow\nmode: \"{{ shadow_mode }}\"")))
	res = scan(t, rootSession(t, root, nil, map[string]string{"shadow_mode": "rw-r-----"}), bad, Filter{})
	want(t, res, "bad-mode", result.Error, "mode")
}

func TestScanDependenciesAndSupersedes(t *testing.T) {
	root := testImage(t, nil)
	rules := corpus(t,
		ruleFile("base-fails", "system", "low", "", simple(fileExists("/etc/nope"))),
		ruleFile("base-passes", "system", "low", "", simple(fileExists("/etc/shadow"))),
		ruleFile("base-skipped", "system", "low", "platforms:\n  - family: rhel\n", simple(fileExists("/etc/shadow"))),
		ruleFile("needs-failing", "system", "high", "depends_on: [base-fails]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("needs-passing", "system", "high", "depends_on: [base-passes]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("needs-skipped", "system", "high", "depends_on: [base-skipped]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("needs-chain", "system", "high", "depends_on: [needs-failing]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("weak", "access-control", "low", "", simple(fileExists("/etc/shadow"))),
		ruleFile("strong", "access-control", "low", "supersedes: [weak]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("weak-kept", "access-control", "low", "", simple(fileExists("/etc/shadow"))),
		ruleFile("strong-skipped", "access-control", "low", "supersedes: [weak-kept]\nplatforms:\n  - family: rhel\n", simple(fileExists("/etc/shadow"))),
	)
	s := rootSession(t, root, nil, nil)

	// Only the dependants are selected: their dependencies are evaluated
	// (the reason carries the dependency's own verdict) but not reported.
	res := scan(t, s, rules, Filter{Severities: []string{"high"}})
	if len(res) != 4 {
		t.Errorf("%d results, want the 4 selected rules only: %v", len(res), keys(res))
	}
	for _, dep := range []string{"base-fails", "base-passes", "base-skipped"} {
		if _, ok := res[dep]; ok {
			t.Errorf("dependency %s is reported though the filter does not select it", dep)
		}
	}
	want(t, res, "needs-failing", result.Skipped, "depends on base-fails, which failed: /etc/nope is absent")
	want(t, res, "needs-passing", result.Pass, "")
	want(t, res, "needs-skipped", result.Skipped, "depends on base-skipped, which is skipped: platform")
	want(t, res, "needs-chain", result.Skipped, "depends on needs-failing, which is skipped")

	// A dependency selected by the filter is reported too.
	res = scan(t, s, rules, Filter{RuleIDs: []string{"needs-failing", "base-fails"}})
	want(t, res, "base-fails", result.Fail, "/etc/nope is absent")
	want(t, res, "needs-failing", result.Skipped, "base-fails")

	res = scan(t, s, rules, Filter{Categories: []string{"access-control"}})
	want(t, res, "strong", result.Pass, "")
	want(t, res, "weak", result.Skipped, "superseded by strong")
	if len(res["weak"].Evidence) != 0 {
		t.Errorf("superseded rule keeps evidence: %+v", res["weak"].Evidence)
	}
	// A superseding rule that was not assessed supersedes nothing.
	want(t, res, "strong-skipped", result.Skipped, "platform")
	want(t, res, "weak-kept", result.Pass, "")

	// EvaluateRule pulls in dependencies silently too.
	r := EvaluateRule(context.Background(), s, find(rules, "needs-failing"), find(rules, "base-fails"))
	if r.Status != result.Skipped || !strings.Contains(r.Reason, "base-fails, which failed") {
		t.Errorf("EvaluateRule with its dependency: %s %q", r.Status, r.Reason)
	}
}

func keys(m map[string]result.Result) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func find(rules []*rule.Rule, id string) *rule.Rule {
	for _, r := range rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func TestScanFilter(t *testing.T) {
	root := testImage(t, nil)
	cisDeb := "references:\n  cis:\n    debian12: { section: \"5.1.20\", level: \"L1\", type: \"Automated\" }\n  nist_800_53: [\"AC-6\", \"CM-6\"]\n"
	stigRHEL := "references:\n  stig:\n    rhel9: { vuln_id: \"V-257983\", stig_id: \"RHEL-09-255045\", severity: \"CAT II\" }\n"
	rules := corpus(t,
		ruleFile("crit-audit", "audit", "critical", cisDeb, simple(fileExists("/etc/shadow"))),
		ruleFile("high-kernel", "kernel", "high", stigRHEL, simple(fileExists("/etc/shadow"))),
		ruleFile("medium-network", "network", "medium", "references:\n  pci_dss_4: [\"2.2.6\"]\n", simple(fileExists("/etc/shadow"))),
		ruleFile("low-system", "system", "low", "", simple(fileExists("/etc/shadow"))),
	)
	s := rootSession(t, root, nil, nil)
	tests := []struct {
		name string
		f    Filter
		want string
	}{
		{"everything", Filter{}, "crit-audit high-kernel low-system medium-network"},
		{"severity", Filter{Severities: []string{"critical", "HIGH"}}, "crit-audit high-kernel"},
		{"category", Filter{Categories: []string{"network", "system"}}, "low-system medium-network"},
		{"framework family", Filter{Frameworks: []string{"cis"}}, "crit-audit"},
		{"framework per OS", Filter{Frameworks: []string{"cis_debian12"}}, "crit-audit"},
		{"framework other OS", Filter{Frameworks: []string{"cis_rhel9"}}, ""},
		{"flat framework, dashes", Filter{Frameworks: []string{"nist-800-53"}}, "crit-audit"},
		{"stig", Filter{Frameworks: []string{"stig", "pci_dss_4"}}, "high-kernel medium-network"},
		{"rule ids", Filter{RuleIDs: []string{"low-system", "nope"}}, "low-system"},
		{"fields combine", Filter{Severities: []string{"critical", "medium"}, Categories: []string{"network"}}, "medium-network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			rep, err := Scan(ctx, s, rules, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rep.Results {
				ids = append(ids, r.RuleID)
			}
			if got := strings.Join(ids, " "); got != tt.want {
				t.Errorf("selected %q, want %q", got, tt.want)
			}
		})
	}
	res := scan(t, s, rules, Filter{RuleIDs: []string{"crit-audit"}})
	refs := map[string]bool{}
	for _, r := range res["crit-audit"].References {
		refs[r.String()] = true
	}
	for _, w := range []string{"cis_debian12 5.1.20", "nist_800_53 AC-6", "nist_800_53 CM-6"} {
		if !refs[w] {
			t.Errorf("crit-audit references %v lack %s", refs, w)
		}
	}
}

// TestScanShellQuoting: a variable's value reaches a command script as one
// shell word, whatever it contains.
func TestScanShellQuoting(t *testing.T) {
	if _, err := os.Stat("/etc/os-release"); err != nil {
		t.Skip("the local host has no /etc/os-release")
	}
	dir := t.TempDir()
	pwned := filepath.Join(dir, fmt.Sprintf("pwned-%d", time.Now().UnixNano()))
	payloads := []string{
		"x; touch " + pwned,
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"it's'; touch " + pwned + "; echo '",
		"a\nb && touch " + pwned,
		"| touch " + pwned,
	}
	var rules []string
	vars := map[string]string{}
	for i, p := range payloads {
		name := fmt.Sprintf("payload_%d", i)
		vars[name] = p
		rules = append(rules, ruleFile(fmt.Sprintf("quoting-%d", i), "system", "low", "",
			simple("method: command\nrun: printf '%s' {{ "+name+" }}\nexpected_stdout: \"touch\"")))
	}
	// set_compare's observed command is shell text too.
	vars["user"] = "root; touch " + pwned
	rules = append(rules, ruleFile("quoting-set", "system", "low", "",
		simple("method: set_compare\nobserved_command: printf '%s\\n' {{ user }}\nauthorized: [\"root; touch "+pwned+"\"]")))
	rs := corpus(t, rules...)
	s := NewLocalSession()
	for k, v := range vars {
		s.Vars[k] = v
	}
	res := scan(t, s, rs, Filter{})
	for id, r := range res {
		if r.Status != result.Pass {
			t.Errorf("%s: %s %q, want pass with the value printed verbatim; evidence %+v", id, r.Status, r.Reason, r.Evidence)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatalf("a variable's value ran as shell code: %s was created", pwned)
	}
	if r := res["quoting-0"]; len(r.Evidence) != 1 || !strings.Contains(r.Evidence[0].Stdout, "x; touch "+pwned) {
		t.Errorf("quoting-0 stdout %q, want the value verbatim", r.Evidence[0].Stdout)
	}
}

func TestLoadConfigTiers(t *testing.T) {
	dir := t.TempDir()
	tiers := []string{"corpus", "site", "confd", "group", "host", "cli"}
	// Each tier sets its own variable and every higher one's, so the
	// variable v_<tier> must come from exactly that tier.
	vars := func(from int, value string) string {
		var b strings.Builder
		b.WriteString("variables:\n")
		for _, t := range tiers[from:] {
			fmt.Fprintf(&b, "  v_%s: %s\n", t, value)
		}
		return b.String()
	}
	writeTree(t, dir, map[string]string{
		"defaults.yml":           vars(1, "site") + "  users: [root, admin]\ncapabilities:\n  rpm: true\n  selinux: true\n",
		"conf.d/10-first.yml":    vars(2, "confd-10"),
		"conf.d/20-second.yml":   "variables:\n  v_confd: confd-20\ncapabilities:\n  apparmor: true\n",
		"conf.d/ignored.txt":     "variables: [",
		"groups/web.yml":         vars(3, "group-web"),
		"groups/db.yml":          "variables:\n  v_group: group-db\ncapabilities:\n  rpm: false\n",
		"hosts/web1.example.yml": vars(4, "host") + "capabilities:\n  selinux: false\n",
		"hosts/other.yml":        vars(4, "other-host"),
	})
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	rules := t.TempDir()
	writeTree(t, rules, map[string]string{"defaults.yml": vars(0, "corpus")})
	if err := cfg.LoadCorpusDefaults(rules); err != nil {
		t.Fatal(err)
	}
	cfg.CLI["v_cli"] = "cli"
	cfg.CLICapsSet["apparmor"] = false

	got := cfg.Vars("web1.example", []string{"web", "db"})
	for _, w := range []struct{ name, want string }{
		{"v_corpus", "corpus"}, {"v_site", "site"}, {"v_confd", "confd-20"}, {"v_group", "group-db"},
		{"v_host", "host"}, {"v_cli", "cli"}, {"users", "root,admin"},
	} {
		if got[w.name] != w.want {
			t.Errorf("%s = %q, want %q (all: %v)", w.name, got[w.name], w.want, got)
		}
	}
	if v := cfg.Vars("web1.example", []string{"db", "web"})["v_group"]; v != "group-web" {
		t.Errorf("later group should win: v_group = %q", v)
	}
	if v := cfg.Vars("unknown", nil); v["v_host"] != "confd-10" || v["v_group"] != "confd-10" {
		t.Errorf("host without files: %v", v)
	}
	caps := cfg.CapabilityOverrides("web1.example", []string{"web", "db"})
	if caps["rpm"] || caps["selinux"] || caps["apparmor"] || len(caps) != 3 {
		t.Errorf("capability overrides %v, want rpm false (group), selinux false (host), apparmor false (CLI)", caps)
	}
	if caps := cfg.CapabilityOverrides("other", nil); !caps["rpm"] || !caps["selinux"] || caps["apparmor"] {
		t.Errorf("capability overrides %v, want rpm and selinux from the site, apparmor false from the CLI", caps)
	}

	empty, err := LoadConfig(filepath.Join(dir, "does-not-exist"))
	if err != nil || len(empty.Vars("h", nil)) != 0 {
		t.Errorf("missing config dir: %v %v", err, empty)
	}

	for _, tt := range []struct {
		name, file, content, wantErr string
	}{
		{"unknown key", "defaults.yml", "variables:\n  a: b\nvaraibles:\n  c: d\n", "defaults.yml:3: unknown key \"varaibles\""},
		{"unknown capability", "conf.d/x.yml", "capabilities:\n  warp_drive: true\n", "x.yml:2: capabilities.warp_drive: unknown capability"},
		{"capability not a bool", "hosts/h.yml", "capabilities:\n  rpm: maybe\n", "h.yml:2: capabilities.rpm: must be true or false"},
		{"nested variable", "groups/g.yml", "variables:\n  a:\n    b: c\n", "g.yml:3: variables.a"},
		{"not a mapping", "defaults.yml", "- a\n", "must be a mapping"},
		{"invalid YAML", "defaults.yml", "variables: [\n", "invalid YAML"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			writeTree(t, d, map[string]string{tt.file: tt.content})
			_, err := LoadConfig(d)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	d := t.TempDir()
	writeTree(t, d, map[string]string{"defaults.yml": "capabilities:\n  rpm: true\n"})
	if err := NewConfig().LoadCorpusDefaults(d); err == nil || !strings.Contains(err.Error(), "cannot be forced") {
		t.Errorf("corpus defaults forcing a capability: %v", err)
	}
}

func TestDetectCapabilitiesOnRootDir(t *testing.T) {
	root := testImage(t, map[string]string{
		"usr/bin/apt-get": "",
		"usr/lib/x86_64-linux-gnu/security/pam_pwquality.so": "",
		"etc/pam.d/":       "",
		"usr/sbin/sshd":    "",
		"etc/ufw/ufw.conf": "ENABLED=yes\n",
		"etc/default/grub": "GRUB_CMDLINE_LINUX=\"\"\n",
	})
	s := rootSession(t, root, map[string]bool{"auditd": true, "sudo": false}, nil)
	ctx := context.Background()
	caps, err := DetectCapabilities(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]bool{
		"dpkg": true, "apt": true, "sshd_config_d": true, "selinux": true, "grub_bls": true, "pam_pwquality": true,
		"pam": true, "sshd": true, "ufw_active": true, "grub": true,
		"rpm": false, "systemd": false, "pam_faillock": false, "apparmor": false, "fips_mode": false,
		"live_kernel": false, "authselect": false, "tmp_mount": false,
		"auditd": true, "sudo": false, // forced
	} {
		if caps[name] != w {
			t.Errorf("capability %s = %t, want %t", name, caps[name], w)
		}
	}
	for name := range caps {
		if !rule.Capabilities[name] {
			t.Errorf("detection reports %q, which rule.Capabilities does not know", name)
		}
	}
	for name := range rule.Capabilities {
		if _, ok := caps[name]; !ok {
			t.Errorf("capability %q is never detected", name)
		}
	}
	p, err := DetectPlatform(ctx, s)
	if err != nil || p.ID != "debian" || p.Major != 12 {
		t.Errorf("platform %+v, %v", p, err)
	}

	// Without os-release the host is reported, not guessed.
	bare := t.TempDir()
	writeTree(t, bare, map[string]string{"etc/hostname": "x\n"})
	_, err = Scan(ctx, rootSession(t, bare, nil, nil), nil, Filter{})
	if err == nil || !strings.Contains(err.Error(), "os-release") {
		t.Errorf("scan of a root without os-release: %v", err)
	}
	// /usr/lib/os-release is the fallback.
	usrlib := t.TempDir()
	writeTree(t, usrlib, map[string]string{"usr/lib/os-release": osRocky9})
	if p, err := DetectPlatform(ctx, rootSession(t, usrlib, nil, nil)); err != nil || p.ID != "rocky" {
		t.Errorf("platform from /usr/lib/os-release: %+v %v", p, err)
	}
}

func TestCheckRulesFromPath(t *testing.T) {
	root := testImage(t, nil)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"defaults.yml":             "variables:\n  root_login: \"no\"\n",
		"access-control/rl.yml":    ruleFile("rl", "access-control", "high", "", simple("method: config_value\npath: /etc/ssh/sshd_config\ndelimiter: \" \"\nkey: PermitRootLogin\nexpected: \"{{ root_login }}\"")),
		"access-control/other.yml": ruleFile("other", "access-control", "low", "", simple(fileExists("/etc/shadow"))),
	})
	s := rootSession(t, root, nil, nil)
	res, err := CheckRulesFromPath(context.Background(), s, dir, []string{"high"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].RuleID != "rl" || res[0].Status != result.Pass {
		t.Errorf("results %+v, want rl passing with the corpus default", res)
	}
	// The session's own value beats the corpus default.
	s2 := rootSession(t, root, nil, map[string]string{"root_login": "yes"})
	res, err = CheckRulesFromPath(context.Background(), s2, dir, []string{"high"}, nil)
	if err != nil || len(res) != 1 || res[0].Status != result.Fail {
		t.Errorf("with root_login=yes: %+v %v", res, err)
	}
	var le rule.LoadErrors
	writeTree(t, dir, map[string]string{"system/broken.yml": "id: broken\nbogus: 1\n"})
	if _, err := CheckRulesFromPath(context.Background(), s, dir, nil, nil); !errors.As(err, &le) {
		t.Errorf("broken corpus: %v, want rule.LoadErrors", err)
	}
}
