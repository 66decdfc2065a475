package ui

import (
	"fmt"
	"html/template"
	"strings"
)

// chartPoint is one value of a line chart: Label names it (a date) in the
// point's tooltip and on the axis.
type chartPoint struct {
	Label string
	Value float64
}

// Chart geometry in SVG user units; the stylesheet scales the drawing to
// its container (.chart), so these only fix the proportions.
const (
	chartW, chartH           = 760.0, 220.0
	chartLeft, chartRight    = 40.0, 10.0
	chartTop, chartBottom    = 10.0, 30.0
	chartMinY, chartMaxY     = 0.0, 100.0
	chartMaxPoints           = 400
	chartEmptyMessageDefault = "No data for this period yet."
)

// lineChart draws values on a 0..100 scale (posture scores) as an inline
// SVG line chart with a dot per point. Only numbers computed here and
// escaped text reach the markup, so labels from anywhere are safe; the
// drawing uses classes and attributes only (the CSP forbids inline
// styles). title is the accessible name; with no points it renders a
// sentence instead of an empty drawing.
func lineChart(title string, pts []chartPoint) template.HTML {
	esc := template.HTMLEscapeString
	if len(pts) == 0 {
		return template.HTML(`<p class="muted">` + esc(chartEmptyMessageDefault) + `</p>`)
	}
	if len(pts) > chartMaxPoints {
		pts = pts[len(pts)-chartMaxPoints:]
	}
	plotW := chartW - chartLeft - chartRight
	plotH := chartH - chartTop - chartBottom
	x := func(i int) float64 {
		if len(pts) == 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + plotW*float64(i)/float64(len(pts)-1)
	}
	y := func(v float64) float64 {
		v = min(max(v, chartMinY), chartMaxY)
		return chartTop + plotH*(1-(v-chartMinY)/(chartMaxY-chartMinY))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, esc(title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	for _, g := range []float64{0, 50, 100} {
		fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"></line>`, chartLeft, y(g), chartW-chartRight, y(g))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`, chartLeft-6, y(g)+4, g)
	}
	b.WriteString(`<polyline class="line" points="`)
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x(i), y(p.Value))
	}
	b.WriteString(`"></polyline>`)
	for i, p := range pts {
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3"><title>%s: %.1f</title></circle>`, x(i), y(p.Value), esc(p.Label), p.Value)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="start">%s</text>`, chartLeft, chartH-8, esc(pts[0].Label))
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, chartW-chartRight, chartH-8, esc(pts[len(pts)-1].Label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
