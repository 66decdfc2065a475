package ui

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/password"
)

// maxLoginName mirrors the API's bound: no longer username can exist.
const maxLoginName = 64

// loginData is what login.html shows.
type loginData struct {
	Username string
	Next     string
}

// loginPage shows the sign-in form; a signed-in browser goes home.
func (u *UI) loginPage(c *gin.Context) {
	r, err := u.session(c)
	if err != nil {
		u.log.Error("ui session", "err", err)
	}
	if r != nil {
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		return
	}
	u.render(c, http.StatusOK, "login", Page{Title: "Sign in", Data: loginData{Next: safeNext(c.Query("next"))}})
}

// loginSubmit signs in through the API's SignIn (rate limit, audit,
// session token) and hands the token to the browser as an HttpOnly,
// Secure, SameSite cookie.
//
// Login CSRF (another site signing the victim into the attacker's
// account) is refused by the browser's own provenance headers: Origin,
// which every current browser sends on a form POST, and Sec-Fetch-Site and
// Referer as fallbacks. A pre-session double-submit cookie would add
// nothing a browser that sends none of the three cannot also get wrong,
// and it would make sign-in depend on having loaded the form first.
func (u *UI) loginSubmit(c *gin.Context) {
	next := safeNext(c.PostForm("next"))
	if !u.sameSite(c) {
		u.renderError(c, nil, http.StatusForbidden, "This sign-in form was not sent from this site. Open the sign-in page and try again.")
		return
	}
	// Usernames are lower case (api.ValidUsername), so "Alice" means alice.
	name, pw := strings.ToLower(strings.TrimSpace(c.PostForm("username"))), c.PostForm("password")
	data := loginData{Username: name, Next: next}
	switch {
	case name == "" || pw == "":
		u.render(c, http.StatusBadRequest, "login", Page{Title: "Sign in", Data: data, Error: "Enter your username and password."})
		return
	case len(name) > maxLoginName || len(pw) > password.MaxLength:
		// Such an account cannot exist; answer as for any wrong login.
		u.render(c, http.StatusUnauthorized, "login", Page{Title: "Sign in", Data: data, Error: "Invalid username or password."})
		return
	}
	plain, tok, _, ferr := u.d.API.SignIn(c, name, pw)
	if ferr != nil {
		if ferr.Err != nil {
			u.log.Error("ui sign in", "request_id", api.RequestID(c), "err", ferr.Err)
		}
		msg := "Invalid username or password."
		switch {
		case ferr.Status == http.StatusTooManyRequests:
			secs := int(math.Ceil(ferr.RetryAfter.Seconds()))
			c.Header("Retry-After", fmt.Sprint(secs))
			msg = fmt.Sprintf("Too many failed sign-ins from this address or for this user. Try again in %d seconds.", secs)
		case ferr.Status == http.StatusServiceUnavailable:
			msg = "Too many sign-ins are in progress. Try again in a moment."
		case ferr.Status >= http.StatusInternalServerError:
			msg = "The server could not sign you in; see the server log for request " + api.RequestID(c) + "."
		}
		u.render(c, ferr.Status, "login", Page{Title: "Sign in", Data: data, Error: msg})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: plain, Path: "/", Expires: tok.ExpiresAt,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, next)
}

// logout ends the session (revoked in the store, audited as the API's
// logout is) and clears the cookie.
func (u *UI) logout(c *gin.Context) {
	if err := u.d.API.SignOut(c); err != nil {
		u.log.Error("ui sign out", "request_id", api.RequestID(c), "err", err)
		u.renderError(c, req(c), http.StatusInternalServerError, "The server could not end your session; see the server log for request "+api.RequestID(c)+".")
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	u.redirect(c, "/login", "You have signed out.")
}

// sameSite reports whether a form post without a session comes from this
// site, judged by Origin, else Sec-Fetch-Site, else Referer; a request
// with none of them (not a browser, or a very old one) is let through,
// since it cannot carry another site's intent.
func (u *UI) sameSite(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" {
		ou, err := url.Parse(o)
		return err == nil && o != "null" && ou.Host == c.Request.Host
	}
	if s := c.GetHeader("Sec-Fetch-Site"); s != "" {
		return s == "same-origin" || s == "none"
	}
	if ref := c.GetHeader("Referer"); ref != "" {
		ru, err := url.Parse(ref)
		return err == nil && ru.Host == c.Request.Host
	}
	return true
}

// safeNext returns next when it is a path on this site, else "/": it must
// start with one "/" (not "//", which browsers read as another host) and
// hold no backslash or control character (some browsers read "/\" as
// "//").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || len(next) > 2048 {
		return "/"
	}
	for _, r := range next {
		if r == '\\' || r < 0x20 || r == 0x7f {
			return "/"
		}
	}
	pu, err := url.Parse(next)
	if err != nil || pu.Scheme != "" || pu.Host != "" || strings.HasPrefix(pu.Path, "/login") {
		return "/"
	}
	return next
}
