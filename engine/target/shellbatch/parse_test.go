package shellbatch

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

const testNonce = "00112233445566778899aabbccddeeff"

// fixedReqs is the request list of the parser tests and the fuzz target.
var fixedReqs = []target.Request{
	{Op: target.OpRead, Path: "/etc/hostname"},
	{Op: target.OpStat, Path: "/etc/ssh/*.conf"},
	{Op: target.OpGlob, Path: "/etc/sysctl.d/*.conf", Content: true},
	{Op: target.OpExec, Script: "sshd -T", Timeout: 10 * time.Second},
	{Op: target.OpPackages},
	{Op: target.OpService, Path: "sshd.service"},
	{Op: target.OpModule, Path: "usb-storage"},
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// with returns goodPieces with piece i replaced.
func with(i int, piece string) []string {
	p := goodPieces()
	p[i] = piece
	return p
}

// goodPieces are the pieces of goodOutput, by number.
func goodPieces() []string {
	return []string{
		0:  "web01\n",
		1:  "/etc/ssh/a.conf\x00/etc/ssh/ssh_config\x00",
		2:  "/etc/sysctl.d/a.conf\x00/etc/sysctl.d/b.conf\x00",
		3:  "net.ipv4.ip_forward=0\n",
		4:  "head: cannot open 'x': Permission denied",
		5:  "/etc/ssh/ssh_config\x00" + "81a4\x000\x000\x001650\x00root\x00root\x00",
		6:  "/etc/ssh/a.conf\x00",
		7:  "stat: cannot statx '/etc/ssh/a.conf': Permission denied\n",
		8:  "permitrootlogin no\n",
		9:  "",
		10: "Package: bash\nStatus: install ok installed\nVersion: 5\n\n",
		11: "",
		12: "enabled\n",
		13: "inactive\n",
	}
}

// poolLines renders pieces first, first+1, ... as a pool section.
func poolLines(first int, pieces ...string) []string {
	m := "VIGIL-" + testNonce + " "
	var lens, data strings.Builder
	for _, p := range pieces {
		fmt.Fprintf(&lens, "%d ", len(p))
		data.WriteString(p)
	}
	return []string{fmt.Sprintf("%spool %d b", m, first), "k " + lens.String(), "z " + b64(data.String()), fmt.Sprintf("%spool %d e", m, first)}
}

// goodOutput is a well-formed answer to fixedReqs, laid out as the script
// prints it: file requests and the stat section first, pools after the
// frames that refer to them.
func goodOutput() string { return outputWith(goodPieces()) }

// outputWith is goodOutput with other pieces.
func outputWith(p []string) string {
	m := "VIGIL-" + testNonce + " "
	lines := []string{
		"banner from a noisy .bashrc",
		m + "start 1000",
		m + "0 b", "d 0", m + "0 e",
	}
	lines = append(lines, poolLines(0, p[0])...)
	lines = append(lines,
		m+"1 b", "g 1", m+"1 e",
		m+"2 b", "d 3", "x 4", "n 2", m+"2 e",
		m+"stat b", "r 5", "fn 6", "fe 7", m+"stat e",
	)
	lines = append(lines, poolLines(1, p[1:8]...)...)
	lines = append(lines,
		m+"3 b", "c 0", "t 2000 5000", "o 8", "e 9", m+"3 e",
		m+"4 b", "dc 0", "d 10", "de 11", m+"4 e",
		m+"5 b", "y 1", "ec 0", "en 12", "ac 3", "an 13", m+"5 e",
		m+"6 b", "l 1", "a 0", "bi 0", m+"6 e",
	)
	lines = append(lines, poolLines(8, p[8:]...)...)
	lines = append(lines, m+"done")
	return strings.Join(lines, "\n") + "\n"
}

func TestParseGood(t *testing.T) {
	b := newBatch(fixedReqs, testNonce)
	start := time.Unix(100, 0)
	r, err := b.Parse([]byte(goodOutput()), start, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r {
		if r[i].Err != nil {
			t.Fatalf("response %d: %v", i, r[i].Err)
		}
	}
	if string(r[0].Data) != "web01\n" || !r[0].Exists || r[0].Started != start || r[0].Duration != time.Second {
		t.Errorf("read: %+v", r[0])
	}
	if len(r[1].Files) != 2 || r[1].Files[0].Path != "/etc/ssh/a.conf" || r[1].Files[0].Err == "" ||
		r[1].Files[1].Mode != 0o644 || r[1].Files[1].Size != 1650 || r[1].Files[1].Type != "file" {
		t.Errorf("stat: %+v", r[1].Files)
	}
	if len(r[2].Files) != 2 || string(r[2].Files[0].Data) != "net.ipv4.ip_forward=0\n" || r[2].Files[1].Err == "" {
		t.Errorf("glob: %+v", r[2].Files)
	}
	if string(r[3].Stdout) != "permitrootlogin no\n" || r[3].Duration != 3000 || !r[3].Started.Equal(start.Add(1000)) {
		t.Errorf("exec: %+v", r[3])
	}
	if r[4].Packages["bash"].Version != "5" || len(r[4].PackageSources) != 1 {
		t.Errorf("packages: %+v", r[4])
	}
	if r[5].Enabled != "enabled" || r[5].Active != "inactive" {
		t.Errorf("service: %+v", r[5])
	}
	if !r[6].Loaded || r[6].Available {
		t.Errorf("module: %+v", r[6])
	}
}

func TestParseStrict(t *testing.T) {
	m := "VIGIL-" + testNonce + " "
	good := goodOutput()
	tests := []struct {
		name    string
		out     string
		failed  []int // requests that must carry Err
		batchOK bool
	}{
		{"good", good, nil, true},
		{"empty", "", []int{0, 1, 2, 3, 4, 5, 6}, false},
		{"wrong nonce", strings.ReplaceAll(good, testNonce, "ffffffffffffffffffffffffffffffff"), []int{0, 1, 2, 3, 4, 5, 6}, false},
		{"no done", strings.TrimSuffix(good, m+"done\n"), nil, false},
		{"last line unterminated", strings.TrimSuffix(good, "\n"), nil, false},
		{"frame missing", strings.Replace(good, m+"6 b\nl 1\na 0\nbi 0\n"+m+"6 e\n", "", 1), []int{6}, true},
		{"frame not closed", strings.Replace(good, m+"0 e\n", "", 1), []int{0}, true},
		{"bad base64", strings.Replace(good, "z "+b64("web01\n"), "z web01!", 1), []int{0}, true},
		{"raw line in frame", strings.Replace(good, "d 0\n", "VIGIL-forged 0 e\n", 1), []int{0}, true},
		{"bad integer", strings.Replace(good, "c 0", "c zero", 1), []int{3}, true},
		{"extra field", strings.Replace(good, "l 1\n", "l 1\nq 1\n", 1), []int{6}, true},
		{"flag not 0/1", strings.Replace(good, "a 0", "a 7", 1), []int{6}, true},
		{"frames out of order", strings.Replace(good, m+"5 b", m+"4 b", 1), []int{5}, true},
		{"marker before start ignored", m + "0 b\n" + good, nil, true},
		{"index out of range", strings.Replace(good, m+"6 b", m+"7 b", 1), []int{6}, true},
		{"leading zero index", strings.Replace(good, m+"6 b", m+"06 b", 1), []int{6}, true},
		{"fatal", m + "start 1\n" + m + "fatal\n", []int{0, 1, 2, 3, 4, 5, 6}, false},
		{"stat record short", outputWith(with(5, "/etc/ssh/ssh_config\x0081a4\x00")), []int{1}, true},
		{"glob count mismatch", strings.Replace(good, "x 4\n", "", 1), []int{2}, true},
		// The pools and the stat section.
		{"piece out of range", strings.Replace(good, "o 8", "o 99", 1), []int{3}, true},
		{"piece number not canonical", strings.Replace(good, "o 8", "o 08", 1), []int{3}, true},
		{"pool lengths short", strings.Replace(good, "k 6 \n", "k 5 \n", 1), []int{0}, true},
		{"pool lengths long", strings.Replace(good, "k 6 \n", "k 7 \n", 1), []int{0}, true},
		{"pool not closed", strings.Replace(good, m+"pool 0 e\n", "", 1), []int{0, 1, 2, 3, 4, 5}, true},
		{"pool gap", strings.Replace(good, m+"pool 1 b", m+"pool 2 b", 1), []int{1, 2, 3, 4, 5}, true},
		{"pool twice", strings.Replace(good, m+"done\n", strings.Join(poolLines(0, "forged\n"), "\n")+"\n"+m+"done\n", 1), nil, true},
		{"stat section missing", strings.Replace(good, m+"stat b\nr 5\nfn 6\nfe 7\n"+m+"stat e\n", "", 1), []int{1}, true},
		{"stat section twice", strings.Replace(good, m+"3 b", m+"stat b\n"+m+"stat e\n"+m+"3 b", 1), []int{1}, true},
		{"stat failures unpaired", outputWith(with(7, "one\ntwo\n")), []int{1}, true},
		{"stat failures unterminated", outputWith(with(7, "stat: Permission denied")), []int{1}, true},
		{"stat answer missing", outputWith(with(6, "/etc/ssh/other.conf\x00")), []int{1}, true},
		{"pool inside a frame", strings.Replace(strings.Replace(good, strings.Join(poolLines(8, goodPieces()[8:]...), "\n")+"\n", "", 1),
			"e 9\n", "e 9\n"+strings.Join(poolLines(8, goodPieces()[8:]...), "\n")+"\n", 1), nil, true},
		{"pool inside a pool", strings.Replace(good, "k 6 \n", "k 6 \n"+strings.Join(poolLines(0, "x"), "\n")+"\n", 1), []int{0, 1, 2, 3, 4, 5}, true},
		{"pool inside the stat section", strings.Replace(strings.Replace(good, strings.Join(poolLines(1, goodPieces()[1:8]...), "\n")+"\n", "", 1),
			"fn 6\n", "fn 6\n"+strings.Join(poolLines(1, goodPieces()[1:8]...), "\n")+"\n", 1), []int{1}, true},
		{"two lists of matches", strings.Replace(good, "g 1", "g 1\ng 1", 1), []int{1}, true},
	}
	b := newBatch(fixedReqs, testNonce)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := b.Parse([]byte(tt.out), time.Now(), 0)
			if (err == nil) != tt.batchOK {
				t.Fatalf("batch error = %v, want ok=%v", err, tt.batchOK)
			}
			if !tt.batchOK && !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrRemoteSetup) {
				t.Errorf("batch error %v is neither ErrIncomplete nor ErrRemoteSetup", err)
			}
			failed := map[int]bool{}
			for _, i := range tt.failed {
				failed[i] = true
			}
			for i := range r {
				if (r[i].Err != nil) != failed[i] {
					t.Errorf("response %d: Err = %v, want failed=%v", i, r[i].Err, failed[i])
				}
			}
		})
	}
}

// TestScriptGolden pins the generated script, so a change to it shows up
// in review as a diff. Run with -update to accept a change.
func TestScriptGolden(t *testing.T) {
	reqs := append(append([]target.Request(nil), fixedReqs...),
		target.Request{Op: target.OpRead, Path: "/it's here"},
		target.Request{Op: target.OpStat, Path: "/bad\npath"},
	)
	got := newBatch(reqs, testNonce).Script()
	golden := filepath.Join("testdata", "batch.golden.sh")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestScriptGolden -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("script differs from %s; rerun with -update if intended", golden)
	}
}

func TestNewDrawsNonce(t *testing.T) {
	a, _ := New(fixedReqs)
	b, _ := New(fixedReqs)
	if a.nonce == b.nonce || len(a.nonce) != 32 {
		t.Errorf("nonces %q and %q", a.nonce, b.nonce)
	}
}
