// Package daemon is `vigil-agent run`: one long-lived mutual-TLS
// connection to the server, heartbeats, assignments pulled over
// WatchAssignments and scanned (locally or over SSH as a jump box) a
// bounded number at once, results spooled to disk and streamed with
// per-batch acknowledgements, and certificate renewal at half-life.
// With health_addr set it also serves /healthz, /readyz and /metrics.
//
// Shutdown (the context passed to Run is cancelled, as on SIGTERM) is
// graceful: the assignment stream is closed at once so no new work is
// taken, running scans may finish for ShutdownGrace (then they are
// abandoned and a failed end is spooled), the connection stays up
// meanwhile so their results are sent, the spool is flushed once more
// (bounded by FlushTimeout) and only then are the streams closed.
// Whatever was not acknowledged stays in the spool for the next start.
package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/agent/internal/bundlecache"
	"github.com/vigilfleet/vigil/agent/internal/config"
	"github.com/vigilfleet/vigil/agent/internal/health"
	"github.com/vigilfleet/vigil/agent/internal/metrics"
	"github.com/vigilfleet/vigil/agent/internal/scan"
	"github.com/vigilfleet/vigil/agent/internal/spool"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/bundle"
	"github.com/vigilfleet/vigil/shared/pki"
	"github.com/vigilfleet/vigil/shared/version"
)

// Event kinds reported to the server in heartbeats.
const (
	EventBundleRefused = "bundle_refused"
	EventSpoolFull     = "spool_full"
	EventScanFailed    = "scan_failed"
)

const (
	maxEvents       = 100
	maxBundleBytes  = 512 << 20
	sendWindow      = 64 // batches per ReportResults stream
	backoffCap      = 60 * time.Second
	flushInterval   = 10 * time.Second
	renewRetryFloor = 30 * time.Second
)

// errDrained ends a connection once shutdown has flushed the spool.
var errDrained = errors.New("shut down")

// Options configure a daemon.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// ShutdownGrace is how long a running scan may finish after the
	// daemon is told to stop before it is abandoned. Default 30 s.
	ShutdownGrace time.Duration
	// FlushTimeout bounds the last flush of the spool at shutdown (best
	// effort: what is not acknowledged in time stays spooled). Default 10 s.
	FlushTimeout time.Duration
	// BackoffBase is the first reconnect delay's upper bound. Default 1 s.
	BackoffBase time.Duration
	// Hostname is the name sent in heartbeats; default the one enrolled
	// with, else os.Hostname.
	Hostname string
}

// Daemon is a running agent.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	dir     *state.Dir
	id      state.Identity
	spool   *spool.Spool
	cache   *bundlecache.Cache
	corpora scan.Corpora
	grace   time.Duration
	flushTO time.Duration
	base    time.Duration
	metrics *metrics.Metrics
	host    string
	osName  string
	caps    []string

	certMu sync.RWMutex
	cert   *tls.Certificate
	leaf   *x509.Certificate

	mu      sync.Mutex
	client  agentpb.AgentServiceClient
	events  []*agentpb.AgentEvent
	status  state.Status
	renewCh chan struct{}
	wake    chan struct{}
	// lastContact is the last successful heartbeat and interval the
	// heartbeat period then in force: readiness needs contact within two.
	lastContact time.Time
	interval    time.Duration
	// stopping is set at shutdown, under mu, before waiting for scans,
	// so no scan is added to the wait group after the wait began.
	stopping bool
}

// New loads the agent's state and prepares a daemon.
func New(o Options) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = time.Second
	}
	if o.FlushTimeout == 0 {
		o.FlushTimeout = 10 * time.Second
	}
	dir, err := state.Open(o.Config.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := dir.Identity()
	if err != nil {
		return nil, err
	}
	keys, err := bundlecache.LoadTrustedKeys(o.Config.TrustedBundleKeys)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no trusted_bundle_keys configured: the agent cannot verify any bundle")
	}
	sp, err := spool.Open(dir.File(state.SpoolDir), o.Config.SpoolMaxBytes)
	if err != nil {
		return nil, err
	}
	cache, err := bundlecache.Open(dir.File(state.BundlesDir), keys, nil)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: o.Config, log: o.Logger, dir: dir, id: id, spool: sp, cache: cache,
		grace: o.ShutdownGrace, flushTO: o.FlushTimeout, base: o.BackoffBase, host: o.Hostname,
		renewCh: make(chan struct{}, 1), wake: make(chan struct{}, 1), interval: o.Config.HeartbeatInterval}
	d.metrics = metrics.New(sp.Stats)
	if d.host == "" {
		d.host = id.Hostname
	}
	if d.host == "" {
		if d.host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	if err := d.loadCert(); err != nil {
		return nil, err
	}
	if o.Config.Server != "" {
		d.id.Server = o.Config.Server
	}
	return d, nil
}

