package shellbatch

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// Errors Parse reports. Callers branch on them with errors.Is.
var (
	// ErrIncomplete: the output stopped before the batch's "done" marker,
	// typically because the connection or the remote shell died.
	ErrIncomplete = errors.New("batch output cut short")
	// ErrNoFrame: the output holds no (or no well-formed) answer for a
	// request.
	ErrNoFrame = errors.New("no answer in batch output")
	// ErrMalformed: a request's frame does not follow the protocol.
	ErrMalformed = errors.New("malformed answer in batch output")
	// ErrRemoteSetup: the script could not create its temporary directory.
	ErrRemoteSetup = errors.New("batch script could not create a temporary directory")
	// ErrTimeout: an exec request ran past its timeout and was killed.
	ErrTimeout = errors.New("command timed out")
)

// field is one "tag value" line of a frame.
type field struct{ tag, val string }

// frame is what the output holds for one request.
type frame struct {
	fields []field
	ok     bool // begin and end markers both seen, in order
}

// Parse reads the output of Script and returns one response per request,
// in order. started and elapsed describe the round trip that produced out;
// every response gets them as Started and Duration, except exec responses,
// which get the command's own start (relative to started) and run time.
//
// The error is non-nil when the batch as a whole failed: the output has no
// start marker, or stops before "done" (ErrIncomplete). Requests without a
// complete, well-formed frame then carry Response.Err; those answered
// before the output stopped keep their answers.
func (b *Batch) Parse(out []byte, started time.Time, elapsed time.Duration) ([]target.Response, error) {
	resps := make([]target.Response, len(b.reqs))
	for i, r := range b.reqs {
		resps[i] = target.Response{Req: r, Started: started, Duration: elapsed}
	}
	frames, remoteStart, done, err := b.split(out)
	for i := range resps {
		switch {
		case b.preErr[i] != nil:
			resps[i].Err = b.preErr[i]
		case frames[i] == nil:
			if err != nil {
				resps[i].Err = fmt.Errorf("%w: %w", ErrNoFrame, err)
			} else {
				resps[i].Err = ErrNoFrame
			}
		case !frames[i].ok:
			resps[i].Err = fmt.Errorf("%w: frame not closed", ErrMalformed)
		default:
			if ferr := decode(&resps[i], frames[i].fields, remoteStart); ferr != nil {
				resps[i].Err = fmt.Errorf("%w: %s: %w", ErrMalformed, b.reqs[i].Op, ferr)
			}
		}
	}
	if err == nil && !done {
		err = ErrIncomplete
	}
	return resps, err
}

// split walks the output lines and collects the frames. Lines before the
// start marker (a login banner, a noisy shell rc file) and lines outside
// frames are ignored; inside a frame every line must be a field or the
// frame's own end marker. A begin marker for anything but the next request
// still waiting, or an end marker for another frame, leaves the open frame
// unclosed, which fails its request.
func (b *Batch) split(out []byte) (frames []*frame, remoteStart int64, done bool, err error) {
	frames = make([]*frame, len(b.reqs))
	prefix := b.marker() + " "
	started := false
	var cur *frame
	curIdx := -1
	next := 0 // frames arrive in request order
	for len(out) > 0 {
		nl := bytes.IndexByte(out, '\n')
		if nl < 0 {
			// A last line without newline is a line the shell never
			// finished writing.
			break
		}
		line := string(out[:nl])
		out = out[nl+1:]
		if !strings.HasPrefix(line, prefix) {
			if cur != nil {
				tag, val, ok := strings.Cut(line, " ")
				if !ok || !validTag(tag) {
					cur, curIdx = nil, -1 // left unclosed: malformed
					continue
				}
				cur.fields = append(cur.fields, field{tag, val})
			}
			continue
		}
		words := strings.Split(strings.TrimPrefix(line, prefix), " ")
		switch {
		case len(words) == 2 && words[0] == "start" && !started:
			started = true
			remoteStart, _ = strconv.ParseInt(words[1], 10, 64) // 0 if date lacks %N
		case !started:
			// Marker before start: not ours to believe.
		case len(words) == 1 && words[0] == "done":
			return frames, remoteStart, true, nil
		case len(words) == 1 && words[0] == "fatal":
			return frames, remoteStart, false, ErrRemoteSetup
		case len(words) == 2 && (words[1] == "b" || words[1] == "e"):
			i, perr := strconv.Atoi(words[0])
			if perr != nil || i >= len(b.reqs) || strconv.Itoa(i) != words[0] {
				cur, curIdx = nil, -1
				continue
			}
			if words[1] == "b" {
				cur, curIdx = nil, -1
				if i < next {
					continue // a frame may not repeat or go back
				}
				cur, curIdx = &frame{}, i
				frames[i] = cur
				next = i + 1
			} else if cur != nil && curIdx == i {
				cur.ok = true
				cur, curIdx = nil, -1
			} else {
				cur, curIdx = nil, -1
			}
		default:
			cur, curIdx = nil, -1
		}
	}
	if !started {
		return frames, 0, false, fmt.Errorf("%w: no start marker", ErrIncomplete)
	}
	return frames, remoteStart, false, ErrIncomplete
}

