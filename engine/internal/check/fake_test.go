package check

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vigilfleet/vigil/engine/localtarget"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/target"
)

// The facts in this file cannot be provoked on the machine the tests run
// on: sshd, auditctl and getenforce are not installed, systemd is not PID 1,
// AppArmor is not in the kernel. The responses are therefore fakes built by
// hand in the exact shape the targets return; the SSH-target integration
// tests observe several of these programs for real on Debian targets.

// sshdT is `sshd -T` output (fake: sshd is absent here). sshd prints every
// key in lower case; some keys repeat, one line per value.
const sshdT = `port 22
addressfamily any
permitrootlogin no
maxauthtries 4
clientaliveinterval 300
ciphers aes256-gcm@openssh.com,aes256-ctr
hostkey /etc/ssh/ssh_host_rsa_key
hostkey /etc/ssh/ssh_host_ed25519_key
acceptenv LANG
acceptenv LC_*
subsystem sftp /usr/lib/openssh/sftp-server
`

func TestSSHDFake(t *testing.T) {
	tg := fake(target.KindSSH, nil, execResp(scriptSSHD, sshdT, 0))
	const m = "method: sshd_effective_config\n"
	runCases(t, tg, []tcase{
		{"equal", m + "key: PermitRootLogin\nexpected: \"no\"", result.Pass, "", "no", false},
		{"equal ignoring case", m + "key: permitrootlogin\nexpected: \"NO\"", result.Pass, "", "", false},
		{"not equal", m + "key: PermitRootLogin\nexpected: prohibit-password", result.Fail, "expected == prohibit-password", "no", false},
		{"numeric <=", m + "key: MaxAuthTries\nexpected: \"4\"\ncomparator: \"<=\"", result.Pass, "", "4", false},
		{"numeric > fails", m + "key: MaxAuthTries\nexpected: \"4\"\ncomparator: \">\"", result.Fail, "", "4", false},
		{"numeric on text fails", m + "key: permitrootlogin\nexpected: \"4\"\ncomparator: \"<=\"", result.Fail, "not an integer", "no", false},
		{"numeric with text expected is an error", m + "key: maxauthtries\nexpected: four\ncomparator: \"<=\"", result.Error, "not an integer", "4", false},
		{"value with spaces", m + "key: Subsystem\nexpected: sftp /usr/lib/openssh/sftp-server", result.Pass, "", "", false},
		{"comma list compared whole", m + "key: ciphers\nexpected: aes256-gcm@openssh.com,aes256-ctr", result.Pass, "", "", false},
		{"multi-value: one of the lines", m + "key: HostKey\nexpected: /etc/ssh/ssh_host_ed25519_key", result.Pass, "", "/etc/ssh/ssh_host_rsa_key; /etc/ssh/ssh_host_ed25519_key", false},
		{"multi-value: none of the lines", m + "key: hostkey\nexpected: /etc/ssh/ssh_host_dsa_key", result.Fail, "", "", false},
		{"multi-value != fails when one line equals", m + "key: acceptenv\nexpected: LANG\ncomparator: \"!=\"", result.Fail, "", "LANG; LC_*", false},
		{"multi-value != passes when none equals", m + "key: acceptenv\nexpected: TERM\ncomparator: \"!=\"", result.Pass, "", "", false},
		{"key not in the output", m + "key: x11forwarding\nexpected: \"no\"", result.Fail, "not in the effective", "not in sshd -T output", false},
	})
	// Evidence keeps only the rule's line, not the whole dump.
	o := evalOn(t, tg, chk(t, m+"key: permitrootlogin\nexpected: \"no\""))
	if o.Evidence[0].Stdout != "permitrootlogin no" {
		t.Errorf("evidence stdout %q, want the rule's own line", o.Evidence[0].Stdout)
	}

	c := m + "key: permitrootlogin\nexpected: \"no\""
	for _, tt := range []struct {
		name string
		resp target.Response
		tc   tcase
	}{
		{"not installed", execResp(scriptSSHD, "", 127), tcase{want: result.Skipped, reason: "not installed", actual: "not installed"}},
		{"bad configuration", target.Response{Req: execReq(scriptSSHD), ExitCode: 255, Stderr: []byte("/etc/ssh/sshd_config line 3: Bad configuration option: Foo\n")}, tcase{want: result.Error, reason: "exited 255: /etc/ssh/sshd_config line 3", actual: "exit 255"}},
		{"connection lost", target.Response{Req: execReq(scriptSSHD), Err: errors.New("ssh: connection lost")}, tcase{want: result.Error, reason: "connection lost", actual: "not observed"}},
		{"unsupported", target.Response{Req: execReq(scriptSSHD), Err: fmt.Errorf("no shell: %w", target.ErrUnsupported)}, tcase{want: result.Skipped, reason: "not observable", actual: "not observed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertOutcome(t, tt.tc, evalOn(t, fake(target.KindSSH, nil, tt.resp), chk(t, c)))
		})
	}
}

