package export

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

// Namespaces of ARF 1.1 and XCCDF 1.2.
const (
	nsARF      = "http://scap.nist.gov/schema/asset-reporting-format/1.1"
	nsCore     = "http://scap.nist.gov/schema/reporting-core/1.1"
	nsAI       = "http://scap.nist.gov/schema/asset-identification/1.1"
	nsXCCDF    = "http://checklists.nist.gov/xccdf/1.2"
	nsARFVocab = "http://scap.nist.gov/specifications/arf/vocabulary/relationships/1.0#"
	// xccdfNS is the reverse-DNS namespace part of Vigil's XCCDF ids.
	xccdfNS = "dev.vigil"
	// scoreRaw and scoreWithExceptions name Vigil's scoring systems: the
	// share of applicable rules passing, without and with accepted
	// failures counted as passing.
	scoreRaw            = "https://vigil.dev/scoring/raw"
	scoreWithExceptions = "https://vigil.dev/scoring/with-exceptions"
	frameworkIdentNS    = "https://vigil.dev/ns/framework/"
)

// hostnameRe is the asset-identification hostname pattern.
var hostnameRe = regexp.MustCompile(`^[\w\-]+(\.[\w\-]+)*$`)

// xmlw writes XML with escaping done in one place.
type xmlw struct{ b bytes.Buffer }

// open writes a start tag; attrs alternate name, value; empty values are
// left out.
func (w *xmlw) open(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteByte('>')
}

func (w *xmlw) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] == "" {
			continue
		}
		w.b.WriteByte(' ')
		w.b.WriteString(attrs[i])
		w.b.WriteString(`="`)
		xml.EscapeText(&w.b, []byte(attrs[i+1]))
		w.b.WriteByte('"')
	}
}

func (w *xmlw) close(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteString(">\n")
}

// empty writes a self-closed element.
func (w *xmlw) empty(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	w.attrs(attrs)
	w.b.WriteString("/>\n")
}

// elem writes an element holding escaped text.
func (w *xmlw) elem(name, text string, attrs ...string) {
	w.open(name, attrs...)
	xml.EscapeText(&w.b, []byte(text))
	w.close(name)
}

// xccdfID turns s into the NCName-safe tail of an XCCDF id.
func xccdfID(kind, s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	tail := b.String()
	if tail == "" {
		tail = "unnamed"
	}
	return "xccdf_" + xccdfNS + "_" + kind + "_" + tail
}

// xccdfResult maps a Vigil status to the XCCDF result vocabulary.
func xccdfResult(s result.Status) string {
	switch s {
	case result.Pass:
		return "pass"
	case result.Fail:
		return "fail"
	case result.Error:
		return "error"
	case result.Skipped:
		return "notapplicable"
	}
	return "unknown"
}

// xccdfSeverity maps a rule severity to XCCDF's (which has no critical).
func xccdfSeverity(s string) string {
	switch rule.Severity(s) {
	case rule.Critical, rule.High:
		return "high"
	case rule.Medium:
		return "medium"
	case rule.Low:
		return "low"
	}
	return "unknown"
}

func xmlTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// renderARF writes an ARF 1.1 asset report collection: one asset and one
// report per host, each report an XCCDF 1.2 TestResult. The signature is
// an XML comment before the root element.
func renderARF(r *report) ([]byte, error) {
	if len(r.Hosts) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrEmpty, r.Scope.Label())
	}
	exc := map[int64]exceptionRow{}
	for _, x := range r.Exceptions {
		exc[x.ID] = x
	}
	w := &xmlw{}
	w.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w.b.WriteString("<!-- " + placeholder + " -->\n")
	w.open("arf:asset-report-collection", "xmlns:arf", nsARF, "xmlns:core", nsCore, "xmlns:ai", nsAI,
		"xmlns:arfvocab", nsARFVocab)
	w.b.WriteByte('\n')
	w.open("core:relationships")
	w.b.WriteByte('\n')
	for _, h := range r.Hosts {
		w.open("core:relationship", "type", "arfvocab:isAbout", "subject", reportID(h.ID))
		w.elem("core:ref", assetID(h.ID))
		w.close("core:relationship")
	}
	w.close("core:relationships")
	w.open("arf:assets")
	w.b.WriteByte('\n')
	for _, h := range r.Hosts {
		w.open("arf:asset", "id", assetID(h.ID))
		w.open("ai:computing-device")
		if addr, err := netip.ParseAddr(h.Address); err == nil {
			w.open("ai:connections")
			w.open("ai:connection")
			w.open("ai:ip-address")
			if addr.Unmap().Is4() {
				w.elem("ai:ip-v4", addr.Unmap().String())
			} else {
				w.elem("ai:ip-v6", fullIPv6(addr))
			}
			w.close("ai:ip-address")
			w.close("ai:connection")
			w.close("ai:connections")
		}
		if hostnameRe.MatchString(h.Name) {
			w.elem("ai:hostname", h.Name)
		}
		w.close("ai:computing-device")
		w.close("arf:asset")
	}
	w.close("arf:assets")
	w.open("arf:reports")
	w.b.WriteByte('\n')
	for _, h := range r.Hosts {
		w.open("arf:report", "id", reportID(h.ID))
		w.open("arf:content")
		w.b.WriteByte('\n')
		writeTestResult(w, r, h, exc)
		w.close("arf:content")
		w.close("arf:report")
	}
	w.close("arf:reports")
	w.close("arf:asset-report-collection")
	return w.b.Bytes(), nil
}

