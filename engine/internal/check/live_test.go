package check

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine/localtarget"
	"github.com/vigilfleet/vigil/engine/result"
)

// The tests in this file observe the machine they run on through the real
// local target. Each reads the truth itself first, so they hold on any
// Linux host.

func readProc(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("%s: %v", p, err)
	}
	return string(data)
}

func TestSysctlLive(t *testing.T) {
	tg := localtarget.New()
	pidMax := strings.TrimSpace(readProc(t, "/proc/sys/kernel/pid_max"))
	n, err := strconv.Atoi(pidMax)
	if err != nil {
		t.Fatalf("pid_max %q", pidMax)
	}
	ostype := strings.TrimSpace(readProc(t, "/proc/sys/kernel/ostype"))
	ports := strings.Fields(readProc(t, "/proc/sys/net/ipv4/ip_local_port_range"))
	const m = "method: sysctl_value\n"
	runCases(t, tg, []tcase{
		{"equal", m + "key: kernel.pid_max\nexpected: \"" + pidMax + "\"", result.Pass, "", pidMax, false},
		{"not equal", m + fmt.Sprintf("key: kernel.pid_max\nexpected: \"%d\"", n+1), result.Fail, "expected == ", pidMax, false},
		{">=", m + "key: kernel.pid_max\nexpected: \"1\"\ncomparator: \">=\"", result.Pass, "", "", false},
		{"<", m + "key: kernel.pid_max\nexpected: \"1\"\ncomparator: \"<\"", result.Fail, "", pidMax, false},
		{"!=", m + "key: kernel.pid_max\nexpected: \"1\"\ncomparator: \"!=\"", result.Pass, "", "", false},
		{"slash form of the key", m + "key: kernel/pid_max\nexpected: \"" + pidMax + "\"", result.Pass, "", "", false},
		{"text, exact", m + "key: kernel.ostype\nexpected: " + ostype, result.Pass, "", ostype, false},
		{"text is case-sensitive", m + "key: kernel.ostype\nexpected: " + strings.ToLower(ostype), result.Fail, "", ostype, false},
		{"tab-separated value against spaces", m + "key: net.ipv4.ip_local_port_range\nexpected: \"" + strings.Join(ports, "   ") + "\"", result.Pass, "", strings.Join(ports, " "), false},
		{"numeric comparator on text fails", m + "key: kernel.ostype\nexpected: \"5\"\ncomparator: \">=\"", result.Fail, "not an integer", ostype, false},
		{"numeric comparator with a text expected value is an error", m + "key: kernel.pid_max\nexpected: many\ncomparator: \">=\"", result.Error, "not an integer", pidMax, false},
		{"parameter this kernel lacks", m + "key: kernel.vigil_no_such_parameter\nexpected: \"1\"", result.Skipped, "no parameter", "not present", false},
	})
}

func TestCommandLive(t *testing.T) {
	tg := localtarget.New()
	const m = "method: command\n"
	runCases(t, tg, []tcase{
		{"exit 0", m + "run: \"true\"", result.Pass, "", "exit 0", false},
		{"cmd alias", m + "cmd: \"exit 0\"", result.Pass, "", "exit 0", false},
		{"exit 3 fails", m + "run: \"echo why >&2; exit 3\"", result.Fail, "exited 3, expected 0: why", "exit 3", false},
		{"expected exit", m + "run: \"exit 3\"\nexpected_exit: 3", result.Pass, "", "exit 3", false},
		{"stdout contains", m + "run: \"echo hello world\"\nexpected_stdout: lo wo", result.Pass, "", `stdout "hello world"`, false},
		{"stdout lacks", m + "run: \"echo hello\"\nexpected_stdout: bye", result.Fail, "output lacks", "hello", false},
		{"stdout must be empty", m + "run: \"echo noise >&2\"\nexpected_stdout: \"\"", result.Pass, "", "", false},
		{"stdout not empty", m + "run: \"echo unexpected\"\nexpected_stdout: \"\"", result.Fail, "expected no output", "unexpected", false},
		{"right output, wrong exit", m + "run: \"echo ok; exit 1\"\nexpected_stdout: ok", result.Fail, "exited 1", "", false},
		{"not assessable", m + "run: \"echo no such file; exit 42\"\nnot_assessable_exit: 42", result.Skipped, "not assessable (exit 42)", "exit 42", false},
		{"not assessable code not hit", m + "run: \"exit 1\"\nnot_assessable_exit: 42", result.Fail, "", "", false},
		{"POSIX sh, multi-line", m + "run: |\n  set -eu\n  for x in a b; do printf '%s' \"$x\"; done\n  [ \"$(id -u)\" -ge 0 ]\nexpected_stdout: ab", result.Pass, "", "", false},
		{"timeout is an error", m + "run: \"sleep 30\"\ntimeout: 1", result.Error, "timed out", "not observed", false},
	})

	// Large output is capped in evidence with the truncation flag set.
	o := evalOn(t, tg, chk(t, m+"run: \"head -c 20000 /dev/zero | tr '\\\\0' x\"\nexpected_stdout: xxx"))
	assertOutcome(t, tcase{want: result.Pass}, o)
	if e := o.Evidence[0]; !e.Truncated || len(e.Stdout) != result.OutputCap || e.ExitCode == nil || *e.ExitCode != 0 {
		t.Errorf("large output: truncated %t, %d bytes kept (cap %d)", e.Truncated, len(e.Stdout), result.OutputCap)
	}
}

