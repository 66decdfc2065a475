package export

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

// The JSON export's own schema, version 1. Field order is the order people
// read: what it is, what it covers, the figures, the detail, the signature
// last. The document is streamed into one buffer by jsonWriter rather than
// built as a tree and encoded: a fleet export holds tens of megabytes, and
// encoding/json's indent pass doubled both time and memory. The output is
// byte for byte what encoding/json's Encoder (SetIndent "", "  ", HTML
// escaping on) writes for the schema types in render_json_ref_test.go.
//
//	{vigil_export, issuer, generated_at, generated_by,
//	 scope {kind, name?, scan_id?, host_id?, group?}, as_of,
//	 framework? {id, title}, summary {hosts, score, score_with_exceptions,
//	 counts, bands}, controls? [{id, title?, status, rules, pass, fail,
//	 accepted, error, skipped}], hosts [{id, name, address?, os?, labels?,
//	 groups?, score, band, score_with_exceptions, band_with_exceptions,
//	 counts, rules [{rule_id, title, severity, status, accepted,
//	 exception_id?, controls, scan_id, observed_at, reason?}], failures
//	 [{rule_id, title, severity, status, accepted, exception_id?, reason?,
//	 description?, fix?, evidence [{method, command, expected, actual,
//	 output?, truncated?}]}], failures_omitted?}], exceptions [{id, rule_id,
//	 rule_title, scope, scope_name, justification, requested_by,
//	 requested_at, approved_by, approved_at, expires_at?}], signature}

