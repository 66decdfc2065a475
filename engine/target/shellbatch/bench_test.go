package shellbatch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// detectLikeRequests mirrors the engine's detection batch (detect.go):
// reads, stats of literal paths and of a few patterns, one glob, one exec.
func detectLikeRequests() []target.Request {
	readPaths := []string{"/etc/os-release", "/usr/lib/os-release", "/proc/sys/crypto/fips_enabled",
		"/sys/fs/selinux/enforce", "/sys/module/apparmor/parameters/enabled", "/etc/ufw/ufw.conf", "/proc/self/mounts"}
	statPaths := []string{
		"/usr/bin/apt-get", "/usr/bin/dpkg", "/var/lib/dpkg/status", "/usr/bin/rpm", "/bin/rpm",
		"/usr/bin/systemctl", "/bin/systemctl", "/lib/systemd/systemd", "/usr/lib/systemd/systemd",
		"/etc/ssh/sshd_config.d", "/usr/bin/authselect", "/etc/selinux/config", "/sys/fs/selinux/enforce",
		"/etc/apparmor.d", "/sbin/apparmor_parser", "/usr/sbin/apparmor_parser", "/sbin/auditd", "/usr/sbin/auditd",
		"/usr/sbin/firewalld", "/usr/sbin/nft", "/sbin/nft", "/usr/sbin/ufw", "/usr/sbin/rsyslogd",
		"/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald", "/usr/sbin/chronyd",
		"/usr/sbin/cron", "/usr/sbin/crond", "/usr/sbin/gdm", "/usr/sbin/gdm3", "/usr/bin/dconf",
		"/usr/sbin/sssd", "/etc/sssd/sssd.conf", "/etc/krb5.keytab", "/etc/crypto-policies/config",
		"/usr/bin/aide", "/usr/sbin/aide", "/usr/sbin/sshd", "/usr/bin/sudo", "/etc/default/grub",
		"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/usr/sbin/iptables", "/sbin/iptables",
		"/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd", "/usr/sbin/ntpd",
		"/usr/bin/at", "/sys/firmware/efi", "/etc/pam.d", "/etc/security/faillock.conf",
		"/etc/security/pwquality.conf", "/.dockerenv", "/run/.containerenv", "/usr/bin/Xorg",
		"/usr/lib/xorg/Xorg", "/usr/sbin/postfix", "/usr/bin/snap", "/usr/bin/dnf", "/usr/bin/yum",
		"/usr/sbin/usbguard-daemon", "/usr/sbin/fapolicyd", "/usr/bin/opensc-tool", "/usr/bin/tmux",
		"/etc/libuser.conf", "/proc/net/if_inet6", "/proc/modules", "/lib/modules",
	}
	for _, dir := range []string{"/usr/lib64/security", "/lib64/security", "/usr/lib/security", "/lib/security", "/usr/lib/*/security", "/lib/*/security"} {
		statPaths = append(statPaths, dir+"/pam_faillock.so", dir+"/pam_pwquality.so")
	}
	units := "nftables rsyslog auditd systemd-journald firewalld ufw chronyd chrony"
	var reqs []target.Request
	for _, p := range readPaths {
		reqs = append(reqs, target.Request{Op: target.OpRead, Path: p})
	}
	for _, p := range statPaths {
		reqs = append(reqs, target.Request{Op: target.OpStat, Path: p})
	}
	reqs = append(reqs, target.Request{Op: target.OpGlob, Path: "/boot/loader/entries/*.conf"})
	return append(reqs, target.Request{Op: target.OpExec, Script: `command -v systemctl >/dev/null 2>&1 || exit 0; for u in ` + units +
		`; do printf '%s=%s\n' "$u" "$(systemctl is-active "$u" 2>/dev/null)"; done`})
}

