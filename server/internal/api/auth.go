package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// dummyHash is the argon2id hash (default parameters) of a random password
// nobody knows. Login verifies against it when the username does not
// exist, so unknown users and wrong passwords take the same time.
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$E3SNO4Z0Q6TBhwUyaeqL5Q$1qsxsCVE8LyFjU43z/iH/WqN/jieC6VGkO5L+MRG92Y"

// touchEvery throttles TouchToken: last-used times are for humans deciding
// which tokens to revoke, so minute precision is plenty and it spares the
// database a write per request.
const touchEvery = time.Minute

// maxLoginName bounds the username a login may name; longer names cannot
// exist (see ValidUsername) and would only bloat the audit log.
const maxLoginName = 64

// msgBadLogin is the one answer to every failed login, so the response
// does not tell which usernames exist.
const msgBadLogin = "invalid username or password"

// authenticate requires "Authorization: Bearer TOKEN", looks the token up
// by its SHA-256 and refuses a revoked or expired token or a disabled
// user with 401. It sets the Principal for the handlers after it.
func (s *Server) authenticate(c *gin.Context) {
	plain, ok := bearer(c.GetHeader("Authorization"))
	if !ok {
		unauthenticated(c, false, "a bearer token is required: Authorization: Bearer TOKEN")
		return
	}
	pr, refusal, err := s.Resolve(c, plain)
	switch {
	case err != nil:
		s.internal(c, err)
		return
	case refusal != "":
		unauthenticated(c, true, refusal)
		return
	}
	c.Set(ctxPrincipal, pr)
	c.Next()
}

// Resolve looks a presented token up by its SHA-256 and returns its
// principal, or a refusal (unknown, revoked, expired, disabled account)
// to show the caller; err is a server-side failure. It records the
// token's use at most once a minute. The web UI resolves its session
// cookie with it.
func (s *Server) Resolve(c *gin.Context, plain string) (pr *Principal, refusal string, err error) {
	if _, ok := tokenKindOf(plain); !ok {
		return nil, "the bearer token is not a vigil token", nil
	}
	tok, user, err := s.d.Store.TokenByHash(c.Request.Context(), hashToken(plain))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "the bearer token is unknown", nil
	case err != nil:
		return nil, "", fmt.Errorf("authenticate: look up token: %w", err)
	}
	now := s.now()
	switch {
	case !tok.RevokedAt.IsZero():
		return nil, "the bearer token has been revoked", nil
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		return nil, "the bearer token has expired", nil
	case user.Disabled:
		return nil, "the account is disabled", nil
	}
	if now.Sub(tok.LastUsedAt) >= touchEvery {
		// Best effort: a failed touch must not refuse a valid caller.
		if err := s.d.Store.TouchToken(c.Request.Context(), tok.ID, now); err != nil {
			s.log.Warn("record token use", "request_id", RequestID(c), "token_id", tok.ID, "err", err)
		} else {
			tok.LastUsedAt = now
		}
	}
	return &Principal{User: user, Token: tok}, "", nil
}

