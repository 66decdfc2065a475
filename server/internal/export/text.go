package export

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// clean makes a stored string safe for every format: valid UTF-8, line
// ends as \n, no control characters other than \n and \t, and no
// signature marker (a host reporting "vigil-sig:v1:" in its output must not
// be able to make its own export unverifiable).
func clean(s string) string {
	if s == "" || (plainASCII(s) && !strings.Contains(s, sigPrefix)) {
		return s
	}
	return cleanSlow(s)
}

// cleanSlow is clean without the shortcut for text that needs nothing.
func cleanSlow(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\r':
			return '\n'
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return ' '
		case r == 0xFFFE || r == 0xFFFF || (r >= 0xD800 && r <= 0xDFFF):
			return '\uFFFD'
		}
		return r
	}, s)
	for strings.Contains(s, sigPrefix) {
		s = strings.ReplaceAll(s, sigPrefix, "vigil-sig/v1/")
	}
	return s
}

// plainASCII says s holds only printable ASCII, newlines and tabs: text
// clean leaves as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// clip cuts s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, k := 0, 0
	for i = range s {
		if k == n-1 {
			break
		}
		k++
	}
	return s[:i] + "…"
}

// cleanList cleans each item.
func cleanList(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = clean(s)
	}
	return out
}

// cleanMap cleans keys and values.
func cleanMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[clean(k)] = clean(v)
	}
	return out
}

// sortedKeys returns m's keys in order, so renderings are deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// oneLine folds whitespace runs (newlines included) into single spaces and
// trims the ends: what OSCAL property values and table cells need.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// latin1Fold maps common characters outside Latin-1 to look-alikes the PDF
// core fonts (WinAnsi) can draw.
var latin1Fold = map[rune]string{
	'‘': "'", '’': "'", '‚': ",", '‛': "'", '“': "\"", '”': "\"", '„': "\"", '‟': "\"",
	'–': "-", '—': "-", '―': "-", '‐': "-", '‑': "-", '−': "-", '…': "...", '•': "*",
	'→': "->", '←': "<-", '⇒': "=>", '≤': "<=", '≥': ">=", '≠': "!=", '✓': "v", '✗': "x",
	'€': "EUR", '™': "TM", '\u00a0': " ", '\u2009': " ", '\u200b': "", '\ufeff': "",
	'Ā': "A", 'ā': "a", 'Ă': "A", 'ă': "a", 'Ą': "A", 'ą': "a", 'Ć': "C", 'ć': "c", 'Č': "C", 'č': "c",
	'Ď': "D", 'ď': "d", 'Đ': "D", 'đ': "d", 'Ē': "E", 'ē': "e", 'Ę': "E", 'ę': "e", 'Ě': "E", 'ě': "e",
	'Ğ': "G", 'ğ': "g", 'Ī': "I", 'ī': "i", 'İ': "I", 'ı': "i", 'Ł': "L", 'ł': "l", 'Ń': "N", 'ń': "n",
	'Ň': "N", 'ň': "n", 'Ō': "O", 'ō': "o", 'Ő': "O", 'ő': "o", 'Œ': "OE", 'œ': "oe", 'Ř': "R", 'ř': "r",
	'Ś': "S", 'ś': "s", 'Ş': "S", 'ş': "s", 'Š': "S", 'š': "s", 'Ţ': "T", 'ţ': "t", 'Ť': "T", 'ť': "t",
	'Ū': "U", 'ū': "u", 'Ů': "U", 'ů': "u", 'Ű': "U", 'ű': "u", 'Ÿ': "Y", 'Ź': "Z", 'ź': "z", 'Ż': "Z",
	'ż': "z", 'Ž': "Z", 'ž': "z",
}

// latin1 converts s to the single-byte Latin-1 string the PDF core fonts
// expect: Latin-1 characters become their byte, known look-alikes are
// substituted, anything else becomes '?'. The result is never invalid for
// the PDF whatever s holds.
func latin1(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case r == '\n':
			b.WriteByte('\n') // MultiCell breaks lines there
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteByte(' ')
		case r < 0x100 && r != 0xa0:
			b.WriteByte(byte(r))
		default:
			if f, ok := latin1Fold[r]; ok {
				b.WriteString(f)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}