func (d *Daemon) loadCert() error {
	c, err := d.dir.TLSCertificate()
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	d.certMu.Lock()
	d.cert, d.leaf = &c, leaf
	d.certMu.Unlock()
	d.metrics.CertExpiry.Set(float64(leaf.NotAfter.Unix()))
	return nil
}

func (d *Daemon) currentLeaf() *x509.Certificate {
	d.certMu.RLock()
	defer d.certMu.RUnlock()
	return d.leaf
}

// Run works until ctx is cancelled (SIGTERM), then shuts down gracefully
// (see the package comment) and returns. It returns an error only when
// the health endpoint cannot be opened.
func (d *Daemon) Run(ctx context.Context) error {
	stopHealth, err := d.serveHealth(ctx)
	if err != nil {
		return err
	}
	defer stopHealth()
	d.detectLocal()
	scanCtx, cancelScans := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelScans()
	var scans sync.WaitGroup
	sem := make(chan struct{}, d.cfg.MaxParallelTargets)
	scansDone := make(chan struct{})
	go func() {
		defer close(scansDone)
		<-ctx.Done()
		d.drainScans(&scans, cancelScans)
	}()

	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			d.metrics.Reconnects.Inc()
		}
		connected, err := d.connect(ctx, scanCtx, scansDone, &scans, sem)
		d.metrics.Connected.Set(0)
		if errors.Is(err, errDrained) || ctx.Err() != nil {
			// Lost during shutdown: what was not acknowledged stays in
			// the spool for the next start.
			break
		}
		if connected {
			attempt = 0
		}
		d.setStatus(func(s *state.Status) { s.Connected = false; s.LastError = errString(err) })
		wait := d.backoff(attempt)
		d.log.Warn("connection to server lost; reconnecting", "server", d.id.Server, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	<-scansDone
	n, b := d.spool.Stats()
	d.log.Info("stopped", "spooled_batches", n, "spooled_bytes", b)
	d.setStatus(func(s *state.Status) { s.Connected = false })
	return nil
}

// drainScans stops new scans and waits for running ones, abandoning them
// (their failed ends are spooled) after the grace period.
func (d *Daemon) drainScans(scans *sync.WaitGroup, cancelScans context.CancelFunc) {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { scans.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.grace):
		d.log.Warn("abandoning running scans at shutdown", "grace", d.grace)
		cancelScans()
		<-done
	}
}

// serveHealth starts the health endpoints when health_addr is set; the
// returned stop shuts them down.
func (d *Daemon) serveHealth(ctx context.Context) (stop func(), err error) {
	if d.cfg.HealthAddr == "" {
		return func() {}, nil
	}
	ln, err := health.Listen(d.cfg.HealthAddr)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := health.Serve(hctx, ln, d.Handler()); err != nil {
			d.log.Error("health endpoint stopped", "addr", d.cfg.HealthAddr, "err", err)
		}
	}()
	d.log.Info("health endpoint listening", "addr", ln.Addr().String())
	return func() { cancel(); <-done }, nil
}

