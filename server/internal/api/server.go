// Package api is vigil-server's REST API: JSON over HTTPS under /api/v1,
// bearer-token authentication, a role-based permission on every route, an
// audit entry for every state-changing call. The route table in routes.go
// is the single list of endpoints; openapi.yaml documents it and a test
// keeps the two in step.
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Sealer encrypts secrets (SSH credentials) before they reach the store;
// aad binds the ciphertext to its owner (for example "host/12").
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
}

// Deps is what the API needs from the rest of the server.
type Deps struct {
	Store   store.Store
	Posture *posture.Service
	Sealer  Sealer
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
	// Wake nudges the scheduler after a scan is requested; nil is allowed.
	Wake func()
	// SessionTTL is how long a login session lasts; 0 means 12 h.
	SessionTTL time.Duration
	// LoginLimit is how many failed logins one source or username may make
	// per LoginWindow before further attempts are refused with 429;
	// 0 means 5 per minute.
	LoginLimit  int
	LoginWindow time.Duration
	// MaxBodyBytes caps request bodies; 0 means 1 MiB.
	MaxBodyBytes int64
	// Mount registers further routes (the web UI) on the same engine, with
	// the same request ids, recovery and body cap; NotFound answers paths
	// outside /api/ that no route matches. Both may be nil.
	Mount    func(e *gin.Engine)
	NotFound gin.HandlerFunc
	// CAPin is the agent CA's pin ("sha256:<hex>"), returned with every
	// enrolment token so that the agent can check the server it enrols with.
	CAPin string
	// AgentHeartbeat is the interval agents send heartbeats at; an agent
	// silent for three of them is shown offline. 0 means 30 s.
	AgentHeartbeat time.Duration
	// Governance applies exceptions and alert actions; Notifier manages
	// notification channels; Exporter writes signed exports. Required for
	// the governance routes.
	Governance *governance.Service
	Notifier   *notify.Notifier
	Exporter   *export.Exporter
	// Observe is told about every served request (route pattern, "" when
	// none matched; method; status; latency), for metrics; nil is allowed.
	Observe func(route, method string, code int, d time.Duration)
}

// Server holds the API's dependencies and per-process state.
type Server struct {
	d       Deps
	log     *slog.Logger
	now     func() time.Time
	limiter *loginLimiter
}

// New returns the API as an http.Handler (a gin engine in release mode).
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.SessionTTL == 0 {
		d.SessionTTL = 12 * time.Hour
	}
	if d.LoginLimit == 0 {
		d.LoginLimit = 5
	}
	if d.LoginWindow == 0 {
		d.LoginWindow = time.Minute
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.AgentHeartbeat == 0 {
		d.AgentHeartbeat = 30 * time.Second
	}
	s := &Server{d: d, log: d.Logger, now: d.Now}
	s.limiter = newLoginLimiter(d.LoginLimit, d.LoginWindow, d.Now)
	return s
}

// MountUI sets Deps.Mount and Deps.NotFound after New, for a front end
// (the web UI) that itself needs the *Server; call it before Handler.
func (s *Server) MountUI(mount func(e *gin.Engine), notFound gin.HandlerFunc) {
	s.d.Mount, s.d.NotFound = mount, notFound
}

// Handler builds the gin engine with every route of the table.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// The client address is the TCP peer: forwarded headers are not
	// trusted, so nobody can spoof their way past the login limiter or into
	// the audit log's source field.
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	e.Use(s.requestID, s.recover, s.capBody)
	e.NoRoute(func(c *gin.Context) {
		if s.d.NotFound != nil && !strings.HasPrefix(c.Request.URL.Path, "/api/") {
			s.d.NotFound(c)
			return
		}
		fail(c, http.StatusNotFound, "not_found", "", "no such endpoint")
	})
	e.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method_not_allowed", "", "method not allowed on this endpoint")
	})
	for _, r := range s.routes() {
		handlers := []gin.HandlerFunc{}
		if r.Perm != PermPublic {
			handlers = append(handlers, s.authenticate, s.authorize(r.Perm))
		}
		handlers = append(handlers, r.Handler)
		e.Handle(r.Method, r.Path, handlers...)
	}
	if s.d.Mount != nil {
		s.d.Mount(e)
	}
	return e
}

// requestID gives every request an id (the caller's X-Request-ID when it
// is sane) that appears in logs, audit entries and error bodies.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !saneRequestID(id) {
		id = newRequestID()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	start := time.Now() // latency is measured on the real clock, whatever Deps.Now says
	c.Next()
	d := time.Since(start)
	code := c.Writer.Status()
	level := slog.LevelDebug
	if code < 200 || code > 299 {
		level = slog.LevelInfo
	}
	s.log.Log(c.Request.Context(), level, "http request", "request_id", id, "method", c.Request.Method,
		"route", c.FullPath(), "status", code, "duration", d, "client", c.ClientIP())
	if s.d.Observe != nil {
		s.d.Observe(c.FullPath(), c.Request.Method, code, d)
	}
}

// recover turns a handler panic into a logged 500 with a JSON body.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("handler panic", "request_id", RequestID(c), "route", c.FullPath(), "panic", v)
			if !c.Writer.Written() {
				fail(c, http.StatusInternalServerError, "internal", "", "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

// capBody limits request bodies; reading past the cap fails the JSON
// decode, which bind reports as 413.
func (s *Server) capBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.d.MaxBodyBytes)
	}
	c.Next()
}

// internal answers 500 for a server-side failure, logging the cause once;
// a wrapped store.ErrNotFound or store.ErrConflict becomes 404 or 409.
func (s *Server) internal(c *gin.Context, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "not_found", "", err.Error())
	case errors.Is(err, store.ErrConflict):
		fail(c, http.StatusConflict, "conflict", "", err.Error())
	default:
		s.log.Error("request failed", "request_id", RequestID(c), "route", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "internal", "", "internal error; see the server log for request "+RequestID(c))
	}
}

// Principal is the signed-in caller, set by authenticate.
type Principal struct {
	User  store.User
	Token store.Token
}

// SetPrincipal marks c as made by pr, for handlers outside the route table
// (the web UI) that call AppendAudit.
func SetPrincipal(c *gin.Context, pr *Principal) { c.Set(ctxPrincipal, pr) }

// principal returns the caller of an authenticated route.
func principal(c *gin.Context) *Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(*Principal)
	return pr
}
