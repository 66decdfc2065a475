package output

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// injection is the classic DDE payload a hostile host could plant in a
// file the scanner reports on.
const injection = "=cmd|' /C calc'!A0"

// fixture is two scanned hosts and one that could not be reached, with
// every status, a multi-line reason and hostile evidence.
func fixture() []*engine.Report {
	t0 := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	exit0 := 0
	refs := []rule.Ref{{Framework: "cis_debian12", Control: "7.1.1"}, {Framework: "nist_800_53", Control: "AC-6"}}
	res := func(host, id string, sev rule.Severity, st result.Status, reason string, ev ...result.Evidence) result.Result {
		if ev == nil {
			ev = []result.Evidence{}
		}
		return result.Result{Host: host, RuleID: id, Title: "Title of " + id, Severity: sev, Category: "filesystem",
			Status: st, Reason: reason, Implementation: "default", References: refs, Evidence: ev, Time: t0, Duration: 1.5}
	}
	ev := func(actual string) result.Evidence {
		return result.Evidence{Method: "file_permissions", Probe: "/etc/passwd", Expected: "0644", Actual: actual, ExitCode: &exit0, Time: t0, Duration: 0.5}
	}
	web1 := []result.Result{
		res("web1", "passwd-permissions", rule.High, result.Pass, "", ev("0644 root root")),
		res("web1", "shadow-permissions", rule.Critical, result.Fail,
			"mode is 0666, expected 0640; this reason is long enough that an 80 column terminal has to cut it short", ev("0666"), ev("root shadow")),
		res("web1", "motd-banner", rule.Low, result.Fail, "banner mismatch", ev(injection)),
		res("web1", "auditd-rules", rule.Medium, result.Skipped, "no implementation applies to this host\n(gates: auditd)"),
		res("web1", "sshd-root-login", rule.High, result.Error, "sshd -T exited 255"),
	}
	return []*engine.Report{
		{Host: "web1", Platform: engine.Platform{ID: "debian", VersionID: "12", Major: 12, PrettyName: "Debian GNU/Linux 12 (bookworm)"},
			Capabilities: []string{"apt", "dpkg"}, Results: web1, Summary: result.Summarize(web1), Facts: 4, Started: t0, Duration: 12},
		{Host: "10.0.0.9:2222", Error: "dial 10.0.0.9:2222: connection refused", Started: t0},
		{Host: "db1", Platform: engine.Platform{ID: "rhel", VersionID: "9.4", Major: 9},
			Results: []result.Result{res("db1", "passwd-permissions", rule.High, result.Pass, "")}, Started: t0},
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name, format string
		opts         Options
	}{
		{"table.golden", "table", Options{}},
		{"table-width80.golden", "table", Options{Width: 80}},
		{"table-color.golden", "table", Options{Color: true, Width: 100}},
		{"report.json.golden", "json", Options{}},
		{"report.jsonl.golden", "jsonl", Options{}},
		{"report.csv.golden", "csv", Options{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tc.format, fixture(), tc.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, buf.Bytes())
		})
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestCSVNeutralisesFormulas(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "csv", fixture(), Options{}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, row := range rows {
		for _, cell := range row {
			if cell == "'"+injection {
				found = true
			}
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q starts with a formula character", cell)
			}
		}
	}
	if !found {
		t.Errorf("the injected cell %q was not written as '%s", injection, injection)
	}
}

func TestSafeRow(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"plain": "plain", "": "", "a=b": "a=b", "'quoted": "'quoted",
	} {
		if got := safeRow([]string{in})[0]; got != want {
			t.Errorf("safeRow(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONRoundTrips(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "json", fixture(), Options{}); err != nil {
		t.Fatal(err)
	}
	var back []engine.Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back[1].Error == "" || len(back[0].Results) != 5 {
		t.Errorf("round trip lost data: %+v", back)
	}
}

func TestJSONLOneObjectPerLine(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "jsonl", fixture(), Options{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5+1+1 {
		t.Fatalf("got %d lines, want 7:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["host"] == "" || m["host"] == nil {
			t.Errorf("line without host: %s", l)
		}
	}
}

func TestEmptyAndUnknown(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "json", nil, Options{}); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("json of no reports = %q, %v; want []", buf.String(), err)
	}
	if err := Write(&buf, "xml", nil, Options{}); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("unknown format error = %v", err)
	}
}

func TestTrimRespectsWidth(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "table", fixture(), Options{Width: 80}); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if n := len([]rune(l)); n > 80 && !strings.Contains(l, "not scanned") && !strings.Contains(l, "rules:") {
			t.Errorf("line of %d runes exceeds the width: %q", n, l)
		}
	}
}

func TestTableStripsControlCharacters(t *testing.T) {
	reps := fixture()
	reps[0].Results[1].Reason = "evil \x1b[2J\x1b]0;owned\x07 text"
	reps[0].Platform.PrettyName = "Debian\x1b[31m"
	var buf bytes.Buffer
	if err := Write(&buf, "table", reps, Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(buf.String(), "\x1b\x07") {
		t.Errorf("table passes control characters from the host through:\n%q", buf.String())
	}
}
