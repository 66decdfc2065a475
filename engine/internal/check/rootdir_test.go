package check

import (
	"testing"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/target"
)

// debianImage is a Debian 12 root filesystem as an offline image holds it:
// real modes and owners, an /etc/passwd and /etc/group whose names the
// checks must use (uid 4711 and gid 4712 have no name on the host), links
// (absolute ones must resolve inside the image), the dpkg database, module
// configuration, fstab, GRUB and persistent audit rules.
func debianImage() []node {
	return []node{
		f("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
		f("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nimgsvc:x:4711:4712::/nonexistent:/usr/sbin/nologin\n"),
		f("/etc/group", "root:x:0:\nshadow:x:42:\nimggrp:x:4712:\n"),
		fm("/etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640, 0, 42),
		fm("/usr/bin/sudo", "ELF", mode(0o4755), 0, 0),
		fm("/usr/bin/wall", "ELF", mode(0o2755), 0, 4712),
		fm("/etc/cron.d/a", "* * * * * root true\n", 0o644, 0, 0),
		fm("/etc/cron.d/b", "* * * * * root true\n", 0o600, 0, 0),
		fm("/srv/app.conf", "x=1\n", 0o600, 4711, 4712),
		fm("/srv/anon", "x\n", 0o644, 31337, 31338),

		fm("/etc/ssh/sshd_config", "# PermitRootLogin no\nPermitRootLogin yes\nMaxAuthTries 6\nCiphers aes256-ctr\nInclude /etc/ssh/sshd_config.d/*.conf\n", 0o600, 0, 0),
		f("/etc/ssh/sshd_config.d/10-first.conf", "PermitRootLogin prohibit-password\nMaxAuthTries 4\n"),
		f("/etc/ssh/sshd_config.d/50-last.conf", "  permitrootlogin   no\n"),
		f("/etc/ssh/sshd_config.d/README", "PermitRootLogin yes\n"),
		ln("/etc/ssh/sshd_link", "/etc/ssh/sshd_config"),
		f("/etc/login.defs", "PASS_MAX_DAYS\t365\nPASS_MIN_DAYS 1\nUMASK\t\t022\nENCRYPT_METHOD SHA512\n"),
		f("/etc/security/pwquality.conf", "# minlen = 8\nminlen = 14\ndcredit=-1\nquoted = \"two words\"\nsingle = 'x y'\nbad = fourteen\nempty =\n; minclass = 4\n"),
		f("/etc/issue", "Authorized uses only. All activity may be\nmonitored and reported.\n"),
		ln("/etc/hostlink", "/etc/debian_version"), // on the host only
		ln("/etc/updots", "../../../../../../etc/issue"),
		ln("/etc/loop", "/etc/loop"),
		ln("/etc/cronlink", "/etc/cron.d"), // absolute link to a directory, for globs

		f("/var/lib/dpkg/status", "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u3\n\nPackage: aide\nStatus: install ok installed\nVersion: 0.18.3-1\n\nPackage: telnet\nStatus: deinstall ok config-files\nVersion: 0.17\n"),
		f("/usr/bin/dpkg", "ELF"),

		ln("/lib", "usr/lib"), // merged /usr: /lib/modprobe.d is /usr/lib/modprobe.d
		f("/etc/modprobe.d/cramfs.conf", "install cramfs /bin/true\n"),
		f("/etc/modprobe.d/usb.conf", "blacklist usb-storage\n"),
		f("/etc/modprobe.d/comment.conf", "# install squashfs /bin/true\n#install squashfs /bin/true\n"),
		f("/etc/modprobe.d/jffs2.conf", "# jffs2 is needed here\n"),
		f("/usr/lib/modprobe.d/jffs2.conf", "install jffs2 /bin/false\n"), // overridden by /etc
		f("/usr/lib/modprobe.d/udf.conf", "install udf /usr/bin/false\n"),
		f("/usr/lib/modules/6.1.0-18-amd64/kernel/fs/cramfs/cramfs.ko.xz", ""),
		f("/usr/lib/modules/6.1.0-18-amd64/kernel/fs/squashfs/squashfs.ko.xz", ""),
		f("/usr/lib/modules/6.1.0-18-amd64/kernel/fs/jffs2/jffs2.ko.xz", ""),
		f("/usr/lib/modules/6.1.0-18-amd64/kernel/fs/udf/udf.ko.xz", ""),
		f("/usr/lib/modules/6.1.0-18-amd64/kernel/drivers/usb/storage/usb-storage.ko.xz", ""),

		f("/etc/fstab", "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\ntmpfs /tmp tmpfs defaults,rw,nosuid,nodev,noexec 0 0\n/dev/sdb1\t/var/log\text4\tdefaults,nodev\t0\t2\n/dev/sdc1 /srv/my\\040data ext4 nodev,nosuid 0 0\n#/dev/sdd1 /home ext4 nodev 0 0\n"),

		f("/etc/default/grub", "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"apparmor=1\"\nGRUB_CMDLINE_LINUX=\"audit=1 audit_backlog_limit=8192 quiet\"\n"),
		f("/boot/grub/grub.cfg", "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=UUID=abc ro audit=1 audit_backlog_limit=8192 quiet apparmor=1\n}\nmenuentry 'Debian (recovery mode)' {\n\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=UUID=abc ro single audit=1 audit_backlog_limit=8192 quiet\n}\n"),

		f("/etc/audit/rules.d/50-time.rules", "## time changes\n-a always,exit -F arch=b64 -S adjtimex -S settimeofday -k time-change\n-w /etc/passwd -p wa -k identity\n-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=-1 -F key=perm_mod\n"),
		f("/etc/audit/audit.rules", "-D\n-b 8192\n-e 2\n"),
		f("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n"),
	}
}

func TestConfigValueOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	const sshd = "path: /etc/ssh/sshd_config\ndelimiter: \" \"\n"
	const pwq = "method: config_value\npath: /etc/security/pwquality.conf\n"
	runCases(t, tg, []tcase{
		{"main file only", "method: config_value\n" + sshd + "key: PermitRootLogin\nexpected: \"yes\"", result.Pass, "", "yes (/etc/ssh/sshd_config:2)", false},
		{"drop-in: the last match wins", "method: config_value\n" + sshd + "key: PermitRootLogin\nexpected: \"no\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Pass, "", "no (/etc/ssh/sshd_config.d/50-last.conf:1)", false},
		{"drop-in: == ignores case", "method: config_value\n" + sshd + "key: permitrootlogin\nexpected: \"NO\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Pass, "", "", false},
		{"drop-in: main value overridden", "method: config_value\n" + sshd + "key: PermitRootLogin\nexpected: \"yes\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Fail, `"no"`, "no", false},
		{"drop-in: scan_pattern narrows", "method: config_value\n" + sshd + "key: PermitRootLogin\nexpected: prohibit-password\ndropin_dir: /etc/ssh/sshd_config.d\nscan_pattern: \"10-*.conf\"", result.Pass, "", "10-first.conf", false},
		{"numeric <= with drop-in", "method: config_value\n" + sshd + "key: MaxAuthTries\nexpected: \"4\"\ncomparator: \"<=\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Pass, "", "4", false},
		{"numeric < fails", "method: config_value\n" + sshd + "key: MaxAuthTries\nexpected: \"4\"\ncomparator: \"<\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Fail, "expected < 4", "4", false},
		{"through an absolute symlink", "method: config_value\npath: /etc/ssh/sshd_link\ndelimiter: \" \"\nkey: Ciphers\nexpected: aes256-ctr", result.Pass, "", "aes256-ctr", false},
		{"glob path", "method: config_value\npath: /etc/ssh/sshd_config.d/*.conf\ndelimiter: \" \"\nkey: MaxAuthTries\nexpected: \"4\"", result.Pass, "", "", false},
		{"whitespace delimiter with tabs", "method: config_value\npath: /etc/login.defs\ndelimiter: \" \"\nkey: PASS_MAX_DAYS\nexpected: \"365\"\ncomparator: \"<=\"", result.Pass, "", "365", false},
		{"whitespace delimiter numeric fail", "method: config_value\npath: /etc/login.defs\ndelimiter: \" \"\nkey: PASS_MAX_DAYS\nexpected: \"90\"\ncomparator: \"<=\"", result.Fail, "", "365", false},
		{"octal-looking text compares as text", "method: config_value\npath: /etc/login.defs\ndelimiter: \" \"\nkey: UMASK\nexpected: \"022\"", result.Pass, "", "022", false},
		{"= with spaces, comments ignored", pwq + "key: minlen\nexpected: \"14\"\ncomparator: \">=\"", result.Pass, "", "14 (/etc/security/pwquality.conf:2)", false},
		{"negative integer", pwq + "key: dcredit\nexpected: \"-1\"\ncomparator: \"<=\"", result.Pass, "", "-1", false},
		{"!= comparator", pwq + "key: minlen\nexpected: \"8\"\ncomparator: \"!=\"", result.Pass, "", "14", false},
		{"double quotes removed", pwq + "key: quoted\nexpected: two words", result.Pass, "", "two words", false},
		{"single quotes removed", pwq + "key: single\nexpected: x y", result.Pass, "", "x y", false},
		{"non-integer actual fails", pwq + "key: bad\nexpected: \"14\"\ncomparator: \">=\"", result.Fail, "not an integer", "fourteen", false},
		{"non-integer expected is an error", pwq + "key: minlen\nexpected: fourteen\ncomparator: \">=\"", result.Error, "not an integer", "14", false},
		{"presence with expected empty", pwq + "key: minlen\nexpected: \"\"", result.Pass, "", "14", false},
		{"presence of an empty value", pwq + "key: empty\nexpected: \"\"", result.Pass, "", "", false},
		{"presence: commented key is absent", pwq + "key: minclass\nexpected: \"\"", result.Fail, "not set", "key not set", false},
		{"missing key fails", pwq + "key: maxrepeat\nexpected: \"3\"", result.Fail, "maxrepeat is not set", "key not set", false},
		{"missing file fails", "method: config_value\npath: /etc/security/nothere.conf\nkey: minlen\nexpected: \"14\"", result.Fail, "does not exist", "file not found", false},
		{"symlink loop is an error", "method: config_value\npath: /etc/loop\nkey: minlen\nexpected: \"14\"", result.Error, "symbolic links", "not observed", false},
		{"main file missing, drop-in sets it", "method: config_value\npath: /etc/ssh/nothere\ndelimiter: \" \"\nkey: PermitRootLogin\nexpected: \"no\"\ndropin_dir: /etc/ssh/sshd_config.d", result.Pass, "", "50-last.conf", false},
		{"drop-in dir missing", "method: config_value\n" + sshd + "key: PermitRootLogin\nexpected: \"yes\"\ndropin_dir: /etc/ssh/nothere.d", result.Pass, "", "", false},
	})
}

func TestFilePermissionsOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"exact mode owner group", "method: file_permissions\npath: /etc/shadow\nmode: \"0640\"\nowner: root\ngroup: shadow", result.Pass, "", "mode 0640 owner root group shadow", false},
		{"leading zeros ignored", "method: file_permissions\npath: /etc/shadow\nmode: \"640\"", result.Pass, "", "", false},
		{"singular method name", "method: file_permission\npath: /etc/shadow\nmode: \"00640\"", result.Pass, "", "", false},
		{"stricter mode is not exact", "method: file_permissions\npath: /etc/shadow\nmode: \"0600\"", result.Fail, "mode 0640, not 0600", "0640", false},
		{"wrong owner", "method: file_permissions\npath: /etc/shadow\nowner: imgsvc", result.Fail, "owner root, not imgsvc", "", false},
		{"wrong group", "method: file_permissions\npath: /etc/shadow\ngroup: root", result.Fail, "group shadow, not root", "", false},
		{"names from the image", "method: file_permissions\npath: /srv/app.conf\nowner: imgsvc\ngroup: imggrp\nmode: \"600\"", result.Pass, "", "owner imgsvc group imggrp", false},
		{"unknown ids are numbers", "method: file_permissions\npath: /srv/anon\nowner: \"31337\"\ngroup: \"31338\"", result.Pass, "", "owner 31337", false},
		{"setuid bit is part of the mode", "method: file_permissions\npath: /usr/bin/sudo\nmode: \"4755\"", result.Pass, "", "mode 4755", false},
		{"setuid bit missing from expected", "method: file_permissions\npath: /usr/bin/sudo\nmode: \"0755\"", result.Fail, "mode 4755, not 0755", "4755", false},
		{"setgid with image group", "method: file_permissions\npath: /usr/bin/wall\nmode: \"2755\"\ngroup: imggrp", result.Pass, "", "", false},
		{"max_mode beyond setuid", "method: file_permissions\npath: /usr/bin/sudo\nmax_mode: \"0755\"", result.Fail, "more permissive", "", false},
		{"max_mode stricter passes", "method: file_permissions\npath: /etc/shadow\nmax_mode: \"0644\"", result.Pass, "", "", false},
		{"max_mode more permissive fails", "method: file_permissions\npath: /etc/shadow\nmax_mode: \"0600\"", result.Fail, "0640 is more permissive than 0600", "", false},
		{"glob all match", "method: file_permissions\npath: /etc/cron.d/*\nmax_mode: \"0644\"\nowner: root", result.Pass, "2 file(s)", "/etc/cron.d/a: mode 0644", false},
		{"glob one bad", "method: file_permissions\npath: /etc/cron.d/*\nmode: \"0600\"", result.Fail, "/etc/cron.d/a: mode 0644, not 0600", "/etc/cron.d/b: mode 0600", false},
		{"glob through an absolute directory link", "method: file_permissions\npath: /etc/cronlink/*\nowner: root\nmax_mode: \"0644\"", result.Pass, "2 file(s)", "/etc/cronlink/a: mode 0644", false},
		{"glob without match passes", "method: file_permissions\npath: /etc/cron.d/*.nothing\nmode: \"0600\"", result.Pass, "no file matches", "no file matches", false},
		{"missing literal path fails", "method: file_permissions\npath: /etc/gshadow\nmode: \"0600\"", result.Fail, "does not exist", "does not exist", false},
		{"absolute symlink followed inside the image", "method: file_permissions\npath: /etc/ssh/sshd_link\nmode: \"0600\"\nowner: root", result.Pass, "", "/etc/ssh/sshd_link: mode 0600", false},
		{"symlink loop is an error", "method: file_permissions\npath: /etc/loop\nmode: \"0600\"", result.Error, "symbolic links", "symbolic links", false},
	})
}

func TestFileExistsAbsentOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"exists", "method: file_exists\npath: /etc/shadow", result.Pass, "", "present: /etc/shadow", false},
		{"exists fails", "method: file_exists\npath: /etc/gshadow", result.Fail, "absent", "absent", false},
		{"absent", "method: file_absent\npath: /etc/gshadow", result.Pass, "", "absent", false},
		{"absent fails", "method: file_absent\npath: /etc/shadow", result.Fail, "present", "present", false},
		{"link to a host-only file does not exist in the image", "method: file_exists\npath: /etc/hostlink", result.Fail, "", "absent", false},
		{"link to a host-only file is absent", "method: file_absent\npath: /etc/hostlink", result.Pass, "", "absent", false},
		{"relative link climbing past the root", "method: file_exists\npath: /etc/updots", result.Pass, "", "", false},
		{"glob exists", "method: file_exists\npath: /etc/cron.d/*", result.Pass, "", "/etc/cron.d/a, /etc/cron.d/b", false},
		{"glob without match is absent", "method: file_absent\npath: /etc/cron.d/*.bak", result.Pass, "", "absent", false},
		{"glob without match does not exist", "method: file_exists\npath: /etc/cron.d/*.bak", result.Fail, "", "absent", false},
		{"directory exists", "method: file_exists\npath: /etc/ssh/sshd_config.d", result.Pass, "", "", false},
		{"symlink loop is an error", "method: file_exists\npath: /etc/loop", result.Error, "symbolic links", "symbolic links", false},
		{"symlink loop is an error for absent too", "method: file_absent\npath: /etc/loop", result.Error, "symbolic links", "symbolic links", false},
	})
}

func TestFileContentOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"literal text", "method: file_content\npath: /etc/issue\nexpected_content: Authorized uses only", result.Pass, "", "found at /etc/issue:1", false},
		{"literal text across a line break", "method: file_content\npath: /etc/issue\nexpected_content: \"may be\\nmonitored\"", result.Pass, "", "/etc/issue:1", false},
		{"second line", "method: file_content\npath: /etc/issue\nexpected_content: reported.", result.Pass, "", "/etc/issue:2", false},
		{"case-sensitive", "method: file_content\npath: /etc/issue\nexpected_content: authorized uses", result.Fail, "not found", "text not found", false},
		{"regex characters are literal", "method: file_content\npath: /etc/issue\nexpected_content: \"Authorized.*only\"", result.Fail, "", "", false},
		{"missing file", "method: file_content\npath: /etc/issue.net\nexpected_content: x", result.Fail, "does not exist", "file not found", false},
		{"through a relative link", "method: file_content\npath: /etc/updots\nexpected_content: monitored", result.Pass, "", "", false},
		{"glob: any file", "method: file_content\npath: /etc/ssh/sshd_config.d/*.conf\nexpected_content: permitrootlogin   no", result.Pass, "", "50-last.conf:1", false},
		{"symlink loop is an error", "method: file_content\npath: /etc/loop\nexpected_content: x", result.Error, "symbolic links", "not observed", false},
		{"ERE anchored", "method: file_content_match\npath: /etc/issue\npattern: \"^Authorized\"", result.Pass, "", "/etc/issue:1", false},
		{"ERE per line end", "method: file_content_match\npath: /etc/issue\npattern: 'reported\\.$'", result.Pass, "", "/etc/issue:2", false},
		{"ERE POSIX class", "method: file_content_match\npath: /etc/issue\npattern: \"^monitored[[:space:]]+and\"", result.Pass, "", "", false},
		{"ERE alternation and groups", "method: file_content_match\npath: /etc/ssh/sshd_config\npattern: \"^(PermitRootLogin|PermitEmptyPasswords)[[:space:]]+yes\"", result.Pass, "", "/etc/ssh/sshd_config:2", false},
		{"ERE matches a line, not across lines", "method: file_content_match\npath: /etc/issue\npattern: \"be.monitored\"", result.Fail, "no line", "no line matches", false},
		{"ERE no match", "method: file_content_match\npath: /etc/issue\npattern: \"^monitored and reported$\"", result.Fail, "", "no line matches", false},
		{"ERE missing file", "method: file_content_match\npath: /etc/motd\npattern: x", result.Fail, "does not exist", "file not found", false},
		{"ERE glob", "method: file_content_match\npath: /etc/modprobe.d/*.conf\npattern: \"^install[[:space:]]+cramfs[[:space:]]+/bin/(true|false)\"", result.Pass, "", "cramfs.conf:1", false},
		{"ERE invalid pattern is an error", "method: file_content_match\npath: /etc/issue\npattern: \"(unclosed\"", result.Error, "not a valid", "", true},
	})
}

func TestPackagesOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"state present", "method: package_state\nname: openssh-server\nstate: present", result.Pass, "", "installed (dpkg 1:9.2p1-2+deb12u3)", false},
		{"state present fails for rc", "method: package_state\nname: telnet\nstate: present", result.Fail, "not installed", "not installed", false},
		{"state absent for rc", "method: package_state\nname: telnet\nstate: absent", result.Pass, "", "not installed", false},
		{"state absent fails", "method: package_state\nname: aide\nstate: absent", result.Fail, "", "installed", false},
		{"installed", "method: package_installed\nname: aide", result.Pass, "", "", false},
		{"installed fails", "method: package_installed\nname: auditd", result.Fail, "", "not installed", false},
		{"absent", "method: package_absent\nname: rsh-server", result.Pass, "", "", false},
		{"absent fails", "method: package_absent\nname: openssh-server", result.Fail, "", "installed", false},
		{"dpkg installed", "method: dpkg_installed\nname: openssh-server", result.Pass, "", "installed (dpkg", false},
		{"dpkg installed fails", "method: dpkg_installed\nname: telnet", result.Fail, "", "not installed", false},
		{"dpkg absent", "method: dpkg_absent\nname: telnet", result.Pass, "", "", false},
		{"dpkg absent fails", "method: dpkg_absent\nname: aide", result.Fail, "", "", false},
	})

	// An image without any package database.
	bare := rootTarget(t, f("/etc/os-release", "ID=alpine\n"))
	runCases(t, bare, []tcase{
		{"dpkg method without dpkg is skipped", "method: dpkg_installed\nname: aide", result.Skipped, "no dpkg database", "dpkg database not present", false},
		{"dpkg absent without dpkg is skipped", "method: dpkg_absent\nname: aide", result.Skipped, "", "", false},
		{"generic method without databases is an error", "method: package_installed\nname: aide", result.Error, "no dpkg or rpm", "no package database", false},
	})
}

