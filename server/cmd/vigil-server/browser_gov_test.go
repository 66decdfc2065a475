package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilfleet/vigil/engine/testtarget"
)

// govShotName prefixes the governance walk's screenshot names: they go to
// a folder of the UI artefacts, so that TestBrowser's clean-up of
// artifacts/ui/*.png leaves them alone whichever test runs first.
const govShotName = "governance/"

// The governance walk's users, all with adminPassword.
const (
	govOperator = "olga" // operator: requests exceptions, acknowledges alerts
	govSecAdmin = "sam"  // security_admin: approves, manages channels
	govViewer   = "vic"  // viewer: sees, may do nothing
)

// govHookSecret signs the test webhook's requests.
const govHookSecret = "browser-hmac-secret-4711"

// newGovFixture is newUIFixture with alerts evaluated every 10 s and the
// governance walk's three users.
func newGovFixture(t *testing.T) *uiFixture {
	t.Helper()
	dir := t.TempDir()
	if out, err := vs(t, "", "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	if out, err := vs(t, adminPassword+"\n", "admin", "create", "--data-dir", dir, "--username", "admin", "--password-stdin"); err != nil {
		t.Fatalf("admin create: %v %s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "vigil-server.yaml")
	if err := os.WriteFile(cfg, []byte("alerts:\n  interval: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tgt := testtarget.Start(t, testtarget.Options{SSHDConfigExtra: "PermitRootLogin yes\n"})
	s := opsServer(t, dir, nil, nil, "--config", cfg)
	fx := &uiFixture{srv: s, token: s.login(t), pin: spkiPin(t, filepath.Join(dir, "tls", "server.crt"))}
	fx.hostID = addTarget(t, s, fx.token, tgt)
	for name, role := range map[string]string{govOperator: "operator", govSecAdmin: "security_admin", govViewer: "viewer"} {
		if code := s.call(t, "POST", "/api/v1/users", fx.token, map[string]string{"username": name, "password": adminPassword, "role": role}, nil); code != 201 {
			t.Fatalf("create %s: %d", name, code)
		}
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/hosts/%d/scan", fx.hostID), fx.token, nil, nil); code != 202 {
		t.Fatalf("scan now: %d", code)
	}
	fx.scanID = fx.waitScan(t, 0)
	return fx
}

// TestBrowserGovernance drives the governance pages in headless Chromium
// against the real binary: an operator requests an exception for a
// failing rule from the host page, a security admin approves it with the
// keyboard, the host page shows the rule "failed, accepted" and the score
// with exceptions, the operator acknowledges an alert the evaluator
// opened, the security admin adds a webhook channel pointing at a real
// receiver and sends it a test, and a signed PDF export is downloaded in
// the page. A viewer sees none of the actions. The same listener as
// TestBrowser fails the test on console errors, CSP violations, failed
// loads, pages wider than the window and broken links.
func TestBrowserGovernance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the sshd test target (run under sudo, or through .ci/run)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no browser at %s (apt-get install chromium; CI always has it): %v", chromiumPath, err)
	}
	dir := filepath.Join(shotDir, govShotName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	fx := newGovFixture(t)
	hook := newWebhookReceiver(t)
	browser := startBrowser(t, fx.pin)
	base := fx.srv.base
	hostPath := fmt.Sprintf("/hosts/%d", fx.hostID)

	op := newTab(t, browser, base, govOperator)
	op.signIn(govOperator, adminPassword)
	sec := newTab(t, browser, base, govSecAdmin)
	sec.signIn(govSecAdmin, adminPassword)
	viewer := newTab(t, browser, base, govViewer)
	viewer.signIn(govViewer, adminPassword)

	// 1. The operator asks for an exception from a failing finding.
	ruleID := op.requestException(hostPath)
	excID := op.evalString(`(document.querySelector("main tr[id^='exception-']") || {id: ""}).id`)
	if excID == "" {
		t.Fatalf("no exception row after the request")
	}
	id := strings.TrimPrefix(excID, "exception-")
	op.mustText(govShotName+"exception-requested", "requested", ruleID)
	op.mustAbsent(fmt.Sprintf("form[action='/exceptions/%s/approve']", id))

	// 2. The security admin approves it with the keyboard: type a note and
	// press Enter, which submits the row's first button (Approve).
	sec.visit(govShotName+"exceptions", "/exceptions")
	sec.typeInto(fmt.Sprintf("#note-%s", id), "Compensated by AllowUsers; review in Q3.")
	sec.pressEnter(govShotName+"exception-approved", fmt.Sprintf("#note-%s", id))
	sec.mustText(govShotName+"exception-approved", "approved by "+govSecAdmin, "Compensated by AllowUsers")

	// 3. The host page shows the rule failed but accepted, and both scores.
	sec.visit(govShotName+"host-accepted", hostPath)
	sec.mustText(govShotName+"host-accepted", "failed, accepted", "with exceptions")
	if got := sec.evalString(fmt.Sprintf(`(() => { for (const tr of document.querySelectorAll("main tr")) { if (tr.textContent.includes(%q) && tr.textContent.includes("failed, accepted")) return "yes"; } return "no"; })()`, ruleID)); got != "yes" {
		t.Errorf("the host page does not show rule %s as failed, accepted", ruleID)
	}

	// 4. A signed PDF export, from the keyboard-opened export menu,
	// fetched with the browser's own session.
	sec.exportPDF()

	// 5. The operator acknowledges an alert the evaluator opened.
	op.acknowledgeAlert()

	// 6. The security admin adds a webhook channel and sends it a test.
	sec.webhookTest(hook)

	sec.visit(govShotName+"dashboard", "/")
	sec.mustText(govShotName+"dashboard", "with exceptions", "(1 accepted)")

	// 7. A viewer sees the pages but none of the actions.
	viewer.visit(govShotName+"viewer-host", hostPath)
	viewer.mustText(govShotName+"viewer-host", "failed, accepted")
	viewer.mustAbsent("details#export")
	viewer.mustAbsent("main a.request-exception")
	viewer.visit(govShotName+"viewer-exceptions", "/exceptions")
	viewer.mustAbsent("form[method=post][action='/exceptions']")
	viewer.mustAbsent("form[action$='/approve'], form[action$='/revoke']")
	viewer.visit(govShotName+"viewer-alerts", "/alerts?state=all")
	viewer.mustAbsent("form[action$='/acknowledge'], form[action$='/silence'], form[action$='/resolve']")
	viewer.mustAbsent("nav a[href='/notifications']")
	viewer.visitStatus(govShotName+"viewer-notifications", "/notifications", http.StatusForbidden)

	op.checkLinks(fx.srv.client)
	sec.checkLinks(fx.srv.client)
	viewer.checkLinks(fx.srv.client)
}

// requestException follows the host page's "request exception" link of a
// failing finding, fills the form and submits it; it returns the rule.
func (b *tab) requestException(hostPath string) string {
	t := b.t
	t.Helper()
	b.visit(govShotName+"host", hostPath)
	href := b.evalString(`(document.querySelector("main a.request-exception") || {getAttribute: () => ""}).getAttribute("href")`)
	u, err := url.Parse(href)
	if href == "" || err != nil {
		t.Fatalf("the host page offers the operator no request-exception link (%q)", href)
	}
	ruleID := u.Query().Get("request_rule")
	if !b.click(govShotName+"exception-form", "main a.request-exception") {
		t.FailNow()
	}
	if loc := b.location(); loc != "/exceptions" {
		t.Fatalf("request exception led to %s", loc)
	}
	if v := b.evalString(`document.querySelector("#rq-rule").value`); v != ruleID {
		t.Errorf("the request form's rule is %q, want %q", v, ruleID)
	}
	if v := b.evalString(`document.querySelector("#rq-host").selectedOptions[0].textContent`); v != "target-1" {
		t.Errorf("the request form's host is %q, want target-1", v)
	}
	b.typeInto("#rq-just", "The backup job logs in as root until Q3; AllowUsers limits it to the backup server.")
	exp := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")
	if v := b.evalString(fmt.Sprintf(`(() => { const i = document.querySelector("#rq-exp"); i.value = %q; return i.value; })()`, exp)); v != exp {
		t.Errorf("expiry field took %q, want %q", v, exp)
	}
	if !b.click(govShotName+"exceptions-requested", "main form[method=post][action='/exceptions'] button[type=submit]") {
		t.FailNow()
	}
	if loc := b.location(); loc != "/exceptions" {
		t.Fatalf("the request led to %s", loc)
	}
	return ruleID
}

// typeInto types text into the element sel with key events.
func (b *tab) typeInto(sel, text string) {
	b.t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		b.t.Fatalf("%s: type into %s: %v", b.user, sel, err)
	}
}

// pressEnter focuses sel, presses Enter and expects the page that loads
// to answer 200.
func (b *tab) pressEnter(name, sel string) {
	t := b.t
	t.Helper()
	from := b.location()
	b.setStep(name + " (Enter on " + from + ")")
	ctx, cancel := b.stepCtx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: focus %s: %v", b.user, sel, err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent("\r"))
	if err != nil {
		t.Fatalf("%s: Enter in %s on %s: %v", b.user, sel, from, err)
	}
	if resp == nil || resp.Status != http.StatusOK {
		t.Errorf("%s: Enter in %s on %s: %v, want 200", b.user, sel, from, resp)
	}
	b.landed(name)
}

// exportPDF opens the host page's export menu from the keyboard and
// downloads the PDF with the page's session: a signed PDF.
func (b *tab) exportPDF() {
	t := b.t
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("details#export > summary")), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("%s: open the export menu: %v", b.user, err)
	}
	if open := b.evalString(`String(document.querySelector("details#export").open)`); open != "true" {
		t.Errorf("Enter on the export menu's summary left it closed")
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const a = document.querySelector("details#export a[data-format=pdf]");
		if (!a) return "no PDF link";
		const r = await fetch(a.href, {credentials: "same-origin"});
		const b = new Uint8Array(await r.arrayBuffer());
		let s = "";
		for (const c of b) s += String.fromCharCode(c);
		return [r.status, r.headers.get("content-type"), s.slice(0, 5), s.includes("vigil-sig:v1:"),
			r.headers.get("x-vigil-export-sha256") || "", r.headers.get("content-disposition") || ""].join("|");
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: fetch the PDF export: %v", b.user, err)
	}
	parts := strings.Split(res, "|")
	if len(parts) != 6 || parts[0] != "200" || parts[1] != "application/pdf" || parts[2] != "%PDF-" || parts[3] != "true" || len(parts[4]) != 64 ||
		!strings.Contains(parts[5], ".pdf") {
		t.Errorf("PDF export fetched in the page: %q, want 200|application/pdf|%%PDF-|true|<sha256>|attachment ... .pdf", res)
	}
	b.landed(govShotName + "host-export-menu")
}

