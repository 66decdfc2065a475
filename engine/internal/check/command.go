package check

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// --- command ---

func commandReq(p params) target.Request {
	script := p.str("run")
	if script == "" {
		script = p.str("cmd")
	}
	r := execReq(script)
	if t := p.integer("timeout", 0); t > 0 {
		r.Timeout = time.Duration(t) * time.Second
	}
	return r
}

func needsCommand(p params, env Env) []target.Request { return []target.Request{commandReq(p)} }

func evalCommand(p params, env Env, f *target.Facts) Outcome {
	const m = "command"
	wantExit := p.integer("expected_exit", 0)
	want := fmt.Sprintf("exit %d", wantExit)
	stdoutWant, hasStdout := p[`expected_stdout`]
	if hasStdout {
		if strings.TrimSpace(stdoutWant.Str) == "" {
			want += ", empty stdout"
		} else {
			want += ", stdout contains " + quoteShort(stdoutWant.Str)
		}
	}
	r := f.Get(commandReq(p))
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	out := strings.TrimSpace(string(r.Stdout))
	e.Actual = fmt.Sprintf("exit %d, stdout %s", r.ExitCode, quoteShort(out))
	if p.has("not_assessable_exit") && r.ExitCode == p.integer("not_assessable_exit", -1) {
		return skipped(fmt.Sprintf("not assessable (exit %d): %s", r.ExitCode, firstLine(r.Stdout)+firstLine(r.Stderr)), e)
	}
	if r.ExitCode != wantExit {
		return verdict(false, fmt.Sprintf("exited %d, expected %d: %s", r.ExitCode, wantExit, strings.TrimSpace(firstLine(r.Stdout)+" "+firstLine(r.Stderr))), e)
	}
	if hasStdout {
		exp := strings.TrimSpace(stdoutWant.Str)
		if exp == "" && out != "" {
			return verdict(false, "expected no output, got "+quoteShort(firstLine(r.Stdout)), e)
		}
		if exp != "" && !strings.Contains(string(r.Stdout), stdoutWant.Str) {
			return verdict(false, "output lacks "+quoteShort(stdoutWant.Str), e)
		}
	}
	return verdict(true, "command returned "+want, e)
}

// --- set_compare ---

func setReq(p params) target.Request { return execReq(p.str("observed_command")) }

func needsSetCompare(p params, env Env) []target.Request { return []target.Request{setReq(p)} }

func evalSetCompare(p params, env Env, f *target.Facts) Outcome {
	const m = "set_compare"
	auth := p.list("authorized")
	want := "only: " + strings.Join(auth, ", ")
	r := f.Get(setReq(p))
	if len(auth) == 0 {
		// Without a list there is nothing to compare against, whatever the
		// command did.
		return skipped("the authorized list is empty: set the variable for this site", ev(m, r, want, "no authorized list configured"))
	}
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	if r.ExitCode != 0 {
		e.Actual = exitActual(r)
		return errored(fmt.Sprintf("observed command exited %d: %s", r.ExitCode, firstLine(r.Stderr)), e)
	}
	allowed := map[string]bool{}
	for _, a := range auth {
		allowed[a] = true
	}
	sep := p.str("alias_separator")
	var observed, unauthorized []string
	for _, line := range strings.Split(string(r.Stdout), "\n") {
		entry := strings.TrimSpace(line)
		if entry == "" {
			continue
		}
		observed = append(observed, entry)
		names := []string{entry}
		if sep != "" {
			names = strings.Split(entry, sep)
		}
		ok := false
		for _, n := range names {
			if allowed[strings.TrimSpace(n)] {
				ok = true
			}
		}
		if !ok {
			unauthorized = append(unauthorized, entry)
		}
	}
	sort.Strings(unauthorized)
	e.Actual = fmt.Sprintf("%d observed: %s", len(observed), strings.Join(observed, ", "))
	if len(unauthorized) > 0 {
		return verdict(false, "not authorized: "+strings.Join(unauthorized, ", "), e)
	}
	return verdict(true, fmt.Sprintf("all %d observed entries are authorized", len(observed)), e)
}