// TestPackagesFake covers an rpm host and a failed database read, which a
// Debian machine cannot produce: the response is built by hand.
func TestPackagesFake(t *testing.T) {
	rpmOnly := target.Response{Req: pkgReq, PackageSources: []string{"rpm"},
		Packages: map[string]target.Package{"audit": {Name: "audit", Version: "3.1.2-1.el9", Source: "rpm"}}}
	tg := fake(target.KindSSH, nil, rpmOnly)
	runCases(t, tg, []tcase{
		{"rpm installed", "method: package_installed\nname: audit", result.Pass, "", "installed (rpm 3.1.2-1.el9)", false},
		{"rpm absent", "method: package_state\nname: telnet-server\nstate: absent", result.Pass, "", "not installed", false},
		{"dpkg method on rpm host", "method: dpkg_installed\nname: audit", result.Skipped, "no dpkg", "", false},
	})
	both := target.Response{Req: pkgReq, PackageSources: []string{"dpkg", "rpm"},
		Packages: map[string]target.Package{"alien": {Name: "alien", Version: "1", Source: "rpm"}}}
	runCases(t, fake(target.KindLocal, nil, both), []tcase{
		{"dpkg method ignores rpm packages", "method: dpkg_installed\nname: alien", result.Fail, "", "not installed", false},
		{"generic method sees rpm packages", "method: package_installed\nname: alien", result.Pass, "", "", false},
	})
	broken := target.Response{Req: pkgReq, Err: fakeErr("rpm -qa failed (exit 1)")}
	runCases(t, fake(target.KindSSH, nil, broken), []tcase{
		{"database read failed", "method: package_absent\nname: telnet", result.Error, "rpm -qa failed", "not observed", false},
	})
}

func TestMountOptionOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"all options", "method: mount_option\nmount_point: /tmp\noptions: [nodev, nosuid, noexec]", result.Pass, "", "tmpfs defaults,rw,nosuid,nodev,noexec", false},
		{"one option", "method: mount_option\nmount_point: /tmp\noptions: [nodev]", result.Pass, "", "", false},
		{"tab separated, one missing", "method: mount_option\nmount_point: /var/log\noptions: [nodev, noexec]", result.Fail, "/var/log lacks noexec", "ext4 defaults,nodev", false},
		{"commented-out entry is not a mount", "method: mount_option\nmount_point: /home\noptions: [nodev]", result.Fail, "not a separate mount", "not a separate mount", false},
		{"escaped space in the mount point", "method: mount_option\nmount_point: /srv/my data\noptions: [nodev, nosuid]", result.Pass, "", "", false},
		{"options as a comma list", "method: mount_option\nmount_point: /tmp\noptions: \"nodev,noexec\"", result.Pass, "", "", false},
		{"root", "method: mount_option\nmount_point: /\noptions: [errors=remount-ro]", result.Pass, "", "", false},
	})
	noFstab := rootTarget(t, f("/etc/os-release", "ID=debian\n"))
	runCases(t, noFstab, []tcase{
		{"no fstab", "method: mount_option\nmount_point: /tmp\noptions: [nodev]", result.Fail, "/etc/fstab does not exist", "/etc/fstab not found", true},
	})
}

func TestKernelModuleOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	runCases(t, tg, []tcase{
		{"install redirect to /bin/true", "method: kernel_module_state\nname: cramfs\nstate: disabled", result.Pass, "", "install redirected at /etc/modprobe.d/cramfs.conf:1", false},
		{"no redirect", "method: kernel_module_state\nname: squashfs\nstate: disabled", result.Fail, "can be loaded", "module file present", false},
		{"commented redirect does not count", "method: kernel_module_state\nname: squashfs\nstate: blacklisted", result.Fail, "", "", false},
		{"blacklist is not disabled", "method: kernel_module_state\nname: usb-storage\nstate: disabled", result.Fail, "", "blacklisted at /etc/modprobe.d/usb.conf:1", false},
		{"blacklist with _ and - equivalent", "method: kernel_module_state\nname: usb_storage\nstate: blacklisted", result.Pass, "", "blacklisted", false},
		{"module file absent", "method: kernel_module_state\nname: hfs\nstate: disabled", result.Pass, "", "module file absent", false},
		{"/etc overrides a same-named file in /usr/lib", "method: kernel_module_state\nname: jffs2\nstate: disabled", result.Fail, "", "", false},
		{"redirect in /usr/lib through /lib", "method: kernel_module_state\nname: udf\nstate: disabled", result.Pass, "", "/usr/lib/modprobe.d/udf.conf:1", false},
	})
}