// acknowledgeAlert waits (at most 120 s) for an alert the evaluator opens
// after the scan, then acknowledges it from the alerts page.
func (b *tab) acknowledgeAlert() {
	t := b.t
	t.Helper()
	const ack = "main form[action$='/acknowledge'] button[type=submit]"
	deadline := time.Now().Add(120 * time.Second)
	for {
		b.reload("/alerts")
		if b.evalString(fmt.Sprintf(`document.querySelector(%q) ? "yes" : "no"`, ack)) == "yes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert to acknowledge within 120s; the page shows: %s", b.evalString(`document.querySelector("main").innerText.slice(0, 600)`))
		}
		time.Sleep(2 * time.Second)
	}
	b.visit(govShotName+"alerts", "/alerts")
	if b.evalString(`document.querySelector("nav a[href='/alerts'] .count") ? "yes" : "no"`) != "yes" {
		t.Errorf("the navigation shows no active-alert count while alerts are active")
	}
	row := b.evalString(fmt.Sprintf(`document.querySelector(%q).closest("tr").id`, ack))
	if !b.click(govShotName+"alert-acknowledged", ack) {
		t.FailNow()
	}
	b.mustText(govShotName+"alert-acknowledged", "acknowledged")
	b.visit(govShotName+"alerts-acknowledged", "/alerts?state=acknowledged")
	if got := b.evalString(fmt.Sprintf(`(document.getElementById(%q) || {innerText: ""}).innerText`, row)); !strings.Contains(got, "acknowledged") || !strings.Contains(got, "by "+govOperator) {
		t.Errorf("alert row %s after acknowledge: %q", row, got)
	}
}

