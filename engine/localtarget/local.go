// Package localtarget observes the machine the engine runs on, or a
// directory holding a mounted root filesystem (an offline image) read as "/".
//
// Facts are read natively: files, stat and /proc are Go calls, not programs.
// A shell is started only for `command` checks and for the few probes that
// need a program (sshd -T, auditctl -l, systemctl, rpm).
package localtarget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilfleet/vigil/engine/target"
)

// Target reads the local host, or a root directory.
type Target struct {
	root string // "" for the live local host
	name string
}

// New returns the live local host.
func New() *Target { return &Target{name: "localhost"} }

// NewRootDir returns a target reading dir as the root of a filesystem. Live
// kernel facts (sysctl, loaded modules, running services) are not
// observable; scripts run under chroot when the engine runs as root and the
// image has /bin/sh, and are reported as not observable otherwise.
func NewRootDir(dir string) (*Target, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("root directory %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("root directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("root directory %s: not a directory", dir)
	}
	return &Target{root: abs, name: abs}, nil
}

// Name implements target.Target.
func (t *Target) Name() string { return t.name }

// Kind implements target.Target.
func (t *Target) Kind() target.Kind {
	if t.root != "" {
		return target.KindRootDir
	}
	return target.KindLocal
}

// Close implements target.Target.
func (t *Target) Close() error { return nil }

// maxParallelExec bounds how many programs run at once.
const maxParallelExec = 8

// Gather implements target.Target. Native reads run in order; programs run
// in parallel, bounded.
func (t *Target) Gather(ctx context.Context, reqs []target.Request) ([]target.Response, error) {
	out := make([]target.Response, len(reqs))
	g := &gatherer{t: t}
	var eg errgroup.Group
	eg.SetLimit(maxParallelExec)
	for i, r := range reqs {
		out[i].Req = r
		if r.Op == target.OpExec || r.Op == target.OpService || r.Op == target.OpPackages {
			i := i
			eg.Go(func() error {
				g.do(ctx, &out[i])
				return nil
			})
			continue
		}
		g.do(ctx, &out[i])
	}
	_ = eg.Wait()
	return out, ctx.Err()
}

// gatherer holds what one batch reads once: user and group names, the
// module index.
type gatherer struct {
	t          *Target
	idOnce     sync.Once
	users      map[int]string
	groups     map[int]string
	modOnce    sync.Once
	modules    map[string]bool
	builtin    map[string]bool
	modErr     error
	loadedOnce sync.Once
	loaded     map[string]bool
	loadedErr  error
}

func (g *gatherer) do(ctx context.Context, r *target.Response) {
	r.Started = time.Now()
	defer func() { r.Duration = time.Since(r.Started) }()
	if err := ctx.Err(); err != nil {
		r.Err = err
		return
	}
	switch r.Req.Op {
	case target.OpRead:
		g.read(r)
	case target.OpStat:
		g.stat(r)
	case target.OpGlob:
		g.glob(r)
	case target.OpExec:
		g.exec(ctx, r)
	case target.OpPackages:
		g.packages(ctx, r)
	case target.OpService:
		g.service(ctx, r)
	case target.OpModule:
		g.module(r)
	default:
		r.Err = fmt.Errorf("unknown fact operation %q", r.Req.Op)
	}
}

// hostPath maps a path on the target to a path here, resolving symlinks
// inside the root so an absolute link in an image never escapes it.
func (g *gatherer) hostPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	if g.t.root == "" {
		return p, nil
	}
	return resolveIn(g.t.root, p)
}

func readCapped(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, target.ReadLimit+1))
	if err != nil {
		return nil, false, err
	}
	if len(data) > target.ReadLimit {
		return data[:target.ReadLimit], true, nil
	}
	return data, false, nil
}

func (g *gatherer) read(r *target.Response) {
	hp, err := g.hostPath(r.Req.Path)
	if err != nil {
		r.Err = err
		return
	}
	data, trunc, err := readCapped(hp)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return
	case err != nil:
		r.Err = fmt.Errorf("read %s: %w", r.Req.Path, unwrapPath(err))
		return
	}
	r.Exists, r.Data, r.Truncated = true, data, trunc
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// matches expands a glob pattern on the target to target paths, sorted.
func (g *gatherer) matches(pattern string) ([]string, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("pattern %q is not absolute", pattern)
	}
	if g.t.root == "" {
		m, err := filepath.Glob(pattern)
		sort.Strings(m)
		return m, err
	}
	return globIn(g.t.root, pattern)
}

