package ui

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestRulesPage(t *testing.T) {
	s := newSite(t)
	b := s.signIn("vera", "viewer")
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}

	all := b.get("/rules")
	wantStatus(t, all, http.StatusOK, "/rules")
	wantContains(t, all, "/rules", "<h1>Rules</h1>", `aria-current="page">Rules`,
		`<a href="/rules/`+histRuleA+`">`, `<a href="/rules/`+histRuleB+`">`)
	if got, want := strings.Count(all.body, `<tr><td><a href="/rules/`), len(idx.Rules()); got != want {
		t.Errorf("/rules lists %d rules, want every one of the corpus's %d", got, want)
	}

	q := b.get("/rules?q=PERMIT-ROOT")
	wantStatus(t, q, http.StatusOK, "search")
	wantContains(t, q, "search", `<a href="/rules/`+histRuleA+`">`, `value="PERMIT-ROOT"`)
	if strings.Contains(q.body, `<a href="/rules/`+histRuleB+`">`) {
		t.Errorf("search for permit-root lists %s", histRuleB)
	}

	// Filters combine; each row honours every one.
	fl := b.get("/rules?category=access-control&severity=medium&framework=fedramp_moderate")
	wantStatus(t, fl, http.StatusOK, "filters")
	wantContains(t, fl, "filters", `<a href="/rules/`+histRuleA+`">`)
	fedramp, _ := idx.RuleIDs("fedramp_moderate")
	inFedramp := map[string]bool{}
	for _, id := range fedramp {
		inFedramp[id] = true
	}
	rows := regexp.MustCompile(`<tr><td><a href="/rules/([^"]+)">`).FindAllStringSubmatch(fl.body, -1)
	if len(rows) == 0 {
		t.Fatal("filtered list is empty")
	}
	for _, m := range rows {
		r := idx.Rule(m[1])
		if r == nil || r.Category != "access-control" || r.Severity != "medium" || !inFedramp[r.ID] {
			t.Errorf("filtered list holds %s, which does not match the filters", m[1])
		}
	}

	none := b.get("/rules?q=no-such-rule-anywhere")
	wantStatus(t, none, http.StatusOK, "no match")
	wantContains(t, none, "no match", "No rule matches these filters.")

	for _, tc := range []struct{ query, field string }{
		{"framework=nope", "framework"}, {"severity=huge", "severity"}, {"category=nope", "category"},
	} {
		p := b.get("/rules?" + tc.query)
		wantStatus(t, p, http.StatusBadRequest, tc.query)
		wantContains(t, p, tc.query, `<p class="error" role="alert">`+tc.field+": ")
	}
}

func TestRulePage(t *testing.T) {
	s := newSite(t)
	b := s.signIn("vera", "viewer")

	p := b.get("/rules/" + histRuleA)
	wantStatus(t, p, http.StatusOK, "rule page")
	wantContains(t, p, "rule page",
		"<h1>Refuse direct root logins over SSH</h1>",
		`class="sev-medium">medium`, "access-control",
		"Administrators who log in under their own name",          // rationale
		"method: sshd_effective_config", "expected: &#34;no&#34;", // the check, as YAML
		"mechanism: config_set_dropin", // the remediation
		"debian ≥ 12",
		// Direct NIST SP 800-53 references and the FedRAMP ones derived from them.
		`<a href="/frameworks/nist_800_53#control-AC-17">AC-17</a>`,
		`<a href="/frameworks/fedramp_moderate#control-AC-17">AC-17</a>`,
		`<a href="/frameworks/fedramp_high#control-AC-6%282%29">AC-6(2)</a>`,
		`<a href="/frameworks/cmmc_l2#control-AC.L2-3.1.1">AC.L2-3.1.1</a>`,
		"(derived)",
	)
	// Every control link lands on a framework page holding that control's anchor.
	links := regexp.MustCompile(`href="/frameworks/([a-z0-9_]+)#control-([^"]+)"`).FindAllStringSubmatch(p.body, -1)
	if len(links) < 10 {
		t.Fatalf("rule page has %d control links, want the rule's many references", len(links))
	}
	pages := map[string]string{}
	for _, l := range links {
		fw := l[1]
		ctl, err := url.PathUnescape(html.UnescapeString(l[2]))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pages[fw]; !ok {
			fp := b.get("/frameworks/" + fw)
			wantStatus(t, fp, http.StatusOK, "/frameworks/"+fw)
			pages[fw] = html.UnescapeString(fp.body)
		}
		if !strings.Contains(pages[fw], `id="control-`+ctl+`"`) {
			t.Errorf("/frameworks/%s has no anchor for control %s", fw, ctl)
		}
	}

	missing := b.get("/rules/no-such-rule")
	wantStatus(t, missing, http.StatusNotFound, "unknown rule")
	wantContains(t, missing, "unknown rule", "no-such-rule")
}