// validTag accepts the short lower-case tags the script prints.
func validTag(t string) bool {
	if t == "" || len(t) > 2 {
		return false
	}
	for _, c := range []byte(t) {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// fields is a cursor over a frame's fields with typed accessors; the first
// protocol violation sticks in err.
type fields struct {
	f   []field
	err error
}

func (c *fields) more() bool { return c.err == nil && len(c.f) > 0 }

func (c *fields) peek() string {
	if len(c.f) == 0 {
		return ""
	}
	return c.f[0].tag
}

func (c *fields) take(tag string) (string, bool) {
	if c.err != nil {
		return "", false
	}
	if len(c.f) == 0 || c.f[0].tag != tag {
		got := "end of frame"
		if len(c.f) > 0 {
			got = fmt.Sprintf("%q", c.f[0].tag)
		}
		c.err = fmt.Errorf("want field %q, got %s", tag, got)
		return "", false
	}
	v := c.f[0].val
	c.f = c.f[1:]
	return v, true
}

func (c *fields) bytes(tag string) []byte {
	v, ok := c.take(tag)
	if !ok {
		return nil
	}
	d, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		c.err = fmt.Errorf("field %q: %w", tag, err)
		return nil
	}
	return d
}

func (c *fields) ints(tag string, n int) []int64 {
	v, ok := c.take(tag)
	if !ok {
		return nil
	}
	parts := strings.Split(v, " ")
	if len(parts) != n {
		c.err = fmt.Errorf("field %q: want %d integers, got %q", tag, n, v)
		return nil
	}
	out := make([]int64, n)
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			c.err = fmt.Errorf("field %q: %w", tag, err)
			return nil
		}
		out[i] = x
	}
	return out
}

func (c *fields) int(tag string) int {
	v := c.ints(tag, 1)
	if v == nil {
		return 0
	}
	if v[0] < -1<<31 || v[0] > 1<<31-1 {
		c.err = fmt.Errorf("field %q out of range", tag)
		return 0
	}
	return int(v[0])
}

func (c *fields) flag(tag string) bool {
	switch c.int(tag) {
	case 0:
		return false
	case 1:
		return true
	}
	if c.err == nil {
		c.err = fmt.Errorf("field %q: want 0 or 1", tag)
	}
	return false
}

func (c *fields) end() error {
	if c.err == nil && len(c.f) > 0 {
		c.err = fmt.Errorf("unexpected field %q", c.f[0].tag)
	}
	return c.err
}

// decode fills r from the fields of its frame.
func decode(r *target.Response, ff []field, remoteStart int64) error {
	c := &fields{f: ff}
	switch r.Req.Op {
	case target.OpRead:
		decodeRead(c, r)
	case target.OpStat:
		decodeStat(c, r)
	case target.OpGlob:
		decodeGlob(c, r)
	case target.OpExec:
		decodeExec(c, r, remoteStart)
	case target.OpPackages:
		decodePackages(c, r)
	case target.OpService:
		decodeService(c, r)
	case target.OpModule:
		r.Loaded = c.flag("l")
		r.Available = c.flag("a")
	default:
		return fmt.Errorf("unknown op")
	}
	return c.end()
}

// readResult decodes one "_vr" answer: data, a file-level error, or
// nonexistence.
type readResult struct {
	exists    bool
	data      []byte
	truncated bool
	err       string
}

