// Package ui is vigil-server's web interface: server-rendered HTML from Go
// templates, one stylesheet and a little JavaScript, all embedded in the
// binary, so it works air-gapped with no CDN and no separate web server.
// It mounts on the API's gin engine and uses the API's own sign-in, token
// resolution, permission matrix and audit log, so a role sees and may do
// in the browser exactly what it may do through the REST API.
package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// SessionCookie holds the session token of a signed-in browser.
const SessionCookie = "vigil_session"

// Deps is what the UI needs from the rest of the server.
type Deps struct {
	API     *api.Server
	Store   store.Store
	Posture *posture.Service
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
	// CAPin and GRPCAddr fill the enrol command shown with a new join token.
	CAPin    string
	GRPCAddr string
	// Wake nudges the scheduler and agent streams after "scan now".
	Wake func()
	// Notifier masks notification channels for display (the same
	// Notifier the API's Deps hold); the notifications page needs it.
	Notifier *notify.Notifier
}

// UI renders the pages.
type UI struct {
	d     Deps
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
}

// New parses every template once; a template error is a start-up error.
func New(d Deps) (*UI, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{d: d, log: d.Logger, now: d.Now, pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(u.funcs()).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", n, err)
		}
		u.pages[base] = t
	}
	return u, nil
}

// Mount registers the UI's routes on the API's engine (api.Deps.Mount).
func (u *UI) Mount(e *gin.Engine) {
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServer(http.FS(static))
	e.GET("/static/*path", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=3600")
		c.Request.URL.Path = c.Param("path")
		files.ServeHTTP(c.Writer, c.Request)
	})
	for _, r := range u.routes() {
		h := r.handler
		if r.perm != api.PermPublic {
			h = u.guard(r.perm, r.handler)
		}
		e.Handle(r.method, r.path, u.secureHeaders, h)
	}
}

// NotFound renders the 404 page for paths outside /api/ (api.Deps.NotFound).
func (u *UI) NotFound(c *gin.Context) {
	u.secureHeaders(c)
	req, _ := u.session(c)
	u.renderError(c, req, http.StatusNotFound, "There is no page at this address.")
}

// route is one page or form action.
type route struct {
	method, path string
	perm         api.Perm
	handler      gin.HandlerFunc
}

// Request is what a page handler knows about the signed-in user.
type Request struct {
	User  store.User
	Token store.Token
	CSRF  string // the value forms must echo in the _csrf field
	Path  string // the current path, for navigation highlighting
	Start time.Time
}

// Can reports whether the signed-in user's role holds the permission.
func (r *Request) Can(p string) bool { return r != nil && api.Allowed(r.User.Role, api.Perm(p)) }

const ctxRequest = "vigil.ui.request"

// req returns the signed-in request of a guarded handler.
func req(c *gin.Context) *Request {
	v, _ := c.Get(ctxRequest)
	r, _ := v.(*Request)
	return r
}

// session resolves the session cookie; nil when there is no valid session.
func (u *UI) session(c *gin.Context) (*Request, error) {
	ck, err := c.Cookie(SessionCookie)
	if err != nil || ck == "" {
		return nil, nil
	}
	pr, refusal, err := u.d.API.Resolve(c, ck)
	if err != nil || refusal != "" {
		return nil, err
	}
	api.SetPrincipal(c, pr)
	return &Request{User: pr.User, Token: pr.Token, CSRF: csrfFor(ck), Path: c.Request.URL.Path, Start: u.now()}, nil
}

// guard requires a session (else redirects to the sign-in page), the
// permission (else 403) and, on POST, a same-origin request carrying the
// session's CSRF token (else 403).
func (u *UI) guard(p api.Perm, h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, err := u.session(c)
		if err != nil {
			u.log.Error("ui session", "request_id", api.RequestID(c), "err", err)
			u.renderError(c, nil, http.StatusInternalServerError, "The server could not check your session.")
			return
		}
		if r == nil {
			next := c.Request.URL.RequestURI()
			if c.Request.Method != http.MethodGet {
				next = "/"
			}
			c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
			c.Abort()
			return
		}
		c.Set(ctxRequest, r)
		if c.Request.Method == http.MethodPost && !u.sameOrigin(c, r) {
			u.renderError(c, r, http.StatusForbidden, "This form was not sent from this site (missing or wrong CSRF token). Reload the page and try again.")
			return
		}
		if p != api.PermSelf && !api.Allowed(r.User.Role, p) {
			u.renderError(c, r, http.StatusForbidden, fmt.Sprintf("Your role (%s) may not do this: it needs the %s permission.", r.User.Role, p))
			return
		}
		h(c)
	}
}