func TestAuditRulesOnRootDir(t *testing.T) {
	tg := rootTarget(t, debianImage()...)
	const m = "method: audit_rule_exists\nrule: "
	runCases(t, tg, []tcase{
		{"watch", m + "\"-w /etc/passwd -p wa -k identity\"", result.Pass, "", "-w /etc/passwd -p wa -k identity", false},
		{"watch, permissions in another order", m + "\"-w /etc/passwd -p aw -k identity\"", result.Pass, "", "", false},
		{"watch missing", m + "\"-w /etc/shadow -p wa -k identity\"", result.Fail, "-w /etc/shadow", "0 of 1", false},
		{"watch with another key", m + "\"-w /etc/passwd -p wa -k passwd\"", result.Fail, "", "", false},
		{"syscalls split in the file, joined in the rule", m + "\"-a always,exit -F arch=b64 -S settimeofday,adjtimex -k time-change\"", result.Pass, "", "", false},
		{"action order and -F key=", m + "\"-a exit,always -F arch=b64 -S adjtimex -S settimeofday -F key=time-change\"", result.Pass, "", "", false},
		{"auid -1 written as unset", m + "\"-a always,exit -F arch=b64 -S fchmod -S chmod -F auid>=1000 -F auid!=unset -k perm_mod\"", result.Pass, "", "", false},
		{"auid -1 written as 4294967295", m + "\"-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=4294967295 -k perm_mod\"", result.Pass, "", "", false},
		{"missing field", m + "\"-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -k perm_mod\"", result.Fail, "", "", false},
		{"another arch", m + "\"-a always,exit -F arch=b32 -S adjtimex,settimeofday -k time-change\"", result.Fail, "", "", false},
		{"several lines, all present", m + "|\n  # identity\n  -w /etc/passwd -p wa -k identity\n  -a always,exit -F arch=b64 -S adjtimex,settimeofday -k time-change", result.Pass, "all 2", "", false},
		{"several lines, one missing", m + "|\n  -w /etc/passwd -p wa -k identity\n  -w /etc/group -p wa -k identity", result.Fail, "-w /etc/group", "1 of 2", false},
		{"unparseable rule is an error", m + "\"-e 2\"", result.Error, "cannot parse", "", true},
	})

	// Persistent rules behind an absolute link to a directory elsewhere in
	// the image, as configuration management sometimes installs them.
	linked := rootTarget(t,
		f("/srv/audit/10-identity.rules", "-w /etc/group -p wa -k identity\n"),
		ln("/etc/audit/rules.d", "/srv/audit"),
	)
	runCases(t, linked, []tcase{
		{"rules.d through an absolute link", m + "\"-w /etc/group -p wa -k identity\"", result.Pass, "", "", false},
	})
}

