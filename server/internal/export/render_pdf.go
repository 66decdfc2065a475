package export

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/vigilfleet/vigil/engine/result"
)

// PDF page geometry, in millimetres (A4 portrait).
const (
	pdfMargin = 12.0
	pdfRowH   = 4.2
	pdfBottom = 14.0
)

// pdfw wraps fpdf with the report's conventions: every string goes through
// latin1 (core fonts only), tables repeat their header on a new page.
type pdfw struct {
	f     *fpdf.Fpdf
	width float64 // usable width
	// cells remembers table cells as drawn (single line, Latin-1, cut to
	// the column): a fleet report repeats each rule's id and title on
	// every host.
	cells map[cellKey]string
	face  cellFace // the font set last, through font or mono
}

// cellFace is a font as far as text width goes.
type cellFace struct {
	mono  bool
	style string
	size  float64
}

// cellKey is a table cell's text in a font and column width.
type cellKey struct {
	face  cellFace
	width float64
	text  string
}

func (p *pdfw) font(style string, size float64) {
	p.f.SetFont("Helvetica", style, size)
	p.face = cellFace{style: style, size: size}
}

func (p *pdfw) mono(size float64) {
	p.f.SetFont("Courier", "", size)
	p.face = cellFace{mono: true, size: size}
}

// cell returns s as a table cell shows it at the current font: one line,
// Latin-1, cut to width w.
func (p *pdfw) cell(s string, w float64) string {
	k := cellKey{face: p.face, width: w, text: s}
	if out, ok := p.cells[k]; ok {
		return out
	}
	out := p.fit(latin1(oneLine(s)), w)
	if len(p.cells) < 200_000 && len(s) <= 512 {
		p.cells[k] = out
	}
	return out
}

// text writes a paragraph that wraps and breaks pages as needed.
func (p *pdfw) text(s string, h float64) {
	p.f.MultiCell(0, h, latin1(s), "", "L", false)
}

// heading starts a section.
func (p *pdfw) heading(s string, size float64) {
	if p.f.GetY() > 250 {
		p.f.AddPage()
	}
	p.f.Ln(2)
	p.font("B", size)
	p.text(s, size*0.5)
	p.f.Ln(1)
}

// kv writes label: value lines.
func (p *pdfw) kv(pairs ...string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		p.font("B", 9)
		p.f.CellFormat(48, 5, latin1(pairs[i]), "", 0, "L", false, 0, "")
		p.font("", 9)
		p.f.MultiCell(0, 5, latin1(pairs[i+1]), "", "L", false)
	}
}

