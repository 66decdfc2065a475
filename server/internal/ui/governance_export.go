package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/export"
)

// exportLink is one entry of an export menu.
type exportLink struct {
	Format, Label, Href string
}

// exportLabels name the formats in the menus.
var exportLabels = map[export.Format]string{
	export.PDF: "PDF report", export.CSV: "CSV", export.JSON: "JSON",
	export.ARF: "XCCDF 1.2 / ARF", export.OSCAL: "OSCAL assessment results",
}

// exportLinks lists a menu's links: base (a UI export path) with format,
// and framework, at and group when set.
func exportLinks(base, framework, at, group string) []exportLink {
	var out []exportLink
	for _, f := range export.Formats() {
		q := "?format=" + string(f)
		if framework != "" {
			q += "&framework=" + url.QueryEscape(framework)
		}
		if at != "" {
			q += "&at=" + url.QueryEscape(at)
		}
		if group != "" {
			q += "&group=" + url.QueryEscape(group)
		}
		out = append(out, exportLink{Format: string(f), Label: exportLabels[f], Href: base + q})
	}
	return out
}

// hostExport answers GET /hosts/:id/export: the browser's session cookie
// does not authenticate the REST API (bearer tokens only), so the UI
// serves the same signed export through the API's Export (same
// permission, same audit entry).
func (u *UI) hostExport(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	u.serveExport(c, export.Scope{HostID: id})
}

// fleetExport answers GET /export: the fleet, or one group with ?group=.
func (u *UI) fleetExport(c *gin.Context) {
	u.serveExport(c, export.Scope{Group: strings.TrimSpace(c.Query("group"))})
}

// serveExport reads format, framework and at, renders the export and
// streams it as a download.
func (u *UI) serveExport(c *gin.Context, s export.Scope) {
	format := c.Query("format")
	if !slices.Contains(export.Formats(), export.Format(format)) {
		u.renderError(c, req(c), http.StatusBadRequest, fmt.Sprintf("Unknown export format %q: choose pdf, csv, json, arf or oscal.", format))
		return
	}
	s.Framework = c.Query("framework")
	if v := c.Query("at"); v != "" {
		t, ok := localMinute(v)
		if !ok {
			u.renderError(c, req(c), http.StatusBadRequest, fmt.Sprintf("%q is not a moment (YYYY-MM-DD, YYYY-MM-DDTHH:MM or RFC 3339, UTC).", v))
			return
		}
		s.At = t
	}
	f, r := u.d.API.Export(c, s, format)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderError(c, req(c), status, msg) })
		return
	}
	u.log.Info("ui export", "request_id", api.RequestID(c), "format", format, "sha256", f.SHA256, "bytes", len(f.Body))
	c.Header("Content-Disposition", `attachment; filename="`+safeFileName(f.Name)+`"`)
	c.Header("X-Vigil-Export-SHA256", f.SHA256)
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Length", strconv.Itoa(len(f.Body)))
	c.Data(http.StatusOK, f.ContentType, f.Body)
}

// safeFileName keeps a suggested file name to characters that need no
// quoting in Content-Disposition.
func safeFileName(n string) string {
	b := []byte(n)
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-' || ch == '_'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "vigil-export"
	}
	return string(b)
}
