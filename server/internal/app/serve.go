package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/agentless"
	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/metrics"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/schedule"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/ui"
)

// Serve runs the server until ctx is cancelled: it opens the store, makes
// sure TLS material and the secrets key exist, starts the HTTPS API, the
// scheduler and the retention job, and shuts them down in order.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	raw, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	// One registry per server; every store call below is timed.
	met := metrics.New()
	var st store.Store = met.WrapStore(raw)
	met.RegisterFleet(raw, time.Now, log)
	metricsToken := ""
	if cfg.MetricsTokenEnv != "" {
		metricsToken = os.Getenv(cfg.MetricsTokenEnv)
	}
	hup, stopHup := hangups()
	defer stopHup()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	box, err := secrets.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return err
	}
	idx, err := posture.LoadIndex(cfg.RulesDir)
	if err != nil {
		return fmt.Errorf("rules %s: %w", cfg.RulesDir, err)
	}
	post := posture.NewService(st, idx, time.Now)
	bundleMgr, err := EnsureBundle(ctx, cfg, st, cfg.BundleTrustedKeys, log)
	if err != nil {
		return err
	}

	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if certFile == "" {
		host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
		names := []string{"localhost", "127.0.0.1", "::1", host}
		if hn, err := os.Hostname(); err == nil {
			names = append(names, hn)
		}
		if certFile, keyFile, err = EnsureSelfSigned(cfg.DataDir, names, time.Now()); err != nil {
			return err
		}
		fp, _ := CertFingerprint(certFile)
		log.Info("using self-signed HTTPS certificate", "cert", certFile, "sha256", fp)
	}
	certs, err := newCertHolder(certFile, keyFile, log)
	if err != nil {
		return err
	}

	ca, err := LoadOrCreateCA(cfg, time.Now())
	if err != nil {
		return err
	}

	scanner, err := agentless.New(agentless.Config{Store: st, Box: box, RulesDir: cfg.RulesDir})
	if err != nil {
		return err
	}
	owner, _ := os.Hostname()
	sched, err := schedule.New(schedule.Config{
		Store: st, Posture: post, Scanner: scanner, Owner: fmt.Sprintf("%s/%d", owner, os.Getpid()),
		Intervals: intervals(cfg.Scheduler), Workers: cfg.Scheduler.Workers, Poll: cfg.Scheduler.Poll.D(), Logger: log,
	})
	if err != nil {
		return err
	}

	agents, err := agentapi.New(agentapi.Config{Store: st, Posture: post, CA: ca, Logger: log,
		Intervals: intervals(cfg.Scheduler), ServerNames: grpcNames(cfg.GRPCAddr), CertTTL: cfg.AgentCertTTL.D(),
		UnaryInterceptors: []grpc.UnaryServerInterceptor{met.UnaryInterceptor()}, StreamInterceptors: []grpc.StreamServerInterceptor{met.StreamInterceptor()}})
	if err != nil {
		return err
	}
	notifier, gov, exporter, err := buildGovernance(cfg, st, box, post, met, owner, log)
	if err != nil {
		return err
	}

	wake := func() { sched.Wake(); agents.Wake() }
	a := api.New(api.Deps{Store: st, Posture: post, Sealer: box, Logger: log, Wake: wake,
		SessionTTL: cfg.SessionTTL.D(), LoginLimit: cfg.LoginLimit, CAPin: ca.Pin(), AgentHeartbeat: agentapi.DefaultHeartbeat,
		Observe: met.ObserveHTTP, Governance: gov, Notifier: notifier, Exporter: exporter})
	web, err := ui.New(ui.Deps{API: a, Store: st, Posture: post, Logger: log, CAPin: ca.Pin(), GRPCAddr: cfg.GRPCAddr, Wake: wake, Notifier: notifier})
	if err != nil {
		return err
	}
	a.MountUI(web.Mount, web.NotFound)
	ready := readiness(st, func() bool { return ca != nil }, func() bool { return bundleMgr != nil })
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           opsHandler(a.Handler(), ready, met, metricsToken, log),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http_addr %s: %w", cfg.HTTPAddr, err)
	}
	gln, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("grpc_addr %s: %w", cfg.GRPCAddr, err)
	}
	log.Info("agent CA", "pin", ca.Pin(), "grpc", gln.Addr().String())
	log.Info("vigil-server listening", "url", "https://"+ln.Addr().String()+"/", "store", storeKind(cfg), "rules", len(idx.Rules()),
		"metrics", metricsAccess(cfg))
	if users, err := st.Users(ctx); err == nil && len(users) == 0 {
		log.Warn("no users yet; create the first admin with: vigil-server admin create --data-dir " + cfg.DataDir +
			" --username admin --password-stdin")
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("https: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return agents.Serve(gctx, gln) })
	g.Go(func() error { return certs.watch(gctx, hup) })
	if cfg.Scheduler.Enabled {
		g.Go(func() error { return sched.Run(gctx) })
	}
	g.Go(func() error { return retention(gctx, st, cfg.ResultsRetention.D(), log) })
	g.Go(func() error { return gov.Run(gctx) })
	err = g.Wait()
	log.Info("vigil-server stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// buildGovernance builds the notifier, the governance service (made the
// posture service's waivers, so every posture view applies approved
// exceptions) and the exporter with its signing key.
func buildGovernance(cfg config.Config, st store.Store, box *secrets.Box, post *posture.Service, met *metrics.Metrics,
	serverName string, log *slog.Logger) (*notify.Notifier, *governance.Service, *export.Exporter, error) {
	notifier, err := notify.New(notify.Options{Store: st, Box: box, Logger: log,
		AllowNets: cfg.Notifications.AllowNets(), BaseURL: cfg.Notifications.BaseURL,
		Observe: func(ch string, ok bool) {
			if ok {
				met.NotificationsDelivered.WithLabelValues(ch).Inc()
			} else {
				met.NotificationFailures.WithLabelValues(ch).Inc()
			}
		}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("notifications: %w", err)
	}
	th, err := thresholds(cfg.Alerts)
	if err != nil {
		return nil, nil, nil, err
	}
	gov, err := governance.New(governance.Config{Store: st, Posture: post, Sink: notifier, Logger: log,
		Thresholds: th, Interval: cfg.Alerts.Interval.D(),
		OnEvaluate: func(counts map[store.AlertState]int) {
			for _, state := range []store.AlertState{store.AlertActive, store.AlertAcknowledged, store.AlertSilenced, store.AlertResolved} {
				met.Alerts.WithLabelValues(string(state)).Set(float64(counts[state]))
			}
		}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("alerts: %w", err)
	}
	post.SetWaivers(gov)
	signer, err := export.LoadOrCreateSigner(cfg.ExportSigningKey())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("exports.signing_key %s: %w", cfg.ExportSigningKey(), err)
	}
	exporter := export.New(export.Deps{Store: st, Posture: post, Waivers: gov, Signer: signer, ServerName: serverName,
		MaxHosts: cfg.Exports.MaxHosts})
	return notifier, gov, exporter, nil
}

// thresholds converts the alerts section into governance thresholds.
func thresholds(a config.Alerts) (governance.Thresholds, error) {
	th := governance.Thresholds{
		ScoreDrop: a.ScoreDrop, ScoreDropWindow: a.ScoreDropWindow.D(), BandFloor: posture.Band(a.BandFloor),
		MassDriftHosts: a.MassDriftHosts, MassDriftWindow: a.MassDriftWindow.D(), OverdueAfter: a.OverdueAfter.D(),
		AgentOfflineAfter: a.AgentOfflineAfter.D(), ExpiringWithin: a.ExpiringWithin.D(),
	}
	for _, s := range a.FailingSeverities {
		sev := rule.Severity(s)
		if sev.Rank() == 0 {
			return governance.Thresholds{}, fmt.Errorf("alerts.failing_severities: %q is not a severity", s)
		}
		th.FailingSeverities = append(th.FailingSeverities, sev)
	}
	return th, nil
}

// metricsAccess says in the start-up log who may scrape /metrics.
func metricsAccess(cfg config.Config) string {
	if cfg.MetricsTokenEnv != "" {
		return "bearer token from $" + cfg.MetricsTokenEnv
	}
	return "loopback clients only (set metrics_token_env to allow remote scrapes)"
}

func storeKind(cfg config.Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite:" + cfg.SQLitePath()
}

func intervals(s config.Scheduler) schedule.Intervals {
	return schedule.Intervals{
		Critical: s.Intervals.Critical.D(), Poor: s.Intervals.Poor.D(), Fair: s.Intervals.Fair.D(),
		Good: s.Intervals.Good.D(), Excellent: s.Intervals.Excellent.D(), Max: config.MaxInterval, Jitter: s.Jitter,
	}
}

// retention prunes per-scan result rows older than keep, once at start and
// then hourly; transitions and snapshots stay, so history stays answerable.
func retention(ctx context.Context, st store.Store, keep time.Duration, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := st.PruneResults(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention: prune failed", "err", err)
		case n > 0:
			log.Info("retention: pruned result rows", "rows", n, "older_than", keep)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
