package export

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"time"
)

// csvHeader names the CSV columns: one row per host and rule.
var csvHeader = []string{"host", "host_id", "rule_id", "title", "severity", "status", "accepted",
	"exception_id", "controls", "scan_id", "observed_at", "reason", "framework", "as_of"}

// renderCSV writes one row per host x rule, then `#signature,<token>`.
// Every cell is neutralised against formula injection.
func renderCSV(r *report) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(csvHeader); err != nil {
		return nil, err
	}
	fw := ""
	if r.Framework != nil {
		fw = r.Framework.ID
	}
	asOf := r.At.Format(time.RFC3339)
	row := make([]string, len(csvHeader))
	for _, h := range r.Hosts {
		for _, ru := range h.Rules {
			exc := ""
			if ru.ExceptionID != 0 {
				exc = strconv.FormatInt(ru.ExceptionID, 10)
			}
			row[0], row[1], row[2], row[3] = h.Name, strconv.FormatInt(h.ID, 10), ru.RuleID, ru.Title
			row[4], row[5], row[6], row[7] = ru.Severity, string(ru.Status), strconv.FormatBool(ru.Accepted), exc
			row[8], row[9], row[10], row[11] = strings.Join(ru.Controls, "; "), strconv.FormatInt(ru.ScanID, 10),
				ru.ObservedAt.Format(time.RFC3339), ru.Reason
			row[12], row[13] = fw, asOf
			for i := range row {
				row[i] = csvCell(row[i])
			}
			if err := w.Write(row); err != nil {
				return nil, err
			}
		}
	}
	if err := w.Write([]string{"#signature", placeholder}); err != nil {
		return nil, err
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// csvCell defuses a cell a spreadsheet would run as a formula: one starting
// with = + - @ tab or carriage return gets a leading apostrophe.
func csvCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
