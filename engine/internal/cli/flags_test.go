package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine"
)

func TestParseHostSpec(t *testing.T) {
	cases := []struct {
		spec, user, addr, name string
		port                   int
		err                    string
	}{
		{spec: "admin@web1", user: "admin", addr: "web1", name: "web1"},
		{spec: "web1:2222", addr: "web1", port: 2222, name: "web1:2222"},
		{spec: "root@192.0.2.7:22", user: "root", addr: "192.0.2.7", port: 22, name: "192.0.2.7"},
		{spec: "ops@[2001:db8::1]:2200", user: "ops", addr: "2001:db8::1", port: 2200, name: "[2001:db8::1]:2200"},
		{spec: "[::1]", addr: "::1", name: "::1"},
		{spec: "::1", addr: "::1", name: "::1"},
		{spec: "a@b@host", user: "a@b", addr: "host", name: "host"},
		{spec: "@web1", err: "empty user"},
		{spec: "web1:0", err: "port"},
		{spec: "web1:99999", err: "port"},
		{spec: "web1:ssh", err: "port"},
		{spec: "user@", err: "no address"},
		{spec: "[::1", err: "missing"},
		{spec: "fe80::1::2:22", err: "not an IPv6 address"},
		{spec: "web 1", err: "invalid address"},
	}
	for _, tc := range cases {
		t.Run(tc.spec, func(t *testing.T) {
			h, err := parseHostSpec(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.User != tc.user || h.Address != tc.addr || h.Port != tc.port || h.Name != tc.name {
				t.Errorf("got user %q addr %q port %d name %q", h.User, h.Address, h.Port, h.Name)
			}
		})
	}
}

// TestCheckUsageErrors runs vigil check with bad flags: each must exit 2
// and say what is wrong, before any host is contacted.
func TestCheckUsageErrors(t *testing.T) {
	rules := t.TempDir()
	writeFile(t, rules, "filesystem/a-rule.yml", permRule("a-rule", "low", "/etc/passwd", "0644"))
	base := []string{"check", "--rules", rules, "--config", t.TempDir()}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined: -nope"},
		{"workers zero", []string{"--workers", "0"}, "--workers must be at least 1"},
		{"workers not a number", []string{"--workers", "many"}, "invalid value"},
		{"bad severity", []string{"--severity", "high,urgent"}, `--severity "urgent"`},
		{"bad category", []string{"--category", "printers"}, `--category "printers"`},
		{"unknown capability", []string{"--cap", "teleporter=true"}, `unknown capability "teleporter"`},
		{"capability not a bool", []string{"--cap", "sshd=maybe"}, "is not true or false"},
		{"var without value", []string{"--var", "novalue"}, "is not NAME=VALUE"},
		{"bad format", []string{"--format", "xml"}, `--format "xml"`},
		{"root with host", []string{"--root", "/", "--host", "a@b"}, "cannot be combined"},
		{"bad host", []string{"--host", "u@web1:0"}, "port"},
		{"negative timeout", []string{"--connect-timeout", "-1s"}, "--connect-timeout must be positive"},
		{"positional argument", []string{"web1"}, "unexpected arguments: web1"},
		{"password variable unset", []string{"--host", "u@web1", "--password-env", "NOT_SET"}, "environment variable NOT_SET is not set"},
		{"agent without socket", []string{"--host", "u@web1", "--agent"}, "SSH_AUTH_SOCK is not set"},
		{"duplicate host", []string{"--host", "u@web1", "--host", "v@web1", "--key", "k"}, `"web1" is listed more than once`},
		{"missing rules", []string{"--rules", "/nonexistent/rules"}, "/nonexistent/rules"},
		{"missing config", []string{"--config", "/nonexistent/config"}, "--config"},
		{"filter matches nothing", []string{"--rule", "no-such-rule"}, "no rule in"},
		{"missing inventory", []string{"--inventory", "/nonexistent/inv.yml"}, "inventory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, testEnv(t, nil), append(append([]string{}, base...), tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout should be empty on a usage error, got:\n%s", stdout)
			}
		})
	}
}

