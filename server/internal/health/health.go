// Package health answers the liveness and readiness probes operators and
// orchestrators poll: /healthz says the process runs, /readyz says it can
// do its work. Neither needs authentication, so neither says more than
// the name of a failing check: no addresses, paths or error text.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Check is the outcome of one readiness check; Err nil means passing.
// Name is what the probe's body shows; Err is only logged.
type Check struct {
	Name string
	Err  error
}

// Probe runs every readiness check within ctx and reports each, in a
// stable order.
type Probe func(ctx context.Context) []Check

// Body is the JSON both endpoints answer with.
type Body struct {
	Status string            `json:"status"`           // "ok", "ready" or "not ready"
	Checks map[string]string `json:"checks,omitempty"` // check name: "ok" or "failing"
	// Failing names the failing checks, in probe order.
	Failing []string `json:"failing,omitempty"`
}

// Live answers 200 while the process can serve HTTP at all.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, Body{Status: "ok"})
	})
}

// Ready answers 200 when every check of probe passes and 503 naming the
// failing ones otherwise. The probe gets timeout; a failing check's error
// goes to log (at warn), never to the client.
func Ready(probe Probe, timeout time.Duration, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		b := Body{Status: "ready", Checks: map[string]string{}}
		for _, c := range probe(ctx) {
			if c.Err == nil {
				b.Checks[c.Name] = "ok"
				continue
			}
			b.Checks[c.Name] = "failing"
			b.Failing = append(b.Failing, c.Name)
			log.Warn("readiness check failing", "check", c.Name, "err", c.Err)
		}
		code := http.StatusOK
		if len(b.Failing) > 0 {
			b.Status, code = "not ready", http.StatusServiceUnavailable
		}
		write(w, code, b)
	})
}

func write(w http.ResponseWriter, code int, b Body) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(b) // the client went away; nothing to do
}