// auditctlL is `auditctl -l` output (fake: auditctl is absent here) in the
// kernel's canonical form: keys as -F key=, syscalls joined, auid -1 as
// unset, and a watch on an older kernel printed as a path rule.
const auditctlL = `-w /etc/passwd -p wa -k identity
-a always,exit -F arch=b64 -S adjtimex,settimeofday -F key=time-change
-a always,exit -F arch=b32 -S stime,settimeofday,adjtimex -F key=time-change
-a always,exit -F arch=b64 -S chmod,fchmod,fchmodat -F auid>=1000 -F auid!=unset -F key=perm_mod
-a always,exit -S all -F path=/etc/sudoers -F perm=wa -F key=scope
-a always,exit -F arch=b64 -S execve -C uid!=euid -F euid=0 -F key=user_emulation
-a always,exit -S all -F path=/usr/bin/sudo -F perm=x -F auid>=1000 -F auid!=unset -F key=privileged
-a always,exit -F arch=b64 -S unlink,unlinkat -F auid>=1000 -F auid!=unset -F key=delete
-a always,exit -F arch=b64 -S rename,renameat -F auid>=1000 -F auid!=unset -F key=delete
`

func TestAuditFake(t *testing.T) {
	tg := fake(target.KindSSH, nil, execResp(scriptAudit, auditctlL, 0))
	const m = "method: audit_rule_exists\nrule: "
	runCases(t, tg, []tcase{
		{"watch", m + "\"-w /etc/passwd -p wa -k identity\"", result.Pass, "", "-w /etc/passwd -p wa -k identity", false},
		{"-k printed as -F key=", m + "\"-a always,exit -F arch=b64 -S adjtimex -S settimeofday -k time-change\"", result.Pass, "", "-F key=time-change", false},
		{"syscalls in another order", m + "\"-a always,exit -F arch=b64 -S settimeofday,adjtimex -k time-change\"", result.Pass, "", "", false},
		{"b32 rule", m + "\"-a always,exit -F arch=b32 -S adjtimex,settimeofday,stime -k time-change\"", result.Pass, "", "", false},
		{"auid!=4294967295 loaded as unset", m + "\"-a always,exit -F arch=b64 -S fchmodat,fchmod,chmod -F auid>=1000 -F auid!=4294967295 -k perm_mod\"", result.Pass, "", "", false},
		{"auid!=-1 loaded as unset", m + "\"-a always,exit -F arch=b64 -S chmod -S fchmod -S fchmodat -F auid>=1000 -F auid!=-1 -F key=perm_mod\"", result.Pass, "", "", false},
		{"a loaded rule auditing more syscalls covers fewer", m + "\"-a always,exit -F arch=b64 -S chmod -F auid>=1000 -F auid!=unset -k perm_mod\"", result.Pass, "", "", false},
		{"a syscall the loaded rules lack", m + "\"-a always,exit -F arch=b64 -S chmod,lchown -F auid>=1000 -F auid!=unset -k perm_mod\"", result.Fail, "", "0 of 1", false},
		{"path rule without -S is loaded as -S all", m + "\"-a always,exit -F path=/usr/bin/sudo -F perm=x -F auid>=1000 -F auid!=unset -k privileged\"", result.Pass, "", "", false},
		{"syscalls spread over two loaded rules", m + "\"-a always,exit -F arch=b64 -S unlink,rename,unlinkat,renameat -F auid>=1000 -F auid!=unset -k delete\"", result.Pass, "", "", false},
		{"a spread rule missing one syscall", m + "\"-a always,exit -F arch=b64 -S unlink,rename,rmdir -F auid>=1000 -F auid!=unset -k delete\"", result.Fail, "", "", false},
		{"a watch with a trailing slash and no key", m + "\"-w /etc/sudoers/ -p wa\"", result.Pass, "", "", false},
		{"another auid bound", m + "\"-a always,exit -F arch=b64 -S chmod,fchmod,fchmodat -F auid>=500 -F auid!=unset -k perm_mod\"", result.Fail, "", "", false},
		{"watch printed as a path rule", m + "\"-w /etc/sudoers -p wa -k scope\"", result.Pass, "", "", false},
		{"-C comparison, sides swapped", m + "\"-a always,exit -F arch=b64 -C euid!=uid -F euid=0 -S execve -k user_emulation\"", result.Pass, "", "", false},
		{"-C comparison as written", m + "\"-a always,exit -F arch=b64 -C uid!=euid -F euid=0 -S execve -k user_emulation\"", result.Pass, "", "", false},
		{"rule not loaded", m + "\"-w /var/log/sudo.log -p wa -k actions\"", result.Fail, "not loaded: -w /var/log/sudo.log", "missing", false},
	})
	for _, tt := range []struct {
		name string
		resp target.Response
		tc   tcase
	}{
		{"no rules", execResp(scriptAudit, "No rules\n", 0), tcase{want: result.Fail, actual: "0 of 1"}},
		{"auditctl not installed", execResp(scriptAudit, "", 127), tcase{want: result.Fail, reason: "not installed", actual: "not installed"}},
		{"auditctl failed", target.Response{Req: execReq(scriptAudit), ExitCode: 1, Stderr: []byte("You must be root to run this program.\n")}, tcase{want: result.Error, reason: "must be root", actual: "exit 1"}},
		{"transport failure", target.Response{Req: execReq(scriptAudit), Err: errors.New("broken pipe")}, tcase{want: result.Error, reason: "broken pipe", actual: "not observed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertOutcome(t, tt.tc, evalOn(t, fake(target.KindSSH, nil, tt.resp), chk(t, m+"\"-w /etc/passwd -p wa -k identity\"")))
		})
	}
}