// fit cuts s (already Latin-1) so that it fits in w at the current font.
func (p *pdfw) fit(s string, w float64) string {
	w -= 1.5 // cell padding
	if p.f.GetStringWidth(s) <= w {
		return s
	}
	lo, hi := 0, len(s)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if p.f.GetStringWidth(s[:mid]+"...") <= w {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return s[:lo] + "..."
}

// table writes rows under a header, repeating the header after a page
// break; fill colours a row by its status column when status >= 0.
type pdfTable struct {
	p      *pdfw
	cols   []string
	widths []float64
	aligns []string
}

func (t *pdfTable) header() {
	t.p.font("B", 7.5)
	t.p.f.SetFillColor(225, 228, 235)
	for i, c := range t.cols {
		t.p.f.CellFormat(t.widths[i], pdfRowH+0.6, latin1(c), "1", 0, "L", true, 0, "")
	}
	t.p.f.Ln(-1)
	t.p.font("", 7)
}

func (t *pdfTable) row(cells []string, fill [3]int) {
	_, pageH := t.p.f.GetPageSize()
	if t.p.f.GetY()+pdfRowH > pageH-pdfBottom {
		t.p.f.AddPage()
		t.header()
	}
	filled := fill != [3]int{}
	if filled {
		t.p.f.SetFillColor(fill[0], fill[1], fill[2])
	}
	for i, c := range cells {
		al := "L"
		if t.aligns != nil && t.aligns[i] != "" {
			al = t.aligns[i]
		}
		t.p.f.CellFormat(t.widths[i], pdfRowH, t.p.cell(c, t.widths[i]), "1", 0, al, filled, 0, "")
	}
	t.p.f.Ln(-1)
}

// statusFill tints failing and accepted rows.
func statusFill(st result.Status, accepted bool) [3]int {
	switch {
	case accepted:
		return [3]int{255, 243, 205}
	case st == result.Fail:
		return [3]int{250, 215, 215}
	case st == result.Error:
		return [3]int{235, 220, 250}
	}
	return [3]int{}
}

func statusText(st result.Status, accepted bool, exc int64) string {
	if accepted {
		return fmt.Sprintf("fail, accepted #%d", exc)
	}
	return string(st)
}

func pdfTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// pdfPageCount is the placeholder the footer writes for the number of
// pages, replaced once the document is complete.
const pdfPageCount = "{nb}"

// renderPDF writes the report as a PDF: summary page, per-control table
// (with a framework), per-host rule tables, failures with evidence,
// exceptions; page numbers in the footer and the signature in the
// document information's Keywords.
func renderPDF(r *report) ([]byte, error) { return renderPDFWith(r, false) }

// renderPDFWith renders with fpdf's own page compression and page-count
// alias when fpdfCompress is set (the reference deflatePages is tested
// against), otherwise uncompressed and finished by deflatePages.
func renderPDFWith(r *report, fpdfCompress bool) ([]byte, error) {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCompression(fpdfCompress)
	f.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	f.SetAutoPageBreak(true, pdfBottom)
	f.SetCreationDate(r.GeneratedAt)
	f.SetModificationDate(r.GeneratedAt)
	f.SetTitle(latin1("Vigil compliance report: "+r.Scope.Label()), false)
	f.SetAuthor(latin1(r.Issuer), false)
	f.SetCreator("vigil-server", false)
	f.SetSubject(latin1("As of "+r.At.Format(time.RFC3339)), false)
	f.SetKeywords(placeholder, false)
	if fpdfCompress {
		f.AliasNbPages(pdfPageCount)
	}
	pw, _ := f.GetPageSize()
	p := &pdfw{f: f, width: pw - 2*pdfMargin, cells: map[cellKey]string{}}
	footer := latin1(fmt.Sprintf("Vigil export - %s - as of %s - signed (vigil-server verify)", r.Scope.Label(), pdfTime(r.At)))
	f.SetFooterFunc(func() {
		f.SetY(-10)
		p.font("", 7)
		f.SetTextColor(110, 110, 110)
		f.CellFormat(p.width*0.75, 4, p.fit(footer, p.width*0.75), "", 0, "L", false, 0, "")
		f.CellFormat(p.width*0.25, 4, "Page "+strconv.Itoa(f.PageNo())+" of "+pdfPageCount, "", 0, "R", false, 0, "")
		f.SetTextColor(0, 0, 0)
	})

	f.AddPage()
	pdfSummary(p, r)
	if r.Framework != nil {
		pdfControls(p, r)
	}
	for _, h := range r.Hosts {
		pdfHostRules(p, r, h)
	}
	pdfFailures(p, r)
	pdfExceptions(p, r)

	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return nil, err
	}
	if fpdfCompress {
		return buf.Bytes(), nil
	}
	return deflatePages(buf.Bytes(), pdfPageCount, strconv.Itoa(f.PageCount()))
}

func pdfSummary(p *pdfw, r *report) {
	p.font("B", 16)
	p.text("Vigil compliance report", 8)
	p.f.Ln(2)
	fw := "all rules"
	if r.Framework != nil {
		fw = r.Framework.ID + " - " + r.Framework.Title
	}
	c := r.Summary.Counts
	p.kv("Issuer", r.Issuer,
		"Generated", pdfTime(r.GeneratedAt)+" by "+r.GeneratedBy,
		"Scope", r.Scope.Label(),
		"As of", pdfTime(r.At),
		"Framework", fw,
		"Hosts", strconv.Itoa(r.Summary.Hosts),
		"Score (raw)", fmt.Sprintf("%.1f", r.Summary.Score),
		"Score with exceptions", fmt.Sprintf("%.1f", r.Summary.ScoreWithExceptions),
		"Rule results", fmt.Sprintf("pass %d, fail %d (accepted %d, critical %d), error %d, skipped %d",
			c.Pass, c.Fail, c.Accepted, c.CriticalFail, c.Error, c.Skipped),
		"Bands", bandsText(r.Summary.Bands),
		"Exceptions in force", strconv.Itoa(len(r.Exceptions)),
	)
	p.heading("Hosts", 12)
	t := &pdfTable{p: p, cols: []string{"Host", "Band", "Score", "With exc.", "Pass", "Fail", "Accepted", "Error", "Skipped"},
		widths: []float64{62, 22, 14, 16, 14, 14, 16, 14, 14},
		aligns: []string{"", "", "R", "R", "R", "R", "R", "R", "R"}}
	t.header()
	for _, h := range r.Hosts {
		band := h.Band
		if band == "" {
			band = "not scanned"
		}
		t.row([]string{h.Name, band, fmt.Sprintf("%.1f", h.Score), fmt.Sprintf("%.1f", h.ScoreWithExceptions),
			strconv.Itoa(h.Counts.Pass), strconv.Itoa(h.Counts.Fail), strconv.Itoa(h.Counts.Accepted),
			strconv.Itoa(h.Counts.Error), strconv.Itoa(h.Counts.Skipped)}, [3]int{})
	}
}

