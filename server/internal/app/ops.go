package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vigilfleet/vigil/server/internal/health"
	"github.com/vigilfleet/vigil/server/internal/metrics"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// readyTimeout bounds one readiness probe's store query.
const readyTimeout = 2 * time.Second

// certCheckEvery is how often the HTTPS certificate files are checked for
// a change without a SIGHUP.
const certCheckEvery = time.Minute

// opsHandler puts the operator endpoints in front of the API: /healthz and
// /readyz (unauthenticated, outside the /api/v1 route table) and /metrics
// (bearer token, or loopback only; see metrics.Handler).
func opsHandler(api http.Handler, ready health.Probe, m *metrics.Metrics, metricsToken string, log *slog.Logger) http.Handler {
	live := health.Live()
	readyz := health.Ready(ready, readyTimeout, log)
	metricsz := m.Handler(metricsToken, log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			live.ServeHTTP(w, r)
		case "/readyz":
			readyz.ServeHTTP(w, r)
		case "/metrics":
			metricsz.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// readiness is the server's readiness probe: the store answers, its
// migrations are current, the agent CA and the bundle signing key are
// loaded (Serve only listens once they are, so those report what is held
// in memory).
func readiness(st store.Store, caLoaded, bundleKeyLoaded func() bool) health.Probe {
	return func(ctx context.Context) []health.Check {
		err := st.Ready(ctx)
		storeErr, migErr := err, error(nil)
		if errors.Is(err, store.ErrMigrationsPending) {
			storeErr, migErr = nil, err
		} else if err != nil {
			migErr = errors.New("unknown: store unreachable")
		}
		loaded := func(ok bool, what string) error {
			if ok {
				return nil
			}
			return errors.New(what + " not loaded")
		}
		return []health.Check{
			{Name: "store", Err: storeErr},
			{Name: "migrations", Err: migErr},
			{Name: "ca", Err: loaded(caLoaded(), "agent CA")},
			{Name: "bundle_key", Err: loaded(bundleKeyLoaded(), "bundle signing key")},
		}
	}
}

// certHolder serves the HTTPS certificate through tls.Config.GetCertificate
// and reloads it from its files on SIGHUP or when their modification time
// changes, so a rotated certificate takes effect without a restart. A
// reload that fails keeps the previous certificate.
type certHolder struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.RWMutex
	cert  *tls.Certificate
	stamp string // modification times of both files at the last load
}

// newCertHolder loads the pair once; failing here fails the start.
func newCertHolder(certFile, keyFile string, log *slog.Logger) (*certHolder, error) {
	h := &certHolder{certFile: certFile, keyFile: keyFile, log: log}
	if err := h.load(); err != nil {
		return nil, err
	}
	return h, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (h *certHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cert, nil
}

func (h *certHolder) mtimes() string {
	var s string
	for _, f := range []string{h.certFile, h.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fi.ModTime().String() + fmt.Sprint(fi.Size()) + ";"
		}
	}
	return s
}

func (h *certHolder) load() error {
	stamp := h.mtimes()
	cert, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %s / %s: %w", h.certFile, h.keyFile, err)
	}
	h.mu.Lock()
	h.cert, h.stamp = &cert, stamp
	h.mu.Unlock()
	return nil
}

// hangups delivers SIGHUP from now until stop is called; Serve asks for
// it before listening, so a SIGHUP never kills a serving process.
func hangups() (<-chan os.Signal, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// watch reloads on each value of hup and whenever the files' times change
// (checked every minute) until ctx is done.
func (h *certHolder) watch(ctx context.Context, hup <-chan os.Signal) error {
	t := time.NewTicker(certCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			h.reload("SIGHUP")
		case <-t.C:
			h.mu.RLock()
			changed := h.mtimes() != h.stamp
			h.mu.RUnlock()
			if changed {
				h.reload("files changed")
			}
		}
	}
}

func (h *certHolder) reload(why string) {
	if err := h.load(); err != nil {
		h.log.Error("HTTPS certificate reload failed; keeping the previous one", "why", why, "err", err)
		return
	}
	fp, _ := CertFingerprint(h.certFile)
	h.log.Info("HTTPS certificate reloaded", "why", why, "cert", h.certFile, "sha256", fp)
}
