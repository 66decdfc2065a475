package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/localtarget"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

// chk parses one check, written in YAML as a rule carries it under
// `check:`, through the real rule loader, so every parameter is validated
// the way a corpus is.
func chk(t *testing.T, yml string) *rule.Check {
	t.Helper()
	var b strings.Builder
	b.WriteString("id: t\ntitle: t\ndescription: t\nrationale: t\nseverity: low\ncategory: system\nimplementations:\n  - check:\n")
	for _, line := range strings.Split(strings.TrimRight(yml, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	r, errs := rule.Parse("t.yml", []byte(b.String()))
	if len(errs) > 0 {
		t.Fatalf("check does not load: %v\n%s", errs, b.String())
	}
	return &r.Implementations[0].Check
}

// evalOn plans the check's facts, gathers them from tg in one batch and
// judges them: what the engine does for every rule.
func evalOn(t *testing.T, tg target.Target, c *rule.Check) Outcome {
	t.Helper()
	env := Env{Kind: tg.Kind()}
	reqs := target.Dedup(Needs(c, env))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := tg.Gather(ctx, reqs)
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	return Eval(c, env, target.NewFacts(resps))
}

// tcase is one check and the verdict it must reach.
type tcase struct {
	name   string
	check  string // YAML
	want   result.Status
	reason string // substring of the reason
	actual string // substring of the first evidence's actual value
	// noActual allows an empty actual value on an error where nothing was
	// observed (a bad parameter).
	noActual bool
}

func runCases(t *testing.T, tg target.Target, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := chk(t, tc.check)
			o := evalOn(t, tg, c)
			assertOutcome(t, tc, o)
			// file_permission is the singular spelling of file_permissions.
			if want := strings.TrimSuffix(c.Method, "s") + "s"; c.Method != "" && len(o.Evidence) > 0 &&
				o.Evidence[0].Method != c.Method && !(c.Method == "file_permission" && o.Evidence[0].Method == want) {
				t.Errorf("evidence names method %q, the check is %q", o.Evidence[0].Method, c.Method)
			}
		})
	}
}

func assertOutcome(t *testing.T, tc tcase, o Outcome) {
	t.Helper()
	if o.Status != tc.want {
		t.Errorf("status %s, want %s; reason: %s; evidence: %+v", o.Status, tc.want, o.Reason, o.Evidence)
	}
	if tc.reason != "" && !strings.Contains(o.Reason, tc.reason) {
		t.Errorf("reason %q does not contain %q", o.Reason, tc.reason)
	}
	if tc.actual != "" && (len(o.Evidence) == 0 || !strings.Contains(o.Evidence[0].Actual, tc.actual)) {
		t.Errorf("actual %q does not contain %q", firstActual(o), tc.actual)
	}
	assertEvidence(t, o, tc.noActual)
}

func firstActual(o Outcome) string {
	if len(o.Evidence) == 0 {
		return "<no evidence>"
	}
	return o.Evidence[0].Actual
}

// assertEvidence checks what the format promises of every outcome: a
// reason, and evidence naming the method, what was expected, what was seen
// (whenever something was observed), what was probed and when.
func assertEvidence(t *testing.T, o Outcome, noActual bool) {
	t.Helper()
	if o.Reason == "" {
		t.Errorf("%s outcome without a reason", o.Status)
	}
	if len(o.Evidence) == 0 {
		t.Fatalf("%s outcome without evidence (reason %q)", o.Status, o.Reason)
	}
	for i, e := range o.Evidence {
		if _, ok := rule.Methods[e.Method]; !ok {
			t.Errorf("evidence %d: method %q is not a check method", i, e.Method)
		}
		if e.Expected == "" {
			t.Errorf("evidence %d (%s, %s): expected is empty", i, e.Method, o.Status)
		}
		if e.Actual == "" && !noActual {
			t.Errorf("evidence %d (%s, %s: %s): actual is empty", i, e.Method, o.Status, o.Reason)
		}
		if e.Time.IsZero() {
			t.Errorf("evidence %d (%s): no time", i, e.Method)
		}
		// A skipped part of a composite probed nothing.
		if (o.Status == result.Pass || o.Status == result.Fail) && e.Probe == "" && e.Actual != "not observable" {
			t.Errorf("evidence %d (%s): %s without a probe", i, e.Method, o.Status)
		}
		if e.ExitCode != nil && e.Probe == "" {
			t.Errorf("evidence %d (%s): an exit code without the command", i, e.Method)
		}
	}
}

