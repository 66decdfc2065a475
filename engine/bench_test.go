package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/sshtarget"
	"github.com/vigilfleet/vigil/engine/testtarget"
)

// syntheticRules is the size of the generated corpus the benchmarks scan
// besides the repository's own: a few hundred rules over every common
// method, each asking for a different fact, as a full corpus does.
const syntheticRules = 300

// writeSyntheticCorpus writes syntheticRules rules into dir. Facts differ per
// rule (other files, keys, packages) so nothing is shared by accident.
func writeSyntheticCorpus(tb testing.TB, dir string) {
	tb.Helper()
	sysctls := []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.send_redirects", "net.ipv4.conf.default.accept_redirects",
		"net.ipv4.tcp_syncookies", "kernel.randomize_va_space", "net.ipv4.conf.all.rp_filter", "kernel.kptr_restrict", "fs.suid_dumpable"}
	files := []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/hosts", "/etc/hostname", "/etc/login.defs", "/etc/os-release"}
	keys := []string{"PASS_MAX_DAYS", "PASS_MIN_DAYS", "PASS_WARN_AGE", "UMASK", "ENCRYPT_METHOD", "UID_MIN", "GID_MIN", "LOGIN_RETRIES"}
	sshd := []string{"permitrootlogin", "maxauthtries", "x11forwarding", "permitemptypasswords", "hostbasedauthentication", "ignorerhosts", "loglevel", "clientaliveinterval"}
	for i := 0; i < syntheticRules; i++ {
		var check string
		switch i % 8 {
		case 0:
			check = fmt.Sprintf("method: file_permissions\n      path: %s\n      owner: root\n      max_mode: \"0644\"", files[i/8%len(files)])
		case 1:
			check = fmt.Sprintf("method: config_value\n      path: /etc/login.defs\n      key: %s\n      delimiter: \" \"\n      expected: \"\"", keys[i/8%len(keys)])
		case 2:
			check = fmt.Sprintf("method: sysctl_value\n      key: %s\n      expected: \"1\"", sysctls[i/8%len(sysctls)])
		case 3:
			check = fmt.Sprintf("method: package_absent\n      name: synthetic-package-%d", i)
		case 4:
			check = fmt.Sprintf("method: sshd_effective_config\n      key: %s\n      expected: \"no\"", sshd[i/8%len(sshd)])
		case 5:
			check = fmt.Sprintf("method: file_content_match\n      path: %s\n      pattern: \"^root:.*%d?\"", files[i/8%2], i)
		case 6:
			check = fmt.Sprintf("method: file_absent\n      path: /etc/synthetic-%d.conf", i)
		case 7:
			check = fmt.Sprintf("method: command\n      run: test -d /etc || echo missing-%d\n      expected_stdout: \"\"", i)
		}
		id := fmt.Sprintf("synthetic-rule-%03d", i)
		body := fmt.Sprintf("id: %s\ntitle: Synthetic rule %d\ndescription: Benchmark rule.\nrationale: Load.\nseverity: medium\ncategory: system\n"+
			"references:\n  nist_800_53: [\"CM-6\"]\nimplementations:\n  - check:\n      %s\n", id, i, check)
		p := filepath.Join(dir, "system", id+".yml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchCorpora(b *testing.B) map[string][]*rule.Rule {
	b.Helper()
	dir := b.TempDir()
	writeSyntheticCorpus(b, dir)
	synth, err := engine.LoadRules(dir)
	if err != nil {
		b.Fatal(err)
	}
	repo, err := engine.LoadRules(corpusDir)
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]*rule.Rule{"repo": repo, "synthetic300": synth}
}

func corpusVars(b *testing.B) map[string]string {
	cfg := engine.NewConfig()
	if err := cfg.LoadCorpusDefaults(corpusDir); err != nil {
		b.Fatal(err)
	}
	return cfg.Vars("", nil)
}

// BenchmarkScanLocal is a whole scan of this host in process: detection,
// planning, gathering and judging. Detection is redone every iteration.
func BenchmarkScanLocal(b *testing.B) {
	for name, rules := range benchCorpora(b) {
		b.Run(name, func(b *testing.B) {
			vars := corpusVars(b)
			b.ReportAllocs()
			var evaluated int
			for i := 0; i < b.N; i++ {
				s := engine.NewLocalSession()
				s.Vars = vars
				rep, err := engine.Scan(context.Background(), s, rules, engine.Filter{})
				if err != nil {
					b.Fatal(err)
				}
				evaluated = len(rep.Results)
			}
			b.ReportMetric(float64(evaluated)*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
		})
	}
}

// BenchmarkScanSSH is a whole scan of a loopback Debian 12 target over SSH
// (a new connection per scan, as a scheduler would make).
func BenchmarkScanSSH(b *testing.B) {
	h := testtarget.Start(b, testtarget.Options{})
	corpora := benchCorpora(b)
	for _, name := range []string{"repo", "synthetic300"} {
		rules := corpora[name]
		b.Run(name, func(b *testing.B) {
			vars := corpusVars(b)
			b.ReportAllocs()
			var evaluated, trips int
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				s, err := engine.NewSSHSession(ctx, sshtarget.Options{Host: h.IP(), Port: h.Port(), User: "root",
					KeyFiles: []string{h.RootKeyFile()}, KnownHostsFile: h.KnownHostsFile()})
				if err != nil {
					b.Fatal(err)
				}
				s.Vars = vars
				rep, err := engine.Scan(ctx, s, rules, engine.Filter{})
				if err != nil {
					b.Fatal(err)
				}
				evaluated, trips = len(rep.Results), rep.RoundTrips
				s.Close()
				cancel()
			}
			b.ReportMetric(float64(evaluated)*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
			b.ReportMetric(float64(trips), "roundtrips/scan")
		})
	}
}

// BenchmarkCLI runs the vigil binary as a user would and reports its wall
// time and peak resident memory (from the kernel's rusage of the child).
// VIGIL_BIN names the binary (make bench sets it); otherwise it is built.
func BenchmarkCLI(b *testing.B) {
	bin := os.Getenv("VIGIL_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "vigil")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/vigil").CombinedOutput(); err != nil {
			b.Fatalf("build vigil: %v\n%s", err, out)
		}
	}
	synth := b.TempDir()
	writeSyntheticCorpus(b, synth)
	h := testtarget.Start(b, testtarget.Options{})
	sshArgs := []string{"--host", "root@" + h.Addr(), "--key", h.RootKeyFile(), "--known-hosts", h.KnownHostsFile()}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"local/synthetic300", []string{"--rules", synth}},
		{"ssh/synthetic300", append([]string{"--rules", synth}, sshArgs...)},
		{"local/repo", []string{"--rules", corpusDir}},
		{"ssh/repo", append([]string{"--rules", corpusDir}, sshArgs...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var peak int64
			var rules, trips int
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(bin, append([]string{"check", "--format", "json"}, c.args...)...)
				var out bytes.Buffer
				cmd.Stdout = &out
				err := cmd.Run()
				if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
					b.Fatalf("vigil check: %v\n%s", err, out.String())
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
					peak = ru.Maxrss
				}
				var reps []engine.Report
				if err := json.Unmarshal(out.Bytes(), &reps); err != nil || len(reps) != 1 {
					b.Fatalf("parse output: %v", err)
				}
				rules, trips = len(reps[0].Results), reps[0].RoundTrips
			}
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
			b.ReportMetric(float64(rules)*float64(b.N)/b.Elapsed().Seconds(), "rules/s")
			if trips > 0 {
				b.ReportMetric(float64(trips), "roundtrips/scan")
			}
		})
	}
}
