package loadgen

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
)

// agent is one simulated agent: its identity and its own connection.
type agent struct {
	n    int
	id   int64
	name string
	cert tls.Certificate
	ca   *x509.CertPool
	conn *grpc.ClientConn
	c    agentpb.AgentServiceClient
}

func (a *agent) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

func randomID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newCreds(tc *tls.Config) credentials.TransportCredentials { return credentials.NewTLS(tc) }

// enrollAll enrols every agent over one pinned connection (Enroll needs
// no client certificate), EnrollParallel at a time. Agents that fail are
// counted and left out.
func (r *run) enrollAll(ctx context.Context) ([]*agent, time.Duration, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: r.cfg.ServerName,
		// The chain is checked by VerifyPinned against the pinned CA, the
		// way a real agent trusts a server it has never met.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: pki.VerifyPinned(r.cfg.CAPin, r.cfg.ServerName)}
	conn, err := grpc.NewClient(r.cfg.Server, grpc.WithTransportCredentials(newCreds(tc)))
	if err != nil {
		return nil, 0, fmt.Errorf("loadgen: dial %s: %w", r.cfg.Server, err)
	}
	defer conn.Close()
	c := agentpb.NewAgentServiceClient(conn)
	slots := make([]*agent, r.cfg.Agents)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.EnrollParallel)
	start := time.Now()
	for i := range r.cfg.Agents {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			a, err := r.enroll(gctx, c, i)
			if err != nil {
				r.enrollFailed.Add(1)
				r.fail(err)
				return nil
			}
			r.enrolled.Add(1)
			slots[i] = a
			return nil
		})
	}
	_ = g.Wait()
	took := time.Since(start)
	agents := make([]*agent, 0, len(slots))
	for _, a := range slots {
		if a != nil {
			agents = append(agents, a)
		}
	}
	if len(agents) == 0 {
		r.mu.Lock()
		err := r.firstErr
		r.mu.Unlock()
		return nil, took, fmt.Errorf("loadgen: no agent enrolled with %s: %w", r.cfg.Server, errors.Join(err, ctx.Err()))
	}
	return agents, took, nil
}

func (r *run) enroll(ctx context.Context, c agentpb.AgentServiceClient, n int) (*agent, error) {
	hostname := fmt.Sprintf("%s-%d", r.cfg.Hostname, n)
	key, _, err := pki.NewKey()
	if err != nil {
		return nil, fmt.Errorf("agent %s: key: %w", hostname, err)
	}
	csr, err := pki.NewCSR(key, hostname)
	if err != nil {
		return nil, fmt.Errorf("agent %s: csr: %w", hostname, err)
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	resp, err := c.Enroll(cctx, &agentpb.EnrollRequest{Token: r.cfg.Token, CsrDer: csr, Hostname: hostname,
		Os: "Debian GNU/Linux 12 (bookworm)", AgentVersion: "loadgen"})
	if err != nil {
		return nil, fmt.Errorf("agent %s: enrol: %w", hostname, err)
	}
	blk, _ := pem.Decode(resp.GetCertificatePem())
	if blk == nil {
		return nil, fmt.Errorf("agent %s: the certificate returned is not PEM", hostname)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("agent %s: certificate: %w", hostname, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(resp.GetCaBundlePem()) {
		return nil, fmt.Errorf("agent %s: the CA bundle returned holds no certificate", hostname)
	}
	return &agent{n: n, id: resp.GetAgentId(), name: resp.GetAgentName(), ca: pool,
		cert: tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: leaf}}, nil
}

// connectAll opens each agent's own mutual-TLS connection, proves it with
// a first heartbeat and starts the agent's loops under agentCtx;
// EnrollParallel connections are set up at a time.
func (r *run) connectAll(ctx, agentCtx context.Context, agents []*agent, wg *sync.WaitGroup) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.EnrollParallel)
	for _, a := range agents {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := r.connect(gctx, a); err != nil {
				r.connectFailed.Add(1)
				r.fail(err)
				return nil
			}
			r.connected.Add(1)
			wg.Add(2)
			go func() { defer wg.Done(); r.heartbeatLoop(agentCtx, a) }()
			go func() { defer wg.Done(); r.watchLoop(agentCtx, a) }()
			return nil
		})
	}
	_ = g.Wait()
}

func (r *run) connect(ctx context.Context, a *agent) error {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: a.ca, ServerName: r.cfg.ServerName,
		Certificates: []tls.Certificate{a.cert}}
	conn, err := grpc.NewClient(r.cfg.Server, dialOpts(tc)...)
	if err != nil {
		return fmt.Errorf("agent %s: dial: %w", a.name, err)
	}
	a.conn, a.c = conn, agentpb.NewAgentServiceClient(conn)
	if err := r.heartbeat(ctx, a); err != nil {
		return fmt.Errorf("agent %s: first heartbeat: %w", a.name, err)
	}
	return nil
}

