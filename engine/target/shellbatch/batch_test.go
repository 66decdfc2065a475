package shellbatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// shells are the POSIX shells the script must run under: dash is /bin/sh on
// Debian, bash is /bin/sh on RHEL.
func shells(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, sh := range []string{"dash", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = append(out, "/bin/sh")
	}
	return out
}

// run feeds script to `shell -s` like the SSH target does and returns its
// stdout. cred, when set, runs the shell as another user.
func run(t *testing.T, shell string, script []byte, cred *syscall.Credential) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-s")
	if filepath.Base(shell) == "bash" {
		// RHEL runs bash as sh, i.e. in POSIX mode.
		cmd = exec.CommandContext(ctx, shell, "--posix", "-s")
	}
	cmd.Stdin = bytes.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -s: %v\nstderr:\n%s", shell, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", shell, stderr.String())
	}
	return stdout.Bytes()
}

// gather builds, runs and parses one batch.
func gather(t *testing.T, shell string, reqs []target.Request, cred *syscall.Credential) []target.Response {
	t.Helper()
	b, err := New(reqs)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := run(t, shell, b.Script(), cred)
	resps, err := b.Parse(out, start, time.Since(start))
	if err != nil {
		t.Fatalf("Parse: %v\noutput:\n%s", err, out)
	}
	if len(resps) != len(reqs) {
		t.Fatalf("got %d responses for %d requests", len(resps), len(reqs))
	}
	for i := range resps {
		if resps[i].Req.Key() != reqs[i].Key() {
			t.Fatalf("response %d answers %v, want %v", i, resps[i].Req, reqs[i])
		}
	}
	return resps
}

