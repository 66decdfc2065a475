package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/vigilfleet/vigil/engine/output"
)

// newFileMode is the mode of a new --output file. Reports describe each
// host's weaknesses, so they are not world-readable by default; replacing
// an existing file keeps its mode.
const newFileMode = 0o600

// destination is where a command writes its result: stdout, or a file that
// is replaced atomically (a temporary file in the same directory, renamed
// over it once complete), so a reader never sees half a report and a failed
// run leaves the previous report in place.
type destination struct {
	w    io.Writer
	tmp  *os.File // nil for stdout
	path string
}

// openDestination creates the temporary file up front, so an unwritable
// output path fails before a long scan rather than after it.
func openDestination(path string, stdout io.Writer) (*destination, error) {
	if path == "" {
		return &destination{w: stdout}, nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	return &destination{w: tmp, tmp: tmp, path: path}, nil
}

// options returns the table options for this destination: colour and the
// terminal width only when writing to a terminal and NO_COLOR is unset.
func (d *destination) options(getenv func(string) string) output.Options {
	if d.tmp != nil || !isTerminal(d.w) {
		return output.Options{}
	}
	f := d.w.(*os.File)
	opts := output.Options{Color: getenv("NO_COLOR") == ""}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil {
		opts.Width = w
	}
	return opts
}

// commit makes the written file visible under its name.
func (d *destination) commit() error {
	if d.tmp == nil {
		return nil
	}
	mode := fs.FileMode(newFileMode)
	if st, err := os.Stat(d.path); err == nil {
		mode = st.Mode().Perm()
	}
	err := d.tmp.Chmod(mode)
	if err == nil {
		err = d.tmp.Sync()
	}
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.tmp.Name(), d.path)
	}
	if err != nil {
		os.Remove(d.tmp.Name())
		return fmt.Errorf("output %s: %w", d.path, err)
	}
	return nil
}

// abort discards the temporary file; it is safe after commit.
func (d *destination) abort() {
	if d.tmp == nil {
		return
	}
	d.tmp.Close()
	_ = os.Remove(d.tmp.Name()) // already gone after a commit
}