func TestFrameworksPages(t *testing.T) {
	s := newSite(t)
	b := s.signIn("vera", "viewer")
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}

	list := b.get("/frameworks")
	wantStatus(t, list, http.StatusOK, "/frameworks")
	wantContains(t, list, "/frameworks", "<h1>Frameworks</h1>", `aria-current="page">Frameworks`, "<progress")
	for _, fw := range idx.Frameworks() {
		wantContains(t, list, "/frameworks", fmt.Sprintf(`<a href="/frameworks/%s">%s</a>`, fw.ID, fw.ID),
			fmt.Sprintf(`<td class="num">%d</td><td class="num">%d</td><td class="num">%d</td>`, fw.Controls, fw.Covered, fw.Rules))
	}

	fr := b.get("/frameworks/fedramp_moderate")
	wantStatus(t, fr, http.StatusOK, "fedramp_moderate")
	wantContains(t, fr, "fedramp_moderate", "FedRAMP Rev 5 Moderate baseline",
		`<tr id="control-AC-17">`, `<a href="/rules/`+histRuleA+`">`, "not covered",
		"Fleet score now", `<a href="/rules?framework=fedramp_moderate">`)
	// A baseline's controls carry their titles from the base catalogue.
	ctls, _ := idx.Controls("fedramp_moderate")
	var ac17 string
	for _, c := range ctls {
		if c.ID == "AC-17" {
			ac17 = c.Title
		}
	}
	if ac17 == "" {
		t.Error("fedramp_moderate AC-17 has no title from nist_800_53")
	} else {
		wantContains(t, fr, "AC-17 title", html.EscapeString(ac17))
	}

	missing := b.get("/frameworks/nope")
	wantStatus(t, missing, http.StatusNotFound, "unknown framework")
}

// TestFrameworkFleetScore checks the framework page's score is the fleet's
// against that framework's rules only.
func TestFrameworkFleetScore(t *testing.T) {
	s := newSite(t)
	h, err := s.st.UpsertHost(context.Background(), store.Host{Name: "db-1", Address: "127.0.0.3", OS: "debian12"})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	// Rule A maps to PCI DSS; find a passing rule that does not, so the
	// PCI score differs from the all-rules one.
	pci, _ := idx.RuleIDs("pci_dss_4")
	inPCI := map[string]bool{}
	for _, id := range pci {
		inPCI[id] = true
	}
	if !inPCI[histRuleA] {
		t.Fatalf("%s no longer maps to pci_dss_4; pick another rule", histRuleA)
	}
	var outside string
	for _, r := range idx.Rules() {
		if !inPCI[r.ID] && r.Severity != "critical" {
			outside = r.ID
			break
		}
	}
	if outside == "" {
		t.Skip("every rule maps to pci_dss_4")
	}
	histScan(t, s.st, h.ID, histDay2, map[string]result.Status{histRuleA: result.Fail, outside: result.Pass})
	b := s.signIn("vera", "viewer")
	p := b.get("/frameworks/pci_dss_4")
	wantStatus(t, p, http.StatusOK, "pci_dss_4")
	m := regexp.MustCompile(`(?s)Fleet score now</h3><div class="big">([^<]*)</div>`).FindStringSubmatch(p.body)
	if m == nil || m[1] != "0.0" {
		t.Fatalf("pci_dss_4 fleet score = %v, want 0.0 (its only observed rule fails)", m)
	}
}

// TestReferenceLinksResolve follows every local link of the history,
// rule and framework pages: none may be broken.
func TestReferenceLinksResolve(t *testing.T) {
	s := newSite(t)
	f := seedHistory(t, s)
	b := s.signIn("vera", "viewer")
	href := regexp.MustCompile(`href="(/[^"#]*)`)
	seen := map[string]bool{}
	for _, start := range []string{
		fmt.Sprintf("/history?at=2026-01-25&host=%d&from=2026-01-12&to=2026-01-25", f.host.ID),
		"/rules/" + histRuleA, "/frameworks", "/frameworks/fedramp_moderate",
	} {
		p := b.get(start)
		wantStatus(t, p, http.StatusOK, start)
		for _, m := range href.FindAllStringSubmatch(p.body, -1) {
			link := html.UnescapeString(m[1])
			if seen[link] || strings.HasPrefix(link, "/static/") {
				continue
			}
			seen[link] = true
			if len(seen) > 1000 {
				t.Fatalf("more than 1000 distinct links; the crawl is bounded")
			}
			if got := b.get(link); got.status != http.StatusOK {
				t.Errorf("%s links to %s, which answers %d", start, link, got.status)
			}
		}
	}
	if !seen[fmt.Sprintf("/scans/%d", f.later.ID)] || !seen[fmt.Sprintf("/hosts/%d", f.host.ID)] {
		t.Errorf("the crawl missed the scan and host links: %v", seen)
	}
}