func TestSELinuxFake(t *testing.T) {
	for _, tt := range []struct {
		name, state string
		resp        target.Response
		tc          tcase
	}{
		{"enforcing, ignoring case", "enforcing", execResp(scriptSELnx, "Enforcing\n", 0), tcase{want: result.Pass, actual: "enforcing"}},
		{"permissive is not enforcing", "enforcing", execResp(scriptSELnx, "Permissive\n", 0), tcase{want: result.Fail, reason: "SELinux is permissive", actual: "permissive"}},
		{"permissive", "permissive", execResp(scriptSELnx, "Permissive\n", 0), tcase{want: result.Pass}},
		{"disabled", "disabled", execResp(scriptSELnx, "Disabled\n", 0), tcase{want: result.Pass}},
		{"not installed counts as disabled", "disabled", execResp(scriptSELnx, "", 127), tcase{want: result.Pass, actual: "not installed"}},
		{"not installed is not enforcing", "enforcing", execResp(scriptSELnx, "", 127), tcase{want: result.Fail}},
		{"getenforce failed", "enforcing", target.Response{Req: execReq(scriptSELnx), ExitCode: 1, Stderr: []byte("boom\n")}, tcase{want: result.Error, reason: "exited 1: boom", actual: "exit 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertOutcome(t, tt.tc, evalOn(t, fake(target.KindLocal, nil, tt.resp), chk(t, "method: selinux_state\nstate: "+tt.state)))
		})
	}
}