func TestSetCompareLive(t *testing.T) {
	tg := localtarget.New()
	const m = "method: set_compare\n"
	runCases(t, tg, []tcase{
		{"all authorized", m + "observed_command: \"printf 'root\\\\nsync\\\\n'\"\nauthorized: [root, sync, games]", result.Pass, "all 2", "2 observed: root, sync", false},
		{"one unauthorized", m + "observed_command: \"printf 'root\\\\nsync\\\\nmallory\\\\n'\"\nauthorized: [root, sync]", result.Fail, "not authorized: mallory", "3 observed", false},
		{"comma-joined list (a list variable)", m + "observed_command: \"printf 'root\\\\nsync\\\\n'\"\nauthorized: \"root, sync\"", result.Pass, "", "", false},
		{"empty authorized list is skipped", m + "observed_command: \"printf 'root\\\\n'\"\nauthorized: []", result.Skipped, "authorized list is empty", "no authorized list", false},
		{"empty authorized string is skipped", m + "observed_command: \"printf 'root\\\\n'\"\nauthorized: \"\"", result.Skipped, "", "", false},
		{"alias separator", m + "observed_command: \"printf 'ssh|sshd\\\\nwheel\\\\n'\"\nauthorized: [sshd, wheel]\nalias_separator: \"|\"", result.Pass, "", "", false},
		{"alias separator, no alias authorized", m + "observed_command: \"printf 'ssh|sshd\\\\n'\"\nauthorized: [wheel]\nalias_separator: \"|\"", result.Fail, "ssh|sshd", "", false},
		{"nothing observed", m + "observed_command: \"true\"\nauthorized: [root]", result.Pass, "all 0", "0 observed", false},
		{"blank lines and spaces ignored", m + "observed_command: \"printf '  root  \\\\n\\\\n'\"\nauthorized: [root]", result.Pass, "", "", false},
		{"observing command failed", m + "observed_command: \"echo broken >&2; exit 2\"\nauthorized: [root]", result.Error, "exited 2: broken", "exit 2", false},
	})
}

func TestMountOptionLive(t *testing.T) {
	// The truth: the last /proc/self/mounts entry for "/" and for /proc.
	opts := map[string][]string{}
	for _, line := range strings.Split(readProc(t, "/proc/self/mounts"), "\n") {
		if fs := strings.Fields(line); len(fs) >= 4 {
			opts[fs[1]] = strings.Split(fs[3], ",")
		}
	}
	if opts["/"] == nil || opts["/proc"] == nil {
		t.Skip("/ or /proc is not in /proc/self/mounts")
	}
	tg := localtarget.New()
	const m = "method: mount_option\n"
	runCases(t, tg, []tcase{
		{"root has its first option", m + "mount_point: /\noptions: [" + opts["/"][0] + "]", result.Pass, "", strings.Join(opts["/"], ","), false},
		{"root has all its options", m + "mount_point: /\noptions: [\"" + strings.Join(opts["/"], "\", \"") + "\"]", result.Pass, "", "", false},
		{"root lacks a made-up option", m + "mount_point: /\noptions: [" + opts["/"][0] + ", vigil-no-such-option]", result.Fail, "lacks vigil-no-such-option", "", false},
		{"/proc", m + "mount_point: /proc\noptions: [" + opts["/proc"][len(opts["/proc"])-1] + "]", result.Pass, "", "proc ", false},
		{"not mounted", m + "mount_point: /vigil/not/mounted\noptions: [nodev]", result.Fail, "not a separate mount", "not a separate mount", false},
	})
}

