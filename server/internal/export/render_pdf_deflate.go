package export

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// deflatePages finishes a document fpdf wrote without compression: it
// Flate-compresses every unfiltered stream (with core fonts only, the page
// contents), replacing the page-count alias in them first, and rewrites
// the cross-reference table and startxref for the shifted offsets. fpdf
// builds a new zlib compressor for every page (over a megabyte of state
// each); one reused compressor makes a thousand-page report several
// gigabytes lighter to produce. The result is what fpdf writes with
// compression on, byte for byte in every stream's content.
func deflatePages(in []byte, alias, pages string) ([]byte, error) {
	xref := bytes.LastIndex(in, []byte("\nxref\n"))
	if xref < 0 {
		return nil, errors.New("pdf: no cross-reference table")
	}
	xref++
	body := in[:xref]
	out := make([]byte, 0, len(in)/3+len(in)-xref)
	var scratch bytes.Buffer
	zw, err := zlib.NewWriterLevel(&scratch, zlib.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("pdf: zlib: %w", err)
	}
	// shifts[i]: from original offset oldEnd on, objects moved by delta.
	type shift struct{ oldEnd, delta int }
	var shifts []shift
	const (
		head = " 0 obj\n<</Length "
		mid  = ">>\nstream\n"
		tail = "\nendstream"
	)
	aliasB, pagesB := []byte(alias), []byte(pages)
	var replaced []byte // a page's content with the alias replaced, reused
	pos := 0
	for {
		i := bytes.Index(body[pos:], []byte(head))
		if i < 0 {
			break
		}
		dict := pos + i + len(" 0 obj\n")
		num := dict + len("<</Length ")
		j := num
		for j < len(body) && body[j] >= '0' && body[j] <= '9' {
			j++
		}
		if j == num || !bytes.HasPrefix(body[j:], []byte(mid)) {
			// Some other stream (a filter or more keys): leave it.
			out = append(out, body[pos:num]...)
			pos = num
			continue
		}
		n, err := strconv.Atoi(string(body[num:j]))
		if err != nil {
			return nil, fmt.Errorf("pdf: stream length at %d: %w", num, err)
		}
		data := j + len(mid)
		end := data + n
		if end+len(tail) > len(body) || !bytes.HasPrefix(body[end:], []byte(tail)) {
			return nil, fmt.Errorf("pdf: stream at %d does not end after its %d bytes", dict, n)
		}
		content := body[data:end]
		if alias != "" && bytes.Contains(content, aliasB) {
			replaced = replaced[:0]
			for {
				k := bytes.Index(content, aliasB)
				if k < 0 {
					break
				}
				replaced = append(append(replaced, content[:k]...), pagesB...)
				content = content[k+len(aliasB):]
			}
			content = append(replaced, content...)
			replaced = content
		}
		scratch.Reset()
		zw.Reset(&scratch)
		if _, err := zw.Write(content); err != nil {
			return nil, fmt.Errorf("pdf: compress stream at %d: %w", dict, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("pdf: compress stream at %d: %w", dict, err)
		}
		out = append(out, body[pos:dict]...)
		out = append(out, "<</Filter /FlateDecode /Length "...)
		out = strconv.AppendInt(out, int64(scratch.Len()), 10)
		out = append(out, mid...)
		out = append(out, scratch.Bytes()...)
		out = append(out, tail...)
		pos = end + len(tail)
		shifts = append(shifts, shift{oldEnd: pos, delta: len(out) - pos})
	}
	out = append(out, body[pos:]...)
	moved := func(old int) int {
		k := sort.Search(len(shifts), func(k int) bool { return shifts[k].oldEnd > old })
		if k == 0 {
			return old
		}
		return old + shifts[k-1].delta
	}

	// xref\n0 N\n0000000000 65535 f \n, then N-1 entries of 20 bytes.
	newXref := len(out)
	rest := in[xref:]
	nl := bytes.IndexByte(rest[len("xref\n"):], '\n')
	if nl < 0 || !bytes.HasPrefix(rest[len("xref\n"):], []byte("0 ")) {
		return nil, errors.New("pdf: malformed cross-reference header")
	}
	sub := rest[len("xref\n") : len("xref\n")+nl]
	count, err := strconv.Atoi(string(sub[2:]))
	if err != nil || count < 1 {
		return nil, fmt.Errorf("pdf: cross-reference count %q", sub)
	}
	entries := len("xref\n") + nl + 1
	const free = "0000000000 65535 f \n"
	if !bytes.HasPrefix(rest[entries:], []byte(free)) {
		return nil, errors.New("pdf: malformed cross-reference free entry")
	}
	out = append(out, rest[:entries+len(free)]...)
	p := entries + len(free)
	for k := 1; k < count; k++ {
		if p+20 > len(rest) || string(rest[p+10:p+20]) != " 00000 n \n" {
			return nil, fmt.Errorf("pdf: malformed cross-reference entry %d", k)
		}
		old, err := strconv.Atoi(string(rest[p : p+10]))
		if err != nil {
			return nil, fmt.Errorf("pdf: cross-reference entry %d: %w", k, err)
		}
		out = fmt.Appendf(out, "%010d 00000 n \n", moved(old))
		p += 20
	}
	trailer := rest[p:]
	sx := bytes.LastIndex(trailer, []byte("\nstartxref\n"))
	if sx < 0 {
		return nil, errors.New("pdf: no startxref")
	}
	sx += len("\nstartxref\n")
	eol := bytes.IndexByte(trailer[sx:], '\n')
	if eol < 0 {
		return nil, errors.New("pdf: malformed startxref")
	}
	if v, err := strconv.Atoi(string(trailer[sx : sx+eol])); err != nil || v != xref {
		return nil, fmt.Errorf("pdf: startxref %q does not point at the cross-reference table", trailer[sx:sx+eol])
	}
	out = append(out, trailer[:sx]...)
	out = strconv.AppendInt(out, int64(newXref), 10)
	out = append(out, trailer[sx+eol:]...)
	return out, nil
}