func write(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// syscall.Chmod takes raw Unix bits (0o4755), dodging umask too.
	if err := syscall.Chmod(path, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func allBytes() []byte {
	b := make([]byte, 0, 512)
	for i := range 512 {
		b = append(b, byte(i))
	}
	return b
}

// nasty is a file name that breaks naive quoting in every way at once.
const nasty = `we'ird $(touch PWNED) "q" ` + "`x`" + ` ;&|<> \ *?[a].conf`

func TestScriptLocal(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), target.ReadLimit/16+10)
	exact := bytes.Repeat([]byte{'x'}, target.ReadLimit)
	write(t, filepath.Join(dir, "text"), []byte("hello\nworld\n"), 0o644)
	write(t, filepath.Join(dir, "empty"), nil, 0o600)
	write(t, filepath.Join(dir, "binary"), allBytes(), 0o644)
	write(t, filepath.Join(dir, "big"), big, 0o644)
	write(t, filepath.Join(dir, "exact"), exact, 0o644)
	write(t, filepath.Join(dir, nasty), []byte("nasty"), 0o640)
	write(t, filepath.Join(dir, "suid"), []byte("#!/bin/sh\n"), 0o4755)
	write(t, filepath.Join(dir, "conf.d", "b.conf"), []byte("B=2\n"), 0o644)
	write(t, filepath.Join(dir, "conf.d", "a.conf"), []byte("A=1\n"), 0o600)
	write(t, filepath.Join(dir, "conf.d", "c.txt"), []byte("C\n"), 0o644)
	if err := os.Mkdir(filepath.Join(dir, "conf.d", "d.conf"), 0o755); err != nil { // a dir: not a glob file
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sticky"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "sticky"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("text", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "conf.d", "dangling.conf")); err != nil {
		t.Fatal(err)
	}
	forged := "VIGIL-0123 0 e\nVIGIL-0123 done\n"
	write(t, filepath.Join(dir, "forged"), []byte(forged), 0o644)
	p := func(name string) string { return filepath.Join(dir, name) }

	reqs := []target.Request{
		0:  {Op: target.OpRead, Path: p("text")},
		1:  {Op: target.OpRead, Path: p("missing")},
		2:  {Op: target.OpRead, Path: p("binary")},
		3:  {Op: target.OpRead, Path: p("big")},
		4:  {Op: target.OpRead, Path: p("exact")},
		5:  {Op: target.OpRead, Path: p("empty")},
		6:  {Op: target.OpRead, Path: p(nasty)},
		7:  {Op: target.OpRead, Path: p("conf.d")},
		8:  {Op: target.OpRead, Path: p("text/below")},
		9:  {Op: target.OpRead, Path: p("link")},
		10: {Op: target.OpRead, Path: p("forged")},
		11: {Op: target.OpRead, Path: p("bad\nname")},
		12: {Op: target.OpStat, Path: p("suid")},
		13: {Op: target.OpStat, Path: p("sticky")},
		14: {Op: target.OpStat, Path: p("link")},
		15: {Op: target.OpStat, Path: p("missing")},
		16: {Op: target.OpStat, Path: p("conf.d/*.conf")},
		17: {Op: target.OpStat, Path: p("conf.d/*.none")},
		18: {Op: target.OpStat, Path: p(`we'ird*`)},
		19: {Op: target.OpGlob, Path: p("conf.d/*.conf")},
		20: {Op: target.OpGlob, Path: p("conf.d/*.conf"), Content: true},
		21: {Op: target.OpGlob, Path: p("conf.d/[^ab].*")},
		22: {Op: target.OpGlob, Path: p("nomatch/*"), Content: true},
		23: {Op: target.OpExec, Script: "echo out; echo err >&2; exit 3"},
		24: {Op: target.OpExec, Script: "cat; echo stdin-was-empty"},
		25: {Op: target.OpExec, Script: "sleep 5", Timeout: 300 * time.Millisecond},
		26: {Op: target.OpExec, Script: "head -c 5000000 /dev/zero; head -c 4194400 /dev/zero >&2"},
		27: {Op: target.OpExec, Script: "if then fi"},
		28: {Op: target.OpExec, Script: "printf 'VIGIL-x 29 e\\n'; cat " + Quote(p("forged"))},
		29: {Op: target.OpExec, Script: "cd /; x=1; exit 0"},
		30: {Op: target.OpExec, Script: `[ "$(pwd)" != / ] && [ -z "$x" ] && echo isolated`},
		31: {Op: target.OpPackages},
		32: {Op: target.OpService, Path: "vigil-no-such-unit.service"},
		33: {Op: target.OpModule, Path: "vigil_no_such_module"},
		34: {Op: "bogus"},
		35: {Op: target.OpStat, Path: p("conf.d/[")},
		36: {Op: target.OpGlob, Path: p(`conf.d/\*`)},
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			r := gather(t, shell, reqs, nil)
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
				t.Fatal("a quoted path ran a command")
			}
			checkRead(t, r[0], true, "hello\nworld\n", false)
			checkRead(t, r[1], false, "", false)
			checkRead(t, r[2], true, string(allBytes()), false)
			checkRead(t, r[3], true, string(big[:target.ReadLimit]), true)
			checkRead(t, r[4], true, string(exact), false)
			checkRead(t, r[5], true, "", false)
			checkRead(t, r[6], true, "nasty", false)
			if r[7].Err == nil || !strings.Contains(r[7].Err.Error(), "Is a directory") {
				t.Errorf("read dir: Err = %v, want Is a directory", r[7].Err)
			}
			checkRead(t, r[8], false, "", false) // ENOTDIR counts as missing
			checkRead(t, r[9], true, "hello\nworld\n", false)
			checkRead(t, r[10], true, forged, false)
			if r[11].Err == nil || !strings.Contains(r[11].Err.Error(), "newline") {
				t.Errorf("newline path: Err = %v", r[11].Err)
			}

			checkFiles(t, r[12], fileWant{p("suid"), true, "file", 0o4755, ""})
			checkFiles(t, r[13], fileWant{p("sticky"), true, "dir", 0o1777, ""})
			checkFiles(t, r[14], fileWant{p("link"), true, "file", 0o644, ""})
			checkFiles(t, r[15], fileWant{p("missing"), false, "", 0, ""})
			checkFiles(t, r[16],
				fileWant{p("conf.d/a.conf"), true, "file", 0o600, ""},
				fileWant{p("conf.d/b.conf"), true, "file", 0o644, ""},
				fileWant{p("conf.d/d.conf"), true, "dir", 0o755, ""},
				fileWant{p("conf.d/dangling.conf"), false, "", 0, ""})
			checkFiles(t, r[17])
			checkFiles(t, r[18], fileWant{p(nasty), true, "file", 0o640, ""})
			st := r[12].Files[0]
			if st.UID != os.Getuid() || st.Owner == "" || st.Group == "" || st.Size != int64(len("#!/bin/sh\n")) {
				t.Errorf("stat suid: %+v", st)
			}

			checkGlob(t, r[19], []string{p("conf.d/a.conf"), p("conf.d/b.conf")}, nil)
			checkGlob(t, r[20], []string{p("conf.d/a.conf"), p("conf.d/b.conf")}, []string{"A=1\n", "B=2\n"})
			checkGlob(t, r[21], []string{p("conf.d/c.txt")}, nil)
			checkGlob(t, r[22], nil, nil)

			checkExec(t, r[23], 3, "out\n", "err\n")
			checkExec(t, r[24], 0, "stdin-was-empty\n", "")
			if !errors.Is(r[25].Err, ErrTimeout) || r[25].Duration > 4*time.Second {
				t.Errorf("timeout: Err = %v after %v", r[25].Err, r[25].Duration)
			}
			if !r[26].OutputTruncated || len(r[26].Stdout) != target.ReadLimit || len(r[26].Stderr) != target.ReadLimit || r[26].ExitCode != 0 {
				t.Errorf("big output: truncated=%v stdout=%d stderr=%d exit=%d", r[26].OutputTruncated, len(r[26].Stdout), len(r[26].Stderr), r[26].ExitCode)
			}
			if r[27].Err != nil || r[27].ExitCode == 0 || len(r[27].Stderr) == 0 {
				t.Errorf("syntax error: %+v", r[27])
			}
			checkExec(t, r[28], 0, "VIGIL-x 29 e\n"+forged, "")
			checkExec(t, r[29], 0, "", "")
			checkExec(t, r[30], 0, "isolated\n", "")
			if r[23].Duration <= 0 || r[23].Started.IsZero() {
				t.Errorf("exec timing: started %v duration %v", r[23].Started, r[23].Duration)
			}

			checkPackages(t, r[31])
			checkService(t, r[32])
			if r[33].Err != nil || r[33].Loaded || r[33].Available {
				t.Errorf("module: %+v", r[33])
			}
			if r[34].Err == nil || r[35].Err == nil || !errors.Is(r[35].Err, ErrBadPattern) {
				t.Errorf("bogus op / bad pattern: %v / %v", r[34].Err, r[35].Err)
			}
			checkGlob(t, r[36], nil, nil) // an escaped * is a literal '*'
		})
	}
}

