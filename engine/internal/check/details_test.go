package check

import (
	"testing"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":              "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.rp_filter": "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"kernel/pid_max":                   "/proc/sys/kernel/pid_max",
		"net/ipv4/conf/eth0.100/rp_filter": "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		" kernel.randomize_va_space ":      "/proc/sys/kernel/randomize_va_space",
	} {
		if got := sysctlPath(key); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestCompileERE(t *testing.T) {
	re, err := compileERE(`^\s*auth\s+required\s+\<pam_faillock\.so\>`)
	if err != nil {
		t.Fatal(err)
	}
	if !re.MatchString("auth  required  pam_faillock.so preauth") || re.MatchString("auth required xpam_faillock.so") {
		t.Errorf("word anchors not honoured: %s", re)
	}
	if _, err := compileERE(`(a)\1`); err == nil {
		t.Error("a back-reference compiled; RE2 cannot honour it and must say so")
	}
}

func TestGrubCmdline(t *testing.T) {
	files := []fileText{
		{"/etc/default/grub", []byte("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty0\"\n")},
		{"/etc/default/grub.d/50-cloud.cfg", []byte("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX audit=1\"\n")},
		{"/etc/default/grub.d/60-extra.cfg", []byte("GRUB_CMDLINE_LINUX_DEFAULT=\"${GRUB_CMDLINE_LINUX_DEFAULT} splash\"\n")},
	}
	if got := grubCmdline(files); got != "console=tty0 audit=1 quiet splash" {
		t.Errorf("extending drop-ins: %q", got)
	}
	files = append(files, fileText{"/etc/default/grub.d/99-reset.cfg", []byte("GRUB_CMDLINE_LINUX=\"nomodeset\"\n")})
	if got := grubCmdline(files); got != "nomodeset quiet splash" {
		t.Errorf("a replacing drop-in: %q", got)
	}
}

func TestHasParamComparator(t *testing.T) {
	cl := "BOOT_IMAGE=/vmlinuz audit=1 audit_backlog_limit=8192 quiet audit_backlog_limit=16384"
	for _, c := range []struct {
		key, want, cmp string
		ok             bool
	}{
		{"audit", "1", "", true},
		{"audit_backlog_limit", "8192", ">=", true},
		{"audit_backlog_limit", "8192", "", false}, // the last occurrence counts
		{"audit_backlog_limit", "20000", ">=", false},
		{"quiet", "", "", true},
		{"pti", "on", "", false},
	} {
		if got := hasParam(cl, c.key, c.want, c.cmp); got != c.ok {
			t.Errorf("hasParam(%s %s %s) = %v", c.key, c.cmp, c.want, got)
		}
	}
}

func TestFindKeyBareFlag(t *testing.T) {
	ft := fileText{"/etc/security/faillock.conf", []byte("# even_deny_root\ndeny = 3\neven_deny_root\n")}
	if m := findKey(ft, "even_deny_root", "="); m == nil || m.line != 3 || m.value != "" {
		t.Errorf("bare flag not found: %+v", m)
	}
	if m := findKey(ft, "audit", "="); m != nil {
		t.Errorf("absent flag found: %+v", m)
	}
}

func TestServiceMasked(t *testing.T) {
	c := &rule.Check{Method: "service_state", Params: map[string]rule.Param{"name": {Str: "ctrl-alt-del.target"}, "masked": {Str: "true"}}}
	for state, want := range map[string]result.Status{"masked": result.Pass, "static": result.Fail, "": result.Skipped} {
		// Fake response: systemctl's word for the unit, as the targets report it.
		f := target.NewFacts([]target.Response{{Req: svcReq("ctrl-alt-del.target"), Enabled: state}})
		if o := Eval(c, Env{Kind: target.KindSSH}, f); o.Status != want {
			t.Errorf("is-enabled %q: %s (%s), want %s", state, o.Status, o.Reason, want)
		}
	}
}

func TestSpecialFiles(t *testing.T) {
	// Fake walk output: GNU find is real on the SSH targets (the corpus's
	// proof cases run it there); here the filtering is under test.
	out := "nogroup\t/srv/x\nsgid\t/usr/bin/wall\nsuid\t/usr/bin/passwd\nsuid\t/tmp/evil\nwwf\t/srv/shared.conf\n"
	f := target.NewFacts([]target.Response{{Req: target.Request{Op: target.OpExec, Script: scriptSpecial, Timeout: specialTimeout}, Stdout: []byte(out)}})
	for _, c := range []struct {
		kind, auth string
		want       result.Status
	}{
		{"suid", "/usr/bin/passwd", result.Fail},
		{"suid", "/usr/bin/passwd,/tmp/evil", result.Pass},
		{"sgid", "/usr/bin/wall", result.Pass},
		{"world_writable_files", "", result.Fail},
		{"world_writable_dirs_not_sticky", "", result.Pass},
		{"unowned", "", result.Pass},
		{"ungrouped", "", result.Fail},
	} {
		params := map[string]rule.Param{"kind": {Str: c.kind}}
		if c.auth != "" {
			params["authorized"] = rule.Param{Str: c.auth}
		}
		o := Eval(&rule.Check{Method: "special_files", Params: params}, Env{Kind: target.KindSSH}, f)
		if o.Status != c.want || len(o.Evidence) != 1 || o.Evidence[0].Actual == "" {
			t.Errorf("%s (%s): %s (%s), want %s", c.kind, c.auth, o.Status, o.Reason, c.want)
		}
	}
}