// globIn expands pattern one component at a time, resolving each directory
// with resolveIn: a host glob of root+pattern would follow an image's
// absolute symlink (/etc/audit/rules.d -> /srv/rules) out to the host.
func globIn(root, pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	cands := []string{"/"}
	for _, comp := range strings.Split(strings.TrimPrefix(path.Clean(pattern), "/"), "/") {
		var next []string
		for _, base := range cands {
			if !strings.ContainsAny(comp, `*?[\`) {
				next = append(next, path.Join(base, comp))
				continue
			}
			hp, err := resolveIn(root, base)
			if err != nil {
				continue
			}
			entries, err := os.ReadDir(hp)
			if err != nil {
				continue
			}
			for _, e := range entries {
				if ok, _ := path.Match(comp, e.Name()); ok {
					next = append(next, path.Join(base, e.Name()))
				}
			}
		}
		cands = next
	}
	out := make([]string, 0, len(cands))
	for _, p := range cands {
		hp, err := resolveIn(root, p)
		if err != nil {
			out = append(out, p) // a link loop: stat reports it per path
			continue
		}
		if _, err := os.Lstat(hp); err == nil {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (g *gatherer) stat(r *target.Response) {
	paths := []string{r.Req.Path}
	if strings.ContainsAny(r.Req.Path, "*?[") {
		m, err := g.matches(r.Req.Path)
		if err != nil {
			r.Err = err
			return
		}
		paths = m
	}
	for _, p := range paths {
		r.Files = append(r.Files, g.statOne(p))
	}
}

func (g *gatherer) statOne(p string) target.FileInfo {
	fi := target.FileInfo{Path: p}
	hp, err := g.hostPath(p)
	if err != nil {
		fi.Err = err.Error()
		return fi
	}
	st, err := os.Stat(hp)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fi
	}
	if err != nil {
		fi.Err = unwrapPath(err).Error()
		return fi
	}
	fi.Exists = true
	fi.Type = fileType(st.Mode())
	fi.Mode = uint32(st.Mode().Perm())
	if st.Mode()&fs.ModeSetuid != 0 {
		fi.Mode |= 04000
	}
	if st.Mode()&fs.ModeSetgid != 0 {
		fi.Mode |= 02000
	}
	if st.Mode()&fs.ModeSticky != 0 {
		fi.Mode |= 01000
	}
	fi.Size = st.Size()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID, fi.GID = int(sys.Uid), int(sys.Gid)
	}
	g.idOnce.Do(g.loadIDs)
	fi.Owner = nameOr(g.users, fi.UID)
	fi.Group = nameOr(g.groups, fi.GID)
	return fi
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "other"
}

func nameOr(names map[int]string, id int) string {
	if n, ok := names[id]; ok {
		return n
	}
	if id == 0 {
		return "root" // id 0 is root on every Unix, named or not
	}
	return strconv.Itoa(id)
}

// loadIDs reads the target's own /etc/passwd and /etc/group, so an image's
// owners are named by the image, not by the machine reading it.
func (g *gatherer) loadIDs() {
	g.users, g.groups = map[int]string{}, map[int]string{}
	for file, m := range map[string]map[int]string{"/etc/passwd": g.users, "/etc/group": g.groups} {
		hp, err := g.hostPath(file)
		if err != nil {
			continue
		}
		data, _, err := readCapped(hp)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 3 {
				continue
			}
			if id, err := strconv.Atoi(f[2]); err == nil {
				if _, dup := m[id]; !dup {
					m[id] = f[0]
				}
			}
		}
	}
}

func (g *gatherer) glob(r *target.Response) {
	paths, err := g.matches(r.Req.Path)
	if err != nil {
		r.Err = err
		return
	}
	for _, p := range paths {
		hp, err := g.hostPath(p)
		if err != nil {
			continue
		}
		st, err := os.Stat(hp)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		fi := target.FileInfo{Path: p, Exists: true, Type: "file", Size: st.Size(), Mode: uint32(st.Mode().Perm())}
		if r.Req.Content {
			data, trunc, err := readCapped(hp)
			if err != nil {
				fi.Err = unwrapPath(err).Error()
			}
			fi.Data, fi.Truncated = data, trunc
		}
		r.Files = append(r.Files, fi)
	}
}

// command builds the process for a script: sh on the local host, sh under
// chroot for a root directory (root only, and only when the image has sh).
func (g *gatherer) command(ctx context.Context, script string) (*exec.Cmd, error) {
	if g.t.root == "" {
		return exec.CommandContext(ctx, "/bin/sh", "-c", script), nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("running a script in root directory %s needs root (chroot): %w", g.t.root, target.ErrUnsupported)
	}
	if _, err := os.Stat(filepath.Join(g.t.root, "bin/sh")); err != nil {
		return nil, fmt.Errorf("root directory %s has no /bin/sh: %w", g.t.root, target.ErrUnsupported)
	}
	return exec.CommandContext(ctx, "chroot", g.t.root, "/bin/sh", "-c", script), nil
}

func (g *gatherer) run(ctx context.Context, r *target.Response, cmd *exec.Cmd) {
	var stdout, stderr bytes.Buffer
	outBuf, errBuf := &limitedBuffer{b: &stdout}, &limitedBuffer{b: &stderr}
	cmd.Stdout, cmd.Stderr = outBuf, errBuf
	cmd.Stdin = nil
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	r.Stdout, r.Stderr = stdout.Bytes(), stderr.Bytes()
	r.OutputTruncated = outBuf.cut || errBuf.cut
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
		if ctx.Err() != nil {
			r.Err = fmt.Errorf("script timed out or was cancelled: %w", ctx.Err())
		}
	case err != nil:
		r.Err = fmt.Errorf("run script: %w", err)
	}
}

func (g *gatherer) exec(ctx context.Context, r *target.Response) {
	timeout := r.Req.Timeout
	if timeout <= 0 {
		timeout = target.DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := g.command(ctx, r.Req.Script)
	if err != nil {
		r.Err = err
		return
	}
	g.run(ctx, r, cmd)
}

// limitedBuffer keeps the first ReadLimit bytes of a stream; cut records
// that it dropped some. Each stream has its own, as exec writes them from
// separate goroutines.
type limitedBuffer struct {
	b   *bytes.Buffer
	cut bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	room := target.ReadLimit - l.b.Len()
	if room < len(p) {
		l.cut = true
		if room > 0 {
			l.b.Write(p[:room])
		}
		return len(p), nil
	}
	return l.b.Write(p)
}

func (g *gatherer) packages(ctx context.Context, r *target.Response) {
	hp, err := g.hostPath("/var/lib/dpkg/status")
	if err == nil {
		if data, _, err := readCapped(hp); err == nil {
			r.Packages = target.MergePackages(r.Packages, target.ParseDpkgStatus(data))
			r.PackageSources = append(r.PackageSources, "dpkg")
		} else if !errors.Is(err, fs.ErrNotExist) {
			r.Err = fmt.Errorf("read dpkg database: %w", unwrapPath(err))
			return
		}
	}
	args, ok := g.rpmArgs()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, target.DefaultExecTimeout)
	defer cancel()
	var sub target.Response
	g.run(ctx, &sub, exec.CommandContext(ctx, "rpm", args...))
	if sub.Err != nil || sub.ExitCode != 0 {
		r.Err = fmt.Errorf("rpm -qa failed (exit %d): %s %v", sub.ExitCode, strings.TrimSpace(string(sub.Stderr)), sub.Err)
		return
	}
	r.Packages = target.MergePackages(r.Packages, target.ParseRPMList(sub.Stdout))
	r.PackageSources = append(r.PackageSources, "rpm")
}

// rpmArgs decides whether the target has an rpm database to ask. On the
// local host that is "rpm exists and has a database"; a root directory is
// queried with the host's rpm and --root.
func (g *gatherer) rpmArgs() ([]string, bool) {
	if _, err := exec.LookPath("rpm"); err != nil {
		return nil, false
	}
	dbpath := ""
	for _, db := range []string{"/var/lib/rpm/rpmdb.sqlite", "/var/lib/rpm/Packages", "/usr/lib/sysimage/rpm/rpmdb.sqlite"} {
		if hp, err := g.hostPath(db); err == nil && dbpath == "" {
			if _, err := os.Stat(hp); err == nil {
				dbpath = path.Dir(db)
			}
		}
	}
	if dbpath == "" {
		return nil, false
	}
	args := []string{"-qa", "--qf", target.RPMQueryFormat}
	if g.t.root != "" {
		// The scanning host's rpm may keep its own database elsewhere
		// (Debian's rpm uses ~/.rpmdb): name the image's explicitly.
		args = append([]string{"--root", g.t.root, "--dbpath", dbpath}, args...)
	}
	return args, true
}

func (g *gatherer) service(ctx context.Context, r *target.Response) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, target.DefaultExecTimeout)
	defer cancel()
	ask := func(args ...string) string {
		if g.t.root != "" {
			args = append([]string{"--root=" + g.t.root}, args...)
		}
		var sub target.Response
		g.run(ctx, &sub, exec.CommandContext(ctx, "systemctl", append(args, "--", r.Req.Path)...))
		s := strings.TrimSpace(firstLine(sub.Stdout))
		if s == "" && sub.ExitCode != 0 {
			s = "not-found"
		}
		return s
	}
	r.Enabled = ask("is-enabled")
	// The run state exists only while systemd is the init system (what
	// sd_booted tests); otherwise is-active fails without saying anything
	// about the unit, and the state stays unobserved.
	if _, err := os.Stat("/run/systemd/system"); err == nil && g.t.root == "" {
		r.Active = ask("is-active")
	}
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func normMod(s string) string { return strings.ReplaceAll(s, "-", "_") }

func (g *gatherer) module(r *target.Response) {
	name := normMod(r.Req.Path)
	if g.t.root == "" {
		g.loadedOnce.Do(func() {
			g.loaded = map[string]bool{}
			data, _, err := readCapped("/proc/modules")
			if errors.Is(err, fs.ErrNotExist) {
				return // a kernel without loadable module support: none loaded
			}
			if err != nil {
				g.loadedErr = err
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) > 0 {
					g.loaded[normMod(f[0])] = true
				}
			}
		})
		if g.loadedErr != nil {
			r.Err = fmt.Errorf("read /proc/modules: %w", g.loadedErr)
			return
		}
		r.Loaded = g.loaded[name]
	}
	g.modOnce.Do(g.indexModules)
	if g.modErr != nil {
		r.Err = g.modErr
		return
	}
	r.Available = g.modules[name]
	r.Builtin = g.builtin[name]
}

// readBuiltin records the modules a kernel's modules.builtin lists
// (kernel/fs/cramfs/cramfs.ko, one per line).
func (g *gatherer) readBuiltin(hostFile string) {
	data, _, err := readCapped(hostFile)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		base := path.Base(strings.TrimSpace(line))
		if i := strings.Index(base, ".ko"); i > 0 {
			g.builtin[normMod(base[:i])] = true
		}
	}
}

// indexModules lists module files once per batch: for the running kernel on
// a live host, for every kernel in an image.
func (g *gatherer) indexModules() {
	g.modules, g.builtin = map[string]bool{}, map[string]bool{}
	var dirs []string
	if g.t.root == "" {
		rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
		if err != nil {
			g.modErr = fmt.Errorf("read kernel release: %w", err)
			return
		}
		dirs = []string{"/lib/modules/" + strings.TrimSpace(string(rel))}
	} else {
		m, _ := g.matches("/lib/modules/*")
		dirs = m
	}
	for _, d := range dirs {
		hp, err := g.hostPath(d)
		if err != nil {
			continue
		}
		_ = filepath.WalkDir(hp, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			n := de.Name()
			if n == "modules.builtin" {
				g.readBuiltin(p)
				return nil
			}
			if i := strings.Index(n, ".ko"); i > 0 {
				g.modules[normMod(n[:i])] = true
			}
			return nil
		})
	}
}
