// Package metrics is vigil-server's Prometheus instrumentation: one
// registry per server (no global state), the metric families operators
// scrape at /metrics, a store decorator that times every store call, gRPC
// interceptors and the HTTP observer the API calls once per request.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// Namespace prefixes every metric name.
const Namespace = "vigil"

// Metrics holds the server's registry and every metric family in it. The
// zero value is not usable; call New.
type Metrics struct {
	// Registry is what /metrics serves.
	Registry *prometheus.Registry

	agentsConnected prometheus.Gauge
	scansStarted    prometheus.Counter
	scansEnded      *prometheus.CounterVec   // status: completed, failed
	scanDuration    *prometheus.HistogramVec // status
	resultsIngested prometheus.Counter
	ingestLatency   prometheus.Histogram
	storeLatency    *prometheus.HistogramVec // method
	httpRequests    *prometheus.CounterVec   // route, method, code
	httpLatency     *prometheus.HistogramVec // route, method
	grpcRequests    *prometheus.CounterVec   // method, code
	grpcLatency     *prometheus.HistogramVec // method
	// Alerts is the number of alerts per state (label "state").
	Alerts *prometheus.GaugeVec
	// NotificationsDelivered and NotificationFailures count notification
	// attempts per channel (label "channel").
	NotificationsDelivered *prometheus.CounterVec
	NotificationFailures   *prometheus.CounterVec
}

// New builds a registry with the Go runtime and process collectors and
// every vigil_ family.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	// Scans last seconds (a few rules locally) to many minutes (a big
	// host over a slow link); store calls last microseconds to seconds.
	scanBuckets := prometheus.ExponentialBuckets(0.25, 2, 14) // 0.25 s .. ~34 min
	fast := prometheus.ExponentialBuckets(0.0005, 2, 16)      // 0.5 ms .. ~16 s

	m.agentsConnected = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "agents_connected",
		Help: "Agents holding an open assignment stream."})
	m.scansStarted = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "scans_started_total",
		Help: "Scans started (agentless and agent scans)."})
	m.scansEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "scans_finished_total",
		Help: "Scans that ended, by final status (completed, failed)."}, []string{"status"})
	m.scanDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "scan_duration_seconds",
		Help: "Time from a scan's start to its end, by final status.", Buckets: scanBuckets}, []string{"status"})
	m.resultsIngested = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "results_ingested_total",
		Help: "Per-rule results stored (replayed batches not counted)."})
	m.ingestLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "ingest_duration_seconds",
		Help: "Time to store one batch of results.", Buckets: fast})
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_query_duration_seconds",
		Help: "Time of each store call, by store method.", Buckets: fast}, []string{"method"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "http_requests_total",
		Help: "HTTP API requests by route pattern, method and status code."}, []string{"route", "method", "code"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help: "HTTP API request latency by route pattern and method.", Buckets: fast}, []string{"route", "method"})
	m.grpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "grpc_requests_total",
		Help: "Agent gRPC calls by full method and status code (streams count when they end)."}, []string{"method", "code"})
	m.grpcLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "grpc_request_duration_seconds",
		Help: "Agent gRPC call duration by full method (streams: their whole life).", Buckets: scanBuckets}, []string{"method"})
	m.Alerts = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "alerts",
		Help: "Alerts by state."}, []string{"state"})
	m.NotificationsDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "notifications_delivered_total",
		Help: "Notifications delivered, by channel."}, []string{"channel"})
	m.NotificationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "notification_failures_total",
		Help: "Notification deliveries that failed for good, by channel."}, []string{"channel"})
	for _, c := range []prometheus.Collector{m.agentsConnected, m.scansStarted, m.scansEnded, m.scanDuration,
		m.resultsIngested, m.ingestLatency, m.storeLatency, m.httpRequests, m.httpLatency, m.grpcRequests,
		m.grpcLatency, m.Alerts, m.NotificationsDelivered, m.NotificationFailures} {
		f(c)
	}
	for _, s := range []string{string(store.ScanCompleted), string(store.ScanFailed)} {
		m.scansEnded.WithLabelValues(s)
	}
	// Alert states are registered at zero so that dashboards and alert
	// rules see the series before the first alert; notification series
	// appear per channel name with its first delivery.
	for _, s := range []string{"active", "acknowledged", "silenced", "resolved"} {
		m.Alerts.WithLabelValues(s).Set(0)
	}
	return m
}

// ObserveHTTP records one served API request; route is the gin route
// pattern ("/api/v1/hosts/:id"), "" when no route matched.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched" // never the raw path: unbounded label values
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpLatency.WithLabelValues(route, method).Observe(d.Seconds())
}

// UnaryInterceptor counts and times unary agent calls. Put it first in the
// chain so calls refused by authentication are counted too.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		m.observeGRPC(info.FullMethod, err, time.Since(start))
		return resp, err
	}
}

// StreamInterceptor counts and times streaming agent calls and keeps the
// connected-agents gauge: one open assignment stream per agent.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		if info.FullMethod == agentpb.AgentService_WatchAssignments_FullMethodName {
			m.agentsConnected.Inc()
			defer m.agentsConnected.Dec()
		}
		err := h(srv, ss)
		m.observeGRPC(info.FullMethod, err, time.Since(start))
		return err
	}
}

func (m *Metrics) observeGRPC(method string, err error, d time.Duration) {
	m.grpcRequests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.grpcLatency.WithLabelValues(method).Observe(d.Seconds())
}

// observeStore records one store call's latency.
func (m *Metrics) observeStore(method string, start time.Time) {
	m.storeLatency.WithLabelValues(method).Observe(time.Since(start).Seconds())
}
