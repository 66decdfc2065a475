package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// OverdueAfter is how long after its last scan a host counts as overdue:
// the scheduler's ceiling, so an overdue host means a broken promise.
const OverdueAfter = 48 * time.Hour

// fleetCacheTTL bounds how often a scrape reads the fleet from the store,
// however many Prometheus servers scrape.
const fleetCacheTTL = 15 * time.Second

// fleetQueryTimeout bounds the store reads of one scrape.
const fleetQueryTimeout = 5 * time.Second

// fleetCollector computes gauges from the store at scrape time (cached):
// hosts per posture band, overdue hosts, scans queued (hosts due) and
// scans running.
type fleetCollector struct {
	st  store.Store
	now func() time.Time
	log *slog.Logger

	bands   *prometheus.Desc
	overdue *prometheus.Desc
	queued  *prometheus.Desc
	running *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	snap fleetSnapshot
}

type fleetSnapshot struct {
	bands            map[string]int
	overdue, queued  int
	running          int
	hostsOK, scansOK bool
}

// RegisterFleet adds the fleet gauges, read from st at scrape time (at
// most every 15 s); st should be the unwrapped store so that scrapes do
// not skew the store latency figures.
func (m *Metrics) RegisterFleet(st store.Store, now func() time.Time, log *slog.Logger) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m.Registry.MustRegister(&fleetCollector{st: st, now: now, log: log,
		bands: prometheus.NewDesc(Namespace+"_hosts", "Hosts per posture band of their last scan (\"none\": never scanned).",
			[]string{"band"}, nil),
		overdue: prometheus.NewDesc(Namespace+"_hosts_overdue", "Hosts whose last scan is older than 48 h, the scheduler's ceiling.", nil, nil),
		queued:  prometheus.NewDesc(Namespace+"_scans_queued", "Hosts due for a scan now and not yet claimed.", nil, nil),
		running: prometheus.NewDesc(Namespace+"_scans_running", "Scans in progress.", nil, nil),
	})
}

// Describe implements prometheus.Collector.
func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bands
	ch <- c.overdue
	ch <- c.queued
	ch <- c.running
}

// Collect implements prometheus.Collector. A store that cannot answer
// leaves the gauges out of the scrape (absent, not zero: zero would lie).
func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	if s.hostsOK {
		for band, n := range s.bands {
			ch <- prometheus.MustNewConstMetric(c.bands, prometheus.GaugeValue, float64(n), band)
		}
		ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, float64(s.overdue))
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.queued))
	}
	if s.scansOK {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(s.running))
	}
}

// maxRunningCounted bounds the running-scans read; more than this many
// running scans reads as this many.
const maxRunningCounted = 10000

func (c *fleetCollector) snapshot() fleetSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.at.IsZero() && now.Sub(c.at) < fleetCacheTTL {
		return c.snap
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetQueryTimeout)
	defer cancel()
	s := fleetSnapshot{bands: map[string]int{"none": 0, "critical": 0, "poor": 0, "fair": 0, "good": 0, "excellent": 0}}
	hosts, err := c.st.Hosts(ctx)
	if err != nil {
		c.log.Warn("metrics: reading hosts failed", "err", err)
	} else {
		s.hostsOK = true
		for _, h := range hosts {
			band := h.Band
			if band == "" {
				band = "none"
			}
			s.bands[band]++
			if !h.NextScanAt.After(now) {
				s.queued++
			}
			if !h.LastScanAt.IsZero() && now.Sub(h.LastScanAt) > OverdueAfter {
				s.overdue++
			}
		}
	}
	scans, err := c.st.Scans(ctx, store.ScanFilter{Status: store.ScanRunning, Limit: maxRunningCounted})
	if err != nil {
		c.log.Warn("metrics: reading running scans failed", "err", err)
	} else {
		s.scansOK = true
		s.running = len(scans)
	}
	c.snap, c.at = s, now
	return s
}
