package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// maxTargets bounds the jump-box targets one heartbeat may declare;
// maxEvents bounds the events recorded from one heartbeat.
const (
	maxTargets = 1000
	maxEvents  = 20
)

// eventKinds are the agent events the server records under their own
// audit action; anything else is recorded as agent.event.
var eventKinds = map[string]bool{"bundle_refused": true, "spool_full": true, "scan_failed": true}

// recordEvents logs an agent's events and keeps them in the audit log
// (actor agent:NAME), so that a refused bundle or a full spool stays on
// record for operators and alerting, not only in a log file.
func (s *Service) recordEvents(ctx context.Context, caller identity, events []*agentpb.AgentEvent) error {
	if len(events) > maxEvents {
		s.log.Warn("agent sent too many events; recording the first ones", "agent", caller.Name, "events", len(events), "kept", maxEvents)
		events = events[:maxEvents]
	}
	for _, e := range events {
		s.log.Warn("agent event", "agent_id", caller.ID, "agent", caller.Name, "kind", e.GetKind(),
			"message", e.GetMessage(), "bundle", e.GetBundleDigest(), "at", tsTime(e.GetAt()))
		action := "agent.event"
		if eventKinds[e.GetKind()] {
			action = "agent." + e.GetKind()
		}
		detail, err := json.Marshal(map[string]any{"kind": e.GetKind(), "message": truncate(e.GetMessage(), 2000),
			"bundle_digest": truncate(e.GetBundleDigest(), 100), "at": tsTime(e.GetAt())})
		if err != nil {
			return err
		}
		_, err = s.cfg.Store.AppendAudit(ctx, store.AuditEntry{At: s.cfg.Now(), Actor: "agent:" + caller.Name, Action: action,
			Target: fmt.Sprintf("agent/%d", caller.ID), Detail: string(detail), Source: peerAddr(ctx)})
		if err != nil {
			return fmt.Errorf("record event of agent %s: %w", caller.Name, err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Heartbeat implements agentpb.AgentServiceServer: it records the agent's
// state (buffered; written within HeartbeatFlush, see FlushHeartbeats), logs its events, adopts the jump-box targets it declares as
// hosts it scans, and tells it when to call again and whether to renew.
func (s *Service) Heartbeat(ctx context.Context, req *agentpb.HeartbeatRequest) (*agentpb.HeartbeatResponse, error) {
	caller, ok := callerOf(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no agent identity")
	}
	if len(req.GetTargets()) > maxTargets {
		return nil, status.Errorf(codes.InvalidArgument, "%d targets declared; at most %d", len(req.GetTargets()), maxTargets)
	}
	now := s.cfg.Now()
	// Buffered: written with every other agent's at the next flush.
	s.hb.record(caller.ID, store.AgentHeartbeat{At: now, Version: req.GetAgentVersion(),
		OS: req.GetOs(), SpoolBatches: req.GetSpoolBatches(), SpoolBytes: req.GetSpoolBytes(), BundleDigest: req.GetBundleDigest()})
	if err := s.recordEvents(ctx, caller, req.GetEvents()); err != nil {
		return nil, err
	}
	if len(req.GetTargets()) > 0 {
		if err := s.adoptTargets(ctx, caller, req.GetTargets()); err != nil {
			return nil, err
		}
	}
	// Renew early when less than a third of the certificate's life is
	// left: the agent's own half-life renewal has evidently not happened.
	renew := caller.NotAfter.Sub(now) < s.cfg.CertTTL/3
	return &agentpb.HeartbeatResponse{ServerTime: timestamppb.New(now),
		HeartbeatSeconds: int32(s.cfg.Heartbeat.Seconds()), RenewNow: renew}, nil
}

// adoptTargets upserts each declared target as a host owned by the agent,
// writing only what changed so that steady heartbeats cost reads only.
func (s *Service) adoptTargets(ctx context.Context, caller identity, targets []*agentpb.TargetInfo) error {
	added := false
	for _, t := range targets {
		name := t.GetName()
		if !hostnameRE.MatchString(name) {
			return status.Errorf(codes.InvalidArgument, "target name %q is not a valid host name", name)
		}
		h, err := s.cfg.Store.HostByName(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			h = store.Host{Name: name}
			added = true
		case err != nil:
			return err
		case h.AgentID == caller.ID && h.Address == t.GetAddress():
			continue
		}
		if h.AgentID != 0 && h.AgentID != caller.ID {
			s.log.Warn("jump-box target moves to another agent", "host", name, "from_agent", h.AgentID, "to_agent", caller.ID)
		}
		h.AgentID, h.Address = caller.ID, t.GetAddress()
		if _, err := s.cfg.Store.UpsertHost(ctx, h); err != nil {
			return fmt.Errorf("target %s of agent %d: %w", name, caller.ID, err)
		}
		s.log.Info("jump-box target recorded", "agent_id", caller.ID, "host", name, "address", h.Address)
	}
	if added {
		s.WakeAgent(caller.ID)
	}
	return nil
}

// FetchBundle implements agentpb.AgentServiceServer: the bundle file by
// digest, in ChunkSize chunks.
func (s *Service) FetchBundle(req *agentpb.FetchBundleRequest, stream agentpb.AgentService_FetchBundleServer) error {
	ctx := stream.Context()
	if req.GetDigest() == "" {
		return status.Error(codes.InvalidArgument, "digest is required")
	}
	b, err := s.cfg.Store.Bundle(ctx, req.GetDigest())
	if errors.Is(err, store.ErrNotFound) {
		return status.Errorf(codes.NotFound, "bundle %s is not published on this server", req.GetDigest())
	}
	if err != nil {
		return err
	}
	total := int64(len(b.Data))
	for off := int64(0); off < total; off += ChunkSize {
		end := min(off+ChunkSize, total)
		if err := stream.Send(&agentpb.BundleChunk{Data: b.Data[off:end], Offset: off, TotalSize: total}); err != nil {
			return err
		}
	}
	return nil
}
