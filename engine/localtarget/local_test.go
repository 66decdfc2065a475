package localtarget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// node is one entry of a fixture root directory.
type node struct {
	path string      // as seen inside the root
	data string      // file content
	mode os.FileMode // file or directory mode (default 0644 / 0755)
	uid  int         // owner; -1 keeps the creator's
	gid  int
	link string // non-empty: a symlink with this target, written verbatim
	dir  bool
}

func file(p, data string) node { return node{path: p, data: data, uid: -1, gid: -1} }

func fileMode(p, data string, mode os.FileMode, uid, gid int) node {
	return node{path: p, data: data, mode: mode, uid: uid, gid: gid}
}

func symlink(p, to string) node { return node{path: p, link: to, uid: -1, gid: -1} }

func dir(p string) node { return node{path: p, dir: true, uid: -1, gid: -1} }

// buildRoot writes nodes under a fresh temporary directory and returns it.
func buildRoot(t *testing.T, nodes ...node) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range nodes {
		host := filepath.Join(root, n.path)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case n.link != "":
			if err := os.Symlink(n.link, host); err != nil {
				t.Fatal(err)
			}
			continue
		case n.dir:
			mode := n.mode
			if mode == 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(host, mode); err != nil {
				t.Fatal(err)
			}
		default:
			mode := n.mode
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(host, []byte(n.data), mode&os.ModePerm); err != nil {
				t.Fatal(err)
			}
		}
		if n.mode != 0 {
			// Chmod after writing: the umask does not apply, and setuid and
			// sticky bits are kept.
			if err := os.Chmod(host, n.mode); err != nil {
				t.Fatal(err)
			}
		}
		if n.uid >= 0 || n.gid >= 0 {
			if os.Geteuid() != 0 {
				t.Skip("fixture needs root to set file owners; run the tests as root (.ci/run does)")
			}
			if err := os.Lchown(host, n.uid, n.gid); err != nil {
				t.Fatal(err)
			}
			if n.mode != 0 {
				// chown clears setuid/setgid: set the mode again.
				if err := os.Chmod(host, n.mode); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return root
}

func gather(t *testing.T, tg *Target, reqs ...target.Request) []target.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := tg.Gather(ctx, reqs)
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if len(resps) != len(reqs) {
		t.Fatalf("Gather returned %d responses for %d requests", len(resps), len(reqs))
	}
	for i := range reqs {
		if resps[i].Req.Key() != reqs[i].Key() {
			t.Fatalf("response %d answers %+v, want %+v", i, resps[i].Req, reqs[i])
		}
		if resps[i].Started.IsZero() {
			t.Errorf("response %d (%s) has no start time", i, reqs[i])
		}
	}
	return resps
}

func rootTarget(t *testing.T, root string) *Target {
	t.Helper()
	tg, err := NewRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Kind() != target.KindRootDir || tg.Name() != root {
		t.Fatalf("NewRootDir: kind %s name %s", tg.Kind(), tg.Name())
	}
	return tg
}

func TestNewRootDirRejectsNonDirectories(t *testing.T) {
	root := buildRoot(t, file("/afile", "x"))
	for _, p := range []string{filepath.Join(root, "afile"), filepath.Join(root, "missing")} {
		if _, err := NewRootDir(p); err == nil {
			t.Errorf("NewRootDir(%s): no error", p)
		}
	}
	if New().Kind() != target.KindLocal || New().Name() != "localhost" {
		t.Errorf("New(): kind %s name %s", New().Kind(), New().Name())
	}
}