func TestAppArmorFake(t *testing.T) {
	const profiles = "/usr/sbin/cupsd (enforce)\n/usr/bin/man (enforce)\nnvidia_modprobe (complain)\n"
	for _, tt := range []struct {
		name, state       string
		enabled, profiles *target.Response
		tc                tcase
	}{
		{"loaded", "loaded", ptr(readResp(aaEnabled.Path, "Y\n")), ptr(readResp(aaProfiles.Path, profiles)), tcase{want: result.Pass, actual: "3 profiles loaded (1 complain, 2 enforce)"}},
		{"complain profile is not enforcing", "enforcing", ptr(readResp(aaEnabled.Path, "Y\n")), ptr(readResp(aaProfiles.Path, profiles)), tcase{want: result.Fail, reason: "1 profiles are in complain mode"}},
		{"all enforcing", "enforcing", ptr(readResp(aaEnabled.Path, "Y\n")), ptr(readResp(aaProfiles.Path, "/usr/sbin/cupsd (enforce)\n")), tcase{want: result.Pass}},
		{"no profiles", "loaded", ptr(readResp(aaEnabled.Path, "Y\n")), ptr(readResp(aaProfiles.Path, "")), tcase{want: result.Fail, reason: "no AppArmor profiles", actual: "0 profiles"}},
		{"disabled in the kernel", "loaded", ptr(readResp(aaEnabled.Path, "N\n")), ptr(readResp(aaProfiles.Path, "")), tcase{want: result.Fail, reason: "not enabled"}},
		{"not in the kernel", "loaded", &target.Response{Req: aaEnabled}, &target.Response{Req: aaProfiles}, tcase{want: result.Fail, reason: "not enabled"}},
		{"profiles unreadable", "loaded", ptr(readResp(aaEnabled.Path, "Y\n")), &target.Response{Req: aaProfiles, Err: errors.New("permission denied")}, tcase{want: result.Error, reason: "permission denied", actual: "not observed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := fake(target.KindSSH, nil, *tt.enabled, *tt.profiles)
			assertOutcome(t, tt.tc, evalOn(t, tg, chk(t, "method: apparmor_state\nstate: "+tt.state)))
		})
	}
}

func ptr(r target.Response) *target.Response { return &r }

func TestSystemdTargetFake(t *testing.T) {
	for _, tt := range []struct {
		name, params string
		resp         target.Response
		tc           tcase
	}{
		{"expected", "expected: multi-user.target", execResp(scriptTarget, "multi-user.target\n", 0), tcase{want: result.Pass, actual: "multi-user.target"}},
		{"not the expected", "expected: multi-user.target", execResp(scriptTarget, "graphical.target\n", 0), tcase{want: result.Fail, reason: "default target is graphical.target", actual: "graphical.target"}},
		{"not_expected", "not_expected: graphical.target", execResp(scriptTarget, "multi-user.target\n", 0), tcase{want: result.Pass}},
		{"not_expected hit", "not_expected: graphical.target", execResp(scriptTarget, "graphical.target\n", 0), tcase{want: result.Fail}},
		{"both", "expected: multi-user.target\nnot_expected: graphical.target", execResp(scriptTarget, "multi-user.target\n", 0), tcase{want: result.Pass}},
		{"no systemd", "expected: multi-user.target", execResp(scriptTarget, "", 127), tcase{want: result.Skipped, reason: "not installed", actual: "not installed"}},
		{"systemctl failed", "expected: multi-user.target", target.Response{Req: execReq(scriptTarget), ExitCode: 1, Stderr: []byte("Failed to get default target\n")}, tcase{want: result.Error, actual: "exit 1: Failed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertOutcome(t, tt.tc, evalOn(t, fake(target.KindSSH, nil, tt.resp), chk(t, "method: systemd_target\n"+tt.params)))
		})
	}
}