// Handler serves /healthz, /readyz and /metrics for this daemon.
func (d *Daemon) Handler() http.Handler { return health.Handler(d.Checks, d.metrics.Registry) }

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// Checks evaluates readiness at now: enrolled, certificate valid, contact
// with the server within two heartbeat intervals, spool not full.
func (d *Daemon) Checks(now time.Time) []health.Check {
	enrolled := health.Check{Name: "enrolled", OK: d.dir.Enrolled()}
	if !enrolled.OK {
		enrolled.Detail = "no identity in " + d.dir.Path
	}
	leaf := d.currentLeaf()
	cert := health.Check{Name: "certificate", OK: now.After(leaf.NotBefore) && now.Before(leaf.NotAfter),
		Detail: "expires " + leaf.NotAfter.UTC().Format(time.RFC3339)}
	if now.After(leaf.NotAfter) {
		cert.Detail = "expired " + leaf.NotAfter.UTC().Format(time.RFC3339)
	} else if now.Before(leaf.NotBefore) {
		cert.Detail = "not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339)
	}
	d.mu.Lock()
	last, interval := d.lastContact, d.interval
	d.mu.Unlock()
	conn := health.Check{Name: "connected", OK: !last.IsZero() && now.Sub(last) <= 2*interval}
	switch {
	case last.IsZero():
		conn.Detail = "no contact with " + d.id.Server + " yet"
	default:
		conn.Detail = fmt.Sprintf("last contact with %s %s ago (heartbeat every %s)", d.id.Server,
			now.Sub(last).Round(time.Millisecond), interval)
	}
	n, b := d.spool.Stats()
	sp := health.Check{Name: "spool", OK: !d.spool.Full(),
		Detail: fmt.Sprintf("%d batches, %d of %d bytes", n, b, d.cfg.SpoolMaxBytes)}
	if !sp.OK {
		sp.Detail = "full: results are being refused; " + sp.Detail
	}
	return []health.Check{enrolled, cert, conn, sp}
}

// backoff is exponential with full jitter, capped at 60 s.
func (d *Daemon) backoff(attempt int) time.Duration {
	ceil := d.base << min(attempt, 16)
	if ceil <= 0 || ceil > backoffCap {
		ceil = backoffCap
	}
	return time.Duration(rand.Int64N(int64(ceil)) + 1)
}

// detectLocal learns the local OS and capabilities once, for heartbeats.
func (d *Daemon) detectLocal() {
	s := engine.NewLocalSession()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if info, err := s.Detect(ctx); err == nil {
		d.osName = info.Platform.String()
		d.caps = info.Capabilities.Names()
	}
}

// TLSConfig is the mutual TLS 1.3 configuration for an enrolled agent.
func (d *Daemon) TLSConfig() (*tls.Config, error) {
	pool, err := d.dir.CAPool()
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(d.id.Server)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", d.id.Server, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			d.certMu.RLock()
			defer d.certMu.RUnlock()
			return d.cert, nil
		},
	}, nil
}

// connect runs one connection; connected says whether the server answered.
// ctx is the daemon's life: when it ends, the assignment stream closes,
// but the connection lives on (heartbeats, results) until scansDone, then
// flushes the spool and returns errDrained.
func (d *Daemon) connect(ctx, scanCtx context.Context, scansDone <-chan struct{}, scans *sync.WaitGroup, sem chan struct{}) (connected bool, err error) {
	tlsCfg, err := d.TLSConfig()
	if err != nil {
		return false, err
	}
	conn, err := grpc.NewClient(d.id.Server,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", d.id.Server, err)
	}
	defer conn.Close()
	client := agentpb.NewAgentServiceClient(conn)
	life := context.WithoutCancel(ctx)
	next, err := d.heartbeat(ctx, client)
	if err != nil {
		d.metrics.HeartbeatFailures.Inc()
		return false, err
	}
	d.mu.Lock()
	d.client = client
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.client = nil
		d.mu.Unlock()
	}()
	d.setStatus(func(s *state.Status) { s.Connected = true; s.LastError = "" })
	d.metrics.Connected.Set(1)
	d.log.Info("connected to server", "server", d.id.Server, "agent", d.id.AgentName)

	g, gctx := errgroup.WithContext(life)
	replayed := make(chan struct{})
	g.Go(func() error { return d.heartbeatLoop(gctx, client, next) })
	g.Go(func() error { return d.renewLoop(gctx, client) })
	g.Go(func() error { return d.sendLoop(gctx, client, replayed, scansDone) })
	g.Go(func() error {
		select {
		case <-replayed:
		case <-gctx.Done():
			return gctx.Err()
		case <-ctx.Done():
			return nil
		}
		// Assignments stop at shutdown; the rest of the connection does not.
		wctx, cancel := context.WithCancel(gctx)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		err := d.watch(wctx, scanCtx, client, scans, sem)
		if ctx.Err() != nil && gctx.Err() == nil {
			d.log.Info("shutting down: no longer taking assignments")
			return nil
		}
		return err
	})
	return true, g.Wait()
}