// sameOrigin checks the form's CSRF token and, when the browser sends one,
// that the Origin names this host.
func (u *UI) sameOrigin(c *gin.Context, r *Request) bool {
	if o := c.GetHeader("Origin"); o != "" && o != "null" {
		ou, err := url.Parse(o)
		if err != nil || ou.Host != c.Request.Host {
			return false
		}
	}
	got := c.PostForm("_csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(r.CSRF)) == 1
}

// csrfFor derives a session's CSRF token from its session token. The
// cookie is HttpOnly and SameSite, so another site can neither read it nor
// compute the token; nothing needs to be stored.
func csrfFor(sessionToken string) string {
	sum := sha256.Sum256([]byte("vigil-csrf\x00" + sessionToken))
	return hex.EncodeToString(sum[:16])
}

// secureHeaders sets the headers every page carries.
func (u *UI) secureHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.Next()
}

// Page is what layout.html receives.
type Page struct {
	Title string
	Req   *Request
	Data  any
	Flash string // a one-line notice (success) shown above the content
	Error string // a one-line error shown above the content
	Nav   string // which navigation entry is current
	// ActiveAlerts is the number of active alerts, for the navigation
	// badge; filled by render for a signed-in user.
	ActiveAlerts int
}

// render executes page name with status; the render time is logged.
func (u *UI) render(c *gin.Context, status int, name string, p Page) {
	t, ok := u.pages[name]
	if !ok {
		u.log.Error("ui: no such template", "name", name)
		c.String(http.StatusInternalServerError, "internal error")
		c.Abort()
		return
	}
	if p.Req == nil {
		p.Req = req(c)
	}
	if p.Flash == "" {
		p.Flash = takeFlash(c)
	}
	if p.Req != nil && p.Req.Can(string(api.PermFleetRead)) {
		p.ActiveAlerts = u.activeAlerts(c)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		u.log.Error("ui render", "page", name, "request_id", api.RequestID(c), "err", err)
		c.String(http.StatusInternalServerError, "internal error rendering the page; see the server log for request "+api.RequestID(c))
		c.Abort()
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", []byte(b.String()))
	if p.Req != nil {
		u.log.Debug("ui page", "page", name, "request_id", api.RequestID(c), "render", u.now().Sub(p.Req.Start))
	}
}

// renderError renders the error page with status and a message for humans.
func (u *UI) renderError(c *gin.Context, r *Request, status int, msg string) {
	u.render(c, status, "error", Page{Title: http.StatusText(status), Req: r, Data: struct {
		Status int
		Text   string
		Msg    string
	}{status, http.StatusText(status), msg}})
	c.Abort()
}

// flashCookie carries a one-line notice across the redirect after a form
// post; a cookie rather than a query parameter, so a link cannot put words
// on a Vigil page.
const flashCookie = "vigil_flash"

// redirect answers a form post with 303 to path (a local path), carrying a
// flash message to the next page.
func (u *UI) redirect(c *gin.Context, path, flash string) {
	if flash != "" {
		http.SetCookie(c.Writer, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(flash), Path: "/",
			MaxAge: 60, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	}
	c.Redirect(http.StatusSeeOther, path)
	c.Abort()
}

// takeFlash reads and clears the flash cookie.
func takeFlash(c *gin.Context) string {
	v, err := c.Cookie(flashCookie)
	if err != nil || v == "" {
		return ""
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode})
	s, err := url.QueryUnescape(v)
	if err != nil || len(s) > 300 {
		return ""
	}
	return s
}