// TestResolveInNeverEscapes resolves paths through every kind of link an
// image may hold and checks each lands where the image's own kernel would
// put it, always inside the root.
func TestResolveInNeverEscapes(t *testing.T) {
	root := buildRoot(t,
		file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		file("/usr/share/real/conf", "real\n"),
		file("/usr/share/x", "x\n"),
		symlink("/etc/abs", "/usr/share/real/conf"),         // absolute: starts again at root
		symlink("/etc/absdir", "/usr/share/real"),           // absolute link to a directory
		symlink("/etc/updots", "../../../../../etc/passwd"), // relative, climbs past the root
		symlink("/etc/hostonly", "/etc/debian_version"),     // exists on the host, not in the image
		symlink("/usr/share/chain1", "chain2"),
		symlink("/usr/share/chain2", "/etc/abs"),
		symlink("/loop/a", "b"),
		symlink("/loop/b", "a"),
		symlink("/loop/self", "self"),
		symlink("/loop/dir", "/loop/dir/sub"),
		symlink("/lib", "usr/lib"), // merged /usr, as on Debian 12
		file("/usr/lib/os-release", "ID=debian\n"),
		symlink("/usr/share/linkdir", "/usr/share/real"),
		symlink("/etc/viamissing", "/nonexistent/../../etc/passwd"),
	)
	in := func(p string) string { return filepath.Join(root, p) }
	tests := []struct {
		path    string
		want    string // host path; "" with wantErr
		wantErr bool
	}{
		{"/etc/passwd", in("/etc/passwd"), false},
		{"/../../../etc/passwd", in("/etc/passwd"), false},
		{"/etc/../../../../etc/passwd", in("/etc/passwd"), false},
		{"//etc/./passwd", in("/etc/passwd"), false},
		{"/etc/abs", in("/usr/share/real/conf"), false},
		{"/etc/absdir/conf", in("/usr/share/real/conf"), false},
		{"/etc/absdir/../x", in("/usr/share/x"), false}, // ".." after a link climbs from its target, as the kernel does
		{"/etc/updots", in("/etc/passwd"), false},
		{"/etc/hostonly", in("/etc/debian_version"), false},
		{"/usr/share/chain1", in("/usr/share/real/conf"), false},
		{"/lib/os-release", in("/usr/lib/os-release"), false},
		{"/usr/share/linkdir/conf", in("/usr/share/real/conf"), false},
		{"/loop/a", "", true},
		{"/loop/self", "", true},
		{"/loop/dir", "", true},
		{"/loop/a/x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := resolveIn(root, tt.path)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("resolveIn(%s) = %s, want an error (symlink loop)", tt.path, got)
				}
				if !strings.Contains(err.Error(), "too many levels of symbolic links") {
					t.Errorf("error %q does not say it is a loop", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveIn(%s): %v", tt.path, err)
			}
			if got != tt.want {
				t.Errorf("resolveIn(%s) = %s, want %s", tt.path, got, tt.want)
			}
			if !strings.HasPrefix(got, root+"/") && got != root {
				t.Errorf("resolveIn(%s) = %s escapes the root %s", tt.path, got, root)
			}
		})
	}

	// A path through a missing directory does not exist, even when ".."
	// would lexically lead back to an existing file: the kernel stops at the
	// missing component.
	got, err := resolveIn(root, "/etc/viamissing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, root+"/") {
		t.Fatalf("resolveIn(/etc/viamissing) = %s escapes the root", got)
	}
	if _, err := os.Stat(got); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resolveIn(/etc/viamissing) = %s, which exists; the image path goes through a missing directory", got)
	}
}

// FuzzResolveIn checks that no path, however built, resolves outside the
// root of a fixture full of hostile links.
func FuzzResolveIn(f *testing.F) {
	for _, s := range []string{"/etc/passwd", "/../..", "/a/../../b", "/up/x", "/abs/../../..", "/loop", "/up/up/up/..", "/dotdot"} {
		f.Add(s)
	}
	root := f.TempDir()
	for name, to := range map[string]string{"up": "../../..", "abs": "/", "loop": "loop", "dotdot": "..", "etc": "/up/etc"} {
		if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		if strings.ContainsRune(p, 0) {
			return
		}
		got, err := resolveIn(root, "/"+p)
		if err != nil {
			return
		}
		if got != root && !strings.HasPrefix(got, root+"/") {
			t.Fatalf("resolveIn(%q) = %s escapes %s", p, got, root)
		}
	})
}

// imageIDs is an /etc/passwd and /etc/group whose names differ from the
// host's, so the test proves names come from the image.
var imageIDs = []node{
	file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nimgsvc:x:4711:4712::/nonexistent:/usr/sbin/nologin\n# comment\nbroken line\n"),
	file("/etc/group", "root:x:0:\nimggrp:x:4712:\nshadow:x:42:\n"),
}

