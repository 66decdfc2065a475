package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// maxLinks bounds the links one user's walk may collect (the rules page
// alone links every rule of the corpus).
const maxLinks = 5000

// tab is one user's browser tab in its own browser context (own cookies),
// with everything the page reported along the way.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // https://127.0.0.1:PORT
	user string

	mu       sync.Mutex
	step     string          // the page or action under way, for messages
	problems []string        // console errors, exceptions, failed loads
	expected map[string]bool // URLs whose error status the test provokes on purpose
	links    map[string]string
	timings  []pageTiming
	noShot   bool // skip screenshots (the page is the same as one already saved)

	overflowSeen map[string]bool // pages already reported too wide
}

// pageTiming is the browser's Navigation Timing of one loaded page, in
// milliseconds: a measurement to report, never a pass/fail criterion.
type pageTiming struct {
	Name     string  `json:"-"`
	Path     string  `json:"path"`
	Server   float64 `json:"server"`   // request sent to first response byte
	Ready    float64 `json:"ready"`    // navigation start to DOMContentLoaded end
	Bytes    float64 `json:"bytes"`    // HTML body size as transferred
	Elements float64 `json:"elements"` // DOM elements on the page
}

// newTab opens a tab in a fresh browser context of the browser.
func newTab(t *testing.T, browser context.Context, base, user string) *tab {
	t.Helper()
	b := &tab{t: t, base: base, user: user, expected: map[string]bool{}, links: map[string]string{}, overflowSeen: map[string]bool{}}
	dialogs := make(chan struct{}, 4)
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(),
		chromedp.WithListener(func(ev any) { b.onEvent(ev, dialogs) }))
	t.Cleanup(cancel)
	t.Cleanup(func() {
		b.logTimings()
		b.finish()
	})
	b.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab for %s: %v", user, err)
	}
	// A confirm() (data-confirm forms) would block the page until answered;
	// the listener must not call the browser itself, so answer from here.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-dialogs:
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}
		}
	}()
	return b
}

// onEvent runs on the tab's reader goroutine: it only records.
func (b *tab) onEvent(ev any, dialogs chan<- struct{}) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			b.problem("console.%s: %s", e.Type, argsText(e.Args))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		b.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg)
	case *log.EventEntryAdded:
		// CSP violations and failed loads arrive here.
		if e.Entry.Level == log.EntryLevelError && !b.isExpected(e.Entry.URL) {
			b.problem("%s error: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
		}
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 && !b.isExpected(e.Response.URL) {
			b.problem("%s %s answered %d", e.Type, e.Response.URL, e.Response.Status)
		}
	case *network.EventLoadingFailed:
		if !e.Canceled {
			b.problem("loading %s failed: %s %s", e.Type, e.ErrorText, e.BlockedReason)
		}
	case *page.EventJavascriptDialogOpening:
		select {
		case dialogs <- struct{}{}:
		default:
		}
	}
}

func (b *tab) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf("[%s] ", b.step)+fmt.Sprintf(format, args...))
}

func (b *tab) isExpected(u string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.expected[u]
}

func (b *tab) setStep(name string) {
	b.mu.Lock()
	b.step = name
	b.mu.Unlock()
}

// argsText renders console.error's arguments.
func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		switch {
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// stepCtx bounds one step.
func (b *tab) stepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepTimeout)
}

// signIn fills and submits the sign-in form.
func (b *tab) signIn(username, password string) {
	t := b.t
	t.Helper()
	name := "login"
	if b.user != "admin" {
		name = b.user + "-login"
	}
	b.visit(name, "/login")
	ctx, cancel := b.stepCtx()
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("input[name=username]"), username),
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), password))
	if err != nil {
		t.Fatalf("sign-in form of %s: %v", b.user, err)
	}
	b.noShot = true // the dashboard, which the walk visits and saves
	ok := b.click(name+"-done", "main form button[type=submit]")
	b.noShot = false
	if !ok {
		t.FailNow()
	}
	if loc := b.location(); loc != "/" {
		t.Fatalf("signing in as %s led to %s, want /", username, loc)
	}
	if who := b.evalString(`(document.querySelector("header form.who") || {}).textContent || ""`); !strings.Contains(who, username) {
		t.Fatalf("after signing in as %s the header shows %q", username, who)
	}
}