func (d *Daemon) heartbeatLoop(ctx context.Context, client agentpb.AgentServiceClient, next time.Duration) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(next):
		}
		n, err := d.heartbeat(ctx, client)
		if err != nil {
			if ctx.Err() == nil {
				d.metrics.HeartbeatFailures.Inc()
			}
			return err
		}
		next = n
	}
}

// heartbeat sends one heartbeat and returns when the next is due.
func (d *Daemon) heartbeat(ctx context.Context, client agentpb.AgentServiceClient) (time.Duration, error) {
	batches, bytes := d.spool.Stats()
	acc, _ := d.cache.Accepted()
	req := &agentpb.HeartbeatRequest{
		AgentVersion: version.String(), Os: d.osName, Capabilities: d.caps,
		SpoolBatches: batches, SpoolBytes: bytes, BundleDigest: acc.Digest, Hostname: d.host,
		Events: d.takeEvents(),
	}
	for _, t := range d.cfg.Targets {
		req.Targets = append(req.Targets, &agentpb.TargetInfo{Name: t.Name, Address: t.Address})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := client.Heartbeat(cctx, req)
	if err != nil {
		d.putBackEvents(req.Events)
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	next := d.cfg.HeartbeatInterval
	if s := resp.GetHeartbeatSeconds(); s > 0 {
		next = time.Duration(s) * time.Second
	}
	now := time.Now().UTC()
	d.mu.Lock()
	d.lastContact, d.interval = now, next
	d.mu.Unlock()
	d.setStatus(func(s *state.Status) {
		s.BundleDigest, s.BundleVersion = acc.Digest, acc.Version
		s.LastContact = now
	})
	if resp.GetRenewNow() {
		select {
		case d.renewCh <- struct{}{}:
		default:
		}
	}
	return next, nil
}

// Event records an event for the next heartbeat (bounded; oldest dropped).
func (d *Daemon) Event(kind, msg, digest string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, &agentpb.AgentEvent{At: timestamppb.Now(), Kind: kind, Message: msg, BundleDigest: digest})
	if len(d.events) > maxEvents {
		d.events = d.events[len(d.events)-maxEvents:]
	}
}

func (d *Daemon) takeEvents() []*agentpb.AgentEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	ev := d.events
	d.events = nil
	return ev
}

func (d *Daemon) putBackEvents(ev []*agentpb.AgentEvent) {
	if len(ev) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(ev, d.events...)
	if len(d.events) > maxEvents {
		d.events = d.events[len(d.events)-maxEvents:]
	}
}

// watch receives assignments and starts each as a scan once a slot is
// free, so a busy agent applies back-pressure instead of queueing.
func (d *Daemon) watch(ctx, scanCtx context.Context, client agentpb.AgentServiceClient, scans *sync.WaitGroup, sem chan struct{}) error {
	stream, err := client.WatchAssignments(ctx, &agentpb.WatchRequest{CachedBundles: d.cache.Digests()})
	if err != nil {
		return fmt.Errorf("watch assignments: %w", err)
	}
	for {
		a, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("watch assignments: %w", err)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		d.mu.Lock()
		stopping := d.stopping
		if !stopping {
			scans.Add(1)
		}
		d.mu.Unlock()
		if stopping {
			// The server hands the assignment out again after its lease.
			<-sem
			return ctx.Err()
		}
		d.log.Info("assignment", "scan_id", a.GetScanId(), "host", targetName(a.GetTarget(), d.host),
			"target", a.GetTarget().GetName(), "kind", a.GetTarget().GetKind().String())
		go func() {
			defer scans.Done()
			defer func() { <-sem }()
			d.Handle(scanCtx, a)
		}()
	}
}