// TestServicesFake: unit states as systemctl reports them on a booted
// systemd (fake: systemd is not PID 1 here).
func TestServicesFake(t *testing.T) {
	svc := func(unit, enabled, active string) target.Response {
		return target.Response{Req: svcReq(unit), Enabled: enabled, Active: active}
	}
	for _, tt := range []struct {
		name, check string
		resp        target.Response
		tc          tcase
	}{
		{"enabled", "method: service_enabled\nname: auditd", svc("auditd", "enabled", "active"), tcase{want: result.Pass, actual: "is-enabled=enabled"}},
		{"enabled-runtime", "method: service_enabled\nname: auditd", svc("auditd", "enabled-runtime", "active"), tcase{want: result.Pass}},
		{"static", "method: service_enabled\nname: systemd-journald", svc("systemd-journald", "static", "active"), tcase{want: result.Pass}},
		{"generated", "method: service_enabled\nname: tmp.mount", svc("tmp.mount", "generated", "active"), tcase{want: result.Pass}},
		{"disabled", "method: service_enabled\nname: auditd", svc("auditd", "disabled", "inactive"), tcase{want: result.Fail, reason: "auditd.service is disabled"}},
		{"masked", "method: service_enabled\nname: auditd", svc("auditd", "masked", "inactive"), tcase{want: result.Fail}},
		{"not-found", "method: service_enabled\nname: auditd.service", svc("auditd.service", "not-found", "inactive"), tcase{want: result.Fail}},
		{"no systemctl", "method: service_enabled\nname: auditd", svc("auditd", "", ""), tcase{want: result.Skipped, reason: "systemctl is not available", actual: "is-enabled=unknown"}},
		{"active", "method: service_active\nname: auditd", svc("auditd", "disabled", "active"), tcase{want: result.Pass}},
		{"inactive", "method: service_active\nname: auditd", svc("auditd", "enabled", "inactive"), tcase{want: result.Fail, reason: "is inactive"}},
		{"failed", "method: service_active\nname: auditd", svc("auditd", "enabled", "failed"), tcase{want: result.Fail}},
		{"run state unobservable", "method: service_active\nname: auditd", svc("auditd", "enabled", ""), tcase{want: result.Skipped, reason: "cannot be observed"}},
		{"state: disabled and stopped", "method: service_state\nname: avahi-daemon\nenabled: false\nactive: false", svc("avahi-daemon", "masked", "inactive"), tcase{want: result.Pass}},
		{"state: disabled but running", "method: service_state\nname: avahi-daemon\nenabled: false\nactive: false", svc("avahi-daemon", "disabled", "active"), tcase{want: result.Fail, reason: "is active"}},
		{"state: both wrong", "method: service_state\nname: auditd\nenabled: true\nactive: true", svc("auditd", "disabled", "inactive"), tcase{want: result.Fail, reason: "is disabled and is inactive"}},
		{"state: enabled only", "method: service_state\nname: auditd\nenabled: true", svc("auditd", "static", ""), tcase{want: result.Pass}},
		{"state: root dir, enabled known to fail", "method: service_state\nname: auditd\nenabled: true\nactive: true", svc("auditd", "disabled", ""), tcase{want: result.Fail}},
		{"state: root dir, run state unknown", "method: service_state\nname: auditd\nenabled: true\nactive: true", svc("auditd", "enabled", ""), tcase{want: result.Skipped}},
		{"observation failed", "method: service_active\nname: auditd", target.Response{Req: svcReq("auditd"), Err: errors.New("timeout")}, tcase{want: result.Error, reason: "timeout", actual: "not observed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertOutcome(t, tt.tc, evalOn(t, fake(target.KindSSH, nil, tt.resp), chk(t, tt.check)))
		})
	}
}

// TestServicesOnRootDir uses the real systemctl against unit files in an
// image (systemctl --root works without a running systemd).
func TestServicesOnRootDir(t *testing.T) {
	if !exists("/usr/bin/systemctl") && !exists("/bin/systemctl") {
		t.Skip("systemctl is not installed (apt-get install systemd)")
	}
	unit := "[Unit]\nDescription=test\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	tg := rootTarget(t,
		f("/usr/lib/systemd/system/auditd.service", unit),
		f("/usr/lib/systemd/system/rsync.service", unit),
		ln("/etc/systemd/system/multi-user.target.wants/auditd.service", "/usr/lib/systemd/system/auditd.service"),
		ln("/etc/systemd/system/telnet.service", "/dev/null"),
	)
	runCases(t, tg, []tcase{
		{"enabled", "method: service_enabled\nname: auditd", result.Pass, "", "is-enabled=enabled", false},
		{"disabled", "method: service_enabled\nname: rsync", result.Fail, "is disabled", "", false},
		{"masked", "method: service_state\nname: telnet\nenabled: false", result.Pass, "", "is-enabled=masked", false},
		{"absent unit is not enabled", "method: service_state\nname: nfs-server\nenabled: false", result.Pass, "", "not-found", false},
		{"no run state in an image", "method: service_active\nname: auditd", result.Skipped, "cannot be observed", "", false},
	})
}

