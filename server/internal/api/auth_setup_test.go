package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/password"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// corpusDir is the repository's rule corpus, relative to this package.
const corpusDir = "../../../rules"

// testPassword is every test user's password unless a test says otherwise.
const testPassword = "correct horse battery"

// cheapHash makes test users' hashes fast; Verify reads the parameters
// from the hash, so logins against them exercise the real code path.
func cheapHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := password.HashWith(pw, password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fakeClock is the API's clock in tests: time moves only when a test
// says, so windows and expiries are exact without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one API server on a fresh SQLite store behind a real listener.
type env struct {
	t     *testing.T
	s     *Server
	st    store.Store
	url   string
	clock *fakeClock
	db    string // the SQLite file, for tests that tamper with it
}

// loadIndex loads the repository's rule corpus for the posture service
// the fleet handlers need.
func loadIndex(t *testing.T) *posture.Index {
	t.Helper()
	x, err := posture.LoadIndex(corpusDir)
	if err != nil {
		t.Fatalf("load rule corpus %s: %v", corpusDir, err)
	}
	return x
}

// newEnv starts a server on a fresh store with a fake clock and a login
// limit of 3 failures per minute; mod may change the Deps first. Deps.Posture
// is nil: loading the corpus takes seconds and these tests do not need it.
func newEnv(t *testing.T, mod func(*Deps)) *env {
	t.Helper()
	return startEnv(t, false, mod)
}

// startEnv is newEnv, with a posture service over the repository's rule
// corpus when withPosture is set (for walks through the fleet handlers).
func startEnv(t *testing.T, withPosture bool, mod func(*Deps)) *env {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "vigil.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := &fakeClock{t: time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)}
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{Store: st, Sealer: box, Now: clock.Now, LoginLimit: 3, LoginWindow: time.Minute}
	if mod != nil {
		mod(&d)
	}
	if withPosture {
		d.Posture = posture.NewService(st, loadIndex(t), clock.Now)
	}
	s := New(d)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, s: s, st: st, url: ts.URL, clock: clock, db: dbPath}
}

// addUser creates a user with testPassword directly in the store.
func (e *env) addUser(name, role string) store.User {
	e.t.Helper()
	u, err := e.st.CreateUser(context.Background(), store.User{
		Username: name, PasswordHash: cheapHash(e.t, testPassword), Role: role, CreatedAt: e.clock.Now(),
	})
	if err != nil {
		e.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// tokenFor mints an API token for a user directly in the store.
func (e *env) tokenFor(u store.User, expires time.Time) (string, store.Token) {
	e.t.Helper()
	plain, hash, err := newToken(store.TokenAPI)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.st.CreateToken(context.Background(), store.Token{
		UserID: u.ID, Kind: store.TokenAPI, Name: "test", Hash: hash, CreatedAt: e.clock.Now(), ExpiresAt: expires,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return plain, tok
}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v, failing the test on malformed JSON.
func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.status, r.body, err)
	}
}

// errorBody decodes an error response, failing when it has not the shape.
func (r resp) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	var b ErrorBody
	r.json(t, &b)
	if b.Error.Code == "" || b.RequestID == "" {
		t.Fatalf("status %d body %s is not the error shape", r.status, r.body)
	}
	return b
}

// do sends a request with an optional bearer token and JSON body.
func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	return e.doFrom(http.DefaultClient, method, path, token, body)
}

// doFrom is do through a given client (for example one bound to another
// loopback source address).
func (e *env) doFrom(client *http.Client, method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// clientFrom returns an HTTP client whose connections come from the given
// loopback address, so tests can be several source addresses for real.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// login posts credentials and returns the response.
func (e *env) login(client *http.Client, username, pw string) resp {
	e.t.Helper()
	return e.doFrom(client, "POST", "/api/v1/auth/login", "", map[string]string{"username": username, "password": pw})
}

// auditEntries returns the whole audit log, oldest first.
func (e *env) auditEntries() []store.AuditEntry {
	e.t.Helper()
	var all []store.AuditEntry
	var after int64
	for range 1000 {
		page, err := e.st.Audit(context.Background(), store.AuditFilter{AfterID: after, Limit: 500})
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 500 {
			return all
		}
		after = page[len(page)-1].ID
	}
	e.t.Fatal("audit log longer than the test expects")
	return nil
}

// auditCount is the number of audit entries (ids are 1..N).
func (e *env) auditCount() int64 {
	e.t.Helper()
	last, err := e.st.Audit(context.Background(), store.AuditFilter{Limit: 1, Desc: true})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(last) == 0 {
		return 0
	}
	return last[0].ID
}