func checkRead(t *testing.T, r target.Response, exists bool, data string, truncated bool) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("read %s: %v", r.Req.Path, r.Err)
		return
	}
	if r.Exists != exists || string(r.Data) != data || r.Truncated != truncated {
		t.Errorf("read %s: exists=%v truncated=%v len=%d, want exists=%v truncated=%v len=%d",
			r.Req.Path, r.Exists, r.Truncated, len(r.Data), exists, truncated, len(data))
	}
}

type fileWant struct {
	path   string
	exists bool
	typ    string
	mode   uint32
	err    string
}

func checkFiles(t *testing.T, r target.Response, want ...fileWant) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("stat %s: %v", r.Req.Path, r.Err)
		return
	}
	if len(r.Files) != len(want) {
		t.Errorf("stat %s: %d entries %+v, want %d", r.Req.Path, len(r.Files), r.Files, len(want))
		return
	}
	for i, w := range want {
		f := r.Files[i]
		if f.Path != w.path || f.Exists != w.exists || f.Type != w.typ || f.Mode != w.mode || !strings.Contains(f.Err, w.err) || (w.err == "") != (f.Err == "") {
			t.Errorf("stat %s [%d]: got %+v, want %+v", r.Req.Path, i, f, w)
		}
	}
}

func checkGlob(t *testing.T, r target.Response, paths, contents []string) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("glob %s: %v", r.Req.Path, r.Err)
		return
	}
	var got []string
	for _, f := range r.Files {
		got = append(got, f.Path)
	}
	if strings.Join(got, "|") != strings.Join(paths, "|") {
		t.Errorf("glob %s: %q, want %q", r.Req.Path, got, paths)
		return
	}
	for i, c := range contents {
		if string(r.Files[i].Data) != c || r.Files[i].Err != "" {
			t.Errorf("glob %s [%d]: %q (err %q), want %q", r.Req.Path, i, r.Files[i].Data, r.Files[i].Err, c)
		}
	}
}

