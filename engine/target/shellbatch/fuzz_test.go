package shellbatch

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// FuzzParse feeds arbitrary output to the parser of a fixed batch. The
// parser reads whatever a scanned (possibly hostile) host sends back, so it
// must never panic, always answer every request, and never return more
// than ReadLimit bytes for one file or stream.
func FuzzParse(f *testing.F) {
	good := goodOutput()
	f.Add([]byte(good))
	f.Add([]byte(""))
	f.Add([]byte(good[:len(good)/2]))
	f.Add([]byte(strings.ReplaceAll(good, "\n", "\r\n")))
	f.Add([]byte("VIGIL-" + testNonce + " start 1\nVIGIL-" + testNonce + " 0 b\nd \nVIGIL-" + testNonce + " 0 e\n"))
	b := newBatch(fixedReqs, testNonce)
	f.Fuzz(func(t *testing.T, out []byte) {
		resps, err := b.Parse(out, time.Unix(0, 0), 0)
		if len(resps) != len(fixedReqs) {
			t.Fatalf("%d responses for %d requests", len(resps), len(fixedReqs))
		}
		if err == nil && !strings.Contains(string(out), "VIGIL-"+testNonce+" done\n") {
			t.Fatal("batch accepted without done marker")
		}
		for i, r := range resps {
			if r.Req.Key() != fixedReqs[i].Key() {
				t.Fatalf("response %d answers the wrong request", i)
			}
			if len(r.Data) > target.ReadLimit || len(r.Stdout) > target.ReadLimit || len(r.Stderr) > target.ReadLimit {
				t.Fatalf("response %d exceeds ReadLimit", i)
			}
			for _, fi := range r.Files {
				if len(fi.Data) > target.ReadLimit {
					t.Fatalf("response %d file exceeds ReadLimit", i)
				}
			}
		}
	})
}
