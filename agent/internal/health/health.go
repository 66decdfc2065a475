// Package health serves the agent's local operator endpoints: /healthz
// (the process runs), /readyz (the agent can do its job, with the failing
// check named) and /metrics (Prometheus text from a dedicated registry).
// They answer without authentication, so they are only ever bound to a
// loopback address or a unix socket (config.ParseHealthAddr).
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilfleet/vigil/agent/internal/config"
)

// Check is one readiness condition.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the /readyz body.
type Report struct {
	Ready   bool     `json:"ready"`
	Failing []string `json:"failing,omitempty"`
	Checks  []Check  `json:"checks"`
}

// Handler routes the three endpoints. checks is called on every /readyz.
func Handler(checks func(time.Time) []Check, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		rep := Report{Ready: true, Checks: checks(time.Now())}
		for _, c := range rep.Checks {
			if !c.OK {
				rep.Ready = false
				rep.Failing = append(rep.Failing, c.Name)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// Listen opens addr, which must pass config.ParseHealthAddr. A socket file
// left by an earlier run that crashed is replaced; any other file at the
// path is an error.
func Listen(addr string) (net.Listener, error) {
	network, address, err := config.ParseHealthAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("health_addr: %w", err)
	}
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil {
			if fi.Mode().Type() != fs.ModeSocket {
				return nil, fmt.Errorf("health_addr %s: exists and is not a socket", address)
			}
			if err := os.Remove(address); err != nil {
				return nil, fmt.Errorf("health_addr %s: remove stale socket: %w", address, err)
			}
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("health_addr: %w", err)
	}
	return ln, nil
}

// Serve answers on ln until ctx is done, then shuts down (waiting up to
// 5 s for requests in progress).
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("health server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("health server: %w", err)
	}
	return nil
}