// renderJSON writes the report as indented JSON, signature placeholder in
// the top-level "signature".
func renderJSON(r *report) ([]byte, error) {
	w := &jsonWriter{b: make([]byte, 0, 64<<10)}
	w.open('{')
	w.key("vigil_export")
	w.int(1)
	w.key("issuer")
	w.str(r.Issuer)
	w.key("generated_at")
	w.time(r.GeneratedAt)
	w.key("generated_by")
	w.str(r.GeneratedBy)

	w.key("scope")
	w.open('{')
	w.key("kind")
	w.str(r.Scope.Kind)
	if r.Scope.Name != "" {
		w.key("name")
		w.str(r.Scope.Name)
	}
	if r.Scope.ScanID != 0 {
		w.key("scan_id")
		w.int(r.Scope.ScanID)
	}
	if r.Scope.HostID != 0 {
		w.key("host_id")
		w.int(r.Scope.HostID)
	}
	if r.Scope.Kind == "group" && r.Scope.Name != "" {
		w.key("group")
		w.str(r.Scope.Name)
	}
	w.close('}')

	w.key("as_of")
	w.time(r.At)
	if r.Framework != nil {
		w.key("framework")
		w.open('{')
		w.key("id")
		w.str(r.Framework.ID)
		w.key("title")
		w.str(r.Framework.Title)
		w.close('}')
	}

	w.key("summary")
	w.open('{')
	w.key("hosts")
	w.int(int64(r.Summary.Hosts))
	w.key("score")
	w.float(r.Summary.Score)
	w.key("score_with_exceptions")
	w.float(r.Summary.ScoreWithExceptions)
	w.key("counts")
	w.counts(r.Summary.Counts)
	w.key("bands")
	w.intMap(r.Summary.Bands)
	w.close('}')

	if r.Framework != nil && len(r.Controls) > 0 {
		w.key("controls")
		w.open('[')
		for _, c := range r.Controls {
			w.elem()
			w.open('{')
			w.key("id")
			w.str(c.ID)
			if c.Title != "" {
				w.key("title")
				w.str(c.Title)
			}
			w.key("status")
			w.str(c.Status)
			w.key("rules")
			w.strList(c.Rules)
			w.key("pass")
			w.int(int64(c.Pass))
			w.key("fail")
			w.int(int64(c.Fail))
			w.key("accepted")
			w.int(int64(c.Accepted))
			w.key("error")
			w.int(int64(c.Error))
			w.key("skipped")
			w.int(int64(c.Skipped))
			w.close('}')
		}
		w.close(']')
	}

	w.key("hosts")
	w.open('[')
	for i := range r.Hosts {
		start := len(w.b)
		w.host(&r.Hosts[i])
		if i == 0 && len(r.Hosts) > 1 {
			// Hosts are alike in size: reserve room for the rest now
			// rather than doubling the buffer repeatedly.
			per := len(w.b) - start
			w.b = slices.Grow(w.b, per*(len(r.Hosts)-1)+per/8+4096)
		}
	}
	w.close(']')

	w.key("exceptions")
	w.open('[')
	for _, x := range r.Exceptions {
		w.elem()
		w.open('{')
		w.key("id")
		w.int(x.ID)
		w.key("rule_id")
		w.str(x.RuleID)
		w.key("rule_title")
		w.str(x.RuleTitle)
		w.key("scope")
		w.str(x.Scope)
		w.key("scope_name")
		w.str(x.ScopeName)
		w.key("justification")
		w.str(x.Justification)
		w.key("requested_by")
		w.str(x.RequestedBy)
		w.key("requested_at")
		w.time(x.RequestedAt)
		w.key("approved_by")
		w.str(x.ApprovedBy)
		w.key("approved_at")
		w.time(x.ApprovedAt)
		if !x.ExpiresAt.IsZero() {
			w.key("expires_at")
			w.time(x.ExpiresAt)
		}
		w.close('}')
	}
	w.close(']')

	w.key("signature")
	w.str(placeholder)
	w.close('}')
	w.b = append(w.b, '\n')
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// host writes one element of "hosts".
func (w *jsonWriter) host(h *hostReport) {
	w.elem()
	w.open('{')
	w.key("id")
	w.int(h.ID)
	w.key("name")
	w.str(h.Name)
	if h.Address != "" {
		w.key("address")
		w.str(h.Address)
	}
	if h.OS != "" {
		w.key("os")
		w.str(h.OS)
	}
	if len(h.Labels) > 0 {
		w.key("labels")
		w.open('{')
		for _, k := range sortedKeys(h.Labels) {
			w.key(k)
			w.str(h.Labels[k])
		}
		w.close('}')
	}
	if len(h.Groups) > 0 {
		w.key("groups")
		w.strList(h.Groups)
	}
	w.key("score")
	w.float(h.Score)
	w.key("band")
	w.str(h.Band)
	w.key("score_with_exceptions")
	w.float(h.ScoreWithExceptions)
	w.key("band_with_exceptions")
	w.str(h.BandWithExceptions)
	w.key("counts")
	w.counts(h.Counts)

	w.key("rules")
	w.open('[')
	for i := range h.Rules {
		ru := &h.Rules[i]
		w.elem()
		w.open('{')
		w.key("rule_id")
		w.str(ru.RuleID)
		w.key("title")
		w.str(ru.Title)
		w.key("severity")
		w.str(ru.Severity)
		w.key("status")
		w.str(string(ru.Status))
		w.key("accepted")
		w.bool(ru.Accepted)
		if ru.ExceptionID != 0 {
			w.key("exception_id")
			w.int(ru.ExceptionID)
		}
		w.key("controls")
		w.strList(ru.Controls)
		w.key("scan_id")
		w.int(ru.ScanID)
		w.key("observed_at")
		w.time(ru.ObservedAt)
		if ru.Reason != "" {
			w.key("reason")
			w.str(ru.Reason)
		}
		w.close('}')
	}
	w.close(']')

	w.key("failures")
	w.open('[')
	for i := range h.Failures {
		f := &h.Failures[i]
		w.elem()
		w.open('{')
		w.key("rule_id")
		w.str(f.RuleID)
		w.key("title")
		w.str(f.Title)
		w.key("severity")
		w.str(f.Severity)
		w.key("status")
		w.str(string(f.Status))
		w.key("accepted")
		w.bool(f.Accepted)
		if f.ExceptionID != 0 {
			w.key("exception_id")
			w.int(f.ExceptionID)
		}
		if f.Reason != "" {
			w.key("reason")
			w.str(f.Reason)
		}
		if f.Description != "" {
			w.key("description")
			w.str(f.Description)
		}
		if f.Fix != "" {
			w.key("fix")
			w.str(f.Fix)
		}
		w.key("evidence")
		w.open('[')
		for _, x := range f.Evidence {
			w.elem()
			w.open('{')
			w.key("method")
			w.str(x.Method)
			w.key("command")
			w.str(x.Command)
			w.key("expected")
			w.str(x.Expected)
			w.key("actual")
			w.str(x.Actual)
			if x.Output != "" {
				w.key("output")
				w.str(x.Output)
			}
			if x.Truncated {
				w.key("truncated")
				w.bool(true)
			}
			w.close('}')
		}
		w.close(']')
		w.close('}')
	}
	w.close(']')
	if h.FailuresOmitted != 0 {
		w.key("failures_omitted")
		w.int(int64(h.FailuresOmitted))
	}
	w.close('}')
}

// jsonWriter appends indented JSON (two spaces per level) to one buffer.
// Containers are opened and closed explicitly; key and elem put the
// separator and line break before a member, so an empty container comes
// out as {} or [] the way encoding/json writes it.
type jsonWriter struct {
	b     []byte
	depth int
	// filled[d] says the container at depth d already has a member.
	filled []bool
	err    error // first value encoding/json would have refused
}

func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
	for len(w.filled) <= w.depth {
		w.filled = append(w.filled, false)
	}
	w.filled[w.depth] = false
}