func bandsText(b map[string]int) string {
	var parts []string
	for _, k := range []string{"critical", "poor", "fair", "good", "excellent", ""} {
		if b[k] == 0 {
			continue
		}
		name := k
		if k == "" {
			name = "not scanned"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, b[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func pdfControls(p *pdfw, r *report) {
	p.f.AddPage()
	p.heading("Controls of "+r.Framework.ID+" ("+r.Framework.Title+")", 13)
	t := &pdfTable{p: p, cols: []string{"Control", "Title", "Rules", "Pass", "Fail", "Accepted", "Error", "Status"},
		widths: []float64{24, 70, 12, 12, 12, 15, 12, 29},
		aligns: []string{"", "", "R", "R", "R", "R", "R", ""}}
	t.header()
	for _, c := range r.Controls {
		fill := [3]int{}
		switch c.Status {
		case "not-satisfied":
			fill = [3]int{250, 215, 215}
		case "satisfied-with-exceptions":
			fill = [3]int{255, 243, 205}
		}
		t.row([]string{c.ID, c.Title, strconv.Itoa(len(c.Rules)), strconv.Itoa(c.Pass), strconv.Itoa(c.Fail),
			strconv.Itoa(c.Accepted), strconv.Itoa(c.Error), c.Status}, fill)
	}
}

func pdfHostRules(p *pdfw, r *report, h hostReport) {
	p.f.AddPage()
	p.heading("Host "+h.Name, 13)
	groups := strings.Join(h.Groups, ", ")
	if groups == "" {
		groups = "-"
	}
	band := h.Band
	if band == "" {
		band = "not scanned"
	}
	p.kv("Address", nonEmpty(h.Address, "-"), "OS", nonEmpty(h.OS, "-"), "Groups", groups,
		"Score / band", fmt.Sprintf("%.1f %s (with exceptions %.1f %s)", h.Score, band, h.ScoreWithExceptions, nonEmpty(h.BandWithExceptions, "-")))
	p.f.Ln(2)
	ctlHead := "Controls"
	if r.Framework != nil {
		ctlHead = r.Framework.ID
	}
	t := &pdfTable{p: p, cols: []string{"Rule", "Title", "Severity", "Status", ctlHead, "Observed"},
		widths: []float64{44, 58, 14, 24, 26, 20}}
	t.header()
	for _, ru := range h.Rules {
		t.row([]string{ru.RuleID, ru.Title, ru.Severity, statusText(ru.Status, ru.Accepted, ru.ExceptionID),
			strings.Join(ru.Controls, ", "), ru.ObservedAt.UTC().Format("2006-01-02")}, statusFill(ru.Status, ru.Accepted))
	}
	if len(h.Rules) == 0 {
		p.font("I", 8)
		p.text("No rule state at this moment.", 4)
	}
}

func pdfFailures(p *pdfw, r *report) {
	has := false
	for _, h := range r.Hosts {
		if len(h.Failures) > 0 {
			has = true
		}
	}
	if !has {
		return
	}
	p.f.AddPage()
	p.heading("Failures and evidence", 14)
	for _, h := range r.Hosts {
		if len(h.Failures) == 0 {
			continue
		}
		p.heading("Host "+h.Name, 11)
		for _, fl := range h.Failures {
			p.font("B", 9)
			p.text(fmt.Sprintf("%s - %s [%s, %s]", fl.RuleID, fl.Title, fl.Severity, statusText(fl.Status, fl.Accepted, fl.ExceptionID)), 4.5)
			p.font("", 8)
			if fl.Reason != "" {
				p.text("Reason: "+fl.Reason, 3.8)
			}
			if fl.Description != "" {
				p.text("Description: "+oneLine(fl.Description), 3.8)
			}
			if fl.Fix != "" {
				p.text("Fix: "+fl.Fix, 3.8)
			}
			for _, x := range fl.Evidence {
				p.mono(7)
				p.text(excerptText(x), 3.3)
			}
			p.f.Ln(2)
		}
		if h.FailuresOmitted > 0 {
			p.font("I", 8)
			p.text(fmt.Sprintf("%d more failing rules on %s are listed in its rule table without evidence.", h.FailuresOmitted, h.Name), 4)
		}
	}
}

func pdfExceptions(p *pdfw, r *report) {
	p.f.AddPage()
	p.heading("Exceptions in force", 14)
	if len(r.Exceptions) == 0 {
		p.font("", 9)
		p.text("No approved exception covered this scope at this moment.", 5)
		return
	}
	for _, x := range r.Exceptions {
		p.font("B", 9)
		p.text(fmt.Sprintf("Exception #%d: %s - %s", x.ID, x.RuleID, x.RuleTitle), 4.5)
		exp := "never"
		if !x.ExpiresAt.IsZero() {
			exp = pdfTime(x.ExpiresAt)
		}
		p.kv("Scope", x.Scope+" "+x.ScopeName,
			"Requested", x.RequestedBy+" at "+pdfTime(x.RequestedAt),
			"Approved", x.ApprovedBy+" at "+pdfTime(x.ApprovedAt),
			"Expires", exp,
			"Justification", x.Justification)
		p.f.Ln(2)
	}
}
