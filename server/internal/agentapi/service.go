// Package agentapi is the server side of the agent protocol
// (shared/agentpb): enrolment with join tokens, mutual TLS 1.3 with
// certificates from the server's CA, the per-agent assignment loop, result
// ingest with one acknowledgement per batch, heartbeats and bundle fetch.
// Every call but Enroll needs a client certificate that chains to the CA
// and names an agent that is still active in the store; revocation is
// checked on every call and every batch of a stream.
package agentapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/vigilfleet/vigil/server/internal/schedule"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultCertTTL    = 24 * time.Hour
	DefaultHeartbeat  = 30 * time.Second
	DefaultPoll       = 2 * time.Second
	DefaultLease      = 2 * time.Hour
	DefaultRetryAfter = 15 * time.Minute
	// ChunkSize is the size of the chunks FetchBundle streams.
	ChunkSize = 256 << 10
	// maxClaims bounds the hosts one agent is handed per pass.
	maxClaims = 16
	// maxRecvMsg bounds one message from an agent (a batch with evidence).
	maxRecvMsg = 32 << 20
	// connBuffer is the read and write buffer size of each agent
	// connection (gRPC's default is 32 KiB each).
	connBuffer = 8 << 10
	// stopGrace is how long Serve waits for calls in flight on shutdown
	// before closing the connections under them.
	stopGrace = 10 * time.Second
)

// Config is what a Service needs. Store, Posture and CA are required; New
// applies the defaults noted on the other fields.
type Config struct {
	Store   store.Store
	Posture schedule.Recorder // *posture.Service in production
	CA      *pki.CA
	Logger  *slog.Logger     // default slog.Default()
	Now     func() time.Time // default time.Now
	// CertTTL is the lifetime of the client certificates issued; 24 h.
	CertTTL time.Duration
	// Intervals set the next scan time after an agent's scan completes.
	Intervals schedule.Intervals // default schedule.DefaultIntervals()
	// Heartbeat is the interval agents are told to send heartbeats at; an
	// agent not seen for three of them is offline. Default 30 s.
	Heartbeat time.Duration
	// Poll is how often the dispatcher looks for agents with due hosts and
	// for revoked agents with open streams; default 2 s.
	Poll time.Duration
	// HeartbeatFlush is how often buffered heartbeats are written to the
	// store (so an agent's last_seen lags by up to this); default 5 s.
	HeartbeatFlush time.Duration
	// Lease is how long a host handed to an agent stays its own; 2 h.
	Lease time.Duration
	// RetryAfter is when a host whose agent scan failed is due again; 15 min.
	RetryAfter time.Duration
	// ServerNames are the DNS names and IPs the gRPC certificate is valid
	// for; default localhost, 127.0.0.1, ::1 and the machine's hostname.
	ServerNames []string
	// UnaryInterceptors and StreamInterceptors run before the service's
	// own (authentication) interceptor, so they see refused calls too;
	// the server's metrics use them. Optional.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
}

// Service implements agentpb.AgentServiceServer.
type Service struct {
	agentpb.UnimplementedAgentServiceServer

	cfg  Config
	log  *slog.Logger
	fin  *schedule.Finisher
	tls  *tls.Config
	stop chan struct{} // closed when Serve begins shutting down
	once sync.Once

	disp    *dispatcher      // tells assignment streams when to claim
	hb      *heartbeatBuffer // heartbeats not yet written
	flushMu sync.Mutex       // one FlushHeartbeats at a time

	bundleMu   sync.Mutex
	bundle     store.StoredBundle // latest bundle, without data
	bundleErr  error
	bundleRead time.Time
}