func (r *run) heartbeat(ctx context.Context, a *agent) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	r.heartbeats.Add(1)
	_, err := a.c.Heartbeat(cctx, &agentpb.HeartbeatRequest{AgentVersion: "loadgen", Os: "Debian GNU/Linux 12 (bookworm)",
		Capabilities: []string{"local"}, Hostname: fmt.Sprintf("%s-%d", r.cfg.Hostname, a.n)})
	if err != nil {
		r.hbFailed.Add(1)
	}
	return err
}

// heartbeatLoop sends a heartbeat every Heartbeat (the first after a
// random part of it, so that agents spread out) until ctx ends.
func (r *run) heartbeatLoop(ctx context.Context, a *agent) {
	wait := time.Duration(mrand.Int64N(int64(r.cfg.Heartbeat))) + time.Millisecond
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := r.heartbeat(ctx, a); err != nil && ctx.Err() == nil {
			r.fail(fmt.Errorf("agent %s: heartbeat: %w", a.name, err))
		}
		wait = r.cfg.Heartbeat
	}
}

// watchLoop keeps the agent's assignment stream open and answers every
// assignment; a broken stream is reopened with backoff, at most
// maxWatchRetries times.
func (r *run) watchLoop(ctx context.Context, a *agent) {
	for attempt := 0; attempt <= maxWatchRetries; attempt++ {
		err := r.watch(ctx, a)
		if ctx.Err() != nil {
			return
		}
		r.watchErrors.Add(1)
		r.fail(fmt.Errorf("agent %s: assignment stream: %w", a.name, err))
		backoff := time.Duration(1<<min(attempt, 5)) * time.Second
		backoff += time.Duration(mrand.Int64N(int64(backoff)))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *run) watch(ctx context.Context, a *agent) error {
	stream, err := a.c.WatchAssignments(ctx, &agentpb.WatchRequest{})
	if err != nil {
		return err
	}
	for {
		asg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the server ended the stream")
			}
			return err
		}
		r.assignments.Add(1)
		storeMin(&r.firstAssign, time.Now().UnixNano())
		if err := r.scan(ctx, a, asg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.scansFailed.Add(1)
			r.fail(fmt.Errorf("agent %s: scan %d: %w", a.name, asg.GetScanId(), err))
		}
		r.checkDone(r.connected.Load())
	}
}

// scan answers one assignment: the synthetic results in BatchSize batches
// through one ReportResults stream, `end` on the last, and waits for every
// acknowledgement. At most ReportParallel agents report at once.
func (r *run) scan(ctx context.Context, a *agent, asg *agentpb.Assignment) error {
	select {
	case r.report <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.report }()
	started := time.Now()
	batches := r.scanBatches(asg.GetScanId(), started)
	sctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	stream, err := a.c.ReportResults(sctx)
	if err != nil {
		return err
	}
	sent := make([]time.Time, len(batches))
	var mu sync.Mutex
	sendErr := make(chan error, 1)
	go func() {
		for i, b := range batches {
			mu.Lock()
			sent[i] = time.Now()
			mu.Unlock()
			if err := stream.Send(b); err != nil {
				sendErr <- err // the receiver sees the stream's status
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var refused error
	for acked := 0; acked < len(batches); acked++ {
		ack, err := stream.Recv()
		if err != nil {
			cancel()
			<-sendErr
			return fmt.Errorf("waiting for ack %d of %d: %w", acked+1, len(batches), err)
		}
		now := time.Now()
		i := int(ack.GetSeq()) - 1
		if i < 0 || i >= len(batches) {
			cancel()
			<-sendErr
			return fmt.Errorf("ack for unknown batch %d", ack.GetSeq())
		}
		mu.Lock()
		lat := now.Sub(sent[i])
		mu.Unlock()
		r.mu.Lock()
		r.lats = append(r.lats, lat)
		r.mu.Unlock()
		storeMax(&r.lastAck, now.UnixNano())
		r.batches.Add(1)
		switch {
		case ack.GetError() != "":
			r.batchErrs.Add(1)
			if refused == nil {
				refused = fmt.Errorf("batch %d refused: %s", ack.GetSeq(), ack.GetError())
			}
		default:
			r.resultsAcked.Add(int64(len(batches[i].GetResults())))
			if ack.GetDuplicate() {
				r.duplicates.Add(1)
			}
		}
	}
	if err := <-sendErr; err != nil {
		return fmt.Errorf("sending batches: %w", err)
	}
	if refused != nil {
		return refused
	}
	r.scansDone.Add(1)
	return nil
}