func takeRead(c *fields) readResult {
	switch c.peek() {
	case "f":
		c.flag("f")
		return readResult{exists: true, err: "is a named pipe (FIFO); not read"}
	case "x":
		msg := errText(c.bytes("x"))
		if isNotExist(msg) {
			return readResult{}
		}
		return readResult{exists: true, err: msg}
	default:
		d := c.bytes("d")
		res := readResult{exists: true, data: d}
		if len(d) > target.ReadLimit {
			res.data, res.truncated = d[:target.ReadLimit], true
		}
		return res
	}
}

func decodeRead(c *fields, r *target.Response) {
	res := takeRead(c)
	if c.err != nil {
		return
	}
	r.Exists, r.Data, r.Truncated = res.exists, res.data, res.truncated
	if res.err != "" {
		r.Err = errors.New(res.err)
	}
}

// isNotExist tells a missing file from other failures by the C-locale
// strerror text the script's LC_ALL=C guarantees: ENOENT, or ENOTDIR when a
// path component is a regular file.
func isNotExist(msg string) bool {
	return strings.HasSuffix(msg, "No such file or directory") || strings.HasSuffix(msg, "Not a directory")
}

// errText turns a tool's stderr into a one-line message.
func errText(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		s = "failed without a message"
	}
	return s
}

func decodeStat(c *fields, r *target.Response) {
	if !c.more() {
		return // a pattern without match
	}
	recs := bytes.Split(c.bytes("s"), []byte{0})
	if c.err != nil {
		return
	}
	// Records are 7 NUL-terminated fields, so the split leaves one
	// trailing empty element.
	if len(recs)%7 != 1 || len(recs[len(recs)-1]) != 0 {
		c.err = fmt.Errorf("stat records: %d fields", len(recs)-1)
		return
	}
	for i := 0; i+7 <= len(recs)-1; i += 7 {
		fi, err := statRecord(recs[i : i+7])
		if err != nil {
			c.err = err
			return
		}
		r.Files = append(r.Files, fi)
	}
	for c.more() {
		p := string(c.bytes("p"))
		msg := errText(c.bytes("x"))
		if c.err != nil {
			return
		}
		fi := target.FileInfo{Path: p}
		if !isNotExist(msg) {
			fi.Err = msg
		}
		r.Files = append(r.Files, fi)
	}
	// stat answered in argument order and failures came after; the shell
	// expanded the glob in C-locale (byte) order, so sorting restores it.
	sort.SliceStable(r.Files, func(i, j int) bool { return r.Files[i].Path < r.Files[j].Path })
}

// statRecord decodes "%n %f %u %g %s %U %G": name, raw mode in hex, uid,
// gid, size, owner and group names ("UNKNOWN" when the id has no name).
func statRecord(f [][]byte) (target.FileInfo, error) {
	mode, err1 := strconv.ParseUint(string(f[1]), 16, 32)
	uid, err2 := strconv.Atoi(string(f[2]))
	gid, err3 := strconv.Atoi(string(f[3]))
	size, err4 := strconv.ParseInt(string(f[4]), 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return target.FileInfo{}, fmt.Errorf("stat record for %q: %w", f[0], err)
	}
	fi := target.FileInfo{
		Path:   string(f[0]),
		Exists: true,
		Type:   fileType(uint32(mode)),
		Mode:   uint32(mode) & 0o7777,
		UID:    uid,
		GID:    gid,
		Owner:  string(f[5]),
		Group:  string(f[6]),
		Size:   size,
	}
	if fi.Owner == "UNKNOWN" || fi.Owner == "" {
		fi.Owner = strconv.Itoa(uid)
	}
	if fi.Group == "UNKNOWN" || fi.Group == "" {
		fi.Group = strconv.Itoa(gid)
	}
	return fi, nil
}

// fileType names the S_IFMT bits of a raw Linux mode.
func fileType(mode uint32) string {
	switch mode & 0o170000 {
	case 0o100000:
		return "file"
	case 0o040000:
		return "dir"
	case 0o120000:
		return "symlink"
	case 0o020000:
		return "char"
	case 0o060000:
		return "block"
	case 0o010000:
		return "fifo"
	case 0o140000:
		return "socket"
	}
	return "unknown"
}

