package check

import (
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

func TestEveryMethodIsImplemented(t *testing.T) {
	for name := range rule.Methods {
		if !Implemented(name) {
			t.Errorf("rule.Methods has %q, which the engine does not implement", name)
		}
	}
	for name := range methods {
		if _, ok := rule.Methods[name]; !ok {
			t.Errorf("the engine implements %q, which rule.Methods does not declare", name)
		}
	}
	if Implemented("no_such_method") {
		t.Error("Implemented(no_such_method) is true")
	}
	o := Eval(&rule.Check{Method: "no_such_method"}, Env{}, target.NewFacts(nil))
	if o.Status != result.Error {
		t.Errorf("unknown method: %s, want error", o.Status)
	}
}

// TestCompositeChecks combines leaves with known verdicts on a real image:
// pass (a file that exists), fail (one that does not), error (a symlink
// loop) and skipped (a live kernel value on a root directory).
func TestCompositeChecks(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	const (
		pass = "{method: file_exists, path: /etc/shadow}"
		fail = "{method: file_exists, path: /etc/gshadow}"
		erro = "{method: file_exists, path: /etc/loop}"
		skip = "{method: sysctl_value, key: kernel.pid_max, expected: \"1\"}"
	)
	list := func(kind string, items ...string) string { return kind + ": [" + strings.Join(items, ", ") + "]" }
	tests := []struct {
		name  string
		check string
		want  result.Status
		leafs int
	}{
		{"checks: all pass", list("checks", pass, pass), result.Pass, 2},
		{"checks: one fails", list("checks", pass, fail), result.Fail, 2},
		{"checks: fail beats error", list("checks", erro, fail), result.Fail, 2},
		{"checks: error beats pass", list("checks", pass, erro), result.Error, 2},
		{"checks: skipped parts do not count", list("checks", pass, skip), result.Pass, 2},
		{"checks: all skipped", list("checks", skip, skip), result.Skipped, 2},
		{"any: one passes", list("any", fail, pass), result.Pass, 2},
		{"any: pass beats error", list("any", erro, pass), result.Pass, 2},
		{"any: error beats fail", list("any", fail, erro), result.Error, 2},
		{"any: all fail", list("any", fail, fail), result.Fail, 2},
		{"any: fail beats skipped", list("any", skip, fail), result.Fail, 2},
		{"any: all skipped", list("any", skip), result.Skipped, 1},
		{"not: pass becomes fail", "not: " + pass, result.Fail, 1},
		{"not: fail becomes pass", "not: " + fail, result.Pass, 1},
		{"not: error stays error", "not: " + erro, result.Error, 1},
		{"not: skipped stays skipped", "not: " + skip, result.Skipped, 1},
		{"nested: not any", "not: {" + list("any", fail, fail) + "}", result.Pass, 2},
		{"nested: checks with any", list("checks", pass, "{"+list("any", fail, pass)+"}"), result.Pass, 3},
		{"nested: checks with not", list("checks", pass, "{not: "+pass+"}"), result.Fail, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := evalOn(t, tg, chk(t, tt.check))
			if o.Status != tt.want {
				t.Errorf("status %s, want %s (reason %q)", o.Status, tt.want, o.Reason)
			}
			if len(o.Evidence) != tt.leafs {
				t.Errorf("%d evidence records, want one per leaf (%d)", len(o.Evidence), tt.leafs)
			}
			assertEvidence(t, o, false)
		})
	}
}

// TestNeedsPlanning: the facts a check needs depend on the target kind, and
// probes shared by many rules are one request per scan.
func TestNeedsPlanning(t *testing.T) {
	live, image := Env{Kind: target.KindSSH}, Env{Kind: target.KindRootDir}
	a := chk(t, "method: sshd_effective_config\nkey: permitrootlogin\nexpected: \"no\"")
	b := chk(t, "method: sshd_effective_config\nkey: maxauthtries\nexpected: \"4\"")
	if reqs := target.Dedup(append(Needs(a, live), Needs(b, live)...)); len(reqs) != 1 {
		t.Errorf("two sshd rules need %d distinct facts, want one sshd -T", len(reqs))
	}
	for _, tt := range []struct {
		check     string
		env       Env
		wantOp    target.Op
		wantPath  string
		wantCount int
	}{
		{"method: sysctl_value\nkey: net.ipv4.ip_forward\nexpected: \"0\"", live, target.OpRead, "/proc/sys/net/ipv4/ip_forward", 1},
		{"method: sysctl_value\nkey: net.ipv4.ip_forward\nexpected: \"0\"", image, "", "", 0},
		{"method: mount_option\nmount_point: /tmp\noptions: [nodev]", live, target.OpRead, "/proc/self/mounts", 1},
		{"method: mount_option\nmount_point: /tmp\noptions: [nodev]", image, target.OpRead, "/etc/fstab", 1},
		{"method: audit_rule_exists\nrule: \"-w /etc/passwd -p wa\"", live, target.OpExec, "", 1},
		{"method: audit_rule_exists\nrule: \"-w /etc/passwd -p wa\"", image, target.OpGlob, "/etc/audit/rules.d/*.rules", 2},
		{"method: selinux_state\nstate: enforcing", image, target.OpRead, "/etc/selinux/config", 1},
		{"method: config_value\npath: /etc/ssh/sshd_config\nkey: a\nexpected: b\ndropin_dir: /etc/ssh/sshd_config.d", live, target.OpRead, "/etc/ssh/sshd_config", 2},
		{"method: command\nrun: \"true\"\ntimeout: 5", live, target.OpExec, "", 1},
		{"method: service_enabled\nname: auditd", live, target.OpService, "auditd.service", 1},
		{"method: service_enabled\nname: tmp.mount", live, target.OpService, "tmp.mount", 1},
	} {
		reqs := Needs(chk(t, tt.check), tt.env)
		if len(reqs) != tt.wantCount {
			t.Errorf("%s on %s: %d requests %v, want %d", tt.check, tt.env.Kind, len(reqs), reqs, tt.wantCount)
			continue
		}
		if tt.wantCount > 0 && (reqs[0].Op != tt.wantOp || reqs[0].Path != tt.wantPath) {
			t.Errorf("%s on %s: first request %+v, want %s %s", tt.check, tt.env.Kind, reqs[0], tt.wantOp, tt.wantPath)
		}
	}
	if r := Needs(chk(t, "method: command\nrun: \"true\"\ntimeout: 5"), live)[0]; r.Timeout.Seconds() != 5 {
		t.Errorf("command timeout: %s, want 5s", r.Timeout)
	}
}
