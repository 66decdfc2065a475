// Package loadgen simulates a fleet of Vigil agents in one process, to
// measure what one vigil-server holds: every simulated agent enrols with
// its own key and CSR, keeps its own mutual-TLS 1.3 connection with an
// open WatchAssignments stream and periodic heartbeats, and answers each
// assignment with synthetic results streamed through ReportResults until
// every batch is acknowledged. The figures (enrol rate, connections,
// heartbeats, results per second from first assignment to last ack, ack
// latency percentiles) are what `make bench-agents` reports.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/vigilfleet/vigil/shared/agentpb"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultResultsPerScan = 300
	DefaultBatchSize      = 500
	DefaultEnrollParallel = 16
	DefaultReportParallel = 100
	DefaultHeartbeat      = 30 * time.Second
	DefaultCallTimeout    = 30 * time.Second
	// MaxAgents bounds one process's fleet (file descriptors, memory).
	MaxAgents = 20000
	// maxWatchRetries bounds how often one agent reopens a broken
	// assignment stream before it gives up for the rest of the run.
	maxWatchRetries = 10
	// closeGrace bounds the wait for agent goroutines once the run ends.
	closeGrace = 30 * time.Second
)

// Phase names the points of a run a driver may want to act on (sample the
// server's memory, for instance).
type Phase string

// The phases of a run, in order.
const (
	PhaseEnrolled  Phase = "enrolled"   // every agent enrolled (or failed)
	PhaseConnected Phase = "connected"  // every enrolled agent connected (or failed)
	PhaseScansDone Phase = "scans-done" // every connected agent finished its scan
	PhaseHoldEnd   Phase = "hold-end"   // about to close every connection
)

// Config is one run. Server, Token, CAPin, Agents and Duration are
// required; Run applies the defaults noted on the other fields.
type Config struct {
	Server     string // gRPC address, host:port
	ServerName string // name the server certificate must carry; default the host of Server
	Token      string // a join token with at least Agents uses
	CAPin      string // "sha256:..." as `vigil-server token create` prints it
	Agents     int
	// ResultsPerScan is how many results each assignment is answered
	// with; 300.
	ResultsPerScan int
	// BatchSize is the number of results per ResultBatch; 500.
	BatchSize int
	// Duration is the hard limit of the whole run: at its end every
	// connection is closed, whatever is in flight.
	Duration time.Duration
	// Hold is how long connections stay open (heartbeating) once every
	// agent's scan is acknowledged; 0 holds them until Duration.
	Hold time.Duration
	// EnrollParallel bounds concurrent enrolments and connection set-ups; 16.
	EnrollParallel int
	// ReportParallel bounds how many agents stream results at once, which
	// stands in for scans finishing spread over time; 100.
	ReportParallel int
	// Heartbeat is each agent's heartbeat interval; 30 s.
	Heartbeat time.Duration
	// CallTimeout bounds every unary call and every result stream; 30 s.
	CallTimeout time.Duration
	// Hostname prefixes the simulated host names (prefix-<n>); default
	// "lg-" and a random run id, so that runs never collide.
	Hostname string
	// OnPhase, when set, is called as the run reaches each Phase.
	OnPhase func(Phase, Progress)
	// Every, when positive, calls OnProgress at that interval.
	Every      time.Duration
	OnProgress func(Progress)
}

// Progress is a snapshot of a run's counters.
type Progress struct {
	Elapsed     time.Duration
	Enrolled    int64
	Connected   int64
	Heartbeats  int64
	HBFailed    int64
	Scans       int64
	ResultsAckd int64
}

