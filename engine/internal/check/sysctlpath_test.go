package check

import "testing"

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
