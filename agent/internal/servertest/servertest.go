// Package servertest runs the server side of the agent protocol for the
// agent's own tests: a real gRPC server on loopback with TLS 1.3, a real CA
// (shared/pki) issuing real client certificates, and client certificates
// required and checked on every call but Enroll. It keeps what the agent
// sent in memory so tests can assert on it. The full vigil-server is
// exercised by the end-to-end tests; this lets each agent package be
// tested without it.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/bundle"
	"github.com/vigilfleet/vigil/shared/pki"
)

// Key identifies a result batch.
type Key struct{ Scan, Seq int64 }

// Server is a running protocol peer.
type Server struct {
	agentpb.UnimplementedAgentServiceServer

	CA    *pki.CA
	Addr  string
	Token string
	// CertTTL is the lifetime of issued client certificates.
	CertTTL time.Duration

	assign chan *agentpb.Assignment
	srv    *grpc.Server

	mu         sync.Mutex
	nextID     int64
	bundles    map[string][]byte
	batches    map[Key]*agentpb.ResultBatch
	order      []Key
	duplicates int
	heartbeats []*agentpb.HeartbeatRequest
	serials    []string // client certificate serial of each heartbeat
	fetches    int
	renewals   int
	dropAfter  int // close ReportResults after this many batches, without acking them (0: never)
	renewNow   bool
	refuse     bool // close every ReportResults stream at its first batch
	changed    chan struct{}
}

// Start serves on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return StartWithCA(t, ca, "127.0.0.1:0")
}

// StartWithCA serves with a given CA on addr (restarts reuse both).
func StartWithCA(t testing.TB, ca *pki.CA, addr string) *Server {
	t.Helper()
	s := &Server{CA: ca, Token: "vjt_test-token", CertTTL: 24 * time.Hour, nextID: 1,
		assign: make(chan *agentpb.Assignment, 100), bundles: map[string][]byte{},
		batches: map[Key]*agentpb.ResultBatch{}, changed: make(chan struct{}, 1)}
	cert, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	s.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if info.FullMethod != agentpb.AgentService_Enroll_FullMethodName {
				if _, err := identity(ctx); err != nil {
					return nil, err
				}
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if _, err := identity(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}))
	agentpb.RegisterAgentServiceServer(s.srv, s)
	go s.srv.Serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the listener and every connection at once (a server crash
// as the agent sees it).
func (s *Server) Stop() { s.srv.Stop() }

func identity(ctx context.Context) (int64, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return 0, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		return 0, status.Error(codes.Unauthenticated, "client certificate required")
	}
	id, _, err := pki.AgentIdentity(ti.State.VerifiedChains[0][0])
	if err != nil {
		return 0, status.Error(codes.PermissionDenied, err.Error())
	}
	return id, nil
}

// Enroll issues a certificate for a valid token.
func (s *Server) Enroll(_ context.Context, r *agentpb.EnrollRequest) (*agentpb.EnrollResponse, error) {
	if r.GetToken() != s.Token {
		return nil, status.Error(codes.PermissionDenied, "join token is not valid")
	}
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.mu.Unlock()
	certPEM, cert, err := s.CA.IssueClient(r.GetCsrDer(), id, r.GetHostname(), s.CertTTL, time.Now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &agentpb.EnrollResponse{AgentId: id, AgentName: r.GetHostname(), CertificatePem: certPEM,
		CaBundlePem: s.CA.BundlePEM(), NotAfter: timestamppb.New(cert.NotAfter)}, nil
}

// Renew issues a new certificate with the caller's identity.
func (s *Server) Renew(ctx context.Context, r *agentpb.RenewRequest) (*agentpb.RenewResponse, error) {
	p, _ := peer.FromContext(ctx)
	leaf := p.AuthInfo.(credentials.TLSInfo).State.VerifiedChains[0][0]
	id, name, _ := pki.AgentIdentity(leaf)
	certPEM, cert, err := s.CA.IssueClient(r.GetCsrDer(), id, name, s.CertTTL, time.Now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.mu.Lock()
	s.renewals++
	s.mu.Unlock()
	return &agentpb.RenewResponse{CertificatePem: certPEM, CaBundlePem: s.CA.BundlePEM(), NotAfter: timestamppb.New(cert.NotAfter)}, nil
}

// Heartbeat records the request and the client certificate it came with.
func (s *Server) Heartbeat(ctx context.Context, r *agentpb.HeartbeatRequest) (*agentpb.HeartbeatResponse, error) {
	serial := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			serial = ti.State.PeerCertificates[0].SerialNumber.String()
		}
	}
	s.mu.Lock()
	s.heartbeats = append(s.heartbeats, r)
	s.serials = append(s.serials, serial)
	renew := s.renewNow
	s.renewNow = false
	s.mu.Unlock()
	s.notify()
	return &agentpb.HeartbeatResponse{ServerTime: timestamppb.Now(), HeartbeatSeconds: 1, RenewNow: renew}, nil
}