func TestStatOnRootDir(t *testing.T) {
	root := buildRoot(t, append(imageIDs,
		fileMode("/etc/shadow", "s", 0o640, 0, 42),
		fileMode("/usr/bin/sudo", "bin", 0o4755|os.ModeSetuid, 0, 0),
		fileMode("/usr/bin/wall", "bin", 0o2755|os.ModeSetgid, 0, 4712),
		node{path: "/tmp", dir: true, mode: 0o1777 | os.ModeSticky | os.ModeDir, uid: 0, gid: 0},
		fileMode("/srv/app.conf", "x", 0o600, 4711, 4712),
		fileMode("/srv/unknown", "x", 0o644, 31337, 31338),
		fileMode("/etc/cron.d/a", "x", 0o644, 0, 0),
		fileMode("/etc/cron.d/b", "x", 0o600, 0, 0),
		symlink("/etc/shadow-link", "/etc/shadow"),
		symlink("/etc/hostonly", "/etc/debian_version"),
		symlink("/loop", "/loop"),
	)...)
	tg := rootTarget(t, root)
	stat := func(p string) target.Request { return target.Request{Op: target.OpStat, Path: p} }
	resps := gather(t, tg,
		stat("/etc/shadow"), stat("/usr/bin/sudo"), stat("/usr/bin/wall"), stat("/tmp"),
		stat("/srv/app.conf"), stat("/srv/unknown"), stat("/etc/cron.d/*"), stat("/etc/nothing*"),
		stat("/etc/missing"), stat("/etc/shadow-link"), stat("/etc/hostonly"), stat("/loop"), stat("relative"),
	)
	one := func(i int) target.FileInfo {
		t.Helper()
		if resps[i].Err != nil || len(resps[i].Files) != 1 {
			t.Fatalf("stat %s: err %v, %d files", resps[i].Req.Path, resps[i].Err, len(resps[i].Files))
		}
		return resps[i].Files[0]
	}
	tests := []struct {
		i            int
		typ          string
		mode         uint32
		owner, group string
	}{
		{0, "file", 0o640, "root", "shadow"},
		{1, "file", 0o4755, "root", "root"},
		{2, "file", 0o2755, "root", "imggrp"},
		{3, "dir", 0o1777, "root", "root"},
		{4, "file", 0o600, "imgsvc", "imggrp"},
		{5, "file", 0o644, "31337", "31338"}, // no name in the image: the number
		{9, "file", 0o640, "root", "shadow"}, // a symlink is followed, inside the root
	}
	for _, tt := range tests {
		fi := one(tt.i)
		if !fi.Exists || fi.Type != tt.typ || fi.Mode != tt.mode || fi.Owner != tt.owner || fi.Group != tt.group {
			t.Errorf("stat %s = %+v, want %s %04o %s:%s", resps[tt.i].Req.Path, fi, tt.typ, tt.mode, tt.owner, tt.group)
		}
	}
	if fi := one(4); fi.UID != 4711 || fi.GID != 4712 || fi.Size != 1 {
		t.Errorf("stat /srv/app.conf ids %d:%d size %d", fi.UID, fi.GID, fi.Size)
	}
	if fs := resps[6].Files; len(fs) != 2 || fs[0].Path != "/etc/cron.d/a" || fs[1].Path != "/etc/cron.d/b" || fs[1].Mode != 0o600 {
		t.Errorf("stat glob /etc/cron.d/* = %+v", fs)
	}
	if len(resps[7].Files) != 0 || resps[7].Err != nil {
		t.Errorf("glob without match: %+v", resps[7])
	}
	if fi := one(8); fi.Exists || fi.Err != "" || fi.Path != "/etc/missing" {
		t.Errorf("missing literal path: %+v", fi)
	}
	if fi := one(10); fi.Exists {
		t.Errorf("/etc/hostonly points at the host's /etc/debian_version, which the image lacks: %+v", fi)
	}
	if fi := one(11); fi.Err == "" || fi.Exists {
		t.Errorf("symlink loop: %+v, want a per-file error", fi)
	}
	if fi := one(12); fi.Err == "" {
		t.Errorf("relative path: %+v, want an error", fi)
	}
}

