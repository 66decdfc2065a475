package shellbatch

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestQuoteRoundTrip has the shell print every quoted word back.
func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"", "plain", "it's", "''", `\`, `"$HOME"`, "$(id)", "`id`", "a\nb", "*", "~root", "-n", "!", "a b\tc", "\x01\xff"}
	var script strings.Builder
	for _, w := range words {
		script.WriteString("printf '%s\\0' " + Quote(w) + "\n")
	}
	for _, sh := range shells(t) {
		out, err := exec.Command(sh, "-c", script.String()).Output()
		if err != nil {
			t.Fatalf("%s: %v", sh, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if !slices.Equal(got, words) {
			t.Errorf("%s: got %q, want %q", sh, got, words)
		}
	}
}

func TestQuoteGlob(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "/etc/*.conf", want: `'/etc/'*'.conf'`},
		{in: "/a b/?x", want: `'/a b/'?'x'`},
		{in: "/x/[^ab]*", want: `'/x/'[!ab]*`},
		{in: "/x/[a-z0-9_]", want: `'/x/'[a-z0-9_]`},
		{in: `/x/[!\-$]`, want: `'/x/'['!''-''$']`},
		{in: `/x/\*lit`, want: `'/x/*lit'`},
		{in: "/x/it's*", want: `'/x/it'\''s'*`},
		{in: "/x/$(id)*", want: `'/x/$(id)'*`},
		{in: "/x/[", err: true},
		{in: "/x/[a/b]", err: true},
		{in: "/x/[é]", err: true},
		{in: `/x/\`, err: true},
	}
	for _, tt := range tests {
		got, err := QuoteGlob(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadPattern) {
				t.Errorf("QuoteGlob(%q) = %q, %v; want ErrBadPattern", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("QuoteGlob(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestQuoteGlobMatchesGo expands patterns in the shell and with
// filepath.Glob over the same odd file names; both must agree.
func TestQuoteGlobMatchesGo(t *testing.T) {
	dir := t.TempDir()
	names := []string{"a.conf", "b.conf", "c.txt", "x$y", "it's", "a b", "[x]", "*", "-n", "!e", "a-1", "a_1", "Z9"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	patterns := []string{"*", "*.conf", "?.*", "[ab]*", "[^ab]*", "a[\\-_]1", `a[\-]1`, `\*`, `\[x]`, "[!]*", "it'*", "x$*", "[$x]*", "a?b", "[A-Z][0-9]", "nomatch*", `[\^a]*`}
	for _, sh := range shells(t) {
		for _, pat := range patterns {
			full := filepath.Join(dir, pat)
			q, err := QuoteGlob(full)
			if err != nil {
				t.Errorf("QuoteGlob(%q): %v", pat, err)
				continue
			}
			// set -- expands the glob; an unmatched pattern stays as is.
			script := "set -- " + q + "\nfor p; do [ -e \"$p\" ] && printf '%s\\0' \"$p\"; done; :"
			out, err := exec.Command(sh, "-c", script).Output()
			if err != nil {
				t.Fatalf("%s %q: %v", sh, q, err)
			}
			var got []string
			for p := range bytes.SplitSeq(bytes.TrimSuffix(out, []byte{0}), []byte{0}) {
				if len(p) > 0 {
					got = append(got, string(p))
				}
			}
			want, _ := filepath.Glob(full)
			if !slices.Equal(got, want) {
				t.Errorf("%s pattern %q (%s): shell %q, Go %q", filepath.Base(sh), pat, q, got, want)
			}
		}
	}
}