// Handle runs one assignment and spools its outcome. Every log line of
// the scan carries scan_id and host.
func (d *Daemon) Handle(ctx context.Context, a *agentpb.Assignment) {
	name := targetName(a.GetTarget(), d.host)
	log := d.log.With("scan_id", a.GetScanId(), "host", name)
	started := time.Now()
	d.setStatus(func(s *state.Status) {
		s.LastAssignment = &state.LastAssignment{ScanID: a.GetScanId(), Target: name, Received: started.UTC(), Status: "running"}
	})
	out := d.execute(ctx, log, a)
	if err := d.spool.Put(out.Batches(a.GetScanId())...); err != nil {
		log.Error("SPOOL FULL: scan results cannot be kept; free space or raise spool_max_bytes", "err", err)
		d.Event(EventSpoolFull, err.Error(), "")
		failed := scan.Failed(time.Now(), fmt.Sprintf("results not kept: %v", err))
		if err2 := d.spool.Put(failed.Batches(a.GetScanId())...); err2 != nil {
			log.Error("spool: cannot record the failed scan either", "err", err2)
		}
		out = failed
	}
	d.kick()
	d.metrics.ScanDuration.Observe(time.Since(started).Seconds())
	for _, r := range out.Results {
		d.metrics.RulesEvaluated.WithLabelValues(r.GetStatus()).Inc()
	}
	st := metrics.ScanCompleted
	if out.End.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED {
		st = metrics.ScanFailed
		log.Warn("scan failed", "err", out.End.GetMessage())
	} else {
		e := out.End
		log.Info("scan finished", "total", e.GetTotal(), "pass", e.GetPass(), "fail", e.GetFail(),
			"skipped", e.GetSkipped(), "error", e.GetError(), "duration", time.Since(started).Round(time.Millisecond))
	}
	d.metrics.Scans.WithLabelValues(st).Inc()
	d.setStatus(func(s *state.Status) {
		if s.LastAssignment != nil && s.LastAssignment.ScanID == a.GetScanId() {
			s.LastAssignment.Status, s.LastAssignment.Message = st, out.End.GetMessage()
		}
	})
}

func targetName(t *agentpb.Target, host string) string {
	if t.GetKind() == agentpb.Target_KIND_SSH {
		return t.GetName()
	}
	return host
}

// execute ensures the bundle, opens the target and scans it.
func (d *Daemon) execute(ctx context.Context, log *slog.Logger, a *agentpb.Assignment) *scan.Outcome {
	started := time.Now()
	entry, err := d.cache.Ensure(ctx, a.GetBundleDigest(), d.fetch)
	if err != nil {
		kind := EventScanFailed
		if isRefusal(err) {
			kind = EventBundleRefused
			d.metrics.BundleRefusals.Inc()
		}
		log.Error("bundle not usable", "digest", a.GetBundleDigest(), "err", err)
		d.Event(kind, err.Error(), a.GetBundleDigest())
		return scan.Failed(started, err.Error())
	}
	if acc, err := d.cache.Accepted(); err == nil {
		d.setStatus(func(s *state.Status) { s.BundleDigest, s.BundleVersion = acc.Digest, acc.Version })
	}
	co, err := d.corpora.Load(entry.RulesDir)
	if err != nil {
		log.Error("rules not loadable", "digest", entry.Digest, "err", err)
		d.Event(EventScanFailed, err.Error(), entry.Digest)
		return scan.Failed(started, err.Error())
	}
	sess, err := d.open(ctx, a.GetTarget())
	if err != nil {
		log.Error("target not reachable", "err", err)
		d.Event(EventScanFailed, err.Error(), entry.Digest)
		return scan.Failed(started, err.Error())
	}
	defer sess.Close()
	out := scan.Run(ctx, sess, co, scan.Filter(a.GetFilter()))
	if out.End.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED {
		d.Event(EventScanFailed, out.End.GetMessage(), entry.Digest)
	}
	return out
}