func checkExec(t *testing.T, r target.Response, code int, stdout, stderr string) {
	t.Helper()
	if r.Err != nil || r.ExitCode != code || string(r.Stdout) != stdout || string(r.Stderr) != stderr {
		t.Errorf("exec %q: err=%v exit=%d stdout=%q stderr=%q, want exit=%d stdout=%q stderr=%q",
			r.Req.Script, r.Err, r.ExitCode, r.Stdout, r.Stderr, code, stdout, stderr)
	}
}

func checkPackages(t *testing.T, r target.Response) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("packages: %v", r.Err)
		return
	}
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		return
	}
	want := target.ParseDpkgStatus(mustRead(t, "/var/lib/dpkg/status"))
	if len(r.PackageSources) == 0 || r.PackageSources[0] != "dpkg" {
		t.Errorf("package sources %v, want dpkg first", r.PackageSources)
	}
	for name, p := range want {
		if r.Packages[name] != p {
			t.Errorf("package %s: %+v, want %+v", name, r.Packages[name], p)
		}
	}
	if _, ok := r.Packages["dpkg"]; !ok {
		t.Errorf("dpkg itself not among %d packages", len(r.Packages))
	}
}

func checkService(t *testing.T, r target.Response) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("service: %v", r.Err)
		return
	}
	if _, err := exec.LookPath("systemctl"); err != nil {
		if r.Enabled != "" || r.Active != "" {
			t.Errorf("service without systemctl: %q/%q", r.Enabled, r.Active)
		}
		return
	}
	if r.Enabled != "not-found" {
		t.Errorf("service enabled = %q, want not-found", r.Enabled)
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil && r.Active != "inactive" {
		t.Errorf("service active = %q, want inactive", r.Active)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScriptPermissions needs a user who cannot read everything: the test
// user itself, or nobody when the tests run as root.
func TestScriptPermissions(t *testing.T) {
	var cred *syscall.Credential
	dir := t.TempDir()
	if os.Getuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		// The temp dirs are 0700; nobody must be able to reach into them.
		for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, filepath.Join(dir, "secret"), []byte("s"), 0o600)
	write(t, filepath.Join(dir, "public"), []byte("p"), 0o644)
	write(t, filepath.Join(dir, "closed", "inner"), []byte("i"), 0o644)
	write(t, filepath.Join(dir, "globs", "a.conf"), []byte("a"), 0o644)
	write(t, filepath.Join(dir, "globs", "b.conf"), []byte("b"), 0o600)
	if err := os.Chmod(filepath.Join(dir, "closed"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	reqs := []target.Request{
		{Op: target.OpRead, Path: p("secret")},
		{Op: target.OpRead, Path: p("closed/inner")},
		{Op: target.OpStat, Path: p("closed/inner")},
		{Op: target.OpGlob, Path: p("globs/*.conf"), Content: true},
		{Op: target.OpRead, Path: p("public")},
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			r := gather(t, shell, reqs, cred)
			for i := range 2 {
				if r[i].Err == nil || !strings.Contains(r[i].Err.Error(), "Permission denied") || !r[i].Exists {
					t.Errorf("read %s: exists=%v err=%v, want permission error", r[i].Req.Path, r[i].Exists, r[i].Err)
				}
			}
			if len(r[2].Files) != 1 || !strings.Contains(r[2].Files[0].Err, "Permission denied") {
				t.Errorf("stat behind closed dir: %+v", r[2].Files)
			}
			g := r[3].Files
			if len(g) != 2 || string(g[0].Data) != "a" || g[0].Err != "" || !strings.Contains(g[1].Err, "Permission denied") {
				t.Errorf("glob with an unreadable file: %+v", g)
			}
			checkRead(t, r[4], true, "p", false)
		})
	}
}

// TestScriptModules checks the module lookups against stand-ins for
// /proc/modules and the module tree, which a test cannot create for real.
func TestScriptModules(t *testing.T) {
	dir := t.TempDir()
	procModules := filepath.Join(dir, "modules")
	write(t, procModules, []byte("usb_storage 81920 0 - Live 0x0\nnls_utf8 16384 1 - Live 0x0\n"), 0o644)
	reqs := []target.Request{
		{Op: target.OpModule, Path: "usb-storage"},
		{Op: target.OpModule, Path: "cramfs"},
		{Op: target.OpModule, Path: "nls_utf8"},
		{Op: target.OpModule, Path: "squash"},
		{Op: target.OpModule, Path: "bad/name"},
	}
	b, err := New(reqs)
	if err != nil {
		t.Fatal(err)
	}
	fakeTree := "printf '%s\\n' /lib/modules/6/kernel/drivers/usb/storage/usb-storage.ko.xz /lib/modules/6/kernel/fs/cramfs/cramfs.ko /lib/modules/6/kernel/fs/squashfs/squashfs.ko.zst >\"$_vT/m\"\n"
	script := string(b.Script())
	if !strings.Contains(script, modulePrelude) {
		t.Fatal("module prelude missing")
	}
	script = strings.Replace(script, modulePrelude, fakeTree, 1)
	script = strings.ReplaceAll(script, "/proc/modules", Quote(procModules))
	for _, shell := range shells(t) {
		start := time.Now()
		r, err := b.Parse(run(t, shell, []byte(script), nil), start, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		want := []struct{ loaded, avail bool }{{true, true}, {false, true}, {true, false}, {false, false}}
		for i, w := range want {
			if r[i].Err != nil || r[i].Loaded != w.loaded || r[i].Available != w.avail {
				t.Errorf("%s module %s: loaded=%v available=%v err=%v, want %v/%v", shell, r[i].Req.Path, r[i].Loaded, r[i].Available, r[i].Err, w.loaded, w.avail)
			}
		}
		if r[4].Err == nil {
			t.Errorf("module name with '/': no error")
		}
	}
}

// TestParseCutShort feeds every prefix of a real output to Parse: answers
// completed before the cut survive, the rest fail, the batch reports
// ErrIncomplete.
func TestParseCutShort(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f"), []byte("data"), 0o644)
	reqs := []target.Request{
		{Op: target.OpRead, Path: filepath.Join(dir, "f")},
		{Op: target.OpExec, Script: "echo hi"},
		{Op: target.OpStat, Path: filepath.Join(dir, "f")},
	}
	b, err := New(reqs)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, "/bin/sh", b.Script(), nil)
	if _, err := b.Parse(out, time.Now(), 0); err != nil {
		t.Fatalf("full output: %v", err)
	}
	for n := 0; n < len(out); n++ {
		resps, err := b.Parse(out[:n], time.Now(), 0)
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("cut at %d: err = %v, want ErrIncomplete", n, err)
		}
		answered := 0
		for _, r := range resps {
			if r.Err == nil {
				answered++
			} else if !errors.Is(r.Err, ErrNoFrame) && !errors.Is(r.Err, ErrMalformed) {
				t.Fatalf("cut at %d: response error %v", n, r.Err)
			}
		}
		if n < len(out)/2 && answered == len(resps) {
			t.Fatalf("cut at %d of %d: all answered", n, len(out))
		}
	}
}

