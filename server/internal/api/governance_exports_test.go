package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// exportContentTypes is the Content-Type each format is served with.
func exportContentTypes() map[string]string {
	return map[string]string{"json": "application/json", "csv": "text/csv", "pdf": "application/pdf",
		"arf": "application/xml", "oscal": "application/json"}
}

// checkExport fails unless r is a signed export in format that the public
// key verifies, with the headers a script relies on.
func (g *govAPI) checkExport(r resp, format string, pub []byte) {
	g.t.Helper()
	if r.status != 200 {
		g.t.Fatalf("%s export: %d %s", format, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, exportContentTypes()[format]) {
		g.t.Fatalf("%s export content type %q", format, ct)
	}
	disp, params, err := mime.ParseMediaType(r.header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || !strings.HasPrefix(params["filename"], "vigil-") {
		g.t.Fatalf("%s export Content-Disposition %q (%v)", format, r.header.Get("Content-Disposition"), err)
	}
	info, err := export.Verify(r.body, pub)
	if err != nil {
		g.t.Fatalf("%s export does not verify: %v", format, err)
	}
	if info.SHA256 != r.header.Get("X-Vigil-Export-SHA256") || info.KeyID != r.header.Get("X-Vigil-Export-Key") || len(info.SHA256) != 64 {
		g.t.Fatalf("%s export: verified %+v, headers sha256 %q key %q", format, info,
			r.header.Get("X-Vigil-Export-SHA256"), r.header.Get("X-Vigil-Export-Key"))
	}
}

func TestExportsAreSignedAndAudited(t *testing.T) {
	g := newGovAPI(t)
	rules := g.idx.Rules()
	g.addGroup("web")
	h := g.addHost(store.Host{Name: "web1", Address: "127.0.0.9", Groups: []string{"web"}})
	h2 := g.addHost(store.Host{Name: "db1", Address: "127.0.0.10"})
	sc := g.scan(h.ID, g.res(rules[0].ID, result.Fail), g.res(rules[1].ID, result.Pass))
	g.scan(h2.ID, g.res(rules[0].ID, result.Pass))
	g.clock.Advance(time.Hour)
	pub := g.publicKey(g.viewer)

	formats := []string{"json", "csv", "pdf", "arf", "oscal"}
	for _, f := range formats {
		g.checkExport(g.as(g.auditor, "GET", pathf("/api/v1/hosts/%d/export?format=%s", h.ID, f), nil), f, pub)
		g.checkExport(g.as(g.auditor, "GET", "/api/v1/export?format="+f, nil), f, pub)
	}
	g.checkExport(g.as(g.operator, "GET", "/api/v1/export?format=json&group=web", nil), "json", pub)
	g.checkExport(g.as(g.auditor, "GET", pathf("/api/v1/scans/%d/export?format=csv", sc.ID), nil), "csv", pub)
	g.checkExport(g.as(g.auditor, "GET", pathf("/api/v1/hosts/%d/export?format=pdf&at=2026-01-15T09:30:00Z", h.ID), nil), "pdf", pub)
	fw := g.idx.Frameworks()[0].ID
	g.checkExport(g.as(g.auditor, "GET", pathf("/api/v1/hosts/%d/export?format=oscal&framework=%s", h.ID, fw), nil), "oscal", pub)

	// Who may export: not a viewer.
	if r := g.as(g.viewer, "GET", "/api/v1/export?format=json", nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer export: %d %s", r.status, r.body)
	}

	// Refusals name the parameter and write nothing to the audit log.
	before := g.auditCount()
	for _, c := range []struct {
		path, field string
		status      int
	}{
		{pathf("/api/v1/hosts/%d/export", h.ID), "format", 400},
		{pathf("/api/v1/hosts/%d/export?format=docx", h.ID), "format", 400},
		{pathf("/api/v1/hosts/%d/export?format=json&at=2027-01-01", h.ID), "at", 400},
		{pathf("/api/v1/hosts/%d/export?format=json&at=yesterday", h.ID), "at", 400},
		{pathf("/api/v1/hosts/%d/export?format=json&framework=nist-9000", h.ID), "framework", 400},
		{"/api/v1/hosts/9999/export?format=json", "id", 404},
		{"/api/v1/hosts/x/export?format=json", "id", 400},
		{"/api/v1/scans/9999/export?format=json", "id", 404},
		{pathf("/api/v1/scans/%d/export?format=json&at=2026-01-15", sc.ID), "at", 400},
		{"/api/v1/export?format=json&group=nosuch", "group", 400},
	} {
		r := g.as(g.auditor, "GET", c.path, nil)
		if r.status != c.status || r.errorBody(t).Error.Field != c.field {
			t.Errorf("GET %s = %d %s, want %d naming %s", c.path, r.status, r.body, c.status, c.field)
		}
	}
	if g.auditCount() != before {
		t.Fatal("refused exports wrote audit entries")
	}

	es := g.auditWith("export.create")
	if len(es) != 2*len(formats)+4 {
		t.Fatalf("%d export.create entries, want %d", len(es), 2*len(formats)+4)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(es[0].Detail), &d); err != nil {
		t.Fatal(err)
	}
	if d["format"] != "json" || d["scope"] != "host" || len(d["sha256"].(string)) != 64 || d["at"] == nil || es[0].Actor != "audrey" ||
		es[0].Target != pathf("host/%d", h.ID) {
		t.Fatalf("first export audit = %+v", es[0])
	}
	if err := json.Unmarshal([]byte(es[1].Detail), &d); err != nil || d["scope"] != "fleet" || es[1].Target != "fleet" {
		t.Fatalf("fleet export audit = %+v", es[1])
	}
}

// TestExportTooLarge: a fleet over the exporter's host cap is refused with
// 413 naming the way out (export by group), and writes no audit entry; a
// host export still works.
func TestExportTooLarge(t *testing.T) {
	var sv govServices
	f := newFleetAPIWith(t, func(d *Deps, box notify.Box) {
		sv = wireGovernance(t, d, box)
		d.Exporter = export.New(export.Deps{Store: d.Store, Posture: d.Posture, Signer: sv.signer, Now: d.Now,
			ServerName: "vigil-test", MaxHosts: 1})
	})
	h := f.addHost(store.Host{Name: "web1", Address: "127.0.0.9"})
	f.addHost(store.Host{Name: "web2", Address: "127.0.0.10"})
	before := f.auditCount()
	r := f.do("GET", "/api/v1/export?format=json", f.token, nil)
	if body := string(r.body); r.status != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"export_too_large"`) ||
		!strings.Contains(body, `"field":"group"`) || !strings.Contains(body, "2 hosts") {
		t.Fatalf("fleet export over the cap: %d %s", r.status, r.body)
	}
	if n := f.auditCount(); n != before {
		t.Fatalf("refused export audited: last audit id %d, want %d", n, before)
	}
	if r := f.do("GET", pathf("/api/v1/hosts/%d/export?format=json", h.ID), f.token, nil); r.status != 200 {
		t.Fatalf("host export under the cap: %d %s", r.status, r.body)
	}
}
