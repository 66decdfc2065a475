package output

import (
	"encoding/csv"
	"io"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
)

// csvHeader names the CSV columns. A host that could not be scanned gets
// one row with an empty rule_id, status "error" and the reason, so that a
// spreadsheet never silently lacks a host.
var csvHeader = []string{"host", "rule_id", "title", "severity", "category", "status", "reason", "references", "evidence_actual", "time"}

// writeCSV writes a header and one row per result.
func writeCSV(w io.Writer, reports []*engine.Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, rep := range reports {
		if rep.Error != "" {
			row := []string{rep.Host, "", "", "", "", string(result.Error), rep.Error, "", "", csvTime(rep.Started)}
			if err := cw.Write(safeRow(row)); err != nil {
				return err
			}
		}
		for i := range rep.Results {
			if err := cw.Write(safeRow(csvRow(&rep.Results[i]))); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvRow flattens one result: references as "framework:control" joined by
// spaces, the evidence's actual values joined by " | ".
func csvRow(r *engine.Result) []string {
	refs := make([]string, len(r.References))
	for i, ref := range r.References {
		refs[i] = ref.Framework + ":" + ref.Control
	}
	actual := make([]string, 0, len(r.Evidence))
	for _, e := range r.Evidence {
		actual = append(actual, e.Actual)
	}
	return []string{r.Host, r.RuleID, r.Title, string(r.Severity), r.Category, string(r.Status),
		r.Reason, strings.Join(refs, " "), strings.Join(actual, " | "), csvTime(r.Time)}
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// safeRow neutralises spreadsheet formula injection in place: evidence is
// host-controlled text (file contents, command output), and a cell such as
// =cmd|' /C calc'!A0 would run when the CSV is opened. A cell starting with
// = + - @ TAB or CR is prefixed with a single quote, which spreadsheets
// treat as "this is text".
func safeRow(row []string) []string {
	for i, cell := range row {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			row[i] = "'" + cell
		}
	}
	return row
}
