package testtarget

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrUnavailable marks a machine that cannot run test targets: not root, or
// debootstrap missing. Require and Start skip the test on it.
var ErrUnavailable = errors.New("testtarget: real SSH targets unavailable")

// Environment variables a caller may set.
const (
	// EnvRootDir overrides where the Debian root filesystem is cached.
	EnvRootDir = "VIGIL_TESTROOT_DIR"
	// EnvMirror overrides the Debian mirror debootstrap downloads from.
	EnvMirror = "VIGIL_DEBIAN_MIRROR"
)

// DefaultRootDir is the root filesystem cache when EnvRootDir is unset.
const DefaultRootDir = "/var/cache/vigil-test/bookworm"

// rootVersion is written to the marker file; bump it whenever the packages
// or the preparation script change so stale caches are rebuilt.
const rootVersion = "vigil-testroot 1"

// markerName is the file inside the root that says the build finished.
const markerName = ".vigil-testroot"

// rootPackages are installed on top of minbase: sshd, ps, sudo (for the
// privilege-escalation tests) and kmod (lsmod/modprobe for module checks).
const rootPackages = "openssh-server,procps,sudo,kmod"

// buildTimeout bounds one debootstrap run plus waiting for another process
// that is building the same cache.
const buildTimeout = 15 * time.Minute

// prepScript runs inside the fresh root (chroot) to create the test users.
// Passwords "*" rather than useradd's "!" because sshd refuses key logins
// to locked accounts when UsePAM is off.
const prepScript = `set -eu
useradd -m -s /bin/bash ` + User + `
useradd -m -s /bin/bash ` + PasswordUser + `
usermod -p '*' root
usermod -p '*' ` + User + `
echo '` + PasswordUser + `:` + Password + `' | chpasswd
install -d -m 700 /root/.ssh
install -d -m 700 -o ` + User + ` -g ` + User + ` /home/` + User + `/.ssh
install -d -m 700 -o ` + PasswordUser + ` -g ` + PasswordUser + ` /home/` + PasswordUser + `/.ssh
printf '%s ALL=(ALL) NOPASSWD: ALL\n' ` + User + ` > /etc/sudoers.d/` + User + `
printf '%s ALL=(ALL) ALL\n' ` + PasswordUser + ` > /etc/sudoers.d/` + PasswordUser + `
chmod 0440 /etc/sudoers.d/` + User + ` /etc/sudoers.d/` + PasswordUser + `
rm -f /etc/ssh/ssh_host_*
apt-get clean
`

var (
	rootMu    sync.Mutex
	rootReady string // cached result of a successful EnsureRoot
)

// RootDir returns the configured cache directory of the root filesystem.
func RootDir() string {
	if d := os.Getenv(EnvRootDir); d != "" {
		return filepath.Clean(d)
	}
	return DefaultRootDir
}

// Available reports whether this machine can run targets at all, without
// building anything. The error wraps ErrUnavailable.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: must run as root (mounts, namespaces, chroot)", ErrUnavailable)
	}
	for _, tool := range []string{"unshare", "nsenter", "chroot", "mount"} {
		if _, err := lookTool(tool); err != nil {
			return fmt.Errorf("%w: %s not found", ErrUnavailable, tool)
		}
	}
	if _, err := os.Stat(filepath.Join(RootDir(), markerName)); err == nil {
		return nil // built already; debootstrap no longer needed
	}
	if _, err := lookTool("debootstrap"); err != nil {
		return fmt.Errorf("%w: debootstrap not found (apt-get install debootstrap)", ErrUnavailable)
	}
	return nil
}

// lookTool finds a system program also when PATH lacks the sbin dirs.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// Require skips the test when targets cannot run here, builds the root
// filesystem if needed (failing the test on a build error) and returns it.
func Require(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := EnsureRoot(ctx)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("%v; install debootstrap and run as root; .ci/run does this", err)
	}
	if err != nil {
		t.Fatalf("testtarget: %v", err)
	}
	return root
}

