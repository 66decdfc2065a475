package ui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// corpusDir is the repository's rule corpus.
const corpusDir = "../../../rules"

// testPassword is every test user's password.
const testPassword = "correct horse battery staple"

// The corpus index takes seconds to load under -race: load it once.
var loadIndex = sync.OnceValues(func() (*posture.Index, error) { return posture.LoadIndex(corpusDir) })

// site is the API and the UI on one real HTTPS listener over a fresh
// SQLite store, as vigil-server serves them.
type site struct {
	t   *testing.T
	st  store.Store
	url string
	ts  *httptest.Server
}

// newSite starts a site.
func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	post := posture.NewService(st, idx, time.Now)
	a := api.New(api.Deps{Store: st, Posture: post, Sealer: box, CAPin: "sha256:" + strings.Repeat("ab", 32),
		AgentHeartbeat: 30 * time.Second, LoginLimit: 50})
	u, err := New(Deps{API: a, Store: st, Posture: post, CAPin: "sha256:" + strings.Repeat("ab", 32), GRPCAddr: "127.0.0.1:8444"})
	if err != nil {
		t.Fatal(err)
	}
	a.MountUI(u.Mount, u.NotFound)
	ts := httptest.NewTLSServer(a.Handler())
	t.Cleanup(ts.Close)
	return &site{t: t, st: st, url: ts.URL, ts: ts}
}

// addUser creates a user with testPassword (cheap hash parameters).
func (s *site) addUser(name, role string) store.User {
	s.t.Helper()
	h, err := password.HashWith(testPassword, password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		s.t.Fatal(err)
	}
	u, err := s.st.CreateUser(context.Background(), store.User{Username: name, PasswordHash: h, Role: role, CreatedAt: time.Now()})
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

// browser is a client with a cookie jar that does not follow redirects,
// so tests see each 303.
type browser struct {
	s    *site
	c    *http.Client
	csrf string
}

// newBrowser returns a browser signed in as a new user with role.
func (s *site) signIn(name, role string) *browser {
	s.t.Helper()
	s.addUser(name, role)
	b := s.browser()
	r := b.post("/login", url.Values{"username": {name}, "password": {testPassword}})
	if r.status != http.StatusSeeOther {
		s.t.Fatalf("sign in as %s: %d %s", name, r.status, r.body)
	}
	home := b.get("/")
	if m := regexp.MustCompile(`name="_csrf" value="([0-9a-f]+)"`).FindStringSubmatch(home.body); m != nil {
		b.csrf = m[1]
	}
	return b
}

// browser returns a client with no session.
func (s *site) browser() *browser {
	jar, _ := cookiejar.New(nil)
	// A copy: ts.Client() is one shared client, and each browser needs
	// its own cookie jar.
	c := *s.ts.Client()
	c.Jar = jar
	c.Timeout = 30 * time.Second
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{s: s, c: &c}
}

// page is a response.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest("GET", b.s.url+path, nil)
	return b.do(req)
}

// post sends a form; the browser's CSRF token is added unless the form
// has one.
func (b *browser) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok && b.csrf != "" {
		form.Set("_csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.url)
	return b.do(req)
}