// TestLiveFactsOverImage evaluates live-only facts (a chosen running kernel
// command line, a mount table, a loaded module) over the files of a real
// image: the fakes stand in for /proc of a booted host, which this machine
// cannot be made to have.
func TestLiveFactsOverImage(t *testing.T) {
	img, err := localtarget.NewRootDir(buildRoot(t, debianImage()...))
	if err != nil {
		t.Fatal(err)
	}
	live := func(resps ...target.Response) target.Target { return fake(target.KindLocal, img, resps...) }
	cmdline := func(s string) target.Response { return readResp("/proc/cmdline", s) }
	runCases(t, live(cmdline("BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=abc ro audit=1 audit_backlog_limit=8192 quiet apparmor=1\n")), []tcase{
		{"running and persistent", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Pass, "", "running: BOOT_IMAGE", false},
	})
	runCases(t, live(cmdline("BOOT_IMAGE=/boot/vmlinuz root=UUID=abc ro quiet\n")), []tcase{
		{"persistent but not yet booted", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Fail, "running kernel command line lacks audit=1", "", false},
	})
	runCases(t, live(target.Response{Req: cmdlineReq, Err: errors.New("permission denied")}), []tcase{
		{"cmdline unreadable", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Error, "permission denied", "not observed", false},
	})

	mounts := readResp("/proc/self/mounts", "/dev/vda1 / ext4 rw,relatime 0 0\n"+
		"tmpfs /tmp tmpfs rw,nosuid,nodev 0 0\n"+
		"tmpfs /tmp tmpfs rw,nosuid,nodev,noexec 0 0\n"+ // mounted over: the last one counts
		"/dev/vdb1 /mnt/my\\040data ext4 rw,nodev 0 0\n")
	runCases(t, live(mounts), []tcase{
		{"mounted over: the top mount counts", "method: mount_option\nmount_point: /tmp\noptions: [nodev, nosuid, noexec]", result.Pass, "", "tmpfs rw,nosuid,nodev,noexec", false},
		{"\\040 in the mount point", "method: mount_option\nmount_point: /mnt/my data\noptions: [nodev]", result.Pass, "", "", false},
		{"the live table, not fstab", "method: mount_option\nmount_point: /var/log\noptions: [nodev]", result.Fail, "not a separate mount", "", false},
	})
	runCases(t, live(target.Response{Req: modReq("cramfs"), Loaded: true, Available: true}), []tcase{
		{"loaded despite the redirect", "method: kernel_module_state\nname: cramfs\nstate: disabled", result.Fail, "is loaded", "loaded; module file present; install redirected", false},
	})
	runCases(t, live(target.Response{Req: modReq("cramfs"), Err: errors.New("read /proc/modules: permission denied")}), []tcase{
		{"modules unreadable", "method: kernel_module_state\nname: cramfs\nstate: disabled", result.Error, "permission denied", "not observed", false},
	})
	runCases(t, live(target.Response{Req: readReq("/proc/sys/net/ipv4/ip_forward"), Err: errors.New("permission denied")}), []tcase{
		{"sysctl unreadable", "method: sysctl_value\nkey: net.ipv4.ip_forward\nexpected: \"0\"", result.Error, "permission denied", "not observed", false},
	})
	// A live host's persistent audit rules are not what is loaded: the
	// live check asks auditctl, even when rules.d has the rule.
	runCases(t, live(execResp(scriptAudit, "No rules\n", 0)), []tcase{
		{"persistent only", "method: audit_rule_exists\nrule: \"-w /etc/passwd -p wa -k identity\"", result.Fail, "not loaded", "", false},
	})
}
