package sshtarget

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vigilfleet/vigil/engine/target"
	"github.com/vigilfleet/vigil/engine/testtarget"
)

// These tests run against real Debian 12 sshd targets on 127.0.0.N (package
// testtarget). They skip, saying why, where targets cannot run (not root,
// no debootstrap); .ci/run provides both.

// testFiles are placed into every integration target.
var testFiles = map[string]testtarget.File{
	"/etc/vigil-test/setuid":   {Data: []byte("#!/bin/sh\n"), Mode: os.ModeSetuid | 0o755},
	"/etc/vigil-test/secret":   {Data: []byte("top secret\n"), Mode: 0o600},
	"/etc/vigil-test/binary":   {Data: []byte{0, 1, 2, 0xff, '\n', 0}, Mode: 0o644},
	"/etc/vigil-test/a.conf":   {Data: []byte("A=1\n"), Mode: 0o644},
	"/etc/vigil-test/b.conf":   {Data: []byte("B=2\n"), Mode: 0o640},
	"/etc/vigil-test/it's.cfg": {Data: []byte("quoted\n"), Mode: 0o644},
}

func startHost(t testing.TB) *testtarget.Host {
	t.Helper()
	return testtarget.Start(t, testtarget.Options{Files: testFiles})
}

// hostOpts logs in as user with the harness's credentials for that user.
func hostOpts(h *testtarget.Host, user string) Options {
	o := Options{Host: h.Addr(), User: user, KnownHostsFile: h.KnownHostsFile(), ConnectTimeout: testtarget.ConnectTimeout}
	switch user {
	case testtarget.RootUser:
		o.KeyFiles = []string{h.RootKeyFile()}
	case testtarget.User:
		o.KeyFiles = []string{h.UserKeyFile()}
	case testtarget.PasswordUser:
		o.Password = testtarget.Password
	}
	return o
}

func dialOK(t testing.TB, o Options) *Target {
	t.Helper()
	tg, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func gatherOK(t testing.TB, tg *Target, reqs ...target.Request) []target.Response {
	t.Helper()
	r, err := tg.Gather(context.Background(), reqs)
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	return r
}

func TestIntegrationLogins(t *testing.T) {
	h := startHost(t)
	shadow := target.Request{Op: target.OpRead, Path: "/etc/shadow"}
	whoami := target.Request{Op: target.OpExec, Script: "id -un"}

	tests := []struct {
		name       string
		user       string
		sudo       bool
		sudoPW     string
		wantUser   string
		readShadow bool
	}{
		{"root by key", testtarget.RootUser, false, "", "root", true},
		{"password login", testtarget.PasswordUser, false, "", testtarget.PasswordUser, false},
		{"vigil without sudo", testtarget.User, false, "", testtarget.User, false},
		{"vigil with sudo", testtarget.User, true, "", "root", true},
		{"vigilpw with sudo password", testtarget.PasswordUser, true, testtarget.Password, "root", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := hostOpts(h, tt.user)
			o.Sudo, o.SudoPassword = tt.sudo, tt.sudoPW
			tg := dialOK(t, o)
			r := gatherOK(t, tg, shadow, whoami)
			if got := strings.TrimSpace(string(r[1].Stdout)); got != tt.wantUser {
				t.Errorf("runs as %q, want %q (stderr %q)", got, tt.wantUser, r[1].Stderr)
			}
			if tt.readShadow {
				if r[0].Err != nil || !strings.Contains(string(r[0].Data), "root:") {
					t.Errorf("/etc/shadow: %v %q", r[0].Err, r[0].Data)
				}
			} else if r[0].Err == nil || !strings.Contains(r[0].Err.Error(), "Permission denied") || !r[0].Exists {
				t.Errorf("/etc/shadow as %s: exists=%v err=%v, want permission error", tt.user, r[0].Exists, r[0].Err)
			}
			if tg.RoundTrips() != 1 {
				t.Errorf("round trips %d, want 1", tg.RoundTrips())
			}
		})
	}
}

