// Package export writes auditor-ready reports of posture and findings, per
// scan, host, group or fleet, per framework and as of any moment: JSON,
// CSV, PDF, XCCDF 1.2 TestResults in ARF 1.1, and OSCAL Assessment Results
// with the Assessment Plan they reference. Every file carries its SHA-256
// and an Ed25519 signature that Verify (vigil-server verify) checks.
package export

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Format is an export format.
type Format string

// The formats.
const (
	JSON  Format = "json"
	CSV   Format = "csv"
	PDF   Format = "pdf"
	ARF   Format = "arf"
	OSCAL Format = "oscal"
)

// Formats lists the formats in the order the UI offers them.
func Formats() []Format { return []Format{PDF, CSV, JSON, ARF, OSCAL} }

// ParseFormat returns the format named s, or an error wrapping
// ErrInvalidScope naming the valid ones.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w: format %q: want one of pdf, csv, json, arf, oscal", ErrInvalidScope, s)
}

// ContentType returns the media type a file of this format is served as.
func (f Format) ContentType() string {
	switch f {
	case CSV:
		return "text/csv"
	case PDF:
		return "application/pdf"
	case ARF:
		return "application/xml"
	}
	return "application/json"
}

// ext returns the file-name extension of the format.
func (f Format) ext() string {
	switch f {
	case ARF:
		return "arf.xml"
	case OSCAL:
		return "oscal.json"
	}
	return string(f)
}

// Scope selects what an export covers. ScanID, HostID and Group are
// exclusive; none means the fleet.
type Scope struct {
	ScanID    int64
	HostID    int64
	Group     string
	Framework string    // "": every rule
	At        time.Time // zero: now; a scan export is always as of the scan's end
}

// ErrInvalidScope is wrapped by errors about a scope or format the caller
// got wrong (two of scan, host and group, unknown framework or format), so
// the API answers 400 rather than 500. Unknown hosts, scans and groups wrap
// store.ErrNotFound instead.
var ErrInvalidScope = errors.New("invalid export scope")

// ErrTooLarge is wrapped when a scope holds more hosts than Deps.MaxHosts.
var ErrTooLarge = errors.New("export too large")

// DefaultMaxHosts is Deps.MaxHosts's default.
const DefaultMaxHosts = 1000

// ErrEmpty is wrapped when a format cannot describe a scope without hosts
// (ARF needs at least one report), so the API can answer 404.
var ErrEmpty = errors.New("the scope holds no host")

// Deps is what the exporter needs.
type Deps struct {
	Store   store.Store
	Posture *posture.Service // with waivers set, so accepted failures show
	// Waivers, when set (the same governance service given to
	// posture.SetWaivers), lets the exporter read each host's state once
	// instead of twice; nil works, slower for large scopes.
	Waivers    posture.Waivers
	Signer     *Signer
	Now        func() time.Time // nil: time.Now
	ServerName string           // shown as the report's issuer
	// MaxHosts caps the hosts of one export (0: DefaultMaxHosts). Exports
	// are built in memory, so a fleet larger than this is exported by
	// group; the refusal (ErrTooLarge) says so.
	MaxHosts int
}

// File is one finished export.
type File struct {
	Name        string // suggested file name, e.g. vigil-host-web1-20261130.pdf
	ContentType string
	Body        []byte
	SHA256      string // hex SHA-256 the signature covers (see Verify)
	KeyID       string
}

// Exporter builds exports. It is safe for concurrent use.
type Exporter struct {
	d Deps
}

// Signer holds the server's Ed25519 export signing key.
type Signer struct {
	key ed25519.PrivateKey
}

// Info is what Verify found in a signed export.
type Info struct {
	SHA256 string
	KeyID  string
}

// New returns an Exporter.
func New(d Deps) *Exporter {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.ServerName == "" {
		d.ServerName = "vigil-server"
	}
	return &Exporter{d: d}
}

// Export renders scope in format f; by names the requesting user.
func (e *Exporter) Export(ctx context.Context, s Scope, f Format, by string) (File, error) {
	if e.d.Signer == nil {
		return File{}, errors.New("export: no signing key configured")
	}
	if _, err := ParseFormat(string(f)); err != nil {
		return File{}, fmt.Errorf("export: %w", err)
	}
	r, err := e.build(ctx, s, by)
	if err != nil {
		return File{}, err
	}
	var body []byte
	switch f {
	case JSON:
		body, err = renderJSON(r)
	case CSV:
		body, err = renderCSV(r)
	case PDF:
		body, err = renderPDF(r)
	case ARF:
		body, err = renderARF(r)
	case OSCAL:
		body, err = renderOSCAL(r)
	}
	if err != nil {
		return File{}, fmt.Errorf("export: render %s of %s: %w", f, r.Scope.Label(), err)
	}
	digest, err := e.d.Signer.sign(body)
	if err != nil {
		return File{}, fmt.Errorf("export: sign %s of %s: %w", f, r.Scope.Label(), err)
	}
	return File{
		Name:        fileName(r, f),
		ContentType: f.ContentType(),
		Body:        body,
		SHA256:      digest,
		KeyID:       e.d.Signer.KeyID(),
	}, nil
}

// PublicKeyPEM returns the signing key's public half as PEM, what
// GET /api/v1/export/public-key hands auditors; nil without a signer.
func (e *Exporter) PublicKeyPEM() []byte {
	if e.d.Signer == nil {
		return nil
	}
	return e.d.Signer.PublicKeyPEM()
}

// KeyID returns the signing key's id; "" without a signer.
func (e *Exporter) KeyID() string {
	if e.d.Signer == nil {
		return ""
	}
	return e.d.Signer.KeyID()
}

// fileName is vigil-<scope>-<name>-<yyyymmdd>.<ext>, the name reduced to
// characters every file system and Content-Disposition header accepts.
func fileName(r *report, f Format) string {
	name := r.Scope.Name
	if r.Scope.Kind == "fleet" {
		name = "all"
	}
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	n := strings.Trim(b.String(), ".")
	if n == "" {
		n = "unnamed"
	}
	return fmt.Sprintf("vigil-%s-%s-%s.%s", r.Scope.Kind, n, r.At.UTC().Format("20060102"), f.ext())
}
