package agentapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// leaseOwner names an agent in host leases, so that the end of its scan
// completes the lease it was handed.
func leaseOwner(agentID int64) string { return fmt.Sprintf("agent/%d", agentID) }

// WatchAssignments implements agentpb.AgentServiceServer: until the agent
// disconnects, is revoked or the server stops, it claims the agent's due
// hosts whenever the dispatcher says it has some (see dispatcher), creates
// a scan for each and sends it as an Assignment. A stream with no due
// hosts does nothing, so idle agents cost the store nothing.
func (s *Service) WatchAssignments(req *agentpb.WatchRequest, stream agentpb.AgentService_WatchAssignmentsServer) error {
	ctx := stream.Context()
	caller, ok := callerOf(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no agent identity")
	}
	log := s.log.With("agent_id", caller.ID, "agent", caller.Name)
	log.Info("agent watching assignments", "cached_bundles", len(req.GetCachedBundles()))
	defer log.Info("agent stopped watching assignments")
	w := s.disp.register(caller.ID)
	defer s.disp.unregister(w)
	retry := time.NewTimer(0)
	if !retry.Stop() {
		<-retry.C
	}
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "server shutting down; reconnect")
		case <-w.revoked:
			if err := s.checkActive(ctx, caller); err != nil {
				return err
			}
			return status.Errorf(codes.PermissionDenied, "agent %d (%s) is no longer active", caller.ID, caller.Name)
		case <-w.due:
		case <-retry.C:
		}
		if err := s.assign(ctx, caller, stream); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
				return err
			}
			failures++
			wait := s.cfg.Poll << min(failures, 5)
			log.Error("assigning scans failed", "err", err, "retry_in", wait)
			retry.Reset(wait)
		} else {
			failures = 0
		}
	}
}

// assign claims the agent's due hosts and sends one assignment each. A
// host whose assignment cannot be sent is released at once so that the
// next stream picks it up.
func (s *Service) assign(ctx context.Context, caller identity, stream agentpb.AgentService_WatchAssignmentsServer) error {
	b, err := s.latestBundle(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil // nothing to scan with yet; hosts stay due
	}
	if err != nil {
		return err
	}
	owner := leaseOwner(caller.ID)
	claims, err := s.cfg.Store.ClaimDue(ctx, store.ClaimRequest{AgentID: caller.ID, Owner: owner, Now: s.cfg.Now(),
		Limit: maxClaims, Lease: s.cfg.Lease})
	if err != nil {
		return fmt.Errorf("claiming hosts of agent %d: %w", caller.ID, err)
	}
	if len(claims) == 0 {
		return nil
	}
	agent, err := s.cfg.Store.Agent(ctx, caller.ID)
	if err != nil {
		return s.releaseAll(ctx, owner, claims, err)
	}
	for i, c := range claims {
		if err := s.sendAssignment(ctx, agent, c, b, stream); err != nil {
			return s.releaseAll(ctx, owner, claims[i:], err)
		}
	}
	return nil
}

func (s *Service) sendAssignment(ctx context.Context, agent store.Agent, c store.Claim, b store.StoredBundle,
	stream agentpb.AgentService_WatchAssignmentsServer) error {
	h, err := s.cfg.Store.Host(ctx, c.HostID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted since it was claimed; it left the schedule
	}
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	if err := s.failStale(ctx, h); err != nil {
		return err
	}
	sc, err := s.cfg.Store.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: c.Reason, Status: store.ScanRunning,
		BundleVersion: b.Version, StartedAt: now})
	if err != nil {
		return fmt.Errorf("host %s: creating scan: %w", h.Name, err)
	}
	target := &agentpb.Target{Kind: agentpb.Target_KIND_SSH, Name: h.Name}
	if h.Name == agent.Hostname {
		target.Kind = agentpb.Target_KIND_LOCAL
	}
	err = stream.Send(&agentpb.Assignment{ScanId: sc.ID, HostId: h.ID, Target: target, BundleDigest: b.Digest,
		BundleVersion: b.Version, Trigger: c.Reason, IssuedAt: timestamppb.New(now)})
	if err != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if ferr := s.cfg.Store.FailScan(fctx, sc.ID, s.cfg.Now(), "assignment not delivered: agent disconnected"); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return fmt.Errorf("host %s: sending assignment: %w", h.Name, err)
	}
	s.log.Info("scan assigned", "agent_id", agent.ID, "host", h.Name, "scan_id", sc.ID, "target", target.Kind.String(),
		"reason", c.Reason, "bundle", b.Digest)
	return nil
}

// releaseAll gives back leases that were claimed but not handed out, so
// the hosts are due again at once; cause is returned with any failure.
func (s *Service) releaseAll(ctx context.Context, owner string, claims []store.Claim, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	errs := []error{cause}
	for _, c := range claims {
		if err := s.cfg.Store.ReleaseClaim(rctx, c.HostID, owner, s.cfg.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("releasing host %d: %w", c.HostID, err))
		}
	}
	return errors.Join(errs...)
}

// failStale marks failed the scans of h still running when h is claimed
// again: their lease ran out without a result (the agent lost the
// assignment or died), so they will never be finished otherwise. Results
// that still arrive for them later are kept; they just do not finish them.
func (s *Service) failStale(ctx context.Context, h store.Host) error {
	stale, err := s.cfg.Store.Scans(ctx, store.ScanFilter{HostID: h.ID, Status: store.ScanRunning, Limit: maxClaims})
	if err != nil {
		return fmt.Errorf("host %s: running scans: %w", h.Name, err)
	}
	for _, sc := range stale {
		if err := s.cfg.Store.FailScan(ctx, sc.ID, s.cfg.Now(), "superseded: no result arrived before the agent's lease expired"); err != nil {
			return fmt.Errorf("host %s: failing stale scan %d: %w", h.Name, sc.ID, err)
		}
		s.log.Warn("stale agent scan failed", "host", h.Name, "scan_id", sc.ID)
	}
	return nil
}