func isRefusal(err error) bool {
	for _, e := range []error{bundle.ErrMalformed, bundle.ErrUnsigned, bundle.ErrUntrusted, bundle.ErrTampered,
		bundle.ErrExpired, bundle.ErrDowngrade, bundle.ErrNotYetValid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// open makes the engine session for a target: the local host, or a
// configured jump-box target over SSH with its known_hosts.
func (d *Daemon) open(ctx context.Context, t *agentpb.Target) (*engine.Session, error) {
	switch t.GetKind() {
	case agentpb.Target_KIND_LOCAL:
		return engine.NewLocalSession(), nil
	case agentpb.Target_KIND_SSH:
		tc, ok := d.cfg.Target(t.GetName())
		if !ok {
			return nil, fmt.Errorf("target %q is not in this agent's targets: configuration", t.GetName())
		}
		opts, err := SSHOptions(tc)
		if err != nil {
			return nil, err
		}
		return engine.NewSSHSession(ctx, opts)
	}
	return nil, fmt.Errorf("target kind %s is not supported", t.GetKind())
}

// SSHOptions turns a configured target into engine options; the password
// file is read here, at use, and never sent anywhere.
func SSHOptions(t config.Target) (engine.SSHOptions, error) {
	if t.KnownHostsFile == "" {
		return engine.SSHOptions{}, fmt.Errorf("target %s: known_hosts_file is required", t.Name)
	}
	o := engine.SSHOptions{Host: t.Address, Port: t.Port, User: t.User, KnownHostsFile: t.KnownHostsFile,
		Sudo: t.Sudo, Name: t.Name}
	if t.IdentityFile != "" {
		o.KeyFiles = []string{t.IdentityFile}
	}
	if t.PasswordFile != "" {
		data, err := os.ReadFile(t.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("target %s: password file: %w", t.Name, err)
		}
		o.Password = strings.TrimRight(string(data), "\r\n")
		if t.Sudo && t.IdentityFile == "" {
			o.SudoPassword = o.Password
		}
	}
	return o, nil
}

// fetch downloads a bundle over the current connection.
func (d *Daemon) fetch(ctx context.Context, digest string) ([]byte, error) {
	d.mu.Lock()
	client := d.client
	d.mu.Unlock()
	if client == nil {
		return nil, errors.New("not connected to the server")
	}
	stream, err := client.FetchBundle(ctx, &agentpb.FetchBundleRequest{Digest: digest})
	if err != nil {
		return nil, err
	}
	var data []byte
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if c.GetOffset() != int64(len(data)) {
			return nil, fmt.Errorf("chunk at offset %d, expected %d", c.GetOffset(), len(data))
		}
		if c.GetTotalSize() > maxBundleBytes || int64(len(data)+len(c.GetData())) > maxBundleBytes {
			return nil, fmt.Errorf("bundle larger than %d bytes", maxBundleBytes)
		}
		data = append(data, c.GetData()...)
		if c.GetTotalSize() > 0 && int64(len(data)) == c.GetTotalSize() {
			break
		}
	}
	return data, nil
}

func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// sendLoop replays the spool, signals replayed, then sends new batches as
// they are spooled. Once scansDone is closed (shutdown, every scan
// finished or abandoned) it flushes one last time, bounded by the flush
// timeout, and returns errDrained; it is the only sender, so no batch is
// ever on two streams at once.
func (d *Daemon) sendLoop(ctx context.Context, client agentpb.AgentServiceClient, replayed chan struct{}, scansDone <-chan struct{}) error {
	if err := d.flush(ctx, client); err != nil {
		return err
	}
	close(replayed)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.wake:
		case <-time.After(flushInterval):
		case <-scansDone:
			fctx, cancel := context.WithTimeout(ctx, d.flushTO)
			err := d.flush(fctx, client)
			cancel()
			n, _ := d.spool.Stats()
			if err != nil {
				d.log.Warn("last flush at shutdown incomplete; the spool is sent at the next start", "err", err, "spooled_batches", n)
			} else {
				d.log.Info("spool flushed at shutdown", "spooled_batches", n)
			}
			return errDrained
		}
		if err := d.flush(ctx, client); err != nil {
			return err
		}
	}
}

// flush sends every spooled batch, in order, deleting each only on its
// acknowledgement. Bounded: at most 10000 streams per call.
func (d *Daemon) flush(ctx context.Context, client agentpb.AgentServiceClient) error {
	for range 10000 {
		entries, err := d.spool.List()
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		if len(entries) > sendWindow {
			entries = entries[:sendWindow]
		}
		if err := d.sendWindow(ctx, client, entries); err != nil {
			return err
		}
	}
	return nil
}

type batchKey struct{ scan, seq int64 }