func TestReadAndGlobOnRootDir(t *testing.T) {
	big := strings.Repeat("x", target.ReadLimit+10)
	root := buildRoot(t,
		file("/etc/ssh/sshd_config", "PermitRootLogin no\n"),
		file("/etc/ssh/sshd_config.d/10-a.conf", "A\n"),
		file("/etc/ssh/sshd_config.d/20-b.conf", "B\n"),
		file("/etc/ssh/sshd_config.d/README", "not a conf\n"),
		dir("/etc/ssh/sshd_config.d/99-dir.conf"),
		symlink("/etc/ssh/sshd_config.d/30-link.conf", "/etc/ssh/sshd_config"),
		file("/var/log/big", big),
		symlink("/etc/alink", "/etc/ssh/sshd_config"),
		// An absolute link to a directory: a glob through it must list the
		// image's directory, not the host's.
		file("/srv/audit/10-base.rules", "-w /etc/passwd -p wa -k identity\n"),
		symlink("/etc/audit/rules.d", "/srv/audit"),
	)
	tg := rootTarget(t, root)
	rd := func(p string) target.Request { return target.Request{Op: target.OpRead, Path: p} }
	gl := func(p string, content bool) target.Request {
		return target.Request{Op: target.OpGlob, Path: p, Content: content}
	}
	resps := gather(t, tg,
		rd("/etc/ssh/sshd_config"), rd("/etc/missing"), rd("/var/log/big"), rd("/etc/alink"),
		rd("/etc/ssh"), rd("/etc/ssh/sshd_config/sub"),
		gl("/etc/ssh/sshd_config.d/*.conf", true), gl("/etc/ssh/sshd_config.d/*.conf", false),
		gl("/etc/audit/rules.d/*.rules", true), gl("/none/*", true),
	)
	if r := resps[0]; r.Err != nil || !r.Exists || string(r.Data) != "PermitRootLogin no\n" || r.Truncated {
		t.Errorf("read sshd_config: %+v", r)
	}
	if r := resps[1]; r.Err != nil || r.Exists {
		t.Errorf("read missing: err %v exists %t; a missing file is not an error", r.Err, r.Exists)
	}
	if r := resps[2]; r.Err != nil || !r.Truncated || len(r.Data) != target.ReadLimit {
		t.Errorf("read big: err %v truncated %t len %d, want %d", r.Err, r.Truncated, len(r.Data), target.ReadLimit)
	}
	if r := resps[3]; !r.Exists || string(r.Data) != "PermitRootLogin no\n" {
		t.Errorf("read through absolute link: %+v", r)
	}
	if r := resps[4]; r.Err == nil {
		t.Errorf("read of a directory: no error")
	}
	if r := resps[5]; r.Err != nil || r.Exists {
		t.Errorf("read below a regular file: err %v exists %t, want not-exist", r.Err, r.Exists)
	}
	paths := func(fs []target.FileInfo) string {
		var ps []string
		for _, f := range fs {
			ps = append(ps, f.Path+"="+strings.TrimSpace(string(f.Data)))
		}
		return strings.Join(ps, " ")
	}
	if got, want := paths(resps[6].Files), "/etc/ssh/sshd_config.d/10-a.conf=A /etc/ssh/sshd_config.d/20-b.conf=B /etc/ssh/sshd_config.d/30-link.conf=PermitRootLogin no"; got != want {
		t.Errorf("glob with content = %q, want %q (sorted, regular files only)", got, want)
	}
	if got, want := paths(resps[7].Files), "/etc/ssh/sshd_config.d/10-a.conf= /etc/ssh/sshd_config.d/20-b.conf= /etc/ssh/sshd_config.d/30-link.conf="; got != want {
		t.Errorf("glob without content = %q, want %q", got, want)
	}
	if got, want := paths(resps[8].Files), "/etc/audit/rules.d/10-base.rules=-w /etc/passwd -p wa -k identity"; got != want {
		t.Errorf("glob through an absolute directory link = %q, want %q", got, want)
	}
	if r := resps[9]; r.Err != nil || len(r.Files) != 0 {
		t.Errorf("glob of a missing directory: %+v", r)
	}
}

func TestPackagesOnRootDir(t *testing.T) {
	status := `Package: openssh-server
Status: install ok installed
Priority: optional
Version: 1:9.2p1-2+deb12u3
Description: secure shell (SSH) server
 multi-line description
 Package: not-a-package

Package: telnet
Status: deinstall ok config-files
Version: 0.17+2.4-2

Package: aide
Status: install ok installed
Version: 0.18.3-1

Package: held
Status: hold ok installed
Version: 1.0
`
	root := buildRoot(t, file("/var/lib/dpkg/status", status))
	r := gather(t, rootTarget(t, root), target.Request{Op: target.OpPackages})[0]
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if strings.Join(r.PackageSources, ",") != "dpkg" {
		t.Errorf("sources %v, want [dpkg]", r.PackageSources)
	}
	// Installed and held ("ii", "hi") count; removed-with-config does not.
	want := map[string]string{"openssh-server": "1:9.2p1-2+deb12u3", "aide": "0.18.3-1", "held": "1.0"}
	if len(r.Packages) != len(want) {
		t.Errorf("packages %v, want exactly %v (ii and hi)", r.Packages, want)
	}
	for n, v := range want {
		if p := r.Packages[n]; p.Version != v || p.Source != "dpkg" || p.Name != n {
			t.Errorf("package %s = %+v, want version %s from dpkg", n, p, v)
		}
	}

	empty := gather(t, rootTarget(t, buildRoot(t, file("/etc/os-release", "ID=x\n"))), target.Request{Op: target.OpPackages})[0]
	if empty.Err != nil || len(empty.PackageSources) != 0 || len(empty.Packages) != 0 {
		t.Errorf("root without package databases: %+v", empty)
	}
}