// visit loads path and expects 200 and a page with a heading.
func (b *tab) visit(name, path string) { b.visitStatus(name, path, http.StatusOK) }

// visitStatus loads path and expects status; it then records the page's
// links and saves its screenshot.
func (b *tab) visitStatus(name, path string, status int) {
	t := b.t
	t.Helper()
	b.setStep(name + " " + path)
	if status >= 400 {
		b.mu.Lock()
		b.expected[b.base+path] = true
		b.mu.Unlock()
	}
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		t.Fatalf("%s: open %s: %v", b.user, path, err)
	}
	if resp == nil || int(resp.Status) != status {
		got := "no response"
		if resp != nil {
			got = fmt.Sprintf("%d %s", resp.Status, resp.StatusText)
		}
		t.Errorf("%s: GET %s: %s, want %d", b.user, path, got, status)
	}
	b.landed(name)
}

// click clicks the first element matching sel, waits for the page that
// loads and expects it to be 200. It reports false (and fails the test)
// when there is no such element.
func (b *tab) click(name, sel string) bool { return b.clickStatus(name, sel, http.StatusOK) }

// clickStatus is click for a page that answers status.
func (b *tab) clickStatus(name, sel string, status int) bool {
	t := b.t
	t.Helper()
	from := b.location()
	if b.evalString(fmt.Sprintf(`document.querySelector(%q) ? "yes" : "no"`, sel)) != "yes" {
		t.Errorf("%s: page %s has no %s to click (for %s)", b.user, from, sel, name)
		return false
	}
	b.setStep(name + " (from " + from + ")")
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Errorf("%s: click %s on %s: %v", b.user, sel, from, err)
		return false
	}
	if resp == nil || int(resp.Status) != status {
		got := "no response"
		if resp != nil {
			got = fmt.Sprintf("%d %s at %s", resp.Status, resp.StatusText, resp.URL)
		}
		t.Errorf("%s: click %s on %s: %s, want %d", b.user, sel, from, got, status)
	}
	b.landed(name)
	return true
}