// TestCheckFlagsBuildOptions checks what the flags turn into: the filter,
// the variables and the SSH options of each host.
func TestCheckFlagsBuildOptions(t *testing.T) {
	rules := t.TempDir()
	writeFile(t, rules, "filesystem/a-rule.yml", permRule("a-rule", "low", "/etc/passwd", "0644"))
	var cf checkFlags
	fs := newCheckFlagSet(&cf)
	err := fs.Parse([]string{"--rules", rules, "--config", t.TempDir(),
		"--severity", "high,critical", "--severity", "low", "--category", "filesystem", "--framework", "cis", "--rule", "a-rule",
		"--var", "x=1", "--var", "y=a=b", "--cap", "sshd=false", "--cap", "apt=1",
		"--host", "root@192.0.2.1", "--host", "[2001:db8::2]:2200", "--key", "/k1", "--key", "/k2",
		"--sudo", "--sudo-password-env", "SUDO_PW", "--known-hosts", "/kh", "--accept-new-host-keys",
		"--connect-timeout", "2s", "--workers", "3"})
	if err != nil {
		t.Fatal(err)
	}
	cf.targets.set = visited(fs)
	jobs, plan, err := cf.prepare(testEnv(t, map[string]string{"SUDO_PW": "s3cret"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := plan.filter
	if strings.Join(f.Severities, ",") != "high,critical,low" || f.Categories[0] != "filesystem" || f.Frameworks[0] != "cis" || f.RuleIDs[0] != "a-rule" {
		t.Errorf("filter = %+v", f)
	}
	if plan.cfg.CLI["x"] != "1" || plan.cfg.CLI["y"] != "a=b" || plan.cfg.CLICapsSet["sshd"] || !plan.cfg.CLICapsSet["apt"] {
		t.Errorf("vars %v caps %v", plan.cfg.CLI, plan.cfg.CLICapsSet)
	}
	if plan.workers != 3 || len(jobs) != 2 {
		t.Fatalf("workers %d, %d jobs", plan.workers, len(jobs))
	}
	o := jobs[0].SSH
	if o.Host != "192.0.2.1" || o.Port != 22 || o.User != "root" || strings.Join(o.KeyFiles, ",") != "/k1,/k2" ||
		!o.Sudo || o.SudoPassword != "s3cret" || o.KnownHostsFile != "/kh" || !o.AcceptUnknownHost ||
		o.ConnectTimeout != 2*time.Second || o.Name != "192.0.2.1" {
		t.Errorf("first host options = %+v", *o)
	}
	o = jobs[1].SSH
	if o.Host != "2001:db8::2" || o.Port != 2200 || o.User != "tester" || o.Name != "[2001:db8::2]:2200" {
		t.Errorf("second host options = %+v", *o)
	}
}

func TestLocalIsTheDefaultTarget(t *testing.T) {
	var tf targetFlags
	tf.workers, tf.connectTimeout = 1, time.Second
	jobs, err := tf.plan(testEnv(t, nil))
	if err != nil || len(jobs) != 1 || jobs[0].SSH != nil || jobs[0].Root != "" || jobs[0].Name != "localhost" {
		t.Errorf("plan() = %+v, %v; want the local host", jobs, err)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"check", "-h"}, {"help", "check"}, {"detect", "--help"}, {"rules", "list", "-h"}, {"help", "rules", "validate"}, {"version"}} {
		code, stdout, stderr := runCLI(t, testEnv(t, nil), args...)
		if code != exitOK || stdout == "" || stderr != "" {
			t.Errorf("vigil %v: exit %d, stdout %d bytes, stderr %q", args, code, len(stdout), stderr)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"rules"}, {"rules", "frob"}} {
		if code, _, stderr := runCLI(t, testEnv(t, nil), args...); code != exitUsage || stderr == "" {
			t.Errorf("vigil %v: exit %d, stderr %q; want usage on stderr and exit 2", args, code, stderr)
		}
	}
	if _, stdout, _ := runCLI(t, testEnv(t, nil), "check", "-h"); !strings.Contains(stdout, "--password-env var") || !strings.Contains(stdout, "Exit status") {
		t.Errorf("check usage lacks flags or exit status:\n%s", stdout)
	}
}

func TestConfigKey(t *testing.T) {
	cfg := engine.NewConfig()
	cfg.Hosts["web1"] = map[string]string{}
	cfg.Hosts["192.0.2.9"] = map[string]string{}
	for _, tc := range []struct{ name, addr, want string }{
		{"web1", "192.0.2.1", "web1"},
		{"db1", "192.0.2.9", "192.0.2.9"},
		{"db2", "192.0.2.10", "db2"},
		{"localhost", "", "localhost"},
	} {
		if got := (job{Name: tc.name, Address: tc.addr}).configKey(cfg); got != tc.want {
			t.Errorf("configKey(%s, %s) = %s, want %s", tc.name, tc.addr, got, tc.want)
		}
	}
}
