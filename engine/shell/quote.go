// Package shell quotes values for POSIX sh. Every value the engine places in
// shell text (a variable in a `command` script, a path in a probe) passes
// through Quote, so a value can never become code.
package shell

import "strings"

// Quote returns s as one single-quoted sh word: 'it'\”s'.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isSafe reports whether s needs no quoting: only characters sh never
// interprets in a word.
func isSafe(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_./:,+@%", r):
		default:
			return false
		}
	}
	return true
}