func TestKernelModuleLive(t *testing.T) {
	runCases(t, localtarget.New(), []tcase{
		{"module that cannot exist", "method: kernel_module_state\nname: vigil_no_such_module\nstate: disabled", result.Pass, "", "not loaded; module file absent", false},
		{"blacklisted, same", "method: kernel_module_state\nname: vigil-no-such-module\nstate: blacklisted", result.Pass, "", "", false},
	})
}

func TestPackagesLive(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("not a dpkg host")
	}
	runCases(t, localtarget.New(), []tcase{
		{"dpkg knows itself", "method: dpkg_installed\nname: dpkg", result.Pass, "", "installed (dpkg", false},
		{"package that cannot exist", "method: package_absent\nname: vigil-no-such-package", result.Pass, "", "not installed", false},
	})
}

// TestProgramsAbsentLive covers the probes whose program this machine does
// not have, observed for real: each must say so as the format says.
func TestProgramsAbsentLive(t *testing.T) {
	tg := localtarget.New()
	var cases []tcase
	if _, err := exec.LookPath("sshd"); err != nil && !exists("/usr/sbin/sshd") {
		cases = append(cases, tcase{"sshd not installed", "method: sshd_effective_config\nkey: permitrootlogin\nexpected: \"no\"", result.Skipped, "not installed", "sshd not installed", false})
	}
	if !exists("/sbin/auditctl") && !exists("/usr/sbin/auditctl") {
		cases = append(cases, tcase{"auditctl not installed: nothing loaded", "method: audit_rule_exists\nrule: \"-w /etc/passwd -p wa -k identity\"", result.Fail, "not installed", "auditctl not installed", false})
	}
	if !exists("/usr/sbin/getenforce") && !exists("/sbin/getenforce") {
		cases = append(cases,
			tcase{"getenforce not installed: disabled", "method: selinux_state\nstate: disabled", result.Pass, "", "disabled", false},
			tcase{"getenforce not installed: not enforcing", "method: selinux_state\nstate: enforcing", result.Fail, "", "disabled", false})
	}
	if !exists("/sys/module/apparmor/parameters/enabled") {
		cases = append(cases, tcase{"AppArmor not in the kernel", "method: apparmor_state\nstate: loaded", result.Fail, "not enabled", "not enabled", false})
	}
	if _, err := exec.LookPath("systemctl"); err == nil && !exists("/run/systemd/system") {
		// systemctl is installed but systemd is not running: unit files
		// answer is-enabled, nothing answers is-active.
		cases = append(cases,
			tcase{"unit that does not exist", "method: service_enabled\nname: vigil-no-such-unit", result.Fail, "is not-found", "is-enabled=not-found", false},
			tcase{"run state without a running systemd", "method: service_active\nname: vigil-no-such-unit", result.Skipped, "cannot be observed", "is-active=unknown", false})
	}
	if out, err := exec.Command("systemctl", "get-default").Output(); err == nil {
		def := strings.TrimSpace(string(out))
		cases = append(cases,
			tcase{"default target", "method: systemd_target\nexpected: " + def, result.Pass, "", def, false},
			tcase{"default target is not", "method: systemd_target\nnot_expected: " + def, result.Fail, "", def, false})
	}
	if len(cases) == 0 {
		t.Skip("every program is installed here; the fake tests cover the rest")
	}
	runCases(t, tg, cases)
}

func TestGrubLive(t *testing.T) {
	cmdline := readProc(t, "/proc/cmdline")
	// Whatever this host's GRUB files say, a parameter the running kernel
	// does not have fails.
	runCases(t, localtarget.New(), []tcase{
		{"not on the running command line", "method: grub_parameter\nkey: vigil_no_such_param", result.Fail, "", "running: " + strings.TrimSpace(cmdline), false},
	})
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