func TestIntegrationRefusals(t *testing.T) {
	h := startHost(t)
	accepted := func() int { return strings.Count(h.Log(), "Accepted ") }

	t.Run("sudo password missing", func(t *testing.T) {
		o := hostOpts(h, testtarget.PasswordUser)
		o.Sudo = true
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrSudoPasswordRequired) || !strings.Contains(err.Error(), h.Addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("sudo password wrong", func(t *testing.T) {
		o := hostOpts(h, testtarget.PasswordUser)
		o.SudoPassword = "not-the-password"
		start := time.Now()
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrSudoPasswordWrong) || !strings.Contains(err.Error(), h.Addr()) {
			t.Errorf("err = %v", err)
		}
		t.Logf("wrong sudo password reported after %v", time.Since(start))
	})
	t.Run("wrong password", func(t *testing.T) {
		o := hostOpts(h, testtarget.PasswordUser)
		o.Password = "wrong"
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), h.Addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		o := hostOpts(h, testtarget.RootUser)
		o.KeyFiles = []string{h.UserKeyFile()} // vigil's key is not root's
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), h.Addr()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(h.Addr())}, newSigner(t).PublicKey())
		if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		o := hostOpts(h, testtarget.RootUser)
		o.KnownHostsFile, o.AcceptUnknownHost = kh, true
		before := accepted()
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), h.Addr()) ||
			!strings.Contains(err.Error(), ssh.FingerprintSHA256(h.HostPublicKey())) {
			t.Errorf("err = %v", err)
		}
		time.Sleep(100 * time.Millisecond) // let sshd write its log
		if accepted() != before {
			t.Errorf("sshd accepted a login from a client that refused its key:\n%s", h.Log())
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		o := hostOpts(h, testtarget.RootUser)
		o.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		before := accepted()
		_, err := Dial(t.Context(), o)
		t.Log(err)
		if !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), h.Addr()) {
			t.Errorf("err = %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		if accepted() != before {
			t.Error("sshd accepted a login from a client that did not know it")
		}
		o.AcceptUnknownHost = true
		tg := dialOK(t, o)
		r := gatherOK(t, tg, target.Request{Op: target.OpExec, Script: "echo ok"})
		if string(r[0].Stdout) != "ok\n" {
			t.Errorf("after accept-new: %q", r[0].Stdout)
		}
		data, _ := os.ReadFile(o.KnownHostsFile)
		if !strings.Contains(string(data), knownhosts.Normalize(h.Addr())) {
			t.Errorf("known_hosts after accept-new: %q", data)
		}
	})
}

// TestIntegrationFacts checks every op against the real target.
func TestIntegrationFacts(t *testing.T) {
	h := startHost(t)
	tg := dialOK(t, hostOpts(h, testtarget.RootUser))
	r := gatherOK(t, tg,
		target.Request{Op: target.OpRead, Path: "/etc/vigil-test/binary"},
		target.Request{Op: target.OpRead, Path: "/etc/vigil-test/missing"},
		target.Request{Op: target.OpStat, Path: "/etc/vigil-test/setuid"},
		target.Request{Op: target.OpStat, Path: "/etc/shadow"},
		target.Request{Op: target.OpGlob, Path: "/etc/vigil-test/*.conf", Content: true},
		target.Request{Op: target.OpRead, Path: "/etc/vigil-test/it's.cfg"},
		target.Request{Op: target.OpPackages},
		target.Request{Op: target.OpService, Path: "ssh.service"},
		target.Request{Op: target.OpModule, Path: "usb-storage"},
		target.Request{Op: target.OpExec, Script: "sshd -T | grep -i '^permitrootlogin'"},
		target.Request{Op: target.OpExec, Script: "sleep 3", Timeout: 500 * time.Millisecond},
	)
	if string(r[0].Data) != "\x00\x01\x02\xff\n\x00" || r[1].Exists || r[1].Err != nil {
		t.Errorf("reads: %q / exists=%v err=%v", r[0].Data, r[1].Exists, r[1].Err)
	}
	if f := r[2].Files; len(f) != 1 || f[0].Mode != 0o4755 || f[0].Owner != "root" || f[0].Type != "file" {
		t.Errorf("stat setuid: %+v", f)
	}
	if f := r[3].Files; len(f) != 1 || f[0].Mode != 0o640 || f[0].Group != "shadow" {
		t.Errorf("stat /etc/shadow: %+v", f)
	}
	if f := r[4].Files; len(f) != 2 || string(f[0].Data) != "A=1\n" || string(f[1].Data) != "B=2\n" {
		t.Errorf("glob: %+v", f)
	}
	if string(r[5].Data) != "quoted\n" {
		t.Errorf("quoted path: %q %v", r[5].Data, r[5].Err)
	}
	if p, ok := r[6].Packages["openssh-server"]; !ok || p.Source != "dpkg" || len(r[6].PackageSources) == 0 || r[6].PackageSources[0] != "dpkg" {
		t.Errorf("packages: %d, sources %v, openssh-server %+v", len(r[6].Packages), r[6].PackageSources, p)
	}
	t.Logf("service ssh.service: enabled=%q active=%q", r[7].Enabled, r[7].Active)
	if r[8].Err != nil || r[8].Available {
		t.Errorf("module: %+v", r[8])
	}
	if r[9].ExitCode != 0 || !strings.HasPrefix(strings.ToLower(string(r[9].Stdout)), "permitrootlogin") {
		t.Errorf("sshd -T: exit %d %q %q", r[9].ExitCode, r[9].Stdout, r[9].Stderr)
	}
	if r[10].Err == nil || r[10].Duration > 2500*time.Millisecond {
		t.Errorf("timeout: %v after %v", r[10].Err, r[10].Duration)
	}
}