// Report is what a run measured.
type Report struct {
	Agents           int     `json:"agents"`
	Enrolled         int64   `json:"enrolled"`
	EnrollFailed     int64   `json:"enroll_failed"`
	EnrollSeconds    float64 `json:"enroll_seconds"`
	EnrollPerSecond  float64 `json:"enroll_per_second"`
	Connected        int64   `json:"connected"`
	ConnectFailed    int64   `json:"connect_failed"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	HeartbeatsSent   int64   `json:"heartbeats_sent"`
	HeartbeatsFailed int64   `json:"heartbeats_failed"`
	WatchErrors      int64   `json:"watch_errors"`
	Assignments      int64   `json:"assignments"`
	ScansCompleted   int64   `json:"scans_completed"`
	ScansFailed      int64   `json:"scans_failed"`
	BatchesAcked     int64   `json:"batches_acked"`
	BatchErrors      int64   `json:"batch_errors"`
	Duplicates       int64   `json:"duplicates"`
	ResultsAcked     int64   `json:"results_acked"`
	// ResultsSeconds runs from the first assignment received to the last
	// acknowledgement.
	ResultsSeconds   float64 `json:"results_seconds"`
	ResultsPerSecond float64 `json:"results_per_second"`
	AckP50Ms         float64 `json:"ack_p50_ms"`
	AckP95Ms         float64 `json:"ack_p95_ms"`
	AckP99Ms         float64 `json:"ack_p99_ms"`
	AckMaxMs         float64 `json:"ack_max_ms"`
	AllScansDone     bool    `json:"all_scans_done"`
	RunSeconds       float64 `json:"run_seconds"`
	FirstError       string  `json:"first_error,omitempty"`
}

// Print writes the report for a person.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "agents enrolled     %d of %d (%d failed) in %.1fs: %.1f/s\n", r.Enrolled, r.Agents, r.EnrollFailed,
		r.EnrollSeconds, r.EnrollPerSecond)
	fmt.Fprintf(w, "agents connected    %d (%d failed) in %.1fs\n", r.Connected, r.ConnectFailed, r.ConnectSeconds)
	fmt.Fprintf(w, "heartbeats          %d sent, %d failed\n", r.HeartbeatsSent, r.HeartbeatsFailed)
	fmt.Fprintf(w, "assignments         %d (watch stream errors %d)\n", r.Assignments, r.WatchErrors)
	fmt.Fprintf(w, "scans               %d completed, %d failed (all done: %v)\n", r.ScansCompleted, r.ScansFailed, r.AllScansDone)
	fmt.Fprintf(w, "batches acked       %d (%d refused, %d duplicate)\n", r.BatchesAcked, r.BatchErrors, r.Duplicates)
	fmt.Fprintf(w, "results acked       %d in %.1fs: %.0f results/s end to end\n", r.ResultsAcked, r.ResultsSeconds, r.ResultsPerSecond)
	fmt.Fprintf(w, "ack latency         p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.AckP50Ms, r.AckP95Ms,
		r.AckP99Ms, r.AckMaxMs)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error         %s\n", r.FirstError)
	}
}

// run is the shared state of one Run.
type run struct {
	cfg     Config
	start   time.Time
	results []*agentpb.Result // the synthetic scan, shared read-only by every agent
	report  chan struct{}     // semaphore of ReportParallel

	enrolled, enrollFailed, connected, connectFailed       atomic.Int64
	heartbeats, hbFailed, watchErrors, assignments         atomic.Int64
	scansDone, scansFailed, batches, batchErrs, duplicates atomic.Int64
	resultsAcked                                           atomic.Int64
	firstAssign, lastAck                                   atomic.Int64 // unix nanos

	mu       sync.Mutex
	lats     []time.Duration
	firstErr error
	finished chan struct{} // closed when every connected agent's scan ended
	doneOnce sync.Once
}

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstErr == nil {
		r.firstErr = err
	}
}

func (r *run) progress() Progress {
	return Progress{Elapsed: time.Since(r.start), Enrolled: r.enrolled.Load(), Connected: r.connected.Load(),
		Heartbeats: r.heartbeats.Load(), HBFailed: r.hbFailed.Load(), Scans: r.scansDone.Load() + r.scansFailed.Load(),
		ResultsAckd: r.resultsAcked.Load()}
}

func (r *run) phase(p Phase) {
	if r.cfg.OnPhase != nil {
		r.cfg.OnPhase(p, r.progress())
	}
}

// checkDone closes finished once every connected agent's scan ended.
func (r *run) checkDone(connected int64) {
	if connected > 0 && r.scansDone.Load()+r.scansFailed.Load() >= connected {
		r.doneOnce.Do(func() { close(r.finished) })
	}
}

func (c *Config) checkAndSetDefaults() error {
	switch {
	case c.Server == "":
		return errors.New("loadgen: the server address is required")
	case c.Token == "" || c.CAPin == "":
		return errors.New("loadgen: a join token and the CA pin are required (vigil-server token create --json)")
	case c.Agents <= 0 || c.Agents > MaxAgents:
		return fmt.Errorf("loadgen: agents %d: must be 1 to %d", c.Agents, MaxAgents)
	case c.Duration <= 0:
		return errors.New("loadgen: a positive duration is required")
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(c.Server)
		if err != nil {
			return fmt.Errorf("loadgen: server %q: %w", c.Server, err)
		}
		c.ServerName = host
	}
	if c.ResultsPerScan <= 0 {
		c.ResultsPerScan = DefaultResultsPerScan
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.EnrollParallel <= 0 {
		c.EnrollParallel = DefaultEnrollParallel
	}
	if c.ReportParallel <= 0 {
		c.ReportParallel = DefaultReportParallel
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Hostname == "" {
		c.Hostname = "lg-" + randomID()
	}
	return nil
}

// Run enrols cfg.Agents agents, connects them, lets them answer their
// assignments and hold their connections, and returns what it measured.
// It returns when the hold after the last scan ends, at cfg.Duration, or
// when ctx ends; every connection is closed by then. An error means the
// run could not start (bad configuration, no agent enrolled); partial
// failures are counted in the Report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	r := &run{cfg: cfg, start: time.Now(), results: syntheticResults(cfg.ResultsPerScan, time.Now()),
		report: make(chan struct{}, cfg.ReportParallel), finished: make(chan struct{})}
	stopProgress := r.reportProgress(ctx)
	defer stopProgress()

	agents, enrollTime, err := r.enrollAll(ctx)
	if err != nil {
		return Report{}, err
	}
	r.phase(PhaseEnrolled)

	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	var wg sync.WaitGroup
	connectStart := time.Now()
	r.connectAll(ctx, agentCtx, agents, &wg)
	connectTime := time.Since(connectStart)
	r.phase(PhaseConnected)
	connected := r.connected.Load()
	r.checkDone(connected)

	allDone := false
	select {
	case <-r.finished:
		allDone = true
		r.phase(PhaseScansDone)
		if cfg.Hold > 0 {
			t := time.NewTimer(cfg.Hold)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		} else {
			<-ctx.Done()
		}
	case <-ctx.Done():
	}
	r.phase(PhaseHoldEnd)
	stopAgents()
	waitGroup(&wg, closeGrace)
	for _, a := range agents {
		a.close()
	}
	return r.result(enrollTime, connectTime, allDone), nil
}

// waitGroup waits for wg at most d; agent goroutines honour cancellation,
// so this only bounds a server that stops answering.
func waitGroup(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func (r *run) reportProgress(ctx context.Context) func() {
	if r.cfg.Every <= 0 || r.cfg.OnProgress == nil {
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				r.cfg.OnProgress(r.progress())
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (r *run) result(enrollTime, connectTime time.Duration, allDone bool) Report {
	rep := Report{Agents: r.cfg.Agents, Enrolled: r.enrolled.Load(), EnrollFailed: r.enrollFailed.Load(),
		EnrollSeconds: enrollTime.Seconds(), Connected: r.connected.Load(), ConnectFailed: r.connectFailed.Load(),
		ConnectSeconds: connectTime.Seconds(), HeartbeatsSent: r.heartbeats.Load(), HeartbeatsFailed: r.hbFailed.Load(),
		WatchErrors: r.watchErrors.Load(), Assignments: r.assignments.Load(), ScansCompleted: r.scansDone.Load(),
		ScansFailed: r.scansFailed.Load(), BatchesAcked: r.batches.Load(), BatchErrors: r.batchErrs.Load(),
		Duplicates: r.duplicates.Load(), ResultsAcked: r.resultsAcked.Load(), AllScansDone: allDone,
		RunSeconds: time.Since(r.start).Seconds()}
	if enrollTime > 0 {
		rep.EnrollPerSecond = float64(rep.Enrolled) / enrollTime.Seconds()
	}
	if first, last := r.firstAssign.Load(), r.lastAck.Load(); first > 0 && last > first {
		d := time.Duration(last - first)
		rep.ResultsSeconds = d.Seconds()
		rep.ResultsPerSecond = float64(rep.ResultsAcked) / d.Seconds()
	}
	r.mu.Lock()
	lats := slices.Clone(r.lats)
	if r.firstErr != nil {
		rep.FirstError = r.firstErr.Error()
	}
	r.mu.Unlock()
	slices.Sort(lats)
	ms := func(q float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		i := min(int(q*float64(len(lats))), len(lats)-1)
		return float64(lats[i]) / float64(time.Millisecond)
	}
	rep.AckP50Ms, rep.AckP95Ms, rep.AckP99Ms, rep.AckMaxMs = ms(0.50), ms(0.95), ms(0.99), ms(1)
	return rep
}

// storeMax raises v to x if x is larger.
func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// storeMin lowers v to x if v is unset (0) or larger.
func storeMin(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if (cur != 0 && cur <= x) || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// dialOpts are the gRPC options of every simulated agent's connection:
// small buffers, since thousands share one process.
func dialOpts(tc *tls.Config) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(newCreds(tc)),
		grpc.WithReadBufferSize(16 << 10),
		grpc.WithWriteBufferSize(16 << 10),
	}
}
