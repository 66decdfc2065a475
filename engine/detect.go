package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/vigilfleet/vigil/engine/target"
)

// Capabilities are named booleans probed once per host; implementation
// gates (`when:`) select on them.
type Capabilities map[string]bool

// Names returns the true capabilities, sorted.
func (c Capabilities) Names() []string {
	var out []string
	for k, v := range c {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// activeUnits are the services whose run state a capability depends on.
var activeUnits = []string{"nftables", "rsyslog", "auditd", "systemd-journald", "firewalld", "ufw", "chronyd", "chrony"}

var scriptActive = `command -v systemctl >/dev/null 2>&1 || exit 0; for u in ` + strings.Join(activeUnits, " ") +
	`; do printf '%s=%s\n' "$u" "$(systemctl is-active "$u" 2>/dev/null)"; done`

var securityDirs = []string{"/usr/lib64/security", "/lib64/security", "/usr/lib/security", "/lib/security", "/usr/lib/*/security", "/lib/*/security"}

// capDetector decides one capability from the detection facts.
type capDetector func(d *detectFacts) bool

func exists(paths ...string) capDetector {
	return func(d *detectFacts) bool {
		for _, p := range paths {
			if d.exists(p) {
				return true
			}
		}
		return false
	}
}

func pamModule(name string) capDetector {
	return func(d *detectFacts) bool {
		for _, dir := range securityDirs {
			if d.exists(dir + "/" + name) {
				return true
			}
		}
		return false
	}
}

func active(units ...string) capDetector {
	return func(d *detectFacts) bool {
		for _, u := range units {
			if d.active[u] == "active" {
				return true
			}
		}
		return false
	}
}

func fileIs(path, want string) capDetector {
	return func(d *detectFacts) bool { return strings.TrimSpace(d.read(path)) == want }
}

func all(ds ...capDetector) capDetector {
	return func(d *detectFacts) bool {
		for _, x := range ds {
			if !x(d) {
				return false
			}
		}
		return true
	}
}

var detectors = map[string]capDetector{
	"apt":               exists("/usr/bin/apt-get"),
	"dpkg":              exists("/usr/bin/dpkg", "/var/lib/dpkg/status"),
	"rpm":               exists("/usr/bin/rpm", "/bin/rpm"),
	"systemd":           all(exists("/usr/bin/systemctl", "/bin/systemctl"), exists("/lib/systemd/systemd", "/usr/lib/systemd/systemd")),
	"sshd_config_d":     exists("/etc/ssh/sshd_config.d"),
	"authselect":        exists("/usr/bin/authselect"),
	"pam_faillock":      pamModule("pam_faillock.so"),
	"pam_pwquality":     pamModule("pam_pwquality.so"),
	"selinux":           exists("/etc/selinux/config", "/sys/fs/selinux/enforce"),
	"apparmor":          all(exists("/etc/apparmor.d"), exists("/sbin/apparmor_parser", "/usr/sbin/apparmor_parser")),
	"auditd":            exists("/sbin/auditd", "/usr/sbin/auditd"),
	"firewalld":         exists("/usr/sbin/firewalld"),
	"nftables":          exists("/usr/sbin/nft", "/sbin/nft"),
	"nftables_active":   active("nftables"),
	"ufw":               exists("/usr/sbin/ufw"),
	"rsyslog":           exists("/usr/sbin/rsyslogd"),
	"rsyslog_active":    active("rsyslog"),
	"journald":          exists("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"),
	"chronyd":           exists("/usr/sbin/chronyd"),
	"cron":              exists("/usr/sbin/cron", "/usr/sbin/crond"),
	"gdm":               exists("/usr/sbin/gdm", "/usr/sbin/gdm3"),
	"dconf":             exists("/usr/bin/dconf"),
	"sssd":              exists("/usr/sbin/sssd"),
	"sssd_configured":   exists("/etc/sssd/sssd.conf"),
	"directory_joined":  all(exists("/etc/krb5.keytab"), exists("/etc/sssd/sssd.conf")),
	"fips_mode":         fileIs("/proc/sys/crypto/fips_enabled", "1"),
	"crypto_policies":   exists("/etc/crypto-policies/config"),
	"grub_bls":          func(d *detectFacts) bool { return d.globCount("/boot/loader/entries/*.conf") > 0 },
	"aide":              exists("/usr/bin/aide", "/usr/sbin/aide"),
	"sshd":              exists("/usr/sbin/sshd"),
	"sudo":              exists("/usr/bin/sudo"),
	"grub":              exists("/etc/default/grub", "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"),
	"iptables":          exists("/usr/sbin/iptables", "/sbin/iptables"),
	"timesyncd":         exists("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd"),
	"ntp":               exists("/usr/sbin/ntpd"),
	"at":                exists("/usr/bin/at"),
	"uefi":              exists("/sys/firmware/efi"),
	"pam":               exists("/etc/pam.d"),
	"faillock_conf":     exists("/etc/security/faillock.conf"),
	"pwquality_conf":    exists("/etc/security/pwquality.conf"),
	"auditd_active":     active("auditd"),
	"journald_active":   active("systemd-journald"),
	"selinux_enforcing": fileIs("/sys/fs/selinux/enforce", "1"),
	"apparmor_enabled":  fileIs("/sys/module/apparmor/parameters/enabled", "Y"),
	"firewalld_active":  active("firewalld"),
	"ufw_active": func(d *detectFacts) bool {
		return active("ufw")(d) || strings.Contains(d.read("/etc/ufw/ufw.conf"), "ENABLED=yes")
	},
	"chronyd_active": active("chronyd", "chrony"),
	"tmp_mount":      func(d *detectFacts) bool { return d.mounted("/tmp") },
	"container":      exists("/.dockerenv", "/run/.containerenv"),
	"xorg":           exists("/usr/bin/Xorg", "/usr/lib/xorg/Xorg"),
	"postfix":        exists("/usr/sbin/postfix"),
	"snap":           exists("/usr/bin/snap"),
	"dnf":            exists("/usr/bin/dnf"),
	"yum":            exists("/usr/bin/yum"),
	"usbguard":       exists("/usr/sbin/usbguard-daemon"),
	"fapolicyd":      exists("/usr/sbin/fapolicyd"),
	"opensc":         exists("/usr/bin/opensc-tool"),
	"tmux":           exists("/usr/bin/tmux"),
	"libuser":        exists("/etc/libuser.conf"),
	"ipv6":           exists("/proc/net/if_inet6"),
	"kernel_modules": exists("/proc/modules", "/lib/modules"),
	"live_kernel":    func(d *detectFacts) bool { return d.live },
}

// The paths every detector may look at, gathered in the same batch as
// os-release: one round trip detects platform and capabilities together.
var (
	statPaths = []string{
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
	readPaths = []string{"/etc/os-release", "/usr/lib/os-release", "/proc/sys/crypto/fips_enabled",
		"/sys/fs/selinux/enforce", "/sys/module/apparmor/parameters/enabled", "/etc/ufw/ufw.conf", "/proc/self/mounts"}
	globPaths = []string{"/boot/loader/entries/*.conf"}
)

func init() {
	for _, dir := range securityDirs {
		statPaths = append(statPaths, dir+"/pam_faillock.so", dir+"/pam_pwquality.so")
	}
}

// DetectionRequests is the whole detection batch a session sends first:
// os-release and every capability probe. Exposed so the transport's cost
// for it can be measured against the real list, not a copy.
func DetectionRequests() []target.Request {
	var reqs []target.Request
	for _, p := range readPaths {
		reqs = append(reqs, target.Request{Op: target.OpRead, Path: p})
	}
	for _, p := range statPaths {
		reqs = append(reqs, target.Request{Op: target.OpStat, Path: p})
	}
	for _, p := range globPaths {
		reqs = append(reqs, target.Request{Op: target.OpGlob, Path: p})
	}
	return append(reqs, target.Request{Op: target.OpExec, Script: scriptActive})
}

// detectFacts is the answered detection batch.
type detectFacts struct {
	f      *target.Facts
	live   bool
	active map[string]string
}

func (d *detectFacts) exists(p string) bool {
	if strings.ContainsAny(p, "*?[") {
		r := d.f.Get(target.Request{Op: target.OpStat, Path: p})
		return r != nil && len(r.Files) > 0
	}
	r := d.f.Get(target.Request{Op: target.OpStat, Path: p})
	return r != nil && r.Err == nil && len(r.Files) > 0 && r.Files[0].Exists
}

func (d *detectFacts) read(p string) string {
	r := d.f.Get(target.Request{Op: target.OpRead, Path: p})
	if r == nil || r.Err != nil || !r.Exists {
		return ""
	}
	return string(r.Data)
}

func (d *detectFacts) globCount(p string) int {
	r := d.f.Get(target.Request{Op: target.OpGlob, Path: p})
	if r == nil || r.Err != nil {
		return 0
	}
	return len(r.Files)
}

func (d *detectFacts) mounted(mp string) bool {
	for _, line := range strings.Split(d.read("/proc/self/mounts"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == mp {
			return true
		}
	}
	return false
}

// HostInfo is what detection found about a host.
type HostInfo struct {
	Platform     Platform     `json:"platform"`
	Capabilities Capabilities `json:"capabilities"`
	// Facts is the detection batch, reused by the scan so that a check
	// needing the same fact does not fetch it again.
	Facts *target.Facts `json:"-"`
}

// detect runs the detection batch and derives platform and capabilities,
// then applies operator overrides.
func detect(ctx context.Context, t target.Target, overrides map[string]bool) (*HostInfo, error) {
	reqs := DetectionRequests()
	resps, err := t.Gather(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("detect %s: %w", t.Name(), err)
	}
	facts := target.NewFacts(resps)
	d := &detectFacts{f: facts, live: t.Kind() != target.KindRootDir, active: map[string]string{}}
	info := &HostInfo{Facts: facts, Capabilities: Capabilities{}}
	osr := d.read("/etc/os-release")
	if osr == "" {
		osr = d.read("/usr/lib/os-release")
	}
	if osr == "" {
		return nil, fmt.Errorf("detect %s: no readable /etc/os-release or /usr/lib/os-release", t.Name())
	}
	if info.Platform, err = ParseOSRelease([]byte(osr)); err != nil {
		return nil, fmt.Errorf("detect %s: %w", t.Name(), err)
	}
	if r := facts.Get(target.Request{Op: target.OpExec, Script: scriptActive}); r != nil && r.Err == nil {
		for _, line := range strings.Split(string(r.Stdout), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				d.active[k] = strings.TrimSpace(v)
			}
		}
	}
	for name, det := range detectors {
		info.Capabilities[name] = det(d)
	}
	for name, v := range overrides {
		info.Capabilities[name] = v
	}
	return info, nil
}
