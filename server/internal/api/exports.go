package api

import (
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/export"
)

// exportQuery reads the query every export route shares: format
// (required), at (as-of moment, parsed like GET /posture?at=) and
// framework. On failure it has answered 400 naming the parameter.
func (s *Server) exportQuery(c *gin.Context, sc *export.Scope) (string, bool) {
	format := c.Query("format")
	if format == "" {
		badRequest(c, "format", "format is required: json, csv, pdf, arf or oscal")
		return "", false
	}
	if v := c.Query("at"); v != "" {
		at, err := ParseAt(v, s.now().UTC())
		if err != nil {
			badRequest(c, "at", "at: %v", err)
			return "", false
		}
		sc.At = at
	}
	sc.Framework = c.Query("framework")
	if sc.Framework != "" && s.d.Posture != nil {
		if _, ok := s.frameworkRules(c, sc.Framework); !ok {
			return "", false
		}
	}
	return format, true
}

// sendExport renders and streams a signed export as an attachment, with
// its SHA-256 and signing key id in headers so a script can check the
// file it saved.
func (s *Server) sendExport(c *gin.Context, sc export.Scope, format string) {
	f, r := s.Export(c, sc, format)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	c.Header("X-Vigil-Export-SHA256", f.SHA256)
	c.Header("X-Vigil-Export-Key", f.KeyID)
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, f.ContentType, f.Body)
}

// hostExport answers GET /hosts/:id/export?format=&at=&framework=.
func (s *Server) hostExport(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	sc := export.Scope{HostID: id}
	format, ok := s.exportQuery(c, &sc)
	if !ok {
		return
	}
	s.sendExport(c, sc, format)
}

// scanExport answers GET /scans/:id/export?format=&framework=: the results
// of one scan (as of that scan, so at is refused).
func (s *Server) scanExport(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if c.Query("at") != "" {
		badRequest(c, "at", "a scan export is as of the scan; at does not apply")
		return
	}
	sc := export.Scope{ScanID: id}
	format, ok := s.exportQuery(c, &sc)
	if !ok {
		return
	}
	s.sendExport(c, sc, format)
}

// fleetExport answers GET /export?format=&group=&at=&framework=: the whole
// fleet, or one group's hosts.
func (s *Server) fleetExport(c *gin.Context) {
	sc := export.Scope{Group: c.Query("group")}
	format, ok := s.exportQuery(c, &sc)
	if !ok {
		return
	}
	if sc.Group != "" && !s.groupExists(c, sc.Group, "group") {
		return
	}
	s.sendExport(c, sc, format)
}

// exportPublicKey answers GET /export/public-key: the PEM (PKIX) public
// key that verifies every export's signature, for `vigil-server verify
// --public-key` on a machine without the server's data directory.
func (s *Server) exportPublicKey(c *gin.Context) {
	pemKey := s.exportKeyPEM()
	if pemKey == nil {
		s.refuse(c, s.governanceReady("the export signing key", false))
		return
	}
	c.Header("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": "vigil-export-signing.pub.pem"}))
	c.Data(http.StatusOK, "application/x-pem-file", pemKey)
}

// exportKeyPEM is the exporter's public signing key as PEM, nil when no
// exporter is configured.
func (s *Server) exportKeyPEM() []byte {
	if s.d.Exporter == nil {
		return nil
	}
	return s.d.Exporter.PublicKeyPEM()
}