func TestIntegrationHostStops(t *testing.T) {
	h := startHost(t)
	o := hostOpts(h, testtarget.RootUser)
	o.KeepAlive = time.Second
	tg := dialOK(t, o)
	gatherOK(t, tg, target.Request{Op: target.OpExec, Script: "true"})
	time.AfterFunc(500*time.Millisecond, h.Stop)
	start := time.Now()
	r, err := tg.Gather(t.Context(), []target.Request{
		{Op: target.OpRead, Path: "/etc/hostname"},
		{Op: target.OpExec, Script: "sleep 20"},
		{Op: target.OpRead, Path: "/etc/os-release"},
	})
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), h.Addr()) {
		t.Fatalf("Gather on a stopped host: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v to notice", time.Since(start))
	}
	for i := range r {
		if r[i].Err == nil {
			t.Errorf("response %d has no error", i)
		}
	}
	t.Logf("stop noticed after %v: %v", time.Since(start), err)
}

// mixedRequests builds 200 distinct requests shaped like a scan's plan:
// mostly file reads and stats (many of files that do not exist), some
// globs, commands, services, modules and one package list.
func mixedRequests() []target.Request {
	files := []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/hostname", "/etc/os-release",
		"/etc/ssh/sshd_config", "/etc/login.defs", "/etc/sudoers", "/etc/fstab", "/etc/hosts", "/etc/nsswitch.conf",
		"/etc/vigil-test/a.conf", "/etc/vigil-test/secret", "/etc/issue", "/etc/issue.net", "/etc/crontab",
		"/etc/pam.d/common-auth", "/etc/pam.d/common-password", "/etc/pam.d/sshd", "/etc/security/limits.conf",
		"/etc/default/useradd", "/etc/adduser.conf", "/etc/sysctl.conf", "/etc/profile", "/etc/bash.bashrc"}
	globs := []string{"/etc/ssh/sshd_config.d/*.conf", "/etc/sysctl.d/*.conf", "/etc/modprobe.d/*.conf", "/etc/pam.d/common-*",
		"/etc/security/limits.d/*.conf", "/etc/sudoers.d/*", "/etc/cron.d/*", "/etc/profile.d/*.sh", "/etc/apt/sources.list.d/*",
		"/etc/vigil-test/*.conf"}
	sysctls := []string{"net.ipv4.ip_forward", "kernel.randomize_va_space", "net.ipv4.conf.all.accept_redirects", "fs.suid_dumpable",
		"kernel.dmesg_restrict", "net.ipv4.tcp_syncookies", "kernel.kptr_restrict", "net.ipv6.conf.all.accept_ra"}
	reqs := []target.Request{{Op: target.OpPackages}}
	add := func(r target.Request) { reqs = append(reqs, r) }
	for i := range 60 { // 26 present, 34 absent
		p := fmt.Sprintf("/etc/vigil-test/absent-%d", i)
		if i < len(files) {
			p = files[i]
		}
		add(target.Request{Op: target.OpRead, Path: p})
	}
	for i := range 50 {
		p := fmt.Sprintf("/etc/cron.absent-%d", i)
		if i < len(files) {
			p = files[i]
		}
		add(target.Request{Op: target.OpStat, Path: p})
	}
	for i, g := range globs {
		add(target.Request{Op: target.OpGlob, Path: g, Content: true})
		if i%2 == 0 {
			add(target.Request{Op: target.OpStat, Path: g})
		} else {
			add(target.Request{Op: target.OpGlob, Path: g})
		}
	}
	add(target.Request{Op: target.OpExec, Script: "sshd -T"})
	add(target.Request{Op: target.OpExec, Script: "cat /proc/cmdline"})
	for _, k := range sysctls {
		add(target.Request{Op: target.OpExec, Script: "sysctl -n " + k})
	}
	for i := 0; len(reqs) < 170; i++ {
		add(target.Request{Op: target.OpExec, Script: fmt.Sprintf("grep -c . %s || true", files[i%len(files)]) + strings.Repeat(" ", i/len(files))})
	}
	for i := 0; len(reqs) < 185; i++ {
		add(target.Request{Op: target.OpService, Path: fmt.Sprintf("unit%d.service", i)})
	}
	for i := 0; len(reqs) < 200; i++ {
		add(target.Request{Op: target.OpModule, Path: fmt.Sprintf("mod_%d", i)})
	}
	return target.Dedup(reqs)
}

