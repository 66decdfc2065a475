package shellbatch_test

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

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/target"
	"github.com/vigilfleet/vigil/engine/target/shellbatch"
)

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
		bt, err := shellbatch.New(reqs)
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
	bt, err := shellbatch.New(reqs)
	if err != nil {
		b.Fatal(err)
	}
	if procs, execs := countProcs(b, bt.Script()); procs >= 0 {
		b.ReportMetric(float64(procs), "procs/op")
		b.ReportMetric(float64(execs), "execs/op")
	}
}

// BenchmarkDetectLikeBatch runs the engine's real detection batch locally
// under /bin/sh and reports the page faults and processes it costs.
func BenchmarkDetectLikeBatch(b *testing.B) { benchBatch(b, engine.DetectionRequests()) }

// BenchmarkScan300Batch runs the synthetic 300-rule scan batch locally.
func BenchmarkScan300Batch(b *testing.B) { benchBatch(b, scan300Requests()) }