// landed checks the loaded page's heading and width, collects its links,
// records its timing and saves a screenshot.
func (b *tab) landed(name string) {
	t := b.t
	t.Helper()
	// A page wider than the 1280 px window scrolls sideways: name the
	// innermost elements that stick out.
	if over := b.evalStrings(`(() => {
		const w = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth <= w) return [];
		const out = [];
		for (const el of document.body.querySelectorAll("*")) {
			if (el.getBoundingClientRect().right <= w + 1) continue;
			if (Array.from(el.children).some(c => c.getBoundingClientRect().right > w + 1)) continue;
			out.push("<" + el.tagName.toLowerCase() + (el.className ? " class=" + el.className : "") + "> " +
				Math.round(el.getBoundingClientRect().right) + "px: " + (el.textContent || "").trim().slice(0, 80));
			if (out.length >= 3) break;
		}
		for (const tb of document.body.querySelectorAll("table")) {
			if (tb.getBoundingClientRect().right <= w + 1) continue;
			out.push("table columns (px): " + Array.from(tb.querySelectorAll("thead th"),
				th => th.textContent.trim() + " " + Math.round(th.getBoundingClientRect().width)).join(", "));
			break;
		}
		return out;
	})()`); len(over) > 0 && !b.overflowSeen[b.location()] {
		b.overflowSeen[b.location()] = true
		t.Errorf("%s: page %s (%s) is wider than the %d px window; it scrolls sideways because of %q", b.user, b.location(), name, windowWidth, over)
	}
	if h1 := b.evalString(`(document.querySelector("h1") || {}).textContent || ""`); strings.TrimSpace(h1) == "" {
		t.Errorf("%s: page %s (%s) has no <h1>", b.user, b.location(), name)
	}
	ctx, cancel := b.stepCtx()
	defer cancel()
	tm, err := chromedp.Run(ctx, chromedp.Evaluate[pageTiming](`(() => {
		const n = performance.getEntriesByType("navigation")[0] || {};
		return {path: location.pathname + location.search, server: (n.responseStart || 0) - (n.requestStart || 0),
			ready: n.domContentLoadedEventEnd || 0, bytes: n.encodedBodySize || 0,
			elements: document.getElementsByTagName("*").length};
	})()`))
	if err != nil {
		t.Errorf("%s: timing of %s: %v", b.user, name, err)
	}
	tm.Name = name
	b.mu.Lock()
	b.timings = append(b.timings, tm)
	b.mu.Unlock()

	origin := b.base
	here := b.location()
	// In-page links (href="#main", the skip link) name the current
	// document, which after a form post is the post's URL: they are not
	// links to check.
	for _, h := range b.evalStrings(`Array.from(document.querySelectorAll("a[href]:not([href^='#'])"), a => a.href)`) {
		u, err := url.Parse(h)
		if err != nil {
			t.Errorf("%s: page %s has an unparsable link %q", b.user, here, h)
			continue
		}
		if u.Scheme+"://"+u.Host != origin {
			continue
		}
		u.Fragment = ""
		key := u.RequestURI()
		b.mu.Lock()
		if _, ok := b.links[key]; !ok && len(b.links) < maxLinks {
			b.links[key] = here
		}
		b.mu.Unlock()
	}
	if b.noShot {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("%s: screenshot of %s: %v", b.user, name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(shotDir, name+".png"), png, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
	}
}

// location is the current page's path.
func (b *tab) location() string { return b.evalString(`location.pathname`) }

// href is the current page's full URL.
func (b *tab) href() string { return b.evalString(`location.href`) }

func (b *tab) evalString(expr string) string {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.user, expr, err)
	}
	return s
}

func (b *tab) evalStrings(expr string) []string {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.user, expr, err)
	}
	return s
}

// mustText checks that the page's visible text holds every word
// (case-insensitively).
func (b *tab) mustText(name string, words ...string) {
	b.t.Helper()
	text := strings.ToLower(b.evalString(`document.body.innerText`))
	for _, w := range words {
		if !strings.Contains(text, strings.ToLower(w)) {
			b.t.Errorf("%s: page %s (%s) does not show %q", b.user, b.location(), name, w)
		}
	}
}

// mustAbsent checks that nothing on the page matches sel.
func (b *tab) mustAbsent(sel string) {
	b.t.Helper()
	if b.evalString(fmt.Sprintf(`document.querySelector(%q) ? "yes" : "no"`, sel)) != "no" {
		b.t.Errorf("%s: page %s shows %s", b.user, b.location(), sel)
	}
}

// mustLink checks that the current page links to path.
func (b *tab) mustLink(path string) {
	b.t.Helper()
	links := b.evalStrings(`Array.from(document.querySelectorAll("main a[href]"), a => a.getAttribute("href"))`)
	for _, l := range links {
		if l == path || strings.HasPrefix(l, path+"?") || strings.HasPrefix(l, path+"#") {
			return
		}
	}
	b.t.Errorf("%s: page %s has no link to %s", b.user, b.location(), path)
}

