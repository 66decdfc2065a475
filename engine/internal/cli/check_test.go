package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine"
)

// localCorpus writes a corpus of two file_permissions rules on a 0600 file
// the test owns: perm-ok expects 0600 (pass), perm-bad expects 0644 (fail).
// perm-ok reads its path from the variable test_file, which the returned
// --var flag sets.
func localCorpus(t *testing.T) (rulesDir, varFlag string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(file, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "filesystem/perm-ok.yml", permRule("perm-ok", "medium", "{{ test_file }}", "0600"))
	writeFile(t, rules, "filesystem/perm-bad.yml", permRule("perm-bad", "high", file, "0644"))
	return rules, "test_file=" + file
}

func TestCheckLocalEndToEnd(t *testing.T) {
	rules, v := localCorpus(t)
	args := []string{"check", "--rules", rules, "--config", t.TempDir(), "--var", v}

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, testEnv(t, nil), append(args, "--format", "json")...)
		if code != exitFail {
			t.Fatalf("exit %d, want 1 (one rule fails); stderr:\n%s", code, stderr)
		}
		var reps []engine.Report
		if err := json.Unmarshal([]byte(stdout), &reps); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		if len(reps) != 1 || reps[0].Host != "localhost" || reps[0].Error != "" || reps[0].Platform.ID == "" {
			t.Fatalf("reports = %+v", reps)
		}
		got := map[string]string{}
		for _, r := range reps[0].Results {
			got[r.RuleID] = string(r.Status)
		}
		if got["perm-ok"] != "pass" || got["perm-bad"] != "fail" || len(got) != 2 {
			t.Errorf("statuses = %v, want perm-ok pass, perm-bad fail", got)
		}
		if s := reps[0].Summary; s.Pass != 1 || s.Fail != 1 {
			t.Errorf("summary = %+v", s)
		}
	})

	t.Run("csv", func(t *testing.T) {
		code, stdout, _ := runCLI(t, testEnv(t, nil), append(args, "--format", "csv")...)
		if code != exitFail {
			t.Fatalf("exit %d, want 1", code)
		}
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0][0] != "host" || rows[0][1] != "rule_id" {
			t.Fatalf("rows = %q", rows)
		}
		for _, row := range rows[1:] {
			if row[0] != "localhost" || !strings.Contains(row[7], "nist_800_53:AC-6") || !strings.Contains(row[7], "cis_debian12:7.1.1") {
				t.Errorf("row = %q", row)
			}
			if want := map[string]string{"perm-ok": "pass", "perm-bad": "fail"}[row[1]]; row[5] != want {
				t.Errorf("%s status %q, want %q", row[1], row[5], want)
			}
		}
	})

	t.Run("jsonl", func(t *testing.T) {
		code, stdout, _ := runCLI(t, testEnv(t, nil), append(args, "--format", "jsonl")...)
		if code != exitFail {
			t.Fatalf("exit %d, want 1", code)
		}
		ls := lines(stdout)
		if len(ls) != 2 {
			t.Fatalf("%d lines, want 2:\n%s", len(ls), stdout)
		}
		for _, l := range ls {
			var r engine.Result
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.Host != "localhost" || r.RuleID == "" {
				t.Errorf("line %s: %+v %v", l, r, err)
			}
		}
	})

	t.Run("table", func(t *testing.T) {
		code, stdout, _ := runCLI(t, testEnv(t, nil), args...)
		if code != exitFail || !strings.Contains(stdout, "perm-bad") || !strings.Contains(stdout, "1 pass, 1 fail") || strings.Contains(stdout, "\x1b[") {
			t.Errorf("exit %d, table without colour expected:\n%s", code, stdout)
		}
	})

	t.Run("only passing rules exit 0", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, testEnv(t, nil), append(args, "--rule", "perm-ok", "--format", "jsonl")...)
		if code != exitOK || len(lines(stdout)) != 1 {
			t.Errorf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})

	t.Run("undefined variable is skipped, not failed", func(t *testing.T) {
		code, stdout, _ := runCLI(t, testEnv(t, nil), "check", "--rules", rules, "--config", t.TempDir(), "--rule", "perm-ok", "--format", "jsonl")
		if code != exitOK || !strings.Contains(stdout, `"status":"skipped"`) || !strings.Contains(stdout, "test_file") {
			t.Errorf("exit %d, want 0 with perm-ok skipped:\n%s", code, stdout)
		}
	})

	t.Run("variables and capabilities from the config dir", func(t *testing.T) {
		cfg := t.TempDir()
		file := strings.TrimPrefix(v, "test_file=")
		writeFile(t, cfg, "hosts/localhost.yml", "variables:\n  test_file: "+file+"\ncapabilities:\n  sshd: true\n")
		code, stdout, stderr := runCLI(t, testEnv(t, nil), "check", "--rules", rules, "--config", cfg, "--rule", "perm-ok", "--format", "json")
		if code != exitOK || !strings.Contains(stdout, `"sshd"`) {
			t.Errorf("exit %d, want 0 with sshd forced on:\n%s\n%s", code, stdout, stderr)
		}
	})

	t.Run("output file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		if err := os.WriteFile(out, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
		code, stdout, _ := runCLI(t, testEnv(t, nil), append(args, "--format", "json", "--output", out)...)
		data, err := os.ReadFile(out)
		if code != exitFail || stdout != "" || err != nil || !json.Valid(data) {
			t.Fatalf("exit %d, stdout %q, file %q, %v", code, stdout, data, err)
		}
		if st, _ := os.Stat(out); st.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want the old file's 0640", st.Mode().Perm())
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*"))
		if len(left) != 0 {
			t.Errorf("temporary files left behind: %v", left)
		}
	})

	t.Run("unwritable output fails before scanning", func(t *testing.T) {
		code, _, stderr := runCLI(t, testEnv(t, nil), append(args, "--output", "/nonexistent/dir/report.json")...)
		if code != exitUsage || !strings.Contains(stderr, "/nonexistent/dir/report.json") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestCheckRootDir scans a root filesystem made in a temporary directory.
func TestCheckRootDir(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := t.TempDir()
	writeFile(t, rules, "filesystem/passwd-mode.yml", permRule("passwd-mode", "high", "/etc/passwd", "0644"))
	writeFile(t, rules, "filesystem/shadow-mode.yml", permRule("shadow-mode", "high", "/etc/shadow-absent", "0640"))

	code, stdout, stderr := runCLI(t, testEnv(t, nil), "check", "--root", root, "--rules", rules, "--config", t.TempDir(),
		"--rule", "passwd-mode", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var reps []engine.Report
	if err := json.Unmarshal([]byte(stdout), &reps); err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Platform.ID != "debian" || reps[0].Platform.Major != 12 || !strings.HasPrefix(reps[0].Host, "/") {
		t.Fatalf("reports = %+v", reps)
	}
	if r := reps[0].Results; len(r) != 1 || r[0].Status != "pass" {
		t.Errorf("results = %+v", r)
	}

	// The whole corpus: the rule on a file the root lacks does not pass.
	if code, stdout, _ := runCLI(t, testEnv(t, nil), "check", "--root", root, "--rules", rules, "--config", t.TempDir()); code != exitFail {
		t.Errorf("exit %d, want 1:\n%s", code, stdout)
	}

	// A root without os-release is reported, not guessed.
	empty := t.TempDir()
	code, stdout, _ = runCLI(t, testEnv(t, nil), "check", "--root", empty, "--rules", rules, "--config", t.TempDir(), "--format", "jsonl")
	if code != exitFail || !strings.Contains(stdout, `"error"`) || !strings.Contains(stdout, "os-release") {
		t.Errorf("exit %d, want 1 with an os-release error:\n%s", code, stdout)
	}
}

// TestCheckUnreachableHosts scans two loopback ports nobody listens on:
// each host gets its own error, and the run ends with exit 1.
func TestCheckUnreachableHosts(t *testing.T) {
	rules, _ := localCorpus(t)
	p1, p2 := closedPort(t), closedPort(t)
	env := testEnv(t, map[string]string{"PW": "not-used"})
	code, stdout, stderr := runCLI(t, env, "check", "--rules", rules, "--config", t.TempDir(),
		"--host", "vigil@127.0.0.1:"+itoa(p1), "--host", "vigil@127.0.0.1:"+itoa(p2),
		"--password-env", "PW", "--known-hosts", filepath.Join(t.TempDir(), "known_hosts"),
		"--connect-timeout", "2s", "--format", "json")
	if code != exitFail {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	var reps []engine.Report
	if err := json.Unmarshal([]byte(stdout), &reps); err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2", len(reps))
	}
	for i, p := range []int{p1, p2} {
		r := reps[i]
		if r.Host != "127.0.0.1:"+itoa(p) || !strings.Contains(r.Error, "unreachable") || !strings.Contains(r.Error, itoa(p)) || len(r.Results) != 0 {
			t.Errorf("report %d = host %q error %q results %d", i, r.Host, r.Error, len(r.Results))
		}
	}
}

func TestRulesValidate(t *testing.T) {
	t.Run("broken corpus", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "filesystem/good-rule.yml", permRule("good-rule", "low", "/etc/passwd", "0644"))
		writeFile(t, dir, "filesystem/bad-severity.yml", strings.Replace(permRule("bad-severity", "low", "/etc/passwd", "0644"), "severity: low", "severity: urgent", 1))
		writeFile(t, dir, "filesystem/unknown-key.yml", permRule("unknown-key", "low", "/etc/passwd", "0644")+"colour: red\n")
		writeFile(t, dir, "filesystem/bad-method.yml", strings.Replace(permRule("bad-method", "low", "/etc/passwd", "0644"), "file_permissions", "file_vibes", 1))
		writeFile(t, dir, "network/wrong-folder.yml", permRule("wrong-folder", "low", "/etc/passwd", "0644"))
		code, stdout, stderr := runCLI(t, testEnv(t, nil), "rules", "validate", dir)
		if code != exitUsage {
			t.Fatalf("exit %d, want 2", code)
		}
		if stdout != "" {
			t.Errorf("stdout = %q", stdout)
		}
		want := []string{
			"bad-severity.yml:5: severity:", "unknown-key.yml:16:", "colour",
			"bad-method.yml:13:", "file_vibes", "wrong-folder.yml:1: category:",
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr does not mention %q:\n%s", w, stderr)
			}
		}
		if n := len(lines(stderr)); n < 5 {
			t.Errorf("%d lines, want one per error and a count:\n%s", n, stderr)
		}
		if !strings.Contains(stderr, "4 errors in "+dir) {
			t.Errorf("no error count:\n%s", stderr)
		}
	})
	t.Run("check refuses a broken corpus", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "filesystem/x.yml", "id: x\ntitle: [\n")
		code, _, stderr := runCLI(t, testEnv(t, nil), "check", "--rules", dir, "--config", t.TempDir())
		if code != exitUsage || !strings.Contains(stderr, "x.yml") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("good corpus", func(t *testing.T) {
		rules, _ := localCorpus(t)
		writeFile(t, rules, "defaults.yml", "variables:\n  test_file: /etc/passwd\n")
		code, stdout, stderr := runCLI(t, testEnv(t, nil), "rules", "validate", rules)
		if code != exitOK || stdout != "2 rules OK\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("bad corpus defaults", func(t *testing.T) {
		rules, _ := localCorpus(t)
		writeFile(t, rules, "defaults.yml", "variables:\n  test_file: /etc/passwd\nvariabels: {}\n")
		code, _, stderr := runCLI(t, testEnv(t, nil), "rules", "validate", rules)
		if code != exitUsage || !strings.Contains(stderr, "defaults.yml:3") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestRulesList(t *testing.T) {
	rules, _ := localCorpus(t)
	code, stdout, _ := runCLI(t, testEnv(t, nil), "rules", "list", "--rules", rules, "--severity", "high", "--format", "json")
	var list []ruleSummary
	if code != exitOK || json.Unmarshal([]byte(stdout), &list) != nil {
		t.Fatalf("exit %d:\n%s", code, stdout)
	}
	if len(list) != 1 || list[0].ID != "perm-bad" || strings.Join(list[0].Frameworks, ",") != "cis_debian12,nist_800_53" {
		t.Errorf("list = %+v", list)
	}
	code, stdout, _ = runCLI(t, testEnv(t, nil), "rules", "list", "--rules", rules)
	if ls := lines(stdout); code != exitOK || len(ls) != 3 || !strings.HasPrefix(ls[0], "ID") || !strings.Contains(stdout, "perm-ok") {
		t.Errorf("exit %d, table:\n%s", code, stdout)
	}
}

func TestDetect(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=21.3\n")
	writeFile(t, root, "usr/bin/dpkg", "")
	code, stdout, stderr := runCLI(t, testEnv(t, nil), "detect", "--root", root, "--config", t.TempDir(), "--cap", "sshd=true", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var found []hostDetection
	if err := json.Unmarshal([]byte(stdout), &found); err != nil {
		t.Fatal(err)
	}
	d := found[0]
	if d.Platform.ID != "linuxmint" || !d.Capabilities["dpkg"] || !d.Capabilities["sshd"] || d.Capabilities["rpm"] {
		t.Errorf("detection = %+v", d)
	}
	code, stdout, _ = runCLI(t, testEnv(t, nil), "detect", "--root", root, "--config", t.TempDir())
	if code != exitOK || !strings.Contains(stdout, "linuxmint 21.3") || !strings.Contains(stdout, "rpm") || !strings.Contains(stdout, "false") {
		t.Errorf("exit %d, table:\n%s", code, stdout)
	}
}

// TestCheckInterrupted: hosts not started when the context ends are
// reported as not scanned, and the run exits 1.
func TestCheckInterrupted(t *testing.T) {
	rules, v := localCorpus(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errw bytes.Buffer
	code := run(ctx, []string{"check", "--rules", rules, "--config", t.TempDir(), "--var", v, "--format", "jsonl"}, &out, &errw, testEnv(t, nil))
	if code != exitFail || !strings.Contains(out.String(), "not scanned: context canceled") || !strings.Contains(errw.String(), "interrupted") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errw.String())
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	if newProgress(&buf, 5) != nil {
		t.Error("progress on a buffer, which is not a terminal")
	}
	p := &progress{w: &buf, total: 3}
	p.done(false)
	p.done(true)
	p.finish()
	want := "\r\x1b[Kscanned 1/3 hosts, 0 failed\r\x1b[Kscanned 2/3 hosts, 1 failed\r\x1b[K"
	if buf.String() != want {
		t.Errorf("progress wrote %q, want %q", buf.String(), want)
	}
	var nilProgress *progress
	nilProgress.done(true) // must not panic
	nilProgress.finish()
}