// webhookTest creates a webhook channel for the sink, sends a test and
// checks the receiver got a correctly signed request and the page shows
// the delivery.
func (b *tab) webhookTest(h *webhookReceiver) {
	t := b.t
	t.Helper()
	b.visit(govShotName+"notifications", "/notifications")
	b.typeInto("#webhook-name", "ops-webhook")
	b.typeInto("#webhook-url", h.srv.URL+"/vigil")
	b.typeInto("#webhook-hmac_secret", govHookSecret)
	if !b.click(govShotName+"channel-created", "main form:has(input[name=kind][value=webhook]) button[type=submit]") {
		t.FailNow()
	}
	b.mustText(govShotName+"channel-created", "ops-webhook", "created")
	if strings.Contains(b.evalString(`document.body.innerText`), govHookSecret) {
		t.Errorf("the notifications page shows the HMAC secret")
	}
	if !b.click(govShotName+"channel-tested", "main section.channel form[action$='/test'] button[type=submit]") {
		t.FailNow()
	}
	b.mustText(govShotName+"channel-tested", "Test message delivered", "delivered")
	var test *webhookHit
	for _, c := range h.received() {
		if c.event == "test" {
			test = &c
		}
	}
	if test == nil {
		t.Fatalf("the receiver got no test event (%d requests)", len(h.received()))
	}
	if want := test.wantSignature(govHookSecret); test.signature != want {
		t.Errorf("test webhook signature %q, want %q", test.signature, want)
	}
	if b.evalString(`document.querySelector("main table.deliveries .status-pass") ? "yes" : "no"`) != "yes" {
		t.Errorf("the channel's delivery log shows no successful delivery")
	}
}
