package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/sshtarget"
)

// scanPlan is everything a scan of many hosts shares.
type scanPlan struct {
	rules   []*rule.Rule
	filter  engine.Filter
	cfg     *engine.Config
	workers int
}

// forEachHost runs fn for every job, at most workers at a time, and returns
// the outcomes in job order. Progress, if any, is told about each outcome.
// A job that has not started when ctx ends is reported as not scanned.
func forEachHost[T any](ctx context.Context, jobs []job, workers int, prog *progress,
	fn func(ctx context.Context, j job) T, failed func(T) bool, interrupted func(job, error) T) []T {
	out := make([]T, len(jobs))
	var g errgroup.Group
	g.SetLimit(workers)
	for i, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				out[i] = interrupted(j, err)
			} else {
				out[i] = fn(ctx, j)
			}
			prog.done(failed(out[i]))
			return nil
		})
	}
	_ = g.Wait() // the functions never fail: a host's problem is its outcome
	prog.finish()
	return out
}

// scanAll scans every job's host and returns one report per job, in order.
func scanAll(ctx context.Context, jobs []job, plan scanPlan, prog *progress) []*engine.Report {
	return forEachHost(ctx, jobs, plan.workers, prog,
		func(ctx context.Context, j job) *engine.Report { return scanHost(ctx, j, plan) },
		func(r *engine.Report) bool { return r.Error != "" },
		func(j job, err error) *engine.Report {
			return hostFailure(j, time.Now(), fmt.Errorf("not scanned: %w", err))
		})
}

// scanHost scans one host. Connection and detection problems (unreachable,
// bad credentials, host key mismatch, no os-release) become the report's
// Error, so that one bad host never stops the others.
func scanHost(ctx context.Context, j job, plan scanPlan) *engine.Report {
	start := time.Now()
	s, err := j.open(ctx)
	if err != nil {
		return hostFailure(j, start, err)
	}
	defer s.Close()
	key := j.configKey(plan.cfg)
	s.Vars = plan.cfg.Vars(key, j.Groups)
	s.CapOverrides = plan.cfg.CapabilityOverrides(key, j.Groups)
	rep, err := engine.Scan(ctx, s, plan.rules, plan.filter)
	if err != nil {
		return hostFailure(j, start, err)
	}
	return rep
}

func hostFailure(j job, start time.Time, err error) *engine.Report {
	return &engine.Report{
		Host: j.Name, Error: describe(err), Results: []result.Result{}, Capabilities: []string{},
		Started: start.UTC(), Duration: float64(time.Since(start).Microseconds()) / 1000,
	}
}

// exitCodeFor is 0 when every evaluated rule passed (skipped rules do not
// count against it) and 1 when a rule failed or errored or a host could not
// be scanned.
func exitCodeFor(reports []*engine.Report) int {
	for _, rep := range reports {
		if rep.Error != "" {
			return exitFail
		}
		for _, r := range rep.Results {
			if r.Status == result.Fail || r.Status == result.Error {
				return exitFail
			}
		}
	}
	return exitOK
}

// progress rewrites one line on a terminal: "scanned 3/10 hosts, 1 failed",
// where failed counts hosts that could not be scanned. A nil progress, or
// one on a non-terminal, does nothing.
type progress struct {
	mu           sync.Mutex
	w            io.Writer
	total        int
	count, fails int
}

// newProgress returns a progress line on w when w is a terminal and there
// is more than one host, else nil.
func newProgress(w io.Writer, total int) *progress {
	if total < 2 || !isTerminal(w) {
		return nil
	}
	p := &progress{w: w, total: total}
	p.draw()
	return p
}

func (p *progress) done(failed bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if failed {
		p.fails++
	}
	p.draw()
}

func (p *progress) draw() {
	fmt.Fprintf(p.w, "\r\x1b[Kscanned %d/%d hosts, %d failed", p.count, p.total, p.fails)
}

// finish clears the line so that what follows starts clean.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// describe renders a host's error with the command-line flag that addresses
// it, where sshtarget's own message can only name its Options field.
func describe(err error) string {
	hint := ""
	switch {
	case errors.Is(err, sshtarget.ErrUnknownHost):
		hint = "add the host's key to known_hosts, or trust it on first use with --accept-new-host-keys"
	case errors.Is(err, sshtarget.ErrEncryptedKey):
		hint = "load the key into ssh-agent and pass --agent"
	case errors.Is(err, sshtarget.ErrSudoPasswordRequired):
		hint = "give the sudo password with --sudo-password-env or sudo_password_env"
	}
	if hint == "" {
		return err.Error()
	}
	return err.Error() + " (" + hint + ")"
}
