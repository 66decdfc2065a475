package output

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
)

// ANSI SGR codes used by the table.
const (
	sgrReset   = "\x1b[0m"
	sgrBold    = "\x1b[1m"
	sgrDim     = "\x1b[2m"
	sgrRed     = "\x1b[31m"
	sgrGreen   = "\x1b[32m"
	sgrYellow  = "\x1b[33m"
	sgrMagenta = "\x1b[35m"
	sgrBoldRed = "\x1b[1;31m"
)

// Column widths and layout of the table.
const (
	indent      = "  "
	gap         = "  "
	sevWidth    = len("critical")
	statusWidth = len("skipped")
	// minReason keeps the reason column readable on a very narrow terminal:
	// below it lines wrap rather than lose the whole reason.
	minReason = 20
)

// painter applies colour when enabled, and is the identity otherwise.
type painter bool

func (p painter) paint(sgr, s string) string {
	if !p || sgr == "" {
		return s
	}
	return sgr + s + sgrReset
}

// cell paints s and pads it to n runes outside the colour, so that padding
// stays plain and trailing space can be trimmed.
func (p painter) cell(sgr, s string, n int) string {
	return p.paint(sgr, s) + strings.Repeat(" ", max(n-utf8.RuneCountInString(s), 0))
}

// writeTable writes, per host, a header with the platform, one line per
// rule (id, severity, status, reason) and a summary line; then an overall
// summary.
func writeTable(w io.Writer, reports []*engine.Report, opts Options) error {
	bw := bufio.NewWriter(w)
	p := painter(opts.Color)
	var total result.Summary
	unscanned := 0
	for i, rep := range reports {
		if i > 0 {
			bw.WriteString("\n")
		}
		if rep.Error != "" {
			unscanned++
			fmt.Fprintf(bw, "%s\n%s%s\n", p.paint(sgrBold, clean(rep.Host)), indent, p.paint(sgrMagenta, "not scanned: "+oneLine(rep.Error)))
			continue
		}
		writeHostTable(bw, rep, p, opts.Width)
		s := result.Summarize(rep.Results)
		fmt.Fprintf(bw, "%s%s: %s\n", indent, clean(rep.Host), summaryText(s, p))
		add(&total, s)
	}
	if len(reports) > 0 {
		bw.WriteString("\n")
	}
	fmt.Fprintf(bw, "%s\n", overallText(len(reports), unscanned, total, p))
	return bw.Flush()
}

// writeHostTable writes one scanned host's header and rule lines.
func writeHostTable(w io.Writer, rep *engine.Report, p painter, width int) {
	fmt.Fprintf(w, "%s  %s\n", p.paint(sgrBold, clean(rep.Host)), clean(platformText(rep.Platform)))
	if len(rep.Results) == 0 {
		fmt.Fprintf(w, "%sno rules selected\n", indent)
		return
	}
	idWidth := len("RULE")
	for _, r := range rep.Results {
		idWidth = max(idWidth, utf8.RuneCountInString(r.RuleID))
	}
	reasonWidth := 0 // unlimited
	if width > 0 {
		used := len(indent) + idWidth + len(gap) + sevWidth + len(gap) + statusWidth + len(gap)
		reasonWidth = max(width-used, minReason)
	}
	fmt.Fprintf(w, "%s%s%s%s%s%s%sREASON\n", indent, pad("RULE", idWidth), gap, pad("SEVERITY", sevWidth), gap, pad("STATUS", statusWidth), gap)
	for _, r := range rep.Results {
		line := indent + pad(clean(r.RuleID), idWidth) + gap +
			p.cell(severityColor(r.Severity), string(r.Severity), sevWidth) + gap +
			p.cell(statusColor(r.Status), string(r.Status), statusWidth)
		if r.Reason != "" {
			line += gap + trim(oneLine(r.Reason), reasonWidth)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func platformText(pl engine.Platform) string {
	if pl.PrettyName != "" {
		return pl.PrettyName
	}
	return pl.String()
}

func summaryText(s result.Summary, p painter) string {
	fail := fmt.Sprintf("%d fail", s.Fail)
	if s.Fail > 0 {
		fail = p.paint(sgrRed, fail)
	}
	errs := fmt.Sprintf("%d error", s.Error)
	if s.Error > 0 {
		errs = p.paint(sgrMagenta, errs)
	}
	return fmt.Sprintf("%s: %d pass, %s, %d skipped, %s", plural(s.Total, "rule"), s.Pass, fail, s.Skipped, errs)
}

func overallText(hosts, unscanned int, s result.Summary, p painter) string {
	h := plural(hosts, "host")
	if unscanned > 0 {
		h += fmt.Sprintf(" (%d not scanned)", unscanned)
	}
	return p.paint(sgrBold, "Overall:") + " " + h + ", " + summaryText(s, p)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func add(total *result.Summary, s result.Summary) {
	total.Total += s.Total
	total.Pass += s.Pass
	total.Fail += s.Fail
	total.Skipped += s.Skipped
	total.Error += s.Error
}

func statusColor(s result.Status) string {
	switch s {
	case result.Pass:
		return sgrGreen
	case result.Fail:
		return sgrRed
	case result.Error:
		return sgrMagenta
	case result.Skipped:
		return sgrDim
	}
	return ""
}

func severityColor(s rule.Severity) string {
	switch s {
	case rule.Critical:
		return sgrBoldRed
	case rule.High:
		return sgrRed
	case rule.Medium:
		return sgrYellow
	}
	return ""
}

// pad right-pads s with spaces to n runes.
func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

// oneLine folds runs of whitespace (newlines from command output included)
// into single spaces, so one rule stays one line, and cleans the result.
func oneLine(s string) string { return clean(strings.Join(strings.Fields(s), " ")) }

// clean replaces control characters with U+FFFD. Reasons and platform names
// carry text from the scanned host, and an escape sequence in them must not
// reach the operator's terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// trim cuts s to n runes, marking the cut with an ellipsis; n <= 0 keeps s.
func trim(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
