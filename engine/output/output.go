// Package output renders scan reports for people and programs: a terminal
// table, JSON, JSON Lines and CSV. The CLI writes them to stdout or a file;
// the server reuses them for downloads, so every format is a pure function
// of the reports and Options.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vigilfleet/vigil/engine"
)

// Formats lists the format names Write accepts, in the order usage text
// shows them.
var Formats = []string{"table", "json", "jsonl", "csv"}

// Options tune the human-oriented formats; the machine formats ignore them.
type Options struct {
	// Color adds ANSI colours to the table. Callers set it only when the
	// destination is a terminal and NO_COLOR is unset.
	Color bool
	// Width is the terminal width the table's reason column is trimmed to;
	// zero or less leaves reasons whole (a file or a pipe).
	Width int
}

// Write renders reports in format ("table", "json", "jsonl" or "csv") to w.
func Write(w io.Writer, format string, reports []*engine.Report, opts Options) error {
	var err error
	switch strings.ToLower(format) {
	case "table":
		err = writeTable(w, reports, opts)
	case "json":
		err = writeJSON(w, reports)
	case "jsonl":
		err = writeJSONL(w, reports)
	case "csv":
		err = writeCSV(w, reports)
	default:
		return fmt.Errorf("unknown output format %q (known: %s)", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return fmt.Errorf("write %s output: %w", format, err)
	}
	return nil
}

// writeJSON writes the reports as one indented JSON array ("[]" when there
// are none, never "null").
func writeJSON(w io.Writer, reports []*engine.Report) error {
	if reports == nil {
		reports = []*engine.Report{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reports)
}

// hostError is the JSON Lines record of a host that could not be scanned.
type hostError struct {
	Host  string `json:"host"`
	Error string `json:"error"`
}

// writeJSONL writes one JSON object per result (each carries its host) and
// one {"host", "error"} object per host that could not be scanned, in report
// order, so a stream consumer can tell an unreachable host from a quiet one.
func writeJSONL(w io.Writer, reports []*engine.Report) error {
	enc := json.NewEncoder(w) // Encode ends every value with a newline
	for _, rep := range reports {
		if rep.Error != "" {
			if err := enc.Encode(hostError{Host: rep.Host, Error: rep.Error}); err != nil {
				return err
			}
		}
		for i := range rep.Results {
			if err := enc.Encode(&rep.Results[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
