package shell

import (
	"os/exec"
	"testing"
)

// TestQuoteRoundTrip runs each quoted value through a real sh and checks the
// shell sees exactly the original bytes as one argument.
func TestQuoteRoundTrip(t *testing.T) {
	cases := []string{"", "plain", "with space", "it's", `"dq"`, "$(id)", "`id`", "a;b|c&d", "new\nline", "glob*?[x]", "~user", "-n", "A=b", "back\\slash", "'", "''"}
	for _, c := range cases {
		out, err := exec.Command("sh", "-c", "printf '%s' "+Quote(c)).Output()
		if err != nil {
			t.Fatalf("sh failed for %q: %v", c, err)
		}
		if string(out) != c {
			t.Errorf("Quote(%q) = %s; sh printed %q", c, Quote(c), out)
		}
	}
}