// bearer extracts the token from an Authorization header value.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// unauthenticated answers 401 with the WWW-Authenticate challenge RFC 6750
// asks for; invalid says a token was presented but refused.
func unauthenticated(c *gin.Context, invalid bool, msg string) {
	ch := `Bearer realm="vigil"`
	if invalid {
		ch += `, error="invalid_token"`
	}
	c.Header("WWW-Authenticate", ch)
	fail(c, http.StatusUnauthorized, "unauthenticated", "", msg)
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// userView is a user as the API shows it: never the password hash.
type userView struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	Role        string     `json:"role"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

func viewUser(u store.User) userView {
	v := userView{ID: u.ID, Username: u.Username, Role: u.Role, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC()}
	v.LastLoginAt = optTime(u.LastLoginAt)
	return v
}

// optTime is nil for the zero time, so JSON omits "never".
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// login exchanges a username and password for a session token. Failures
// are counted per source address and per username; past the limit the
// caller gets 429 until the window has moved on.
func (s *Server) login(c *gin.Context) {
	var req loginRequest
	if !bind(c, &req) {
		return
	}
	switch {
	case req.Username == "":
		badRequest(c, "username", "username is required")
		return
	case len(req.Username) > maxLoginName:
		badRequest(c, "username", "username is longer than %d bytes", maxLoginName)
		return
	case req.Password == "":
		badRequest(c, "password", "password is required")
		return
	case len(req.Password) > password.MaxLength:
		badRequest(c, "password", "password is longer than %d bytes", password.MaxLength)
		return
	}
	plain, tok, user, ferr := s.SignIn(c, req.Username, req.Password)
	switch {
	case ferr == nil:
	case ferr.Err != nil:
		s.internal(c, ferr.Err)
		return
	default:
		if ferr.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(ferr.RetryAfter.Seconds()))))
		}
		fail(c, ferr.Status, ferr.Code, "", ferr.Message)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": plain, "expires_at": tok.ExpiresAt.UTC(), "user": viewUser(user)})
}

// SignInError says why SignIn refused: Status is the HTTP status (401,
// 429, 503 or 500), RetryAfter is set with 429, Err holds the cause of a
// 500 for the log.
type SignInError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *SignInError) Error() string { return e.Message }

// SignIn checks a username and password under the login rate limit and,
// when they are right, mints a session token, records the login and audits
// it (failed attempts are audited too). It answers nothing itself, so the
// REST API and the web UI can each present the outcome their own way.
func (s *Server) SignIn(c *gin.Context, username, pw string) (plain string, tok store.Token, user store.User, fail *SignInError) {
	ipKey, userKey := "ip:"+c.ClientIP(), "user:"+strings.ToLower(username)
	if wait, ok := s.limiter.attempt(ipKey, userKey); !ok {
		s.log.Warn("login rate limited", "request_id", RequestID(c), "source", c.ClientIP(), "username", username)
		return "", tok, user, &SignInError{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: wait,
			Message: "too many failed logins from this address or for this user; retry later"}
	}
	release, err := s.limiter.verifySlot(c.Request.Context())
	if err != nil {
		return "", tok, user, &SignInError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "too many logins in progress; retry"}
	}
	user, reason, err := s.checkPassword(c, loginRequest{Username: username, Password: pw})
	release()
	if err != nil {
		return "", tok, user, &SignInError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
	}
	if reason != "" {
		if err := s.appendAudit(c, username, "auth.login_failed", "", map[string]string{"reason": reason}); err != nil {
			return "", tok, store.User{}, &SignInError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
		}
		return "", tok, store.User{}, &SignInError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: msgBadLogin}
	}
	s.limiter.succeeded(userKey, ipKey)

	now := s.now()
	plain, tok, err = s.mintToken(c, user.ID, store.TokenSession, "login from "+c.ClientIP(), now.Add(s.d.SessionTTL))
	if err != nil {
		return "", tok, user, &SignInError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
	}
	if err := s.d.Store.TouchLogin(c.Request.Context(), user.ID, now); err != nil {
		s.log.Warn("record login time", "request_id", RequestID(c), "user_id", user.ID, "err", err)
	}
	user.LastLoginAt = now
	if err := s.appendAudit(c, user.Username, "auth.login", fmt.Sprintf("user/%d", user.ID),
		map[string]any{"token_id": tok.ID, "expires_at": tok.ExpiresAt.UTC()}); err != nil {
		// The caller never sees the token; do not leave it usable.
		if rerr := s.d.Store.RevokeToken(c.Request.Context(), tok.ID, now); rerr != nil {
			s.log.Error("revoke unaudited session", "request_id", RequestID(c), "token_id", tok.ID, "err", rerr)
		}
		return "", store.Token{}, user, &SignInError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
	}
	return plain, tok, user, nil
}

// checkPassword returns the user when the password is right and the
// account enabled; otherwise a reason for the audit log ("unknown_user",
// "bad_password", "disabled"). It always runs one argon2id verification.
func (s *Server) checkPassword(c *gin.Context, req loginRequest) (store.User, string, error) {
	user, err := s.d.Store.UserByName(c.Request.Context(), req.Username)
	if errors.Is(err, store.ErrNotFound) {
		_, _ = password.Verify(req.Password, dummyHash)
		return store.User{}, "unknown_user", nil
	}
	if err != nil {
		return store.User{}, "", fmt.Errorf("login %q: %w", req.Username, err)
	}
	ok, err := password.Verify(req.Password, user.PasswordHash)
	if err != nil {
		// A corrupted hash is the operator's problem, not the caller's:
		// log it and answer as for a wrong password.
		s.log.Error("stored password hash unusable", "request_id", RequestID(c), "user_id", user.ID, "err", err)
		return store.User{}, "bad_hash", nil
	}
	switch {
	case !ok:
		return store.User{}, "bad_password", nil
	case user.Disabled:
		return store.User{}, "disabled", nil
	}
	return user, "", nil
}

// logout revokes the token the request was made with.
func (s *Server) logout(c *gin.Context) {
	if err := s.SignOut(c); err != nil {
		s.internal(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// SignOut revokes the token of the principal set on c and audits it
// ("auth.logout"); the REST API's logout and the web UI's sign-out both
// end sessions through it.
func (s *Server) SignOut(c *gin.Context) error {
	pr := principal(c)
	if pr == nil {
		return errors.New("sign out: no signed-in principal")
	}
	if err := s.d.Store.RevokeToken(c.Request.Context(), pr.Token.ID, s.now()); err != nil {
		return fmt.Errorf("logout: revoke token %d: %w", pr.Token.ID, err)
	}
	return s.AppendAudit(c, "auth.logout", fmt.Sprintf("token/%d", pr.Token.ID), map[string]string{"kind": string(pr.Token.Kind)})
}

// me returns the caller's account and what its role may do, so a client
// can shape its interface without trial and error.
func (s *Server) me(c *gin.Context) {
	pr := principal(c)
	perms := []Perm{}
	for _, p := range allPerms() {
		if Allowed(pr.User.Role, p) {
			perms = append(perms, p)
		}
	}
	c.JSON(http.StatusOK, gin.H{"user": viewUser(pr.User), "permissions": perms,
		"token": viewToken(pr.Token, pr.Token.ID)})
}

// loginLimiter counts failed logins per key (a source address or a
// username) in a sliding window, and bounds how many password checks run
// at once. It lives in memory: each replica counts on its own, which
// bounds guessing per replica, and restarts forgive.
//
// An attempt is counted as a failure when it starts and forgiven if it
// succeeds, so a burst of parallel guesses cannot all slip in before the
// first failure is recorded.
type loginLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	max    int                    // keys kept at most
	fails  map[string][]time.Time // attempt times within the window, oldest first

	// slots bounds concurrent argon2id verifications: each takes 64 MiB,
	// so a flood of logins must queue rather than exhaust memory.
	slots chan struct{}
}

// maxLimiterKeys bounds the limiter's memory: about 10 000 keys of at most
// `limit` timestamps each.
const maxLimiterKeys = 10000

// maxConcurrentVerify is how many password checks may run at once
// (4 x 64 MiB).
const maxConcurrentVerify = 4

func newLoginLimiter(n int, w time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{limit: n, window: w, now: now, max: maxLimiterKeys, fails: map[string][]time.Time{},
		slots: make(chan struct{}, maxConcurrentVerify)}
}

// attempt starts a login attempt. If any key has used up its failures it
// returns how long until the oldest leaves the window and false; otherwise
// it counts the attempt against every key and returns true.
func (l *loginLimiter) attempt(keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		f := l.prune(k, now)
		if len(f) >= l.limit {
			wait = max(wait, f[0].Add(l.window).Sub(now), time.Second)
		}
	}
	if wait > 0 {
		return wait, false
	}
	for _, k := range keys {
		f := l.fails[k]
		if f == nil && len(l.fails) >= l.max {
			l.evict(now)
		}
		l.fails[k] = append(f, now)
	}
	return 0, true
}

// succeeded forgives a successful attempt: the username's failures are
// cleared, and one attempt is taken back from each other key.
func (l *loginLimiter) succeeded(userKey string, others ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, userKey)
	for _, k := range others {
		if f := l.fails[k]; len(f) > 1 {
			l.fails[k] = f[:len(f)-1]
		} else {
			delete(l.fails, k)
		}
	}
}

// verifySlot waits for a free password-check slot; release gives it back.
func (l *loginLimiter) verifySlot(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a password check slot: %w", ctx.Err())
	}
}

// prune drops a key's attempts that left the window; it returns what is
// left (nil, and the key removed, when nothing is).
func (l *loginLimiter) prune(k string, now time.Time) []time.Time {
	f := l.fails[k]
	i := 0
	for i < len(f) && !now.Before(f[i].Add(l.window)) {
		i++
	}
	if i == len(f) {
		delete(l.fails, k)
		return nil
	}
	if i > 0 {
		f = f[i:]
		l.fails[k] = f
	}
	return f
}

// evict makes room for one key: first every expired key goes, and if the
// map is still full, the key whose latest attempt is oldest.
func (l *loginLimiter) evict(now time.Time) {
	for k := range l.fails {
		l.prune(k, now)
	}
	if len(l.fails) < l.max {
		return
	}
	var oldest string
	var at time.Time
	for k, f := range l.fails {
		if last := f[len(f)-1]; oldest == "" || last.Before(at) {
			oldest, at = k, last
		}
	}
	delete(l.fails, oldest)
}