// New checks cfg, applies defaults, issues the server certificate and
// returns a Service ready to Serve.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Posture == nil || cfg.CA == nil {
		return nil, errors.New("agentapi: Store, Posture and CA are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = DefaultCertTTL
	}
	if cfg.Intervals == (schedule.Intervals{}) {
		cfg.Intervals = schedule.DefaultIntervals()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.HeartbeatFlush <= 0 {
		cfg.HeartbeatFlush = DefaultHeartbeatFlush
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if len(cfg.ServerNames) == 0 {
		cfg.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
		if hn, err := os.Hostname(); err == nil && hn != "" {
			cfg.ServerNames = append(cfg.ServerNames, hn)
		}
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "agentapi"), stop: make(chan struct{}),
		hb: newHeartbeatBuffer()}
	s.disp = newDispatcher(cfg.Store, s.log, cfg.Now, cfg.Poll)
	fin, err := schedule.NewFinisher(schedule.FinisherConfig{Store: cfg.Store, Posture: cfg.Posture,
		Intervals: cfg.Intervals, Logger: s.log, Now: cfg.Now, Wake: s.Wake})
	if err != nil {
		return nil, err
	}
	s.fin = fin
	// The server certificate lives as long as the CA allows (capped by
	// pki); it is reissued at every start, so it never needs renewing.
	cert, err := cfg.CA.IssueServer(cfg.ServerNames, 365*24*time.Hour, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("agentapi: %w", err)
	}
	s.tls = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Enroll is the one call made without a certificate; the
		// interceptor refuses every other call that lacks one. A
		// certificate that is given must chain to the CA, be within its
		// validity and carry the ClientAuth usage, or the handshake fails.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  cfg.CA.Pool(),
		NextProtos: []string{"h2"},
	}
	return s, nil
}

// TLSConfig is the gRPC listener's TLS configuration (TLS 1.3 only, client
// certificates verified against the CA when given).
func (s *Service) TLSConfig() *tls.Config { return s.tls.Clone() }

// Serve answers agents on ln until ctx is done, then stops: open
// assignment streams end at once, other calls get stopGrace to finish.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.tls)),
		grpc.ChainUnaryInterceptor(append(slices.Clone(s.cfg.UnaryInterceptors), s.unaryInterceptor)...),
		grpc.ChainStreamInterceptor(append(slices.Clone(s.cfg.StreamInterceptors), s.streamInterceptor)...),
		grpc.MaxRecvMsgSize(maxRecvMsg),
		// Thousands of mostly idle connections: small per-connection
		// buffers, and write buffers released between flushes.
		grpc.ReadBufferSize(connBuffer),
		grpc.WriteBufferSize(connBuffer),
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	)
	agentpb.RegisterAgentServiceServer(srv, s)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.disp.run(bg) })
	wg.Go(func() { s.flushLoop(bg) })
	defer func() {
		stopBG()
		wg.Wait()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		defer cancel()
		if err := s.FlushHeartbeats(fctx); err != nil {
			s.log.Error("writing buffered heartbeats at shutdown failed", "err", err)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("agent gRPC listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("agentapi: serve: %w", err)
	case <-ctx.Done():
	}
	s.once.Do(func() { close(s.stop) })
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
	<-errc
	s.log.Info("agent gRPC stopped")
	return nil
}

// Wake makes the dispatcher look for due hosts now (after a manual scan
// request or a re-scan) and signal the streams of the agents that have
// some: one read, whatever the number of open streams. It never blocks.
func (s *Service) Wake() { s.disp.wakeAll() }

// WakeAgent makes the open assignment streams of one agent claim now,
// after something made one of its hosts due (targets adopted). It never
// blocks.
func (s *Service) WakeAgent(agentID int64) { s.disp.wakeAgent(agentID) }

// Watching returns how many assignment streams are open, for metrics and
// tests.
func (s *Service) Watching() int { return s.disp.watching() }

// latestBundle returns the newest published bundle (without data), read
// from the store at most once per Poll so that thousands of agents do not
// each ask.
func (s *Service) latestBundle(ctx context.Context) (store.StoredBundle, error) {
	s.bundleMu.Lock()
	defer s.bundleMu.Unlock()
	now := time.Now()
	if !s.bundleRead.IsZero() && now.Sub(s.bundleRead) < s.cfg.Poll {
		return s.bundle, s.bundleErr
	}
	s.bundle, s.bundleErr = s.cfg.Store.LatestBundle(ctx)
	if s.bundleErr != nil && !errors.Is(s.bundleErr, store.ErrNotFound) {
		err := s.bundleErr
		s.bundleRead = time.Time{} // do not cache a transient failure
		return store.StoredBundle{}, err
	}
	s.bundleRead = now
	return s.bundle, s.bundleErr
}
