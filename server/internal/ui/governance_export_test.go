package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/export"
)

func TestGovExportDownloads(t *testing.T) {
	s := newGovSite(t)
	f := seedFleet(t, s.site)
	auditor := s.signIn("aud", api.RoleAuditor)
	viewer := s.signIn("vic", api.RoleViewer)
	hostPath := fmt.Sprintf("/hosts/%d", f.web.ID)

	// The menu honours the page's framework selection.
	p := auditor.get(hostPath + "?framework=nist_800_53")
	wantPage(t, p, http.StatusOK, fmt.Sprintf(`href="/hosts/%d/export?format=pdf&amp;framework=nist_800_53"`, f.web.ID),
		fmt.Sprintf(`href="/hosts/%d/export?format=oscal&amp;framework=nist_800_53"`, f.web.ID))
	wantPage(t, auditor.get("/"), http.StatusOK, `href="/export?format=csv"`)
	// A role without exports.read sees no menu and is refused.
	wantAbsent(t, viewer.get(hostPath), "/export?format=")
	wantAbsent(t, viewer.get("/"), "/export?format=")
	wantPage(t, viewer.get(fmt.Sprintf("/hosts/%d/export?format=pdf", f.web.ID)), http.StatusForbidden, "exports.read")

	p = auditor.get(fmt.Sprintf("/hosts/%d/export?format=pdf", f.web.ID))
	if p.status != http.StatusOK || !strings.HasPrefix(p.body, "%PDF") {
		t.Fatalf("PDF export: %d %q", p.status, clip(p.body[:min(len(p.body), 200)]))
	}
	if ct := p.header.Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("PDF content type %q", ct)
	}
	if cd := p.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="vigil-host-web-1-`) || !strings.HasSuffix(cd, `.pdf"`) {
		t.Errorf("PDF disposition %q", cd)
	}
	sum := p.header.Get("X-Vigil-Export-SHA256")
	if len(sum) != 64 {
		t.Errorf("X-Vigil-Export-SHA256 %q", sum)
	}

	// Every format downloads signed, also as of a chosen moment (what the
	// host page's datetime-local field sends).
	at := time.Now().UTC().Format("2006-01-02T15:04")
	for _, format := range export.Formats() {
		p := auditor.get(fmt.Sprintf("/hosts/%d/export?format=%s&at=%s", f.web.ID, format, at))
		if p.status != http.StatusOK || !strings.Contains(p.body, "vigil-sig:v1:") {
			t.Errorf("%s export: %d, signed %v\n%s", format, p.status, strings.Contains(p.body, "vigil-sig:v1:"), clip(p.body))
		}
	}
	p = auditor.get("/export?format=csv")
	if p.status != http.StatusOK || !strings.Contains(p.body, "web-1") || !strings.Contains(p.body, "#signature,vigil-sig:v1:") {
		t.Fatalf("fleet CSV: %d\n%s", p.status, clip(p.body))
	}
	// Bad input is refused with a page saying why.
	wantPage(t, auditor.get(fmt.Sprintf("/hosts/%d/export?format=docx", f.web.ID)), http.StatusBadRequest, "Unknown export format")
	wantPage(t, auditor.get(fmt.Sprintf("/hosts/%d/export?format=pdf&at=yesterday", f.web.ID)), http.StatusBadRequest, "yesterday")
	wantPage(t, auditor.get("/hosts/99999/export?format=json"), http.StatusNotFound)

	n := 0
	for _, e := range auditActions(t, s.st) {
		if e.Action == "export.create" {
			n++
		}
	}
	if n < 6 {
		t.Errorf("export.create audit entries: %d, want at least 6", n)
	}
}
