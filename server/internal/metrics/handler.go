package metrics

import (
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the registry in the Prometheus text format. With a
// token, every scrape must send "Authorization: Bearer <token>" (401
// otherwise). Without one, only scrapes from a loopback address are
// answered (403 otherwise), so a server listening on every interface does
// not publish its fleet's shape to the network by default.
func (m *Metrics) Handler(token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prom := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vigil metrics"`)
				http.Error(w, "metrics need the configured bearer token", http.StatusUnauthorized)
				return
			}
		} else if !loopback(r.RemoteAddr) {
			http.Error(w, "metrics are served to loopback clients only unless a metrics token is configured", http.StatusForbidden)
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// loopback reports whether a request's peer address is on this machine.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