func TestModulesOnRootDir(t *testing.T) {
	root := buildRoot(t,
		file("/usr/lib/modules/6.1.0-18-amd64/kernel/fs/cramfs/cramfs.ko.xz", ""),
		file("/usr/lib/modules/6.1.0-18-amd64/kernel/drivers/usb/storage/usb-storage.ko", ""),
		file("/usr/lib/modules/5.10.0-1-amd64/kernel/fs/hfs/hfs.ko", ""),
		symlink("/lib", "usr/lib"),
	)
	mod := func(n string) target.Request { return target.Request{Op: target.OpModule, Path: n} }
	resps := gather(t, rootTarget(t, root), mod("cramfs"), mod("usb_storage"), mod("usb-storage"), mod("hfs"), mod("squashfs"))
	for i, want := range []bool{true, true, true, true, false} {
		r := resps[i]
		if r.Err != nil || r.Available != want || r.Loaded {
			t.Errorf("module %s: err %v available %t loaded %t, want available %t and never loaded on a root dir", r.Req.Path, r.Err, r.Available, r.Loaded, want)
		}
	}
}

func TestServiceOnRootDir(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl is not installed (apt-get install systemd)")
	}
	unit := "[Unit]\nDescription=test\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	root := buildRoot(t,
		file("/usr/lib/systemd/system/on.service", unit),
		file("/usr/lib/systemd/system/off.service", unit),
		dir("/etc/systemd/system/multi-user.target.wants"),
		symlink("/etc/systemd/system/multi-user.target.wants/on.service", "/usr/lib/systemd/system/on.service"),
	)
	svc := func(n string) target.Request { return target.Request{Op: target.OpService, Path: n} }
	resps := gather(t, rootTarget(t, root), svc("on.service"), svc("off.service"), svc("gone.service"))
	for i, want := range []string{"enabled", "disabled", "not-found"} {
		if r := resps[i]; r.Err != nil || r.Enabled != want || r.Active != "" {
			t.Errorf("service %s: err %v enabled %q active %q, want enabled %q and no run state on a root dir", r.Req.Path, r.Err, r.Enabled, r.Active, want)
		}
	}
}

func TestExecLocal(t *testing.T) {
	tg := New()
	ex := func(script string, timeout time.Duration) target.Request {
		return target.Request{Op: target.OpExec, Script: script, Timeout: timeout}
	}
	start := time.Now()
	resps := gather(t, tg,
		ex(`echo out; echo err >&2; exit 3`, 0),
		ex(`printf '%s' "$LC_ALL"`, 0),
		ex(`sleep 20`, 300*time.Millisecond),
		ex(`head -c `+fmt.Sprint(target.ReadLimit+100)+` /dev/zero; echo done >&2`, 0),
		ex(`exit 0`, 0),
	)
	if time.Since(start) > 15*time.Second {
		t.Errorf("the batch took %s: the timeout did not stop the sleeping script", time.Since(start))
	}
	if r := resps[0]; r.Err != nil || r.ExitCode != 3 || string(r.Stdout) != "out\n" || string(r.Stderr) != "err\n" {
		t.Errorf("exit 3 script: %+v", r)
	}
	if r := resps[1]; string(r.Stdout) != "C" {
		t.Errorf("LC_ALL in script = %q, want C", r.Stdout)
	}
	if r := resps[2]; r.Err == nil || !strings.Contains(r.Err.Error(), "timed out") {
		t.Errorf("timed out script: err %v", r.Err)
	} else if r.Duration > 10*time.Second {
		t.Errorf("timed out script ran %s", r.Duration)
	}
	if r := resps[3]; !r.OutputTruncated || len(r.Stdout) != target.ReadLimit || string(r.Stderr) != "done\n" || r.ExitCode != 0 {
		t.Errorf("large output: truncated %t, %d bytes (want %d), stderr %q", r.OutputTruncated, len(r.Stdout), target.ReadLimit, r.Stderr)
	}
	if r := resps[4]; r.Err != nil || r.ExitCode != 0 || r.OutputTruncated {
		t.Errorf("exit 0: %+v", r)
	}
}

func TestExecCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resps, err := New().Gather(ctx, []target.Request{{Op: target.OpExec, Script: "true"}, {Op: target.OpRead, Path: "/etc/os-release"}})
	if err == nil {
		t.Error("Gather with a cancelled context: no batch error")
	}
	for _, r := range resps {
		if r.Err == nil {
			t.Errorf("%s on a cancelled context: no error", r.Req)
		}
	}
}

func TestExecOnRootDir(t *testing.T) {
	// Without /bin/sh in the image a script is not observable (skipped).
	noSh := buildRoot(t, file("/etc/os-release", "ID=debian\n"))
	r := gather(t, rootTarget(t, noSh), target.Request{Op: target.OpExec, Script: "true"})[0]
	if !errors.Is(r.Err, target.ErrUnsupported) {
		t.Errorf("script on a root without /bin/sh: err %v, want ErrUnsupported", r.Err)
	}

	if os.Geteuid() != 0 {
		t.Skip("running a script under chroot needs root; run the tests as root (.ci/run does)")
	}
	// With a working /bin/sh (the host's dash and its libraries), the script
	// runs under chroot and sees the image's files, not the host's.
	sh, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("dash is not installed")
	}
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		t.Skipf("ldd %s: %v", sh, err)
	}
	root := buildRoot(t, file("/etc/marker", "in the image\n"))
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, to), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(sh, "/bin/sh")
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				copyFile(f, f)
			}
		}
	}
	r = gather(t, rootTarget(t, root), target.Request{Op: target.OpExec, Script: `read x < /etc/marker; echo "$x"; exit 4`})[0]
	if r.Err != nil || r.ExitCode != 4 || string(r.Stdout) != "in the image\n" {
		t.Errorf("chrooted script: err %v exit %d stdout %q stderr %q", r.Err, r.ExitCode, r.Stdout, r.Stderr)
	}
}

func TestLocalHostFacts(t *testing.T) {
	want, err := os.ReadFile("/proc/sys/kernel/ostype")
	if err != nil {
		t.Skip("no /proc/sys/kernel/ostype")
	}
	resps := gather(t, New(),
		target.Request{Op: target.OpRead, Path: "/proc/sys/kernel/ostype"},
		target.Request{Op: target.OpModule, Path: "vigil_no_such_module"},
		target.Request{Op: target.OpStat, Path: "/proc/self"},
		target.Request{Op: target.OpRead, Path: "relative/path"},
	)
	if r := resps[0]; r.Err != nil || !bytes.Equal(r.Data, want) {
		t.Errorf("read /proc/sys/kernel/ostype: %+v", r)
	}
	// On a kernel without loadable modules (/proc/modules absent) nothing
	// is loaded: that is an answer, not an error.
	if r := resps[1]; r.Err != nil || r.Loaded || r.Available {
		t.Errorf("module that cannot exist: err %v loaded %t available %t", r.Err, r.Loaded, r.Available)
	}
	if r := resps[2]; len(r.Files) != 1 || !r.Files[0].Exists || r.Files[0].Type != "dir" {
		t.Errorf("stat /proc/self: %+v", r)
	}
	if r := resps[3]; r.Err == nil {
		t.Errorf("read of a relative path: no error")
	}
}

func TestServiceLocal(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("systemctl is not installed (apt-get install systemd)")
	}
	r := gather(t, New(), target.Request{Op: target.OpService, Path: "vigil-no-such-unit.service"})[0]
	if r.Err != nil || r.Enabled != "not-found" {
		t.Errorf("is-enabled of a unit that does not exist: err %v enabled %q, want not-found", r.Err, r.Enabled)
	}
	_, err := os.Stat("/run/systemd/system")
	switch booted := err == nil; {
	case booted && r.Active != "inactive":
		t.Errorf("is-active of a unit that does not exist on a systemd host: %q, want inactive", r.Active)
	case !booted && r.Active != "":
		t.Errorf("systemd is not running here, so no unit has an observable run state; got %q", r.Active)
	}
}