func (d *Daemon) sendWindow(ctx context.Context, client agentpb.AgentServiceClient, entries []spool.Entry) error {
	stream, err := client.ReportResults(ctx)
	if err != nil {
		return fmt.Errorf("report results: %w", err)
	}
	pending := map[batchKey]spool.Entry{}
	sendFailed := false
	for _, e := range entries {
		b, err := d.spool.Read(e)
		if err != nil {
			// An unreadable file can never be sent; keep it for an operator
			// but do not block the queue behind it.
			d.log.Error("spool entry unreadable; moved aside", "file", e.Name, "err", err)
			if qerr := d.spool.Quarantine(e); qerr != nil {
				return qerr
			}
			continue
		}
		if err := stream.Send(b); err != nil {
			sendFailed = true // Recv reports why
			break
		}
		pending[batchKey{e.ScanID, e.Seq}] = e
	}
	_ = stream.CloseSend()
	if sendFailed && len(pending) == 0 {
		_, err := stream.Recv()
		return fmt.Errorf("report results: %w", err)
	}
	for len(pending) > 0 {
		ack, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("stream closed before every batch was acknowledged")
			}
			return fmt.Errorf("report results: %d batches unacknowledged: %w", len(pending), err)
		}
		k := batchKey{ack.GetScanId(), ack.GetSeq()}
		e, ok := pending[k]
		if !ok {
			continue
		}
		if ack.GetError() != "" {
			d.log.Error("server rejected a result batch permanently", "scan_id", k.scan, "seq", k.seq, "err", ack.GetError())
			d.Event(EventScanFailed, fmt.Sprintf("scan %d batch %d rejected: %s", k.scan, k.seq, ack.GetError()), "")
		}
		if err := d.spool.Delete(e); err != nil {
			return err
		}
		delete(pending, k)
	}
	for range 100 { // drain to EOF so the stream's resources are released
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	return nil
}

// renewLoop renews the certificate at about half its lifetime (40-60 %,
// jittered) or when the server asks.
func (d *Daemon) renewLoop(ctx context.Context, client agentpb.AgentServiceClient) error {
	for failures := 0; ; {
		leaf := d.currentLeaf()
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		at := leaf.NotBefore.Add(time.Duration(float64(life) * (0.4 + 0.2*rand.Float64())))
		wait := time.Until(at)
		if failures > 0 {
			wait = min(max(renewRetryFloor, d.backoff(failures)), time.Until(leaf.NotAfter)/4+time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		case <-d.renewCh:
		}
		if err := d.Renew(ctx, client); err != nil {
			failures++
			d.log.Error("certificate renewal failed", "err", err, "not_after", leaf.NotAfter)
			continue
		}
		failures = 0
	}
}

// Renew replaces the agent's key and certificate.
func (d *Daemon) Renew(ctx context.Context, client agentpb.AgentServiceClient) error {
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return fmt.Errorf("renew: new key: %w", err)
	}
	csr, err := pki.NewCSR(key, d.host)
	if err != nil {
		return fmt.Errorf("renew: CSR: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := client.Renew(cctx, &agentpb.RenewRequest{CsrDer: csr})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if _, err := tls.X509KeyPair(resp.GetCertificatePem(), keyPEM); err != nil {
		return fmt.Errorf("renew: server certificate does not match the new key: %w", err)
	}
	if err := d.dir.SaveCertificate(keyPEM, resp.GetCertificatePem(), resp.GetCaBundlePem()); err != nil {
		return err
	}
	if err := d.loadCert(); err != nil {
		return err
	}
	d.log.Info("certificate renewed", "not_after", d.currentLeaf().NotAfter)
	d.setStatus(func(*state.Status) {})
	return nil
}

// setStatus updates and writes status.json.
func (d *Daemon) setStatus(f func(*state.Status)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.status)
	d.status.UpdatedAt = time.Now().UTC()
	if leaf := d.currentLeaf(); leaf != nil {
		d.status.CertNotAfter = leaf.NotAfter
	}
	if err := d.dir.SaveStatus(d.status); err != nil {
		d.log.Warn("cannot write status", "err", err)
	}
}

// Spool exposes the daemon's spool (status and tests).
func (d *Daemon) Spool() *spool.Spool { return d.spool }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