func decodeGlob(c *fields, r *target.Response) {
	var reads []readResult
	for c.more() && c.peek() != "n" {
		reads = append(reads, takeRead(c))
	}
	list := c.bytes("n")
	if c.err != nil {
		return
	}
	var paths []string
	if len(list) > 0 {
		if list[len(list)-1] != 0 {
			c.err = fmt.Errorf("glob list not NUL-terminated")
			return
		}
		for _, p := range bytes.Split(list[:len(list)-1], []byte{0}) {
			paths = append(paths, string(p))
		}
	}
	if r.Req.Content && len(reads) != len(paths) || !r.Req.Content && len(reads) != 0 {
		c.err = fmt.Errorf("glob: %d paths but %d contents", len(paths), len(reads))
		return
	}
	for i, p := range paths {
		fi := target.FileInfo{Path: p, Exists: true, Type: "file"}
		if r.Req.Content {
			fi.Data, fi.Truncated, fi.Err = reads[i].data, reads[i].truncated, reads[i].err
			if !reads[i].exists {
				// Listed, then gone before it was read.
				fi.Exists = false
			}
			if fi.Err == "" && !fi.Truncated && fi.Exists {
				fi.Size = int64(len(fi.Data))
			}
		}
		r.Files = append(r.Files, fi)
	}
	sort.SliceStable(r.Files, func(i, j int) bool { return r.Files[i].Path < r.Files[j].Path })
}

func decodeExec(c *fields, r *target.Response, remoteStart int64) {
	code := c.int("c")
	t := c.ints("t", 2)
	stdout := c.bytes("o")
	stderr := c.bytes("e")
	if c.err != nil {
		return
	}
	r.ExitCode = code
	r.Stdout, r.Stderr = stdout, stderr
	if len(r.Stdout) > target.ReadLimit {
		r.Stdout, r.OutputTruncated = r.Stdout[:target.ReadLimit], true
	}
	if len(r.Stderr) > target.ReadLimit {
		r.Stderr, r.OutputTruncated = r.Stderr[:target.ReadLimit], true
	}
	if t[1] >= t[0] && t[0] > 0 {
		r.Duration = time.Duration(t[1] - t[0])
		if remoteStart > 0 && t[0] >= remoteStart {
			r.Started = r.Started.Add(time.Duration(t[0] - remoteStart))
		}
	}
	// GNU timeout exits 124 when it stopped the command, 137 when the
	// command also ignored SIGTERM and had to be killed. A command may exit
	// 124 by itself, so the measured run time has to agree.
	limit := r.Req.Timeout
	if limit <= 0 {
		limit = target.DefaultExecTimeout
	}
	if (code == 124 || code == 137) && r.Duration >= limit {
		r.Err = fmt.Errorf("%w after %s", ErrTimeout, limit)
	}
}

func decodePackages(c *fields, r *target.Response) {
	r.Packages = map[string]target.Package{}
	var failures []string
	if c.peek() == "dc" {
		code := c.int("dc")
		data := c.bytes("d")
		stderr := c.bytes("de")
		switch {
		case c.err != nil:
			return
		case code > 1: // grep: 1 only means no line matched
			failures = append(failures, "dpkg status: "+errText(stderr))
		default:
			r.PackageSources = append(r.PackageSources, "dpkg")
			for k, v := range target.ParseDpkgStatus(data) {
				r.Packages[k] = v
			}
		}
	}
	if c.peek() == "rc" {
		code := c.int("rc")
		data := c.bytes("r")
		stderr := c.bytes("re")
		if c.err != nil {
			return
		}
		pkgs := target.ParseRPMList(data)
		switch {
		case code != 0:
			failures = append(failures, "rpm -qa: "+errText(stderr))
		case len(pkgs) > 0:
			// The rpm tool exists on some Debian hosts with an empty
			// database; only a database with packages counts as a source.
			r.PackageSources = append(r.PackageSources, "rpm")
			for k, v := range pkgs {
				if _, dup := r.Packages[k]; !dup {
					r.Packages[k] = v
				}
			}
		}
	}
	if len(r.PackageSources) == 0 && len(failures) > 0 {
		r.Err = errors.New(strings.Join(failures, "; "))
	}
}

func decodeService(c *fields, r *target.Response) {
	if !c.flag("y") {
		return // no systemctl: not observable, both empty
	}
	r.Enabled = unitState(c.int("ec"), c.bytes("en"))
	if c.peek() == "ac" {
		r.Active = unitState(c.int("ac"), c.bytes("an"))
	}
}

// unitState is systemctl's one-word answer; a unit systemd does not know
// prints nothing and fails.
func unitState(code int, out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if s == "" && code != 0 {
		return "not-found"
	}
	return s
}