// fakeTarget answers some requests from canned responses and hands the
// rest to a real target. Tests use it only for facts this machine cannot
// produce: programs that are not installed here (sshd, auditctl,
// getenforce), a booted systemd, AppArmor in the kernel, a chosen
// /proc/cmdline. The SSH-target integration tests observe several of them
// for real on Debian targets.
type fakeTarget struct {
	kind    target.Kind
	answers map[string]target.Response // by request key
	next    target.Target              // nil: unanswered requests are errors
}

func fake(kind target.Kind, next target.Target, resps ...target.Response) *fakeTarget {
	f := &fakeTarget{kind: kind, answers: map[string]target.Response{}, next: next}
	for _, r := range resps {
		f.answers[r.Req.Key()] = r
	}
	return f
}

func (f *fakeTarget) Name() string      { return "fake" }
func (f *fakeTarget) Kind() target.Kind { return f.kind }
func (f *fakeTarget) Close() error      { return nil }

func (f *fakeTarget) Gather(ctx context.Context, reqs []target.Request) ([]target.Response, error) {
	out := make([]target.Response, len(reqs))
	var rest []target.Request
	var at []int
	for i, r := range reqs {
		if a, ok := f.answers[r.Key()]; ok {
			a.Started, a.Duration = time.Now(), time.Millisecond
			out[i] = a
			continue
		}
		if f.next == nil {
			out[i] = target.Response{Req: r, Err: errFakeUnanswered, Started: time.Now()}
			continue
		}
		rest = append(rest, r)
		at = append(at, i)
	}
	if len(rest) > 0 {
		resps, err := f.next.Gather(ctx, rest)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = resps[j]
		}
	}
	return out, nil
}

type fakeErr string

func (e fakeErr) Error() string { return string(e) }

const errFakeUnanswered = fakeErr("fake target: request not answered by the test")

// execResp is a canned answer to one of the fixed probe scripts.
func execResp(script, stdout string, exit int) target.Response {
	return target.Response{Req: execReq(script), Stdout: []byte(stdout), ExitCode: exit}
}

func readResp(path, data string) target.Response {
	return target.Response{Req: readReq(path), Exists: true, Data: []byte(data)}
}

// node is one entry of a fixture root directory.
type node struct {
	path     string
	data     string
	mode     os.FileMode // 0: 0644 for files, 0755 for directories
	uid, gid int         // -1: leave the creator's
	link     string      // a symlink to this target, verbatim
}

func f(p, data string) node { return node{path: p, data: data, uid: -1, gid: -1} }

func fm(p, data string, mode os.FileMode, uid, gid int) node {
	return node{path: p, data: data, mode: mode, uid: uid, gid: gid}
}

func ln(p, to string) node { return node{path: p, link: to, uid: -1, gid: -1} }

// buildRoot writes a root filesystem under a fresh temporary directory,
// with real modes, owners and symlinks.
func buildRoot(t *testing.T, nodes ...node) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range nodes {
		host := filepath.Join(root, n.path)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case n.link != "":
			if err := os.Symlink(n.link, host); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			if err := os.WriteFile(host, []byte(n.data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if n.uid >= 0 || n.gid >= 0 {
			if os.Geteuid() != 0 {
				t.Skip("the fixture sets file owners, which needs root; run the tests as root (.ci/run does)")
			}
			if err := os.Chown(host, n.uid, n.gid); err != nil {
				t.Fatal(err)
			}
		}
		if n.mode != 0 { // after chown, which clears setuid and setgid
			if err := os.Chmod(host, n.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func rootTarget(t *testing.T, nodes ...node) target.Target {
	t.Helper()
	tg, err := localtarget.NewRootDir(buildRoot(t, nodes...))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// mode builds a file mode with its setuid, setgid and sticky bits, as
// os.Chmod wants them.
func mode(perm uint32) os.FileMode {
	m := os.FileMode(perm & 0o777)
	if perm&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