// scan300Requests mirrors the fact batch of the engine's synthetic
// 300-rule benchmark corpus (bench_test.go in package engine): the facts
// its rules need beyond detection, deduplicated.
func scan300Requests() []target.Request {
	files := []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/hosts", "/etc/hostname", "/etc/login.defs", "/etc/os-release"}
	sysctls := []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.send_redirects", "net.ipv4.conf.default.accept_redirects",
		"net.ipv4.tcp_syncookies", "kernel.randomize_va_space", "net.ipv4.conf.all.rp_filter", "kernel.kptr_restrict", "fs.suid_dumpable"}
	sshd := `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; command -v sshd >/dev/null 2>&1 || { echo "sshd is not installed" >&2; exit 127; }; sshd -T`
	var reqs []target.Request
	for i := range 300 {
		var r target.Request
		switch i % 8 {
		case 0:
			r = target.Request{Op: target.OpStat, Path: files[i/8%len(files)]}
		case 1:
			r = target.Request{Op: target.OpRead, Path: "/etc/login.defs"}
		case 2:
			r = target.Request{Op: target.OpRead, Path: "/proc/sys/" + strings.ReplaceAll(sysctls[i/8%len(sysctls)], ".", "/")}
		case 3:
			r = target.Request{Op: target.OpPackages}
		case 4:
			r = target.Request{Op: target.OpExec, Script: sshd}
		case 5:
			r = target.Request{Op: target.OpRead, Path: files[i/8%2]}
		case 6:
			r = target.Request{Op: target.OpStat, Path: fmt.Sprintf("/etc/synthetic-%d.conf", i)}
		case 7:
			r = target.Request{Op: target.OpExec, Script: fmt.Sprintf("test -d /etc || echo missing-%d", i)}
		}
		reqs = append(reqs, r)
	}
	return target.Dedup(reqs)
}

// runCounted runs script under /bin/sh -s like the SSH target does and
// returns its output and the minor page faults of the shell and everything
// it started (from the kernel's rusage of the child).
func runCounted(tb testing.TB, script []byte) (out []byte, minflt int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-s")
	cmd.Stdin = bytes.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("sh -s: %v\n%s", err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		minflt = ru.Minflt
	}
	return stdout.Bytes(), minflt
}

// countProcs runs script once under strace, when there is one, and returns
// how many processes the script created and how many programs it executed
// (the shell itself not counted); -1, -1 without strace. strace -ff writes
// one log per process, so no call is split by another's.
func countProcs(tb testing.TB, script []byte) (procs, execs int) {
	tb.Helper()
	st, err := exec.LookPath("strace")
	if err != nil {
		return -1, -1
	}
	dir := tb.TempDir()
	cmd := exec.Command(st, "-ff", "-qq", "-o", filepath.Join(dir, "trace"), "-e", "trace=execve", "-e", "signal=none", "/bin/sh", "-s")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Logf("strace: %v\n%s", err, out)
		return -1, -1
	}
	logs, err := filepath.Glob(filepath.Join(dir, "trace.*"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, log := range logs {
		data, err := os.ReadFile(log)
		if err != nil {
			tb.Fatal(err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.HasPrefix(line, "execve(") && strings.HasSuffix(line, "= 0") {
				execs++
			}
		}
	}
	return len(logs) - 1, execs - 1
}

func benchBatch(b *testing.B, reqs []target.Request) {
	var faults int64
	for b.Loop() {
		bt, err := New(reqs)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, flt := runCounted(b, bt.Script())
		resps, err := bt.Parse(out, start, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resps {
			if r.Err != nil {
				b.Fatalf("%s %s: %v", r.Req.Op, r.Req, r.Err)
			}
		}
		faults += flt
	}
	b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
	bt, err := New(reqs)
	if err != nil {
		b.Fatal(err)
	}
	if procs, execs := countProcs(b, bt.Script()); procs >= 0 {
		b.ReportMetric(float64(procs), "procs/op")
		b.ReportMetric(float64(execs), "execs/op")
	}
}

// BenchmarkDetectLikeBatch runs the detection-like batch locally under
// /bin/sh and reports the page faults and processes it costs.
func BenchmarkDetectLikeBatch(b *testing.B) { benchBatch(b, detectLikeRequests()) }

// BenchmarkScan300Batch runs the synthetic 300-rule scan batch locally.
func BenchmarkScan300Batch(b *testing.B) { benchBatch(b, scan300Requests()) }