// WatchAssignments sends queued assignments.
func (s *Server) WatchAssignments(_ *agentpb.WatchRequest, st grpc.ServerStreamingServer[agentpb.Assignment]) error {
	for {
		select {
		case <-st.Context().Done():
			return nil
		case a := <-s.assign:
			if err := st.Send(a); err != nil {
				s.assign <- a
				return err
			}
		}
	}
}

// FetchBundle streams a published bundle in small chunks.
func (s *Server) FetchBundle(r *agentpb.FetchBundleRequest, st grpc.ServerStreamingServer[agentpb.BundleChunk]) error {
	s.mu.Lock()
	data, ok := s.bundles[r.GetDigest()]
	s.fetches++
	s.mu.Unlock()
	if !ok {
		return status.Error(codes.NotFound, "no such bundle")
	}
	const chunk = 64 << 10
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if err := st.Send(&agentpb.BundleChunk{Data: data[off:end], Offset: int64(off), TotalSize: int64(len(data))}); err != nil {
			return err
		}
	}
	return nil
}

// ReportResults stores batches idempotently and acks each.
func (s *Server) ReportResults(st grpc.BidiStreamingServer[agentpb.ResultBatch, agentpb.BatchAck]) error {
	received := 0
	for {
		b, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		received++
		s.mu.Lock()
		drop := s.refuse || (s.dropAfter > 0 && received > s.dropAfter)
		k := Key{b.GetScanId(), b.GetSeq()}
		_, dup := s.batches[k]
		if !drop {
			if dup {
				s.duplicates++
			} else {
				s.batches[k] = b
				s.order = append(s.order, k)
			}
		}
		s.mu.Unlock()
		if drop {
			return status.Error(codes.Unavailable, "connection cut by test")
		}
		if err := st.Send(&agentpb.BatchAck{ScanId: k.Scan, Seq: k.Seq, Duplicate: dup}); err != nil {
			return err
		}
		s.notify()
	}
}

func (s *Server) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Publish makes a bundle fetchable and returns its digest.
func (s *Server) Publish(data []byte) string {
	d := bundle.Digest(data)
	s.mu.Lock()
	s.bundles[d] = data
	s.mu.Unlock()
	return d
}

// Assign queues an assignment.
func (s *Server) Assign(a *agentpb.Assignment) { s.assign <- a }

// RequestRenew asks the agent to renew in the next heartbeat answer.
func (s *Server) RequestRenew() {
	s.mu.Lock()
	s.renewNow = true
	s.mu.Unlock()
}

// RefuseResults makes every ReportResults stream fail before any ack.
func (s *Server) RefuseResults(refuse bool) {
	s.mu.Lock()
	s.refuse = refuse
	s.mu.Unlock()
}

// DropAfter makes each ReportResults stream fail after n batches.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	s.dropAfter = n
	s.mu.Unlock()
}

// Batches returns the batches received, in order of arrival.
func (s *Server) Batches() []*agentpb.ResultBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*agentpb.ResultBatch, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.batches[k])
	}
	return out
}

// Counts returns fetches, renewals and duplicate batches seen.
func (s *Server) Counts() (fetches, renewals, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches, s.renewals, s.duplicates
}

// Heartbeats returns the heartbeats received.
func (s *Server) Heartbeats() []*agentpb.HeartbeatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*agentpb.HeartbeatRequest(nil), s.heartbeats...)
}

// HeartbeatSerials returns, per heartbeat, the serial number (decimal) of
// the client certificate its connection presented.
func (s *Server) HeartbeatSerials() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.serials...)
}

// Wait polls cond, woken by every change, until it holds or timeout.
func (s *Server) Wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-s.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// ClientCert issues a client certificate for a fresh key (tests that need
// an enrolled state without calling Enroll).
func (s *Server) ClientCert(id int64, name string) (keyPEM, certPEM []byte, cert *x509.Certificate, err error) {
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, cert, err = s.CA.IssueClient(csr, id, name, s.CertTTL, time.Now())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue: %w", err)
	}
	return keyPEM, certPEM, cert, nil
}
