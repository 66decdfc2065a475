package testtarget

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockDir holds one lock file per claimed loopback address, shared by every
// test process on the machine.
const lockDir = "/tmp/vigil-testtarget"

// Loopback addresses handed out: 127.0.0.firstN .. 127.0.0.lastN.
const (
	firstN = 2
	lastN  = 250
)

// claimAddr claims a free 127.0.0.N for port: its lock file is flock'd by
// us and nothing listens on it. The lock is held until the Host is done.
func claimAddr(port int) (string, *os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", nil, fmt.Errorf("create lock dir: %w", err)
	}
	span := lastN - firstN + 1
	// Start at a per-process offset so concurrent test processes rarely
	// contend for the same locks.
	start := (os.Getpid() * 7) % span
	for i := range span {
		ip := "127.0.0." + strconv.Itoa(firstN+(start+i)%span)
		lock, ok := tryLockFile(filepath.Join(lockDir, ip+".lock"))
		if !ok {
			continue
		}
		if portFree(ip, port) {
			return ip, lock, nil
		}
		unlockFile(lock)
	}
	return "", nil, fmt.Errorf("no free loopback address in 127.0.0.%d-%d for port %d", firstN, lastN, port)
}

// portFree reports whether ip:port can be listened on: something outside
// our locks (a stray sshd, another program) may hold it.
func portFree(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// launchScript runs as PID 1 of the new namespaces. It assembles the
// target's filesystem (overlay, proc, ro /proc/sys, ro sys, minimal /dev,
// devpts, tmpfs /run) and turns into sshd. All mounts live only in the
// private mount namespace and vanish with it.
const launchScript = `set -eu
root=$1 upper=$2 work=$3 m=$4 name=$5
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$root,upperdir=$upper,workdir=$work" "$m"
mount -t proc -o nosuid,nodev,noexec proc "$m/proc"
echo "$name" > "$m/proc/sys/kernel/hostname"
mount --bind "$m/proc/sys" "$m/proc/sys"
mount -o remount,bind,ro "$m/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$m/sys"
mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$m/dev"
mknod -m 666 "$m/dev/null" c 1 3
mknod -m 666 "$m/dev/zero" c 1 5
mknod -m 666 "$m/dev/full" c 1 7
mknod -m 666 "$m/dev/random" c 1 8
mknod -m 666 "$m/dev/urandom" c 1 9
mknod -m 666 "$m/dev/tty" c 5 0
mkdir -m 755 "$m/dev/pts"
mkdir -m 1777 "$m/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$m/dev/pts"
ln -s pts/ptmx "$m/dev/ptmx"
ln -s /proc/self/fd "$m/dev/fd"
ln -s /proc/self/fd/0 "$m/dev/stdin"
ln -s /proc/self/fd/1 "$m/dev/stdout"
ln -s /proc/self/fd/2 "$m/dev/stderr"
mount -t tmpfs -o mode=755,size=16m,nosuid,nodev tmpfs "$m/run"
mkdir -m 755 "$m/run/sshd"
mkdir -m 1777 "$m/run/lock"
exec chroot "$m" /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
`

// launch starts the namespaces and sshd in the background. The log file is
// appended to, so a restarted target keeps its earlier log.
func (h *Host) launch() error {
	unshare, err := lookTool("unshare")
	if err != nil {
		return err
	}
	h.logNote("starting sshd on " + h.Addr())
	logf, err := os.OpenFile(h.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(unshare, "--mount", "--uts", "--pid", "--ipc", "--fork", "--kill-child",
		"--propagation", "private", "--",
		"/bin/sh", "-c", launchScript, "sh", h.root, h.upper, h.work, h.merged, h.hostname)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	// Pdeathsig: a crashed or killed test process takes its targets along
	// (unshare dies, --kill-child kills the namespace).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start unshare: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	child, err := findChild(cmd.Process.Pid, done)
	if err != nil {
		_ = cmd.Process.Kill()
		<-done
		return err
	}
	h.mu.Lock()
	h.proc, h.child, h.done = cmd, child, done
	h.mu.Unlock()
	return nil
}

// findChild returns the PID of unshare's forked child (PID 1 inside the
// namespace, which becomes sshd), polling briefly while unshare forks.
func findChild(pid int, done <-chan struct{}) (int, error) {
	path := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for range 400 { // 400 x 5 ms: 2 s at most
		select {
		case <-done:
			return 0, errors.New("unshare exited before forking")
		default:
		}
		if b, err := os.ReadFile(path); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("unshare (pid %d) forked no child within 2s", pid)
}

// waitReady polls until sshd accepts a root key login, sshd exits, or ctx
// ends. Each attempt is bounded by ConnectTimeout.
func (h *Host) waitReady(ctx context.Context) error {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	var last error
	for range 1000 { // with 10 ms sleeps, more than startTimeout
		select {
		case <-done:
			return errors.New("sshd exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), last)
		default:
		}
		// A test may refuse root logins (PermitRootLogin no); the target is
		// ready as soon as either account can log in.
		c, err := h.Dial(ctx, RootUser)
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			c, err = h.Dial(ctx, User)
		}
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("gave up (last attempt: %v)", last)
}
