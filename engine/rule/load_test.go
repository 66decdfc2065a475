package rule

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodRule = `id: ssh-max-auth-tries
title: Limit SSH authentication attempts
description: Caps failed attempts per connection.
rationale: Slows password guessing.
severity: medium
category: access-control
references:
  cis:
    debian12: { section: "5.1.7", level: "L1", type: "Automated" }
  stig:
    rhel9: { vuln_id: "V-000001", stig_id: "RHEL-09-000001", severity: "CAT II" }
  nist_800_53: ["AC-7"]
platforms:
  - family: debian
    min_version: 12
  - family: rhel
    min_version: "8"
implementations:
  - when: sshd_config_d
    check:
      method: sshd_effective_config
      key: maxauthtries
      comparator: "<="
      expected: "{{ ssh_max_auth_tries }}"
    remediation:
      mechanism: config_set_dropin
      dir: /etc/ssh/sshd_config.d
      key: MaxAuthTries
      value: "{{ ssh_max_auth_tries }}"
      restart: sshd
  - default: true
    check:
      any:
        - method: command
          run: grep -q {{ pattern }} /etc/ssh/sshd_config
        - not:
            method: file_exists
            path: /etc/ssh/sshd_config
`

func writeRule(t *testing.T, dir, rel, body string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseGoodRule(t *testing.T) {
	r, errs := Parse("access-control/ssh-max-auth-tries.yml", []byte(goodRule))
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if r.ID != "ssh-max-auth-tries" || r.Severity != Medium || len(r.Implementations) != 2 {
		t.Fatalf("parsed wrong: %+v", r)
	}
	if got := r.Variables(); strings.Join(got, ",") != "pattern,ssh_max_auth_tries" {
		t.Errorf("variables = %v", got)
	}
	pairs := r.References.Pairs()
	want := []string{"cis_debian12 5.1.7", "nist_800_53 AC-7", "stig_rhel9 V-000001"}
	if len(pairs) != len(want) {
		t.Fatalf("pairs = %v", pairs)
	}
	for i, p := range pairs {
		if p.String() != want[i] {
			t.Errorf("pair %d = %s, want %s", i, p, want[i])
		}
	}
	if !r.References.HasFramework("cis") || !r.References.HasFramework("stig_rhel9") || r.References.HasFramework("pci_dss_4") {
		t.Error("HasFramework wrong")
	}
	if r.Implementations[0].When.Cap != "sshd_config_d" || !r.Implementations[1].Default {
		t.Error("implementations wrong")
	}
	if c := r.Implementations[1].Check; len(c.Any) != 2 || c.Any[1].Not == nil {
		t.Errorf("composite check wrong: %+v", c)
	}
}

func TestResolveQuotesShellValues(t *testing.T) {
	r, errs := Parse("x/ssh-max-auth-tries.yml", []byte(goodRule))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	_, err := r.Resolve(map[string]string{"pattern": "x"})
	var ue *UndefinedError
	if !errors.As(err, &ue) || len(ue.Names) != 1 || ue.Names[0] != "ssh_max_auth_tries" {
		t.Fatalf("want undefined ssh_max_auth_tries, got %v", err)
	}
	res, err := r.Resolve(map[string]string{"pattern": "a'b; rm -rf /", "ssh_max_auth_tries": "4"})
	if err != nil {
		t.Fatal(err)
	}
	run := res.Implementations[1].Check.Any[0].Params["run"].Str
	if run != `grep -q 'a'\''b; rm -rf /' /etc/ssh/sshd_config` {
		t.Errorf("shell value not quoted: %s", run)
	}
	if got := res.Implementations[0].Check.Params["expected"].Str; got != "4" {
		t.Errorf("expected = %q", got)
	}
	if got := res.Implementations[0].Remediation.Params["value"].Str; got != "4" {
		t.Errorf("remediation value = %q", got)
	}
	// The loaded rule is untouched: another host may have other values.
	if r.Implementations[0].Check.Params["expected"].Str == "4" {
		t.Error("Resolve modified the original rule")
	}
	if _, err := r.Resolve(map[string]string{"pattern": "x", "ssh_max_auth_tries": "4"}); err != nil {
		t.Fatal(err)
	}
}

func TestResolveRejectsBadTypedValue(t *testing.T) {
	body := strings.Replace(goodRule, "run: grep -q {{ pattern }} /etc/ssh/sshd_config", "run: \"true\"\n          expected_exit: \"{{ pattern }}\"", 1)
	r, errs := Parse("x/ssh-max-auth-tries.yml", []byte(body))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	_, err := r.Resolve(map[string]string{"pattern": "notanint", "ssh_max_auth_tries": "4"})
	if err == nil || !strings.Contains(err.Error(), "expected_exit") || !strings.Contains(err.Error(), "not an integer") {
		t.Fatalf("want typed error naming expected_exit, got %v", err)
	}
}

// TestLoadDirReportsEveryError writes a corpus with many distinct mistakes
// and checks each is reported with its file, line and field, all at once.
func TestLoadDirReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	writeRule(t, dir, "access-control/ssh-max-auth-tries.yml", goodRule)
	writeRule(t, dir, "defaults.yml", "variables: {a: 1}\n")
	bad := map[string]string{
		"system/unknown-key.yml": strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: unknown-key\nfoo: bar", 1),
		"system/bad-method.yml":  strings.Replace(strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: bad-method", 1), "method: sshd_effective_config", "method: sshd_config_magic", 1),
		"system/bad-param.yml":   strings.Replace(strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: bad-param", 1), "key: maxauthtries", "keyy: maxauthtries", 1),
		"system/wrong-name.yml":  strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: other-name", 1),
		"network/bad-sev.yml":    strings.Replace(strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: bad-sev", 1), "severity: medium", "severity: urgent", 1),
		"system/bad-yaml.yml":    "id: bad-yaml\ntitle: [unclosed\n",
		"system/bad-cap.yml":     strings.Replace(strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: bad-cap", 1), "when: sshd_config_d", "when: quantum_drive", 1),
		"system/dep-missing.yml": strings.Replace(goodRule, "id: ssh-max-auth-tries", "id: dep-missing\ndepends_on: [no-such-rule]", 1),
		"system/bad-glob.yml":    "id: bad-glob\ntitle: t\ndescription: d\nrationale: r\nseverity: low\ncategory: system\nimplementations:\n  - check:\n      method: file_exists\n      path: /etc/[-\n",
		"system/bad-mode.yml":    "id: bad-mode\ntitle: t\ndescription: d\nrationale: r\nseverity: low\ncategory: system\nimplementations:\n  - check:\n      method: file_permissions\n      path: /etc/x\n      mode: \"0999\"\n",
		"system/two-defaults.yml": "id: two-defaults\ntitle: t\ndescription: d\nrationale: r\nseverity: low\ncategory: system\nimplementations:\n" +
			"  - default: true\n    check: {method: file_exists, path: /a}\n  - default: true\n    check: {method: file_exists, path: /b}\n",
	}
	for rel, body := range bad {
		writeRule(t, dir, rel, body)
	}
	rules, err := LoadDir(dir)
	var errs LoadErrors
	if !errors.As(err, &errs) {
		t.Fatalf("want LoadErrors, got %v", err)
	}
	msg := err.Error()
	wants := []string{
		"unknown-key.yml:2: foo: unknown key",
		"bad-method.yml:", "unknown check method \"sshd_config_magic\"",
		"bad-param.yml:", "keyy: unknown parameter for method sshd_effective_config",
		"key: required parameter of method sshd_effective_config is missing",
		"wrong-name.yml:1: id: id \"other-name\" does not match the file name",
		"bad-sev.yml:5: severity: \"urgent\" is not one of",
		"category \"access-control\" does not match the folder \"network\"",
		"bad-yaml.yml:", "invalid YAML",
		"bad-cap.yml:", "unknown capability \"quantum_drive\"",
		"dep-missing.yml:", "depends_on: unknown rule id \"no-such-rule\"",
		"bad-mode.yml:11: implementations[0].check.mode: \"0999\" is not an octal file mode",
		"two-defaults.yml:", "2 implementations are marked default",
		"bad-glob.yml:10: implementations[0].check.path: \"/etc/[-\" is not a valid glob pattern",
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error report lacks %q\nfull report:\n%s", w, msg)
		}
	}
	// The good rule still loads; defaults.yml is not taken for a rule.
	found := false
	for _, r := range rules {
		if r.ID == "ssh-max-auth-tries" {
			found = true
		}
	}
	if !found {
		t.Error("good rule missing from partial result")
	}
}

func TestDependencyCycle(t *testing.T) {
	dir := t.TempDir()
	mk := func(id, dep string) string {
		return "id: " + id + "\ntitle: t\ndescription: d\nrationale: r\nseverity: low\ncategory: system\ndepends_on: [" + dep + "]\n" +
			"implementations:\n  - check: {method: file_exists, path: /etc/passwd}\n"
	}
	writeRule(t, dir, "system/a-rule.yml", mk("a-rule", "b-rule"))
	writeRule(t, dir, "system/b-rule.yml", mk("b-rule", "c-rule"))
	writeRule(t, dir, "system/c-rule.yml", mk("c-rule", "a-rule"))
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "dependency cycle: a-rule -> b-rule -> c-rule -> a-rule") {
		t.Fatalf("want a cycle error, got %v", err)
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	body := strings.Replace(goodRule, "category: access-control", "category: system", 1)
	writeRule(t, dir, "system/ssh-max-auth-tries.yml", body)
	writeRule(t, dir, "system/more/ssh-max-auth-tries.yml", body)
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "duplicate rule id") {
		t.Fatalf("want duplicate id error, got %v", err)
	}
}

func TestGateEval(t *testing.T) {
	body := strings.Replace(goodRule, "when: sshd_config_d", "when: {all: [sshd, {not: selinux}, {any: [apt, rpm]}]}", 1)
	r, errs := Parse("x/ssh-max-auth-tries.yml", []byte(body))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	g := r.Implementations[0].When
	cases := []struct {
		caps map[string]bool
		want bool
	}{
		{map[string]bool{"sshd": true, "apt": true}, true},
		{map[string]bool{"sshd": true, "rpm": true, "selinux": true}, false},
		{map[string]bool{"sshd": true}, false},
		{map[string]bool{"apt": true}, false},
	}
	for i, c := range cases {
		if got := g.Eval(c.caps); got != c.want {
			t.Errorf("case %d: %s on %v = %v", i, g, c.caps, got)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]uint32{"0644": 0o644, "644": 0o644, "4755": 0o4755, "00600": 0o600, "0": 0} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %o, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "9", "rw-r--r--", "77777"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) accepted", in)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the rule parser: it must never panic,
// and a rule it accepts must resolve without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodRule))
	f.Add([]byte("id: x\n"))
	f.Add([]byte("{{ a }}: {{ b }}\n"))
	f.Add([]byte("implementations:\n  - when: {all: []}\n    check: {checks: []}\n"))
	f.Add([]byte("references: {cis: {debian12: [{section: 1}, 2]}}\n"))
	f.Add([]byte("- a\n- b\n---\nc: d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, errs := Parse("system/fuzz.yml", data)
		if r != nil && len(errs) == 0 {
			vars := map[string]string{}
			for _, name := range r.Variables() {
				vars[name] = "v"
			}
			_, _ = r.Resolve(vars)
			_ = r.References.Pairs()
		}
	})
}
