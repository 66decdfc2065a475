package export

import (
	"bytes"
	"compress/zlib"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDeflatePagesMatchesFpdf checks that rendering uncompressed and
// finishing with deflatePages gives exactly the file fpdf writes with its
// own compression and page-count alias, over scopes with one and many
// pages, and that the cross-reference table points at every object.
func TestDeflatePagesMatchesFpdf(t *testing.T) {
	f := newFixture(t)
	f.populate()
	for _, s := range []Scope{{}, {Framework: testFramework}, hostScope(f.db.ID)} {
		r, err := f.exp.build(f.ctx, s, "carol")
		if err != nil {
			t.Fatalf("build %+v: %v", s, err)
		}
		// Many pages, and the alias inside page text as well.
		if s.Framework == "" {
			for i := 0; i < 4; i++ {
				r.Hosts = append(r.Hosts, r.Hosts...)
			}
			r.Hosts[0].Rules[0].Reason = "see page {nb}"
		}
		want, err := renderPDFWith(r, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := renderPDFWith(r, false)
		if err != nil {
			t.Fatal(err)
		}
		// fpdf numbers and orders its font objects by map iteration, so
		// two renderings differ in object numbers and offsets; they are
		// compared by size, page streams decompressed, in order, and the
		// document information.
		if len(got) != len(want) || !bytes.Contains(pdfInfo(got), []byte(placeholder)) || !bytes.Equal(pdfInfo(got), pdfInfo(want)) {
			t.Fatalf("scope %+v: PDF (%d bytes) differs from fpdf's (%d bytes)", s, len(got), len(want))
		}
		gs, ws := pdfStreams(t, got), pdfStreams(t, want)
		if len(gs) < 2 || !slices.Equal(gs, ws) {
			t.Fatalf("scope %+v: %d streams, fpdf %d, or contents differ", s, len(gs), len(ws))
		}
		checkXref(t, got)
		if bytes.Contains(got, []byte(pdfPageCount)) {
			t.Fatal("page-count alias left in the PDF")
		}
	}
}

// checkXref verifies every cross-reference entry and startxref.
func checkXref(t *testing.T, pdf []byte) {
	t.Helper()
	x := bytes.LastIndex(pdf, []byte("\nxref\n")) + 1
	lines := strings.Split(string(pdf[x:]), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(lines[1], "0 "))
	if err != nil || n < 3 {
		t.Fatalf("xref header %q", lines[1])
	}
	for k := 1; k < n; k++ {
		off, err := strconv.Atoi(lines[2+k][:10])
		if err != nil || !bytes.HasPrefix(pdf[off:], []byte(strconv.Itoa(k)+" 0 obj\n")) {
			t.Fatalf("xref entry %d (%q) points at %.20q", k, lines[2+k], pdf[off:])
		}
	}
	sx := bytes.LastIndex(pdf, []byte("startxref\n")) + len("startxref\n")
	if v, _ := strconv.Atoi(string(pdf[sx : sx+bytes.IndexByte(pdf[sx:], '\n')])); v != x {
		t.Fatalf("startxref %d, xref at %d", v, x)
	}
}

// TestDeflatePagesRefusesMalformed makes sure a document not shaped as
// fpdf writes it is an error, not a silently broken file.
func TestDeflatePagesRefusesMalformed(t *testing.T) {
	for _, in := range []string{
		"%PDF-1.3\n1 0 obj\n<</Length 5>>\nstream\nabc\nendstream\nendobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer\n<<>>\nstartxref\n62\n%%EOF\n",
		"%PDF-1.3\nno table",
		"%PDF-1.3\n1 0 obj\n<<>>\nendobj\nxref\n0 2\n0000000000 65535 f \nbroken\n",
	} {
		if _, err := deflatePages([]byte(in), pdfPageCount, "1"); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

// pdfInfo returns the document information dictionary (with the
// signature placeholder in Keywords).
func pdfInfo(pdf []byte) []byte {
	i := bytes.Index(pdf, []byte("<<\n/Producer"))
	if i < 0 {
		return nil
	}
	return pdf[i : i+bytes.Index(pdf[i:], []byte(">>"))]
}

// pdfStreams returns the document's Flate streams decompressed, in order.
func pdfStreams(t *testing.T, pdf []byte) []string {
	t.Helper()
	var out []string
	const head = "<</Filter /FlateDecode /Length "
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte(head))
		if i < 0 {
			return out
		}
		rest = rest[i+len(head):]
		j := bytes.IndexByte(rest, '>')
		n, err := strconv.Atoi(string(rest[:j]))
		if err != nil {
			t.Fatal(err)
		}
		rest = rest[j+len(">>\nstream\n"):]
		zr, err := zlib.NewReader(bytes.NewReader(rest[:n]))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
		rest = rest[n:]
	}
}