// scanIDs lists the scan pages the current page links to.
func (b *tab) scanIDs() []string {
	var ids []string
	for _, h := range b.evalStrings(`Array.from(document.querySelectorAll("main a[href]"), a => a.getAttribute("href"))`) {
		if m := scanLinkRE.FindStringSubmatch(h); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// checkLinks GETs every same-origin link the user saw, once, with the
// user's session cookie from the browser: each must answer 200, or 303 to
// a page that answers 200.
func (b *tab) checkLinks(base *http.Client) {
	t := b.t
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		t.Fatalf("%s: cookies: %v", b.user, err)
	}
	var cookies []string
	for _, c := range res.Cookies {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	// Checking a thousand links takes longer than one step.
	ctx, cancel = context.WithTimeout(b.ctx, 2*stepTimeout)
	defer cancel()
	client := &http.Client{Timeout: base.Timeout, Transport: base.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", b.base+path, nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Cookie", strings.Join(cookies, "; "))
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location"), nil
	}

	b.mu.Lock()
	paths := make([]string, 0, len(b.links))
	for p := range b.links {
		paths = append(paths, p)
	}
	b.mu.Unlock()
	sort.Strings(paths)
	if len(paths) >= maxLinks {
		t.Errorf("%s: more than %d distinct links; only the first were checked", b.user, maxLinks)
	}
	work := make(chan string)
	var mu sync.Mutex
	var broken []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for p := range work {
				if msg := checkLink(get, p); msg != "" {
					mu.Lock()
					broken = append(broken, fmt.Sprintf("link %s on %s: %s", p, b.links[p], msg))
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	sort.Strings(broken)
	for i, m := range broken {
		if i == 20 {
			t.Errorf("%s: ... and %d more broken links", b.user, len(broken)-i)
			break
		}
		t.Errorf("%s: broken %s", b.user, m)
	}
	t.Logf("%s: checked %d distinct same-origin links", b.user, len(paths))
}

// checkLink follows at most one 303 and wants 200; it returns what is
// wrong, or "".
func checkLink(get func(string) (int, string, error), path string) string {
	code, loc, err := get(path)
	if err != nil {
		return err.Error()
	}
	if code == http.StatusSeeOther {
		u, err := url.Parse(loc)
		if err != nil || u.Host != "" {
			return "303 to an unexpected Location " + loc
		}
		code2, _, err := get(u.RequestURI())
		if err != nil {
			return err.Error()
		}
		if code2 != http.StatusOK {
			return fmt.Sprintf("303 to %s, which answers %d", loc, code2)
		}
		return ""
	}
	if code != http.StatusOK {
		return fmt.Sprintf("answers %d", code)
	}
	return ""
}

// logTimings logs the pages' Navigation Timing as a table.
func (b *tab) logTimings() {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: page timings in the browser (ms; server = request to first byte):\n", b.user)
	fmt.Fprintf(&sb, "  %-22s %8s %8s %9s %8s  %s\n", "page", "server", "ready", "html KB", "elements", "path")
	for _, tm := range b.timings {
		fmt.Fprintf(&sb, "  %-22s %8.1f %8.1f %9.1f %8.0f  %s\n", tm.Name, tm.Server, tm.Ready, tm.Bytes/1024, tm.Elements, tm.Path)
	}
	b.t.Log(sb.String())
}

// reload loads path again without the per-page checks (a poll); the
// listener still records console errors and failed loads.
func (b *tab) reload(path string) {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("%s: reload %s: %v", b.user, path, err)
	}
	if resp == nil || resp.Status != http.StatusOK {
		b.t.Fatalf("%s: reload %s: %v", b.user, path, resp)
	}
}

// selfCheck proves the listener sees what it must fail on: a console
// error and a violation of the page's real Content-Security-Policy (an
// inline style). It then forgets both.
func (b *tab) selfCheck() {
	t := b.t
	t.Helper()
	b.setStep("self-check")
	b.evalString(`(() => { console.error("vigil-selfcheck"); document.body.setAttribute("style", "color: red"); return ""; })()`)
	const want = 2
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		var seen []string
		kept := b.problems[:0]
		for _, p := range b.problems {
			if strings.HasPrefix(p, "[self-check]") {
				seen = append(seen, p)
			} else {
				kept = append(kept, p)
			}
		}
		n := len(seen)
		if n >= want {
			b.problems = kept
		}
		b.mu.Unlock()
		if n >= want {
			if !strings.Contains(strings.Join(seen, "\n"), "vigil-selfcheck") || !strings.Contains(strings.Join(seen, "\n"), "Content Security Policy") {
				t.Errorf("self-check: the listener saw %q, want the console error and the CSP violation", seen)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("self-check: the listener saw %q within 10s, want a console error and a CSP violation", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
