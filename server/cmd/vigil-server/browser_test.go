package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilfleet/vigil/engine/testtarget"
)

// chromiumPath is where Debian's chromium package (and .ci/run) puts the
// browser.
const chromiumPath = "/usr/bin/chromium"

// shotDir receives a full-page PNG of every page the browser test visits
// (repository-root artifacts/, which Git ignores).
const shotDir = "../../../artifacts/ui"

// windowWidth is the browser window's width: a common laptop screen.
const windowWidth = 1280

// stepTimeout bounds every single browser step (a navigation, a click and
// the page load it causes, a query).
const stepTimeout = 45 * time.Second

// uiFixture is a running vigil-server with one agentless host that is a
// real sshd target, one completed scan of it with findings and evidence,
// an admin and a viewer.
type uiFixture struct {
	srv    *server
	token  string // the admin's API token
	hostID int64
	scanID int64
	pin    string // base64 SHA-256 of the server certificate's SPKI
}

// viewerName is the second, read-only user of the browser test.
const viewerName = "viewer"

// newUIFixture starts the server and fills it the way an operator would:
// admin create on the command line, the rest through the REST API.
func newUIFixture(t *testing.T) *uiFixture {
	t.Helper()
	dir := t.TempDir()
	if out, err := vs(t, "", "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword+"\n", "admin", "create", "--data-dir", dir, "--username", "admin", "--password-stdin"); err != nil {
		t.Fatalf("admin create: %v %s", err, out)
	}
	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	key, err := os.ReadFile(tgt.RootKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(tgt.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir)
	fx := &uiFixture{srv: s, token: s.login(t), pin: spkiPin(t, filepath.Join(dir, "tls", "server.crt"))}

	var h struct {
		ID int64 `json:"id"`
	}
	if code := s.call(t, "POST", "/api/v1/hosts", fx.token, map[string]any{"name": "target-1", "address": tgt.IP(),
		"ssh": map[string]any{"user": "root", "port": tgt.Port(), "private_key": string(key), "known_hosts": string(known)}}, &h); code != 201 || h.ID == 0 {
		t.Fatalf("create host: %d", code)
	}
	fx.hostID = h.ID
	if code := s.call(t, "POST", "/api/v1/users", fx.token, map[string]string{"username": viewerName, "password": adminPassword, "role": "viewer"}, nil); code != 201 {
		t.Fatalf("create viewer: %d", code)
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", h.ID), fx.token, nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	fx.scanID = fx.waitScan(t, 0)
	return fx
}

// waitScan waits (at most 90 s) until the host's newest scan is newer than
// after and finished, and returns its id; the scan must have completed
// with both passing and failing findings.
func (fx *uiFixture) waitScan(t *testing.T, after int64) int64 {
	t.Helper()
	var scans struct {
		Scans []struct {
			ID     int64
			Status string
			Counts struct{ Pass, Fail int }
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		fx.srv.call(t, "GET", fmt.Sprintf("/api/v1/hosts/%d/scans", fx.hostID), fx.token, nil, &scans)
		if len(scans.Scans) > 0 && scans.Scans[0].ID > after && scans.Scans[0].Status != "running" {
			sc := scans.Scans[0]
			if sc.Status != "completed" || sc.Counts.Pass == 0 || sc.Counts.Fail == 0 {
				t.Fatalf("scan %+v", sc)
			}
			return sc.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished scan after %d within 90s: %+v", after, scans)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// spkiPin is the base64 SHA-256 of the certificate's public key, the form
// Chromium's --ignore-certificate-errors-spki-list takes.
func spkiPin(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", certFile, err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestBrowser drives the web UI in headless Chromium against the real
// binary: sign in through the form, visit every page, trigger a scan, open
// evidence, use time travel, create a join token, then check a viewer's
// view. It fails on any console error, uncaught exception, CSP violation,
// failed subresource or broken same-origin link, and saves a screenshot of
// every page under artifacts/ui/.
func TestBrowser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no browser at %s (apt-get install chromium; CI always has it): %v", chromiumPath, err)
	}
	if err := os.MkdirAll(shotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(shotDir, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	fx := newUIFixture(t)
	browser := startBrowser(t, fx.pin)

	admin := newTab(t, browser, fx.srv.base, "admin")
	admin.signIn("admin", adminPassword)
	admin.selfCheck()
	admin.visitAll(fx)

	viewer := newTab(t, browser, fx.srv.base, viewerName)
	viewer.signIn(viewerName, adminPassword)
	viewer.checkViewer(fx)

	// Every same-origin link the pages showed must resolve for the user
	// who saw it.
	admin.checkLinks(fx.srv.client)
	viewer.checkLinks(fx.srv.client)
	// Each tab's cleanup reports its timings and what its browser logged,
	// also when a step above stopped the test early.
}

// startBrowser launches headless Chromium with a fresh profile and returns
// the browser's root context; the test's cleanup closes it.
func startBrowser(t *testing.T, pin string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(windowWidth, 900),
		// The server presents the self-signed certificate it generated into
		// the test's own temporary data directory, on a loopback port. This
		// flag accepts exactly that certificate's public key (and no other
		// certificate error), the browser's equivalent of the RootCAs pin the
		// test's HTTP client uses; the browser talks to nothing else.
		chromedp.Flag("ignore-certificate-errors-spki-list", pin),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	// The first Run starts the browser; it must not carry a timeout, which
	// would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx)
		cancel()
		cancelAlloc()
	})
	return ctx
}

// scanLinkRE matches a link to a scan page (not to a scan's evidence).
var scanLinkRE = regexp.MustCompile(`^/scans/(\d+)$`)

// visitAll is the admin's walk through every page.
func (b *tab) visitAll(fx *uiFixture) {
	t := b.t
	b.visit("dashboard", "/")
	b.visit("hosts", "/hosts")
	b.mustLink(fmt.Sprintf("/hosts/%d", fx.hostID))

	hostPath := fmt.Sprintf("/hosts/%d", fx.hostID)
	b.visit("host", hostPath)
	scanPath := fmt.Sprintf("/scans/%d", fx.scanID)
	b.mustLink(scanPath)

	b.visit("scan", scanPath)
	b.click("evidence", "main a[href^='/scans/'][href*='/results/']")
	if loc := b.location(); !regexp.MustCompile(`^/scans/\d+/results/[^/]+$`).MatchString(loc) {
		t.Errorf("the finding link led to %s, not to evidence", loc)
	}
	b.mustText("evidence", "Expected", "Actual")

	b.visit("history", "/history")
	past := time.Now().UTC().Add(-24 * time.Hour) // yesterday: before the first scan
	b.submitHistory(past)

	b.visit("rules", "/rules")
	b.click("rule", "main a[href^='/rules/']")
	if loc := b.location(); !strings.HasPrefix(loc, "/rules/") {
		t.Errorf("the rule link led to %s", loc)
	}
	b.visit("frameworks", "/frameworks")
	// NIST SP 800-53 maps most of the corpus, so its page has controls and
	// covering rules to show (some catalogues map no rule yet).
	b.click("framework", "main a[href='/frameworks/nist_800_53']")
	if loc := b.location(); !strings.HasPrefix(loc, "/frameworks/") {
		t.Errorf("the framework link led to %s", loc)
	}

	b.visit("agents", "/agents")
	// The token is shown once, on the page that answers the post (201
	// Created), not after a redirect: it must not travel in a cookie or URL.
	b.clickStatus("agents-token", "form[action='/agents/tokens'] button[type=submit]", http.StatusCreated)
	b.mustText("agents-token", "vigil-agent enroll", "--token", "--ca-pin")

	b.visit("users", "/users")
	b.mustText("users", viewerName)
	b.visit("audit", "/audit")
	b.mustText("audit", "admin")

	// Scan now: the host page's button queues a scan, which then shows up
	// in the host's scan history.
	b.reload(hostPath) // already checked and saved above
	before := b.scanIDs()
	b.click("host-scan-requested", fmt.Sprintf("form[action='/hosts/%d/scan'] button[type=submit]", fx.hostID))
	if loc := b.location(); loc != hostPath {
		t.Errorf("scan now led to %s, want %s", loc, hostPath)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ids := b.scanIDs()
		if slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(before, id) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new scan in the host's scan history within 90s of scan now (before %v, now %v)", before, ids)
		}
		time.Sleep(time.Second)
		b.reload(hostPath)
	}
	fx.waitScan(t, fx.scanID)
	b.visit("host-after-scan", hostPath)
}

// checkViewer checks that a viewer sees no operator or admin actions and is
// refused the users page.
func (b *tab) checkViewer(fx *uiFixture) {
	hostPath := fmt.Sprintf("/hosts/%d", fx.hostID)
	b.visit("viewer-dashboard", "/")
	b.visit("viewer-host", hostPath)
	b.visit("viewer-scan", fmt.Sprintf("/scans/%d", fx.scanID))
	b.mustAbsent(fmt.Sprintf("form[action='/hosts/%d/scan']", fx.hostID))
	b.visit("viewer-agents", "/agents")
	b.mustAbsent("form[action='/agents/tokens']")
	b.mustAbsent("form[action$='/revoke']")
	b.visitStatus("viewer-users", "/users", http.StatusForbidden)
	b.mustAbsent("nav a[href='/users']")
}

// submitHistory uses both time-travel forms: the fleet at a past moment,
// then the drift between that moment and now.
func (b *tab) submitHistory(at time.Time) {
	t := b.t
	// The forms use <input type=datetime-local> or type=date; set the value
	// the way the browser's picker would, then submit with a click.
	forms := b.evalStrings(`Array.from(document.querySelectorAll("main form"), f => (f.method||"") + " " + f.getAttribute("action") + " " + Array.from(f.elements, e => e.name + ":" + e.type).join(","))`)
	t.Logf("history forms: %q", forms)
	setTime := func(sel string, v time.Time) string {
		return fmt.Sprintf(`(() => { const i = document.querySelector(%q); if (!i) return "missing"; i.value = i.type === "date" ? %q : %q; return i.value; })()`,
			sel, v.Format("2006-01-02"), v.Format("2006-01-02T15:04"))
	}
	if v := b.evalString(setTime("main form input[name=at]:not([type=hidden])", at)); v == "missing" || v == "" {
		t.Errorf("history: no date input named at (%s); forms: %q", v, forms)
		return
	}
	b.click("history-at", "main form:has(input[name=at]:not([type=hidden])) button[type=submit]")
	b.mustParam("at")
	b.mustText("history-at", at.Format("2006-01-02"))

	b.visit("history", "/history")
	if v := b.evalString(setTime("main form input[name=from]:not([type=hidden])", at)); v == "missing" || v == "" {
		t.Errorf("history: no drift input named from (%s); forms: %q", v, forms)
		return
	}
	if v := b.evalString(setTime("main form input[name=to]:not([type=hidden])", time.Now().UTC().Add(time.Minute))); v == "missing" || v == "" {
		t.Errorf("history: no drift input named to (%s)", v)
		return
	}
	b.click("history-drift", "main form:has(input[name=from]:not([type=hidden])) button[type=submit]")
	b.mustParam("from")
	b.mustText("history-drift", at.Format("2006-01-02"))
}

// mustParam checks that the current URL carries the query parameter, that
// is, the form was submitted.
func (b *tab) mustParam(name string) {
	b.t.Helper()
	u, err := url.Parse(b.href())
	if err != nil || !u.Query().Has(name) {
		b.t.Errorf("after submitting the %s form the page is %s", name, b.href())
	}
}

// finish fails the test on every problem the browser reported.
func (b *tab) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s's browser: %s", b.user, p)
	}
}