// wantStat is what a stat of p (following symlinks) must report, from Go's
// own view of the file system.
func wantStat(t *testing.T, p string) fileWant {
	t.Helper()
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return fileWant{p, false, "", 0, ""}
	case err != nil:
		return fileWant{p, false, "", 0, "denied"}
	}
	typ := "file"
	if fi.IsDir() {
		typ = "dir"
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileWant{p, true, typ, st.Mode & 0o7777, ""}
}

// TestScriptHostileNames runs every file helper over names that break naive
// handling: a newline (which cannot go in the shell's path lists and is
// stated alone), quotes, a leading dash, control and non-UTF-8 bytes,
// glob characters, a dangling symlink, and a name that looks like a frame.
func TestScriptHostileNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"new\nline.conf", "-dash.conf", "sp ace.conf", "q'uote.conf", `back\slash.conf`,
		"star*.conf", "\x01ctrl.conf", "\xffbyte.conf", "VIGIL-" + testNonce + " done.conf", "trailing\n.conf"}
	for i, n := range names {
		write(t, filepath.Join(dir, n), []byte(fmt.Sprintf("content %d\n", i)), 0o640)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.conf"), 0o750); err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(all)
	var regular []string
	for _, p := range all {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			regular = append(regular, p)
		}
	}
	reqs := []target.Request{
		{Op: target.OpStat, Path: filepath.Join(dir, "*.conf")},
		{Op: target.OpGlob, Path: filepath.Join(dir, "*.conf"), Content: true},
		{Op: target.OpGlob, Path: filepath.Join(dir, "*.conf")},
	}
	statOf := map[string]string{} // request path -> file
	for _, p := range all {
		if !strings.Contains(p, "\n") {
			q := p
			if hasMeta(p) {
				q = strings.NewReplacer(`\`, `\\`, `*`, `\*`).Replace(p)
			}
			statOf[q] = p
			reqs = append(reqs, target.Request{Op: target.OpStat, Path: q}, target.Request{Op: target.OpRead, Path: p})
		}
	}
	var want []fileWant
	for _, p := range all {
		want = append(want, wantStat(t, p))
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			r := gather(t, shell, reqs, nil)
			checkFiles(t, r[0], want...)
			var contents []string
			for _, p := range regular {
				contents = append(contents, string(mustRead(t, p)))
			}
			checkGlob(t, r[1], regular, contents)
			checkGlob(t, r[2], regular, nil)
			for _, resp := range r[3:] {
				switch resp.Req.Op {
				case target.OpStat:
					checkFiles(t, resp, wantStat(t, statOf[resp.Req.Path]))
				case target.OpRead:
					data, err := os.ReadFile(resp.Req.Path)
					switch {
					case err == nil:
						checkRead(t, resp, true, string(data), false)
					case errors.Is(err, os.ErrNotExist):
						checkRead(t, resp, false, "", false)
					default:
						if resp.Err == nil || !resp.Exists {
							t.Errorf("read %q: exists=%v err=%v, want the error %v", resp.Req.Path, resp.Exists, resp.Err, err)
						}
					}
				}
			}
		})
	}
}

// TestScriptStatFallback makes the batched stat calls misbehave, through a
// shell function shadowing stat: the call over the existing paths
// complains, and a path found missing appears before the call over the
// failing paths. Both lists must then be stated one by one, with the same
// answers.
func TestScriptStatFallback(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write(t, p("a"), []byte("a"), 0o644)
	write(t, p("b"), []byte("bb"), 0o600)
	write(t, p("c"), []byte("ccc"), 0o640)
	reqs := []target.Request{
		{Op: target.OpStat, Path: p("a")},
		{Op: target.OpStat, Path: p("b")},
		{Op: target.OpStat, Path: p("missing1")},
		{Op: target.OpStat, Path: p("appears")},
		{Op: target.OpRead, Path: p("appears")},
		{Op: target.OpRead, Path: p("missing2")},
		{Op: target.OpStat, Path: p("a/below")},
		{Op: target.OpStat, Path: p("*")},
		{Op: target.OpRead, Path: p("c")},
	}
	shadow := `_vstats=0
stat() {
  if [ "$1" = -L ] && [ $# -gt 5 ]; then
    _vstats=$((_vstats+1))
    if [ $_vstats -eq 1 ]; then command stat "$@"; echo "stat: simulated trouble" >&2; return 0; fi
    : >` + Quote(p("appears")) + `
  fi
  command stat "$@"
}
_vS
`
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			_ = os.Remove(p("appears"))
			b, err := New(reqs)
			if err != nil {
				t.Fatal(err)
			}
			script := strings.Replace(string(b.Script()), "\n_vS\n", "\n"+shadow, 1)
			start := time.Now()
			out := run(t, shell, []byte(script), nil)
			r, err := b.Parse(out, start, time.Since(start))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "\nr ") || strings.Count(string(out), "\nfn ") != 1 {
				t.Errorf("stat section does not come from the one-by-one path:\n%s", out)
			}
			checkFiles(t, r[0], wantStat(t, p("a")))
			checkFiles(t, r[1], wantStat(t, p("b")))
			checkFiles(t, r[2], fileWant{p("missing1"), false, "", 0, ""})
			// Missing when tested, present when stated one by one.
			if w := wantStat(t, p("appears")); w.exists {
				checkFiles(t, r[3], w)
			} else {
				t.Error("the shadow stat did not make the file")
			}
			checkRead(t, r[4], false, "", false)
			checkRead(t, r[5], false, "", false)
			checkFiles(t, r[6], fileWant{p("a/below"), false, "", 0, ""})
			// Expanded before "appears" was made.
			checkFiles(t, r[7], wantStat(t, p("a")), wantStat(t, p("b")), wantStat(t, p("c")))
			checkRead(t, r[8], true, "ccc", false)
		})
	}
}

// TestScriptPools has more pieces than one pool takes: the script must
// send several, and every piece must land where it belongs.
func TestScriptPools(t *testing.T) {
	dir := t.TempDir()
	var reqs []target.Request
	for i := range 3 * flushAt {
		name := filepath.Join(dir, fmt.Sprintf("f%03d", i))
		write(t, name, bytes.Repeat([]byte{byte('a' + i%26)}, i+1), 0o644)
		reqs = append(reqs, target.Request{Op: target.OpRead, Path: name})
		if i%10 == 0 {
			reqs = append(reqs, target.Request{Op: target.OpExec, Script: fmt.Sprintf("printf %%s %d; printf e%d >&2", i, i)})
		}
	}
	reqs = append(reqs, target.Request{Op: target.OpGlob, Path: filepath.Join(dir, "f*"), Content: true})
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			b, err := New(reqs)
			if err != nil {
				t.Fatal(err)
			}
			out := run(t, shell, b.Script(), nil)
			m := "VIGIL-" + b.nonce + " "
			if n := strings.Count(string(out), m+"pool "); n < 2*4 {
				t.Errorf("%d pool markers, want at least 4 pools", n)
			}
			// The reading glob flushes in the middle of its frame.
			g := strconv.Itoa(len(reqs) - 1)
			begin, end := strings.Index(string(out), m+g+" b\n"), strings.Index(string(out), m+g+" e\n")
			if begin < 0 || end < begin || !strings.Contains(string(out[begin:end]), m+"pool ") {
				t.Errorf("no pool inside the glob's frame")
			}
			r, err := b.Parse(out, time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			files := 0
			for _, resp := range r {
				switch resp.Req.Op {
				case target.OpRead:
					checkRead(t, resp, true, string(mustRead(t, resp.Req.Path)), false)
					files++
				case target.OpExec:
					var i int
					fmt.Sscanf(resp.Req.Script, "printf %%s %d", &i)
					checkExec(t, resp, 0, strconv.Itoa(i), "e"+strconv.Itoa(i))
				case target.OpGlob:
					if len(resp.Files) != 3*flushAt {
						t.Fatalf("glob: %d files", len(resp.Files))
					}
					for _, f := range resp.Files {
						if string(f.Data) != string(mustRead(t, f.Path)) {
							t.Errorf("glob %s: %q", f.Path, f.Data)
						}
					}
				}
			}
		})
	}
}

// TestScriptExecStreams covers output streams that outlive or leave the
// command: a background child still writing after the command exits, a
// command closing its outputs, and output larger than a pipe buffer
// without a newline.
func TestScriptExecStreams(t *testing.T) {
	reqs := []target.Request{
		{Op: target.OpExec, Script: "(sleep 0.3; echo late) & echo early"},
		{Op: target.OpExec, Script: "exec >&- 2>&-; sleep 0.1; exit 4"},
		{Op: target.OpExec, Script: "head -c 200000 /dev/zero | tr '\\0' x"},
		{Op: target.OpExec, Script: "echo after"},
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			r := gather(t, shell, reqs, nil)
			checkExec(t, r[0], 0, "early\nlate\n", "")
			checkExec(t, r[1], 4, "", "")
			checkExec(t, r[2], 0, strings.Repeat("x", 200000), "")
			checkExec(t, r[3], 0, "after\n", "")
			if r[0].Duration < 300*time.Millisecond || r[3].Duration <= 0 || r[3].Started.Before(r[0].Started.Add(r[0].Duration)) {
				t.Errorf("exec timing: %v+%v, then %v+%v", r[0].Started, r[0].Duration, r[3].Started, r[3].Duration)
			}
		})
	}
}

// TestScriptClock checks the exec timings with the clock process working,
// dying in the middle of the batch, and never answering (its output
// buffered, as without stdbuf), which must cost the probe's two seconds,
// not a hang.
func TestScriptClock(t *testing.T) {
	reqs := []target.Request{
		{Op: target.OpExec, Script: "sleep 0.05"},
		{Op: target.OpExec, Script: "echo two"},
		{Op: target.OpExec, Script: "sleep 0.05; echo three"},
	}
	cases := []struct {
		name, from, to string
		clock          string // what the shell says of its clock after the second exec
	}{
		{"working", "", "", "on"},
		{"dies", "\n_vx 1 ", "\nkill $_vckp; wait $_vckp\n_vx 1 ", "off"},
		{"buffered", "stdbuf -oL date", "date", "off"},
	}
	for _, shell := range shells(t) {
		for _, c := range cases {
			if c.name == "buffered" && filepath.Base(shell) != "dash" {
				continue // two seconds are enough once
			}
			t.Run(filepath.Base(shell)+"/"+c.name, func(t *testing.T) {
				b, err := New(reqs)
				if err != nil {
					t.Fatal(err)
				}
				script := string(b.Script())
				// Remember the clock's PID, and report the clock's state
				// after the second exec, outside any frame.
				script = strings.Replace(script, "  exec 7<&-\n  echo now >&8\n", "  _vckp=$!; exec 7<&-\n  echo now >&8\n", 1)
				script = strings.Replace(script, "\n_vx 2 ", "\nif [ -n \"$_vck\" ]; then echo \"clock on\"; else echo \"clock off\"; fi\n_vx 2 ", 1)
				if c.from != "" {
					if !strings.Contains(script, c.from) {
						t.Fatalf("script lacks %q", c.from)
					}
					script = strings.Replace(script, c.from, c.to, 1)
				}
				start := time.Now()
				out := run(t, shell, []byte(script), nil)
				elapsed := time.Since(start)
				r, err := b.Parse(out, start, elapsed)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(out), "\nclock "+c.clock+"\n") {
					t.Errorf("clock not %s:\n%s", c.clock, out)
				}
				if elapsed > 5*time.Second {
					t.Errorf("batch took %v", elapsed)
				}
				checkExec(t, r[1], 0, "two\n", "")
				checkExec(t, r[2], 0, "three\n", "")
				for i, resp := range r {
					if resp.Duration <= 0 || resp.Duration > elapsed || resp.Started.Before(start) || resp.Started.After(start.Add(elapsed)) {
						t.Errorf("exec %d: started %v after the batch, took %v", i, resp.Started.Sub(start), resp.Duration)
					}
					if i != 1 && resp.Duration < 50*time.Millisecond {
						t.Errorf("exec %d took %v, slept 50ms", i, resp.Duration)
					}
					if i > 0 && resp.Started.Before(r[i-1].Started.Add(r[i-1].Duration)) {
						t.Errorf("exec %d started before exec %d ended", i, i-1)
					}
				}
			})
		}
	}
}
