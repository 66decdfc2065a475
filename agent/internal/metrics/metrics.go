// Package metrics holds the agent's Prometheus metrics in a registry of
// their own (no global state), so each daemon, and each test, counts
// independently and /metrics shows only what this agent measured.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Scan results, the values of the scans counter's result label.
const (
	ScanCompleted = "completed"
	ScanFailed    = "failed"
)

// Metrics are the agent's instruments. The daemon updates them; the
// health server exposes Registry.
type Metrics struct {
	// Registry holds every metric below plus Go runtime and process
	// collectors.
	Registry *prometheus.Registry

	Scans             *prometheus.CounterVec // result: completed, failed
	RulesEvaluated    *prometheus.CounterVec // status: pass, fail, skipped, error
	ScanDuration      prometheus.Histogram
	Reconnects        prometheus.Counter
	Connected         prometheus.Gauge
	BundleRefusals    prometheus.Counter
	CertExpiry        prometheus.Gauge
	HeartbeatFailures prometheus.Counter
}

// New creates the metrics and registers them, with gauges for the spool
// read from spoolStats at scrape time so they are never stale.
func New(spoolStats func() (batches, bytes int64)) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_agent_scans_total",
			Help: "Scans this agent finished, by result (completed or failed).",
		}, []string{"result"}),
		RulesEvaluated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_agent_rules_evaluated_total",
			Help: "Rule results produced by scans, by status (pass, fail, skipped, error).",
		}, []string{"status"}),
		ScanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_agent_scan_duration_seconds",
			Help:    "Time from receiving an assignment to having its results spooled.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_agent_reconnects_total",
			Help: "Connection attempts made after a failed attempt or a lost connection.",
		}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_agent_connected",
			Help: "1 while the agent holds a working connection to the server, else 0.",
		}),
		BundleRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_agent_bundle_refusals_total",
			Help: "Rule bundles refused (unsigned, untrusted, tampered, expired, downgrade, malformed).",
		}),
		CertExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_agent_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the agent's client certificate expires.",
		}),
		HeartbeatFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_agent_heartbeat_failures_total",
			Help: "Heartbeats that failed (each ends the connection, which is then retried).",
		}),
	}
	m.Registry.MustRegister(m.Scans, m.RulesEvaluated, m.ScanDuration, m.Reconnects, m.Connected,
		m.BundleRefusals, m.CertExpiry, m.HeartbeatFailures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_agent_spool_batches",
			Help: "Result batches in the spool awaiting the server's acknowledgement.",
		}, func() float64 { n, _ := spoolStats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_agent_spool_bytes",
			Help: "Bytes in the spool awaiting the server's acknowledgement.",
		}, func() float64 { _, b := spoolStats(); return float64(b) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Zero series exist from the start so a scrape before the first scan
	// shows them, and rate() sees the first increment.
	for _, r := range []string{ScanCompleted, ScanFailed} {
		m.Scans.WithLabelValues(r)
	}
	for _, s := range []string{"pass", "fail", "skipped", "error"} {
		m.RulesEvaluated.WithLabelValues(s)
	}
	return m
}