// EnsureRoot returns the cached Debian 12 root filesystem, building it first
// if needed. The build happens once per machine: a lock file next to the
// cache serialises concurrent test processes, the root is built in a
// temporary sibling directory and renamed into place when complete.
func EnsureRoot(ctx context.Context) (string, error) {
	rootMu.Lock()
	defer rootMu.Unlock()
	if rootReady != "" {
		return rootReady, nil
	}
	if err := Available(); err != nil {
		return "", err
	}
	dir := RootDir()
	if rootComplete(dir) {
		rootReady = dir
		return dir, nil
	}
	if err := buildLocked(ctx, dir); err != nil {
		return "", err
	}
	rootReady = dir
	return dir, nil
}

// rootComplete reports whether dir holds a finished root of this version.
func rootComplete(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	return err == nil && strings.TrimSpace(string(b)) == rootVersion
}

// buildLocked takes the build lock and builds dir unless another process
// finished it while we waited.
func buildLocked(ctx context.Context, dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create root cache dir: %w", err)
	}
	lock, err := lockFile(ctx, dir+".lock", buildTimeout)
	if err != nil {
		return fmt.Errorf("lock root cache: %w", err)
	}
	defer unlockFile(lock)
	if rootComplete(dir) {
		return nil
	}
	if err := clearStale(dir); err != nil {
		return err
	}
	return build(ctx, dir)
}

// clearStale removes leftovers of crashed or outdated builds. We hold the
// build lock, so nobody else is writing them.
func clearStale(dir string) error {
	stale, _ := filepath.Glob(dir + ".tmp-*")
	if _, err := os.Lstat(dir); err == nil {
		old := fmt.Sprintf("%s.tmp-old-%d", dir, time.Now().UnixNano())
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("move outdated root away: %w", err)
		}
		stale = append(stale, old)
	}
	for _, d := range stale {
		if err := removeUnmounted(d); err != nil {
			return err
		}
	}
	return nil
}

// removeUnmounted deletes a directory tree, refusing if anything is mounted
// inside it: a bind mount of the host's /dev must never be emptied.
func removeUnmounted(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("refusing to remove %s: mounts inside it: %v", dir, mounts)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stale root: %w", err)
	}
	return nil
}

// mountsUnder lists mount points at or below dir in this mount namespace.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// build runs debootstrap and the preparation script into a temporary
// sibling of dir, then renames it into place. Both run in a private mount
// namespace so the mounts debootstrap makes (proc, sys) vanish with it even
// when it crashes.
func build(ctx context.Context, dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	logPath := dir + ".build.log"
	if err := runBuild(ctx, tmp, logPath); err != nil {
		_ = removeUnmounted(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	return nil
}

// runBuild does the slow part of build, logging to logPath.
func runBuild(ctx context.Context, tmp, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer logf.Close()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("chmod build dir: %w", err)
	}
	debootstrap, err := lookTool("debootstrap")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	args := []string{"--mount", "--propagation", "private", "--",
		debootstrap, "--variant=minbase", "--include=" + rootPackages, "bookworm", tmp}
	if m := os.Getenv(EnvMirror); m != "" {
		args = append(args, m)
	}
	if err := runLogged(ctx, logf, logPath, "unshare", args...); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	chrootArgs := []string{"--mount", "--propagation", "private", "--",
		"chroot", tmp, "/bin/sh", "-c", prepScript}
	if err := runLogged(ctx, logf, logPath, "unshare", chrootArgs...); err != nil {
		return fmt.Errorf("prepare root: %w", err)
	}
	marker := filepath.Join(tmp, markerName)
	if err := os.WriteFile(marker, []byte(rootVersion+"\n"), 0o644); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	return nil
}

// runLogged runs a command with its output in logf; on failure the error
// carries the end of the log, which is where debootstrap says what broke.
func runLogged(ctx context.Context, logf *os.File, logPath, name string, args ...string) error {
	path, err := lookTool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	killGroupOnCancel(cmd)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w; log %s ends:\n%s", err, logPath, tailFile(logPath, 2048))
	}
	return nil
}

// killGroupOnCancel makes context cancellation kill the command's whole
// process group: debootstrap and sh scripts leave children otherwise.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
}

// tailFile returns at most n bytes from the end of a file.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return string(buf)
}

// lockFile takes an exclusive flock on path, polling so that the wait is
// bounded by ctx and maxWait. The lock dies with the process if it crashes.
func lockFile(ctx context.Context, path string, maxWait time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(maxWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// tryLockFile takes an exclusive flock on path without waiting.
func tryLockFile(path string) (*os.File, bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// unlockFile releases a lock taken by lockFile or tryLockFile.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}
