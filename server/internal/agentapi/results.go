package agentapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/schedule"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// finishTimeout bounds the store writes that end a scan once its last
// batch arrived, even if the agent hangs up meanwhile.
const finishTimeout = 30 * time.Second

// ReportResults implements agentpb.AgentServiceServer: every batch is
// authorised (the scan's host belongs to the caller), ingested
// idempotently and acknowledged; a batch that can never apply is acked
// with an error so that the agent drops it instead of retrying forever.
// The batch carrying `end` finishes the scan.
func (s *Service) ReportResults(stream agentpb.AgentService_ReportResultsServer) error {
	ctx := stream.Context()
	caller, ok := callerOf(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no agent identity")
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.checkActive(ctx, caller); err != nil {
			return err
		}
		ack, err := s.applyBatch(ctx, caller, b)
		if err != nil {
			return err
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

// applyBatch ingests one batch. A permanent refusal is an ack with Error;
// a returned error (the store failing) ends the stream and the agent
// retries the batch later.
func (s *Service) applyBatch(ctx context.Context, caller identity, b *agentpb.ResultBatch) (*agentpb.BatchAck, error) {
	ack := &agentpb.BatchAck{ScanId: b.GetScanId(), Seq: b.GetSeq()}
	refuse := func(format string, args ...any) (*agentpb.BatchAck, error) {
		ack.Error = fmt.Sprintf(format, args...)
		s.log.Warn("result batch refused", "agent_id", caller.ID, "scan_id", b.GetScanId(), "seq", b.GetSeq(), "reason", ack.Error)
		return ack, nil
	}
	if b.GetSeq() <= 0 {
		return refuse("batch sequence %d: must be 1 or more", b.GetSeq())
	}
	sc, err := s.cfg.Store.Scan(ctx, b.GetScanId())
	if errors.Is(err, store.ErrNotFound) {
		return refuse("scan %d is not known to this server", b.GetScanId())
	}
	if err != nil {
		return nil, err
	}
	h, err := s.cfg.Store.Host(ctx, sc.HostID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("scan %d: its host %d was deleted", sc.ID, sc.HostID)
	}
	if err != nil {
		return nil, err
	}
	if h.AgentID != caller.ID {
		return refuse("permission denied: scan %d is of host %s, which agent %d does not scan", sc.ID, h.Name, caller.ID)
	}
	rs, err := ResultsFromProto(h.Name, b.GetResults())
	if err != nil {
		return refuse("scan %d batch %d: %v", sc.ID, b.GetSeq(), err)
	}
	stats, err := s.cfg.Store.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: b.GetSeq(), Results: rs})
	if err != nil {
		return nil, fmt.Errorf("scan %d batch %d: %w", sc.ID, b.GetSeq(), err)
	}
	ack.Duplicate = stats.Replayed
	if end := b.GetEnd(); end != nil && sc.Status == store.ScanRunning {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		if err := s.finish(fctx, caller, h, sc, end); err != nil {
			return nil, err
		}
	}
	return ack, nil
}

// finish ends a scan as the agent reported it: completed (posture, next
// due time, inventory) or failed (retry after RetryAfter).
func (s *Service) finish(ctx context.Context, caller identity, h store.Host, sc store.Scan, end *agentpb.ScanEnd) error {
	owner := leaseOwner(caller.ID)
	if end.GetStatus() == agentpb.ScanEnd_STATUS_FAILED {
		msg := end.GetMessage()
		if msg == "" {
			msg = "the agent reported the scan failed"
		}
		s.log.Warn("agent scan failed", "agent_id", caller.ID, "host", h.Name, "scan_id", sc.ID, "message", msg)
		return s.fin.Fail(ctx, h.ID, sc.ID, owner, msg, s.cfg.Now().Add(s.cfg.RetryAfter))
	}
	if inv := end.GetInventory(); inv != nil {
		collected := s.cfg.Now()
		if end.GetFinished() != nil {
			collected = end.GetFinished().AsTime()
		}
		if _, err := s.cfg.Store.PutFacts(ctx, h.ID, FactsFromProto(inv, collected)); err != nil {
			// The findings matter more than the inventory: record the scan.
			s.log.Error("storing host inventory failed", "host", h.Name, "scan_id", sc.ID, "err", err)
		}
	}
	counts := result.Summary{Total: int(end.GetTotal()), Pass: int(end.GetPass()), Fail: int(end.GetFail()),
		Skipped: int(end.GetSkipped()), Error: int(end.GetError())}
	_, err := s.fin.Complete(ctx, schedule.Ending{Host: h, ScanID: sc.ID, Owner: owner, Reason: sc.Trigger,
		Counts: counts, Fallback: func() posture.Outcome {
			c := posture.Counts{Pass: counts.Pass, Fail: counts.Fail, Error: counts.Error, Skipped: counts.Skipped}
			score := posture.Score(c)
			return posture.Outcome{Score: score, Band: posture.BandOf(score, 0)}
		}})
	return err
}

// ResultsFromProto converts an agent's results to the engine's, for host;
// an unknown status or severity is an error naming the rule.
func ResultsFromProto(host string, in []*agentpb.Result) ([]result.Result, error) {
	out := make([]result.Result, 0, len(in))
	for _, r := range in {
		st := result.Status(r.GetStatus())
		switch st {
		case result.Pass, result.Fail, result.Skipped, result.Error:
		default:
			return nil, fmt.Errorf("rule %s: unknown status %q", r.GetRuleId(), r.GetStatus())
		}
		if r.GetRuleId() == "" {
			return nil, errors.New("a result without a rule id")
		}
		sev := rule.Severity(r.GetSeverity())
		switch sev {
		case rule.Critical, rule.High, rule.Medium, rule.Low:
		default:
			return nil, fmt.Errorf("rule %s: unknown severity %q", r.GetRuleId(), r.GetSeverity())
		}
		res := result.Result{Host: host, RuleID: r.GetRuleId(), Title: r.GetTitle(), Severity: sev,
			Category: r.GetCategory(), Status: st, Reason: r.GetReason(), Detail: r.GetDetail(),
			Implementation: r.GetImplementation(), Time: tsTime(r.GetTime()), Duration: r.GetDurationMs()}
		for _, ref := range r.GetReferences() {
			res.References = append(res.References, rule.Ref{Framework: ref.GetFramework(), Control: ref.GetControl()})
		}
		for _, e := range r.GetEvidence() {
			ev := result.Evidence{Method: e.GetMethod(), Probe: e.GetProbe(), Stdout: e.GetStdout(), Stderr: e.GetStderr(),
				Truncated: e.GetTruncated(), Expected: e.GetExpected(), Actual: e.GetActual(), Time: tsTime(e.GetTime()),
				Duration: e.GetDurationMs()}
			if e.GetHasExitCode() {
				code := int(e.GetExitCode())
				ev.ExitCode = &code
			}
			res.Evidence = append(res.Evidence, ev)
		}
		out = append(out, res)
	}
	return out, nil
}

func tsTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// FactsFromProto converts the inventory an agent sent with a scan.
func FactsFromProto(inv *agentpb.HostInventory, collected time.Time) store.HostFacts {
	f := store.HostFacts{OS: inv.GetOs(), Kernel: inv.GetKernel(), CollectedAt: collected}
	for _, p := range inv.GetPackages() {
		f.Packages = append(f.Packages, store.Package{Name: p.GetName(), Version: p.GetVersion(), Arch: p.GetArch()})
	}
	for _, sv := range inv.GetServices() {
		f.Services = append(f.Services, store.Service{Name: sv.GetName(), Enabled: sv.GetEnabled(), Active: sv.GetActive()})
	}
	account := func(a *agentpb.Account) store.Account {
		return store.Account{Name: a.GetName(), ID: a.GetId(), Home: a.GetHome(), Shell: a.GetShell(), Members: a.GetMembers()}
	}
	for _, u := range inv.GetUsers() {
		f.Users = append(f.Users, account(u))
	}
	for _, g := range inv.GetGroups() {
		f.Groups = append(f.Groups, account(g))
	}
	for _, p := range inv.GetPorts() {
		f.Ports = append(f.Ports, store.Port{Protocol: p.GetProtocol(), Address: p.GetAddress(), Port: int(p.GetPort()), Process: p.GetProcess()})
	}
	for _, i := range inv.GetInterfaces() {
		f.Interfaces = append(f.Interfaces, store.Interface{Name: i.GetName(), MAC: i.GetMac(), Addresses: i.GetAddresses()})
	}
	return f
}
