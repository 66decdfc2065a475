package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testEnv is a process environment holding only vars, for the user
// "tester" with an empty home directory.
func testEnv(t *testing.T, vars map[string]string) environment {
	t.Helper()
	home := t.TempDir()
	return environment{
		getenv:   func(k string) string { return vars[k] },
		lookup:   func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		username: func() string { return "tester" },
		home:     func() string { return home },
	}
}

// runCLI runs the vigil command line in process.
func runCLI(t *testing.T, env environment, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(context.Background(), args, &out, &errw, env)
	return code, out.String(), errw.String()
}

// writeFile writes data to dir/rel, creating parents.
func writeFile(t *testing.T, dir, rel, data string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// permRule is a file_permissions rule on path (which may be a {{ var }})
// expecting mode.
func permRule(id, severity, path, mode string) string {
	return `id: ` + id + `
title: Restrict the permissions of a test file
description: The file the test made must have mode ` + mode + `.
rationale: A test needs one rule that passes and one that fails.
severity: ` + severity + `
category: filesystem
references:
  nist_800_53: ["AC-6"]
  cis:
    debian12: { section: "7.1.1", level: "L1", type: "Automated" }
implementations:
  - check:
      method: file_permissions
      path: "` + path + `"
      mode: "` + mode + `"
`
}

// closedPort returns a loopback port that was just listened on and closed,
// so a connection to it is refused.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func itoa(n int) string { return strconv.Itoa(n) }

// lines splits output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
