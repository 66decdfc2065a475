package agentapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
)

// identity is the calling agent, proven by its client certificate.
type identity struct {
	ID       int64
	Name     string
	Serial   string // hex
	NotAfter time.Time
}

type identityKey struct{}

// callerOf returns the identity the interceptor attached to ctx.
func callerOf(ctx context.Context) (identity, bool) {
	id, ok := ctx.Value(identityKey{}).(identity)
	return id, ok
}

// authenticate checks the caller of method: Enroll passes without a
// certificate; every other call needs a verified client certificate with
// a Vigil agent identity, within its validity, of an agent that is active
// in the store.
func (s *Service) authenticate(ctx context.Context, method string) (context.Context, error) {
	if method == agentpb.AgentService_Enroll_FullMethodName {
		return ctx, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.Unauthenticated, "a client certificate issued by this server's CA is required (enrol first)")
	}
	leaf := info.State.PeerCertificates[0]
	now := s.cfg.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, status.Errorf(codes.Unauthenticated, "client certificate %s is outside its validity (%s to %s)",
			leaf.SerialNumber.Text(16), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	id, name, err := pki.AgentIdentity(leaf)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "client certificate refused: %v", err)
	}
	caller := identity{ID: id, Name: name, Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter}
	if err := s.checkActive(ctx, caller); err != nil {
		return nil, err
	}
	return context.WithValue(ctx, identityKey{}, caller), nil
}

// checkActive refuses an agent that was revoked or removed; it is called
// on every call and again on every batch of a long-lived stream.
func (s *Service) checkActive(ctx context.Context, c identity) error {
	a, err := s.cfg.Store.Agent(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return status.Errorf(codes.PermissionDenied, "agent %d (%s) is not known to this server", c.ID, c.Name)
	}
	if err != nil {
		return fmt.Errorf("agent %d: %w", c.ID, err)
	}
	if a.Status != store.AgentActive {
		return status.Errorf(codes.PermissionDenied, "agent %d (%s) was revoked at %s", c.ID, c.Name,
			a.RevokedAt.Format(time.RFC3339))
	}
	return nil
}

func (s *Service) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, s.toStatus(info.FullMethod, err)
	}
	resp, err := h(ctx, req)
	if err != nil {
		return nil, s.toStatus(info.FullMethod, err)
	}
	return resp, nil
}

// authedStream carries the authenticated context into a stream handler.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authedStream) Context() context.Context { return a.ctx }

func (s *Service) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return s.toStatus(info.FullMethod, err)
	}
	if err := h(srv, authedStream{ServerStream: ss, ctx: ctx}); err != nil {
		return s.toStatus(info.FullMethod, err)
	}
	return nil
}

// toStatus maps an error to a gRPC status in one place: statuses pass
// through, store sentinels become their codes, and anything else is an
// internal error, logged here once and reported without its detail.
func (s *Service) toStatus(method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, store.ErrTokenSpent):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	}
	s.log.Error("agent call failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal server error; see the server log")
}
