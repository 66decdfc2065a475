package shellbatch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Quote returns s as a single POSIX shell word: wrapped in single quotes,
// with every embedded single quote closed, escaped and reopened:
//
//	it's  ->  'it'\''s'
//
// Inside single quotes no character is special, so the result is safe for
// any s without NUL bytes (which no shell word can carry).
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ErrBadPattern reports a glob pattern that is malformed or uses a feature
// the shell cannot reproduce faithfully.
var ErrBadPattern = errors.New("bad glob pattern")

// hasMeta reports whether a pattern contains Go glob syntax. A path without
// any is taken literally, backslashes included.
func hasMeta(pattern string) bool {
	return strings.ContainsAny(pattern, `*?[`)
}

// QuoteGlob turns a Go glob pattern (path/filepath.Match syntax: * ? [..]
// with ^ negation and \ escapes) into shell text that expands to the same
// matches: the literal parts are single-quoted and only the wildcards stay
// bare, so nothing in the pattern can run code or expand variables.
//
// Differences the shell cannot hide are refused rather than papered over:
// non-ASCII and '/' inside brackets. The shell, unlike Go, does not let * or
// ? match a leading dot; rules never rely on that.
func QuoteGlob(pattern string) (string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrBadPattern, pattern, err)
	}
	var out strings.Builder
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			out.WriteString(Quote(string(lit)))
			lit = lit[:0]
		}
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*', '?':
			flush()
			out.WriteByte(c)
		case '\\':
			// filepath.Match already refused a trailing backslash.
			i++
			lit = append(lit, pattern[i])
		case '[':
			flush()
			end, err := quoteClass(&out, pattern, i)
			if err != nil {
				return "", err
			}
			i = end
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return out.String(), nil
}

// quoteClass writes the bracket expression starting at pattern[start] ('[')
// and returns the index of its closing ']'. Go negates with '^', the shell
// with '!'; a Go '!' is an ordinary member and is therefore quoted. Members
// other than letters, digits and a few inert punctuation characters are
// quoted one by one, which both dash and bash treat as literal members; the
// range operator '-' stays bare.
func quoteClass(out *strings.Builder, pattern string, start int) (int, error) {
	out.WriteByte('[')
	j := start + 1
	if j < len(pattern) && pattern[j] == '^' {
		out.WriteByte('!')
		j++
	}
	for ; j < len(pattern) && pattern[j] != ']'; j++ {
		ch := pattern[j]
		escaped := false
		if ch == '\\' {
			j++
			ch = pattern[j]
			escaped = true
		}
		switch {
		case ch >= 0x80:
			return 0, fmt.Errorf("%w %q: non-ASCII character in brackets", ErrBadPattern, pattern)
		case ch == '/':
			return 0, fmt.Errorf("%w %q: '/' in brackets", ErrBadPattern, pattern)
		case ch == '-' && !escaped:
			out.WriteByte('-')
		case isInert(ch):
			out.WriteByte(ch)
		default:
			out.WriteString(Quote(string(ch)))
		}
	}
	if j >= len(pattern) {
		return 0, fmt.Errorf("%w %q: unterminated '['", ErrBadPattern, pattern)
	}
	out.WriteByte(']')
	return j, nil
}

// isInert reports characters that mean nothing to the shell inside a bracket
// expression and may be written bare.
func isInert(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("._:,+@%=", c) >= 0
}

// checkPath refuses what cannot travel as a shell word or name one file: an
// empty path, a NUL byte (impossible in a path and in argv) and a newline
// (legal in a file name, but never in a rule, and a classic way to smuggle
// a second line into tools that read line by line).
func checkPath(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty %s", what)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%s %q contains a NUL byte", what, p)
	case strings.ContainsAny(p, "\n\r"):
		return fmt.Errorf("%s %q contains a newline", what, p)
	}
	return nil
}