func (w *jsonWriter) close(c byte) {
	if w.filled[w.depth] {
		w.newline(w.depth - 1)
	}
	w.depth--
	w.b = append(w.b, c)
}

// elem starts an array member.
func (w *jsonWriter) elem() {
	if w.filled[w.depth] {
		w.b = append(w.b, ',')
	}
	w.filled[w.depth] = true
	w.newline(w.depth)
}

// key starts an object member named k.
func (w *jsonWriter) key(k string) {
	w.elem()
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':', ' ')
}

func (w *jsonWriter) newline(depth int) {
	w.b = append(w.b, '\n')
	for range depth {
		w.b = append(w.b, ' ', ' ')
	}
}

func (w *jsonWriter) str(s string) { w.b = appendJSONString(w.b, s) }
func (w *jsonWriter) int(n int64)  { w.b = strconv.AppendInt(w.b, n, 10) }
func (w *jsonWriter) bool(v bool)  { w.b = strconv.AppendBool(w.b, v) }
func (w *jsonWriter) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		if w.err == nil {
			w.err = fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
		}
		w.b = append(w.b, '0')
		return
	}
	// As encoding/json: ES6 number formatting.
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

// time writes t as time.Time.MarshalJSON does (RFC 3339 with nanoseconds).
func (w *jsonWriter) time(t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		if w.err == nil {
			w.err = fmt.Errorf("json: time %s: year outside of range [0,9999]", t)
		}
	}
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// strList writes a string array; nil is written as [] (the schema's
// arrays are never null).
func (w *jsonWriter) strList(ss []string) {
	w.open('[')
	for _, s := range ss {
		w.elem()
		w.str(s)
	}
	w.close(']')
}

func (w *jsonWriter) intMap(m map[string]int) {
	if m == nil {
		w.b = append(w.b, "null"...)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.open('{')
	for _, k := range keys {
		w.key(k)
		w.int(int64(m[k]))
	}
	w.close('}')
}

func (w *jsonWriter) counts(c posture.Counts) {
	w.open('{')
	w.key("pass")
	w.int(int64(c.Pass))
	w.key("fail")
	w.int(int64(c.Fail))
	w.key("error")
	w.int(int64(c.Error))
	w.key("skipped")
	w.int(int64(c.Skipped))
	w.key("critical_fail")
	w.int(int64(c.CriticalFail))
	w.key("accepted")
	w.int(int64(c.Accepted))
	if c.AcceptedCritical != 0 {
		w.key("accepted_critical")
		w.int(int64(c.AcceptedCritical))
	}
	w.close('}')
}

// appendJSONString quotes s the way encoding/json does with HTML escaping
// on: ", \ and control characters escaped (\b \f \n \r \t by name), < > &
// as \u003c \u003e \u0026, U+2028 and U+2029 escaped, invalid UTF-8 as
// \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