func TestIntegrationBatch200(t *testing.T) {
	h := startHost(t)
	tg := dialOK(t, hostOpts(h, testtarget.RootUser))
	reqs := mixedRequests()
	if len(reqs) != 200 {
		t.Fatalf("%d distinct requests, want 200", len(reqs))
	}
	before := tg.RoundTrips()
	start := time.Now()
	r, err := tg.Gather(t.Context(), reqs)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.RoundTrips() - before; got != 1 {
		t.Errorf("%d requests took %d round trips, want 1", len(reqs), got)
	}
	if len(r) != len(reqs) {
		t.Fatalf("%d responses for %d requests", len(r), len(reqs))
	}
	for i := range r {
		if r[i].Err != nil && !errors.Is(r[i].Err, errors.ErrUnsupported) && r[i].Req.Op != target.OpRead {
			t.Errorf("request %d (%s %s): %v", i, r[i].Req.Op, r[i].Req, r[i].Err)
		}
	}
	t.Logf("%d requests: 1 round trip, %v", len(reqs), elapsed)
}

// BenchmarkGather measures one batch of 200 mixed requests against a real
// target over one connection.
func BenchmarkGather(b *testing.B) {
	h := startHost(b)
	tg := dialOK(b, hostOpts(h, testtarget.RootUser))
	reqs := mixedRequests()
	if len(reqs) != 200 {
		b.Fatalf("%d distinct requests, want 200", len(reqs))
	}
	before := tg.RoundTrips()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tg.Gather(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tg.RoundTrips()-before)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(len(reqs)), "requests/op")
}

// TestIntegrationSudoPasswordChanged: the password was right at Dial and
// changed before the batch; the batch fails clearly and runs nothing.
func TestIntegrationSudoPasswordChanged(t *testing.T) {
	h := startHost(t)
	o := hostOpts(h, testtarget.PasswordUser)
	o.SudoPassword = testtarget.Password
	tg := dialOK(t, o)
	if out, errOut, err := h.Exec(t.Context(), "echo 'vigilpw:another-pw' | chpasswd"); err != nil {
		t.Fatalf("chpasswd: %v %s %s", err, out, errOut)
	}
	r, err := tg.Gather(t.Context(), []target.Request{{Op: target.OpExec, Script: "touch /root/ran"}})
	t.Log(err)
	if !errors.Is(err, ErrSudoPasswordWrong) || !strings.Contains(err.Error(), h.Addr()) || r[0].Err == nil {
		t.Errorf("Gather: %v", err)
	}
	if _, _, err := h.Exec(t.Context(), "test ! -e /root/ran"); err != nil {
		t.Error("the batch ran despite sudo refusing")
	}
}