func TestGrubOnRootDir(t *testing.T) {
	deb := rootTarget(t, debianImage()...)
	runCases(t, deb, []tcase{
		{"in GRUB_CMDLINE_LINUX and every grub.cfg entry", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Pass, "", "/etc/default/grub: audit=1 audit_backlog_limit=8192 quiet apparmor=1", false},
		{"value", "method: grub_parameter\nkey: audit_backlog_limit\nexpected: \"8192\"", result.Pass, "", "", false},
		{"flag without a value", "method: grub_parameter\nkey: quiet", result.Pass, "", "", false},
		{"wrong value", "method: grub_parameter\nkey: audit\nexpected: \"0\"", result.Fail, "lacks audit=0", "", false},
		{"only in _DEFAULT: the recovery entry lacks it", "method: grub_parameter\nkey: apparmor\nexpected: \"1\"", result.Fail, "/boot/grub/grub.cfg:5 lacks apparmor=1", "", false},
		{"absent everywhere", "method: grub_parameter\nkey: ipv6.disable\nexpected: \"1\"", result.Fail, "GRUB_CMDLINE_LINUX lacks", "", false},
	})

	// RHEL 9 keeps the arguments on each BLS entry's options line.
	rhel9 := func(rescue string) target.Target {
		return rootTarget(t,
			f("/etc/os-release", "ID=\"rhel\"\nVERSION_ID=\"9.4\"\n"),
			f("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"crashkernel=1G-4G:192M rd.lvm.lv=rhel/root audit=1\"\n"),
			f("/boot/loader/entries/abc-5.14.0-427.el9.x86_64.conf", "title Red Hat Enterprise Linux (5.14.0-427.el9.x86_64) 9.4\nversion 5.14.0-427.el9.x86_64\nlinux /vmlinuz-5.14.0-427.el9.x86_64\noptions root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M audit=1\n"),
			f("/boot/loader/entries/abc-0-rescue.conf", "title rescue\nlinux /vmlinuz-0-rescue\noptions "+rescue+"\n"),
		)
	}
	runCases(t, rhel9("root=/dev/mapper/rhel-root ro audit=1"), []tcase{
		{"BLS entries all carry it", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Pass, "", "boot entries checked", false},
	})
	runCases(t, rhel9("root=/dev/mapper/rhel-root ro"), []tcase{
		{"BLS rescue entry lacks it", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Fail, "/boot/loader/entries/abc-0-rescue.conf:3 lacks audit=1", "", false},
	})
	// RHEL 8 entries say $kernelopts, defined in grubenv.
	rhel8 := func(kernelopts string) target.Target {
		return rootTarget(t,
			f("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"audit=1\"\n"),
			f("/boot/grub2/grubenv", "# GRUB Environment Block\nsaved_entry=abc-4.18.0\nkernelopts="+kernelopts+"\n"),
			f("/boot/loader/entries/abc-4.18.0.conf", "linux /vmlinuz-4.18.0\noptions $kernelopts $tuned_params\n"),
		)
	}
	runCases(t, rhel8("root=/dev/mapper/rhel-root ro audit=1"), []tcase{
		{"$kernelopts expanded", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Pass, "", "", false},
	})
	runCases(t, rhel8("root=/dev/mapper/rhel-root ro"), []tcase{
		{"$kernelopts lacks it", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Fail, "abc-4.18.0.conf:2 lacks audit=1", "", false},
	})
	runCases(t, rootTarget(t, f("/etc/os-release", "ID=debian\n")), []tcase{
		{"no GRUB configuration", "method: grub_parameter\nkey: audit\nexpected: \"1\"", result.Fail, "no GRUB configuration", "", true},
	})
}

func TestSELinuxOnRootDir(t *testing.T) {
	runCases(t, rootTarget(t, debianImage()...), []tcase{
		{"configured enforcing", "method: selinux_state\nstate: enforcing", result.Pass, "", "enforcing (configured)", false},
		{"configured, not permissive", "method: selinux_state\nstate: permissive", result.Fail, "configured enforcing", "enforcing", false},
	})
	runCases(t, rootTarget(t, f("/etc/os-release", "ID=debian\n")), []tcase{
		{"no config is disabled", "method: selinux_state\nstate: disabled", result.Pass, "", "disabled", false},
		{"no config is not enforcing", "method: selinux_state\nstate: enforcing", result.Fail, "", "disabled", false},
	})
}

// TestLiveOnlyOnRootDir: a root directory has no kernel, no init and (in
// this fixture) no /bin/sh, so live-only methods are skipped, not failed.
func TestLiveOnlyOnRootDir(t *testing.T) {
	runCases(t, rootTarget(t, debianImage()...), []tcase{
		{"sysctl", "method: sysctl_value\nkey: net.ipv4.ip_forward\nexpected: \"0\"", result.Skipped, "no live kernel", "not observable", false},
		{"apparmor", "method: apparmor_state\nstate: enforcing", result.Skipped, "live kernel", "not observable", false},
		{"command without /bin/sh", "method: command\nrun: \"true\"", result.Skipped, "no /bin/sh", "not observed", false},
		{"set_compare without /bin/sh", "method: set_compare\nobserved_command: \"cut -d: -f1 /etc/passwd\"\nauthorized: [root]", result.Skipped, "", "not observed", false},
		{"sshd -T without /bin/sh", "method: sshd_effective_config\nkey: permitrootlogin\nexpected: \"no\"", result.Skipped, "", "not observed", false},
		{"systemd_target without /bin/sh", "method: systemd_target\nexpected: multi-user.target", result.Skipped, "", "", false},
	})
}
