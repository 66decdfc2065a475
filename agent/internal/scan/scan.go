// Package scan runs one engine scan for the agent and turns its report
// into the wire form: results, batches of at most BatchSize with the last
// one carrying the ScanEnd (counts, status, platform, inventory).
package scan

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/agent/internal/inventory"
	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// BatchSize is the most results one ResultBatch carries.
const BatchSize = 500

// BatchBytes bounds one batch's encoded size well under gRPC's default 4 MiB
// message limit, since a result's evidence may hold up to 16 KiB of output.
const BatchBytes = 3 << 20

// Corpus is a loaded rule corpus with its default variables.
type Corpus struct {
	Rules []*engine.Rule
	Vars  *engine.Config
}

// Corpora loads each extracted bundle once. Safe for concurrent use.
type Corpora struct {
	mu sync.Mutex
	m  map[string]*Corpus
}

// Load returns the corpus in rulesDir, loading it on first use.
func (c *Corpora) Load(rulesDir string) (*Corpus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if co, ok := c.m[rulesDir]; ok {
		return co, nil
	}
	co, err := LoadCorpus(rulesDir)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*Corpus{}
	}
	c.m[rulesDir] = co
	return co, nil
}

// LoadCorpus loads the rules and corpus defaults of an extracted bundle.
func LoadCorpus(rulesDir string) (*Corpus, error) {
	rules, err := engine.LoadRules(rulesDir)
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", rulesDir, err)
	}
	vars := engine.NewConfig()
	if err := vars.LoadCorpusDefaults(rulesDir); err != nil {
		return nil, fmt.Errorf("load rules %s: %w", rulesDir, err)
	}
	return &Corpus{Rules: rules, Vars: vars}, nil
}

// Outcome is a finished (or failed) scan in wire form.
type Outcome struct {
	Results []*agentpb.Result
	End     *agentpb.ScanEnd
}

// Run scans the session's host and collects its inventory over the same
// session. A host that could not be scanned gives a failed ScanEnd, not an
// error: the failure is the scan's outcome, reported to the server.
func Run(ctx context.Context, s *engine.Session, co *Corpus, f engine.Filter) *Outcome {
	started := time.Now()
	s.Vars = co.Vars.Vars(s.Target.Name(), nil)
	rep, err := engine.Scan(ctx, s, co.Rules, f)
	if err == nil && rep.Error != "" {
		err = fmt.Errorf("%s", rep.Error)
	}
	if err != nil {
		return Failed(started, fmt.Sprintf("scan %s: %v", s.Target.Name(), err))
	}
	if ctx.Err() != nil {
		return Failed(started, fmt.Sprintf("scan %s: abandoned: %v", s.Target.Name(), ctx.Err()))
	}
	out := &Outcome{Results: make([]*agentpb.Result, 0, len(rep.Results))}
	for _, r := range rep.Results {
		out.Results = append(out.Results, ToProto(r))
	}
	sum := result.Summarize(rep.Results)
	end := &agentpb.ScanEnd{
		Status:   agentpb.ScanEnd_STATUS_COMPLETED,
		Started:  timestamppb.New(started),
		Platform: rep.Platform.String(),
		Total:    int32(sum.Total), Pass: int32(sum.Pass), Fail: int32(sum.Fail),
		Skipped: int32(sum.Skipped), Error: int32(sum.Error),
	}
	if inv, err := inventory.Collect(ctx, s.Target); err == nil {
		end.Inventory = inv
	}
	end.Finished = timestamppb.Now()
	out.End = end
	return out
}

// Failed is the outcome of a scan that could not run.
func Failed(started time.Time, msg string) *Outcome {
	return &Outcome{End: &agentpb.ScanEnd{
		Status: agentpb.ScanEnd_STATUS_FAILED, Message: msg,
		Started: timestamppb.New(started), Finished: timestamppb.Now(),
	}}
}

// Batches splits the outcome into ResultBatches (at most BatchSize results
// and about BatchBytes each) numbered from 1; the last
// carries End. A scan without results is one batch holding only End.
func (o *Outcome) Batches(scanID int64) []*agentpb.ResultBatch {
	var out []*agentpb.ResultBatch
	var cur *agentpb.ResultBatch
	size := 0
	for _, r := range o.Results {
		n := proto.Size(r)
		if cur == nil || len(cur.Results) == BatchSize || (size+n > BatchBytes && len(cur.Results) > 0) {
			cur = &agentpb.ResultBatch{ScanId: scanID, Seq: int64(len(out) + 1)}
			out = append(out, cur)
			size = 0
		}
		cur.Results = append(cur.Results, r)
		size += n
	}
	if len(out) == 0 {
		out = append(out, &agentpb.ResultBatch{ScanId: scanID, Seq: 1})
	}
	out[len(out)-1].End = o.End
	return out
}

// ToProto converts an engine result to its wire form.
func ToProto(r result.Result) *agentpb.Result {
	p := &agentpb.Result{
		RuleId: r.RuleID, Title: r.Title, Severity: string(r.Severity), Category: r.Category,
		Status: string(r.Status), Reason: r.Reason, Detail: r.Detail, Implementation: r.Implementation,
		Time: ts(r.Time), DurationMs: r.Duration,
	}
	for _, ref := range r.References {
		p.References = append(p.References, &agentpb.Ref{Framework: ref.Framework, Control: ref.Control})
	}
	for _, e := range r.Evidence {
		pe := &agentpb.Evidence{
			Method: e.Method, Probe: e.Probe, Stdout: e.Stdout, Stderr: e.Stderr, Truncated: e.Truncated,
			Expected: e.Expected, Actual: e.Actual, Time: ts(e.Time), DurationMs: e.Duration,
		}
		if e.ExitCode != nil {
			pe.HasExitCode = true
			pe.ExitCode = int32(*e.ExitCode)
		}
		p.Evidence = append(p.Evidence, pe)
	}
	return p
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Filter converts an assignment's filter.
func Filter(f *agentpb.Filter) engine.Filter {
	return engine.Filter{RuleIDs: f.GetRules(), Categories: f.GetCategories(),
		Severities: f.GetSeverities(), Frameworks: f.GetFrameworks()}
}