func assetID(hostID int64) string  { return "asset-" + strconv.FormatInt(hostID, 10) }
func reportID(hostID int64) string { return "xccdf-" + strconv.FormatInt(hostID, 10) }

// fullIPv6 writes all eight groups, the only form the AI schema accepts.
func fullIPv6(a netip.Addr) string {
	b := a.As16()
	parts := make([]string, 8)
	for i := range parts {
		parts[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
	}
	return strings.Join(parts, ":")
}

// writeTestResult writes one host's XCCDF TestResult (in the XCCDF
// namespace as the default namespace, so it can be lifted out whole).
func writeTestResult(w *xmlw, r *report, h hostReport, exc map[int64]exceptionRow) {
	start, end := r.At, r.At
	for i, ru := range h.Rules {
		if i == 0 || ru.ObservedAt.Before(start) {
			start = ru.ObservedAt
		}
	}
	if start.After(end) {
		end = start
	}
	w.open("TestResult", "xmlns", nsXCCDF, "id", xccdfID("testresult", fmt.Sprintf("host%d-%s", h.ID, h.Name)),
		"start-time", xmlTime(start), "end-time", xmlTime(end), "test-system", r.Issuer)
	w.b.WriteByte('\n')
	w.empty("benchmark", "href", "#vigil-rule-corpus", "id", xccdfID("benchmark", "vigil"))
	title := "Vigil compliance results for " + h.Name
	if r.Framework != nil {
		title += " (" + r.Framework.ID + ")"
	}
	w.elem("title", title)
	w.elem("remark", fmt.Sprintf("Scope %s, as of %s; exported by %s at %s.", r.Scope.Label(), xmlTime(r.At),
		r.GeneratedBy, xmlTime(r.GeneratedAt)))
	w.elem("organization", r.Issuer)
	w.elem("identity", "vigil", "authenticated", "true", "privileged", "true")
	w.elem("target", h.Name)
	if h.Address != "" {
		w.elem("target-address", h.Address)
	}
	w.open("target-facts")
	w.b.WriteByte('\n')
	if hostnameRe.MatchString(h.Name) {
		w.elem("fact", h.Name, "name", "urn:xccdf:fact:asset:identifier:host_name", "type", "string")
	}
	if h.OS != "" {
		w.elem("fact", h.OS, "name", "urn:vigil:fact:os", "type", "string")
	}
	for _, k := range sortedKeys(h.Labels) {
		w.elem("fact", k+"="+h.Labels[k], "name", "urn:vigil:fact:label", "type", "string")
	}
	w.elem("fact", strconv.FormatInt(h.ID, 10), "name", "urn:vigil:fact:host-id", "type", "number")
	w.close("target-facts")
	for _, ru := range h.Rules {
		res := xccdfResult(ru.Status)
		x, accepted := exc[ru.ExceptionID]
		accepted = accepted && ru.Accepted
		if accepted {
			res = "pass" // the enclosing result must match the override's new-result
		}
		w.open("rule-result", "idref", xccdfID("rule", ru.RuleID), "severity", xccdfSeverity(ru.Severity),
			"time", xmlTime(ru.ObservedAt))
		w.elem("result", res)
		if accepted {
			w.open("override", "time", xmlTime(x.ApprovedAt), "authority", nonEmpty(x.ApprovedBy, "unknown"))
			w.elem("old-result", xccdfResult(ru.Status))
			w.elem("new-result", "pass")
			w.elem("remark", fmt.Sprintf("Exception #%d (%s %s): %s", x.ID, x.Scope, x.ScopeName, x.Justification))
			w.close("override")
		}
		for _, c := range ru.Controls {
			sys := frameworkIdentNS
			ctl := c
			if r.Framework != nil {
				sys += r.Framework.ID
			} else if fw, rest, ok := strings.Cut(c, " "); ok {
				sys, ctl = sys+fw, rest
			}
			w.elem("ident", ctl, "system", sys)
		}
		if ru.Reason != "" {
			w.elem("message", ru.Reason, "severity", "info")
		}
		w.close("rule-result")
	}
	w.elem("score", fmt.Sprintf("%.1f", h.Score), "system", scoreRaw, "maximum", "100")
	w.elem("score", fmt.Sprintf("%.1f", h.ScoreWithExceptions), "system", scoreWithExceptions, "maximum", "100")
	w.close("TestResult")
}

func nonEmpty(s, dflt string) string {
	if strings.TrimSpace(s) == "" {
		return dflt
	}
	return s
}
