package shellbatch

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
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
	// ErrRemoteSetup: the script could not create its temporary directory,
	// or the FIFOs in it that commands' output goes through.
	ErrRemoteSetup = errors.New("batch script could not create a temporary directory")
	// ErrTimeout: an exec request ran past its timeout and was killed.
	ErrTimeout = errors.New("command timed out")
)

// field is one "tag value" line of a frame or section.
type field struct{ tag, val string }

// frame is what the output holds for one request, or for one stat or pool
// section.
type frame struct {
	fields []field
	ok     bool // begin and end markers both seen, in order
}

// pool is one "pool <base>" section: pieces base, base+1, ...
type pool struct {
	base int
	frame
}

// output is the split output of a batch.
type output struct {
	frames      []*frame // by request index
	stats       []*frame // stat sections, in order
	pools       []*pool
	remoteStart int64
	done        bool
}

// Parse reads the output of Script and returns one response per request,
// in order. started and elapsed describe the round trip that produced out;
// every response gets them as Started and Duration, except exec responses,
// which get the command's own start (relative to started) and run time.
//
// The error is non-nil when the batch as a whole failed: the output has no
// start marker, or stops before "done" (ErrIncomplete). Requests without a
// complete, well-formed frame, or whose data (pool or stat section) did
// not arrive, then carry Response.Err; those answered before the output
// stopped keep their answers.
func (b *Batch) Parse(out []byte, started time.Time, elapsed time.Duration) ([]target.Response, error) {
	resps := make([]target.Response, len(b.reqs))
	for i, r := range b.reqs {
		resps[i] = target.Response{Req: r, Started: started, Duration: elapsed}
	}
	o, err := b.split(out)
	if err == nil && !o.done {
		err = ErrIncomplete
	}
	d := &decoder{pieces: decodePools(o.pools), remoteStart: o.remoteStart}
	d.stat, d.statErr = decodeStats(o.stats, d.pieces)
	for i := range resps {
		f := o.frames[i]
		switch {
		case b.preErr[i] != nil:
			resps[i].Err = b.preErr[i]
		case f == nil:
			if err != nil {
				resps[i].Err = fmt.Errorf("%w: %w", ErrNoFrame, err)
			} else {
				resps[i].Err = ErrNoFrame
			}
		case !f.ok:
			resps[i].Err = fmt.Errorf("%w: frame not closed", ErrMalformed)
		default:
			ferr := d.decode(&resps[i], f.fields)
			if ferr == nil {
				break
			}
			// Nothing half-decoded survives a failed frame.
			resps[i] = target.Response{Req: b.reqs[i], Started: started, Duration: elapsed}
			if errors.Is(ferr, errLost) && err != nil {
				// The data a complete frame refers to comes later in
				// the output, which stopped before it.
				resps[i].Err = fmt.Errorf("%w: %s: %w", ErrNoFrame, b.reqs[i].Op, err)
			} else {
				resps[i].Err = fmt.Errorf("%w: %s: %w", ErrMalformed, b.reqs[i].Op, ferr)
			}
		}
	}
	return resps, err
}

// split walks the output lines and collects the frames and sections. Lines
// before the start marker (a login banner, a noisy shell rc file) and lines
// outside frames are ignored; inside a frame or section every line must be
// a field or its own end marker. Any other marker leaves the open frame
// unclosed, which fails it, except that a request's frame may hold whole
// pools. A frame may come in any order, but only once: a repeated begin
// marker is ignored, with what follows it.
func (b *Batch) split(out []byte) (*output, error) {
	o := &output{frames: make([]*frame, len(b.reqs))}
	prefix := b.marker() + " "
	started := false
	var cur *frame
	var curEnd string // the marker words closing cur
	// A pool may come in the middle of a request's frame (a glob reading
	// many files flushes as it goes): the frame waits here meanwhile.
	var held *frame
	var heldEnd string
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
					cur, held = nil, nil // left unclosed: malformed
					continue
				}
				cur.fields = append(cur.fields, field{tag, val})
			}
			continue
		}
		rest := strings.TrimPrefix(line, prefix)
		words := strings.Split(rest, " ")
		switch {
		case len(words) == 2 && words[0] == "start" && !started:
			started = true
			o.remoteStart, _ = strconv.ParseInt(words[1], 10, 64) // 0 if date lacks %N
			continue
		case !started:
			// Marker before start: not ours to believe.
			continue
		case rest == "done":
			o.done = true
			return o, nil
		case rest == "fatal":
			return o, ErrRemoteSetup
		case cur != nil && rest == curEnd:
			cur.ok = true
			cur, curEnd = held, heldEnd
			held = nil
			continue
		}
		isPool := len(words) == 3 && words[0] == "pool" && words[2] == "b"
		if isPool && cur != nil && held == nil && curEnd != "stat e" && !strings.HasPrefix(curEnd, "pool ") {
			held, heldEnd = cur, curEnd
		} else {
			held = nil
		}
		cur = nil
		switch {
		case isPool:
			base, ok := index(words[1], math.MaxInt32)
			if !ok {
				held = nil
				continue
			}
			p := &pool{base: base}
			o.pools = append(o.pools, p)
			cur, curEnd = &p.frame, "pool "+words[1]+" e"
		case len(words) == 2 && words[1] == "b" && words[0] == "stat":
			cur, curEnd = &frame{}, "stat e"
			o.stats = append(o.stats, cur)
		case len(words) == 2 && words[1] == "b":
			i, ok := index(words[0], len(b.reqs))
			if !ok || o.frames[i] != nil {
				continue // a frame may not repeat
			}
			cur, curEnd = &frame{}, words[0]+" e"
			o.frames[i] = cur
		}
	}
	if !started {
		return o, fmt.Errorf("%w: no start marker", ErrIncomplete)
	}
	return o, ErrIncomplete
}

// index parses a decimal index below n, in canonical form.
func index(s string, n int) (int, bool) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// errLost marks data a frame refers to that is not in the output.
var errLost = errors.New("not in the output")

// decodePools cuts the pools into pieces, indexed by number. The pools
// must follow each other without gap: one that does not start where the
// previous ended is ignored, with all after it. A pool whose lengths do not
// add up to its data still takes its numbers, but supplies no piece.
func decodePools(pools []*pool) map[int][]byte {
	pieces := map[int][]byte{}
	next := 0
	for _, p := range pools {
		if p.base != next || !p.ok {
			break
		}
		c := &fields{f: p.fields}
		k, ok := c.take("k")
		if !ok {
			break // cannot tell how many numbers it took
		}
		lens := strings.Fields(k)
		data := c.bytes("z")
		ok = c.end() == nil
		n := make([]int, len(lens))
		total := 0
		for j, l := range lens {
			x, err := strconv.Atoi(l)
			if err != nil || x < 0 || x > len(data)-total {
				ok = false
				break
			}
			n[j] = x
			total += x
		}
		if ok && total == len(data) {
			for j, x := range n {
				pieces[next+j] = data[:x:x]
				data = data[x:]
			}
		}
		next += len(lens)
	}
	return pieces
}

// statAnswers are the results of the stat section, by path.
type statAnswers struct {
	recs  map[string]target.FileInfo // stat succeeded
	fails map[string]string          // stat failed: its message
}

// decodeStats reads the batch's stat section: records ("r") and failures
// ("fn" paths with "fe" messages, one line each, paired in order).
func decodeStats(secs []*frame, pieces map[int][]byte) (*statAnswers, error) {
	switch {
	case len(secs) == 0:
		return nil, fmt.Errorf("stat section %w", errLost)
	case len(secs) > 1:
		return nil, fmt.Errorf("more than one stat section")
	case !secs[0].ok:
		return nil, fmt.Errorf("stat section not closed")
	}
	a := &statAnswers{recs: map[string]target.FileInfo{}, fails: map[string]string{}}
	c := &fields{f: secs[0].fields, pieces: pieces}
	for c.more() {
		switch c.peek() {
		case "r":
			recs := bytes.Split(c.piece("r"), []byte{0})
			if c.err != nil {
				break
			}
			// Records are 7 NUL-terminated fields, so the split leaves one
			// trailing empty element.
			if len(recs)%7 != 1 || len(recs[len(recs)-1]) != 0 {
				c.err = fmt.Errorf("stat records: %d fields", len(recs)-1)
				break
			}
			for i := 0; i+7 <= len(recs)-1; i += 7 {
				fi, err := statRecord(recs[i : i+7])
				if err != nil {
					c.err = err
					break
				}
				a.recs[fi.Path] = fi
			}
		default:
			names := c.piece("fn")
			msgs := c.piece("fe")
			if c.err != nil {
				break
			}
			paths := nulList(names)
			lines := strings.Split(strings.TrimSuffix(string(msgs), "\n"), "\n")
			if paths == nil || len(paths) != len(lines) || !bytes.HasSuffix(msgs, []byte("\n")) {
				if len(paths) == 0 && len(msgs) == 0 {
					break
				}
				c.err = fmt.Errorf("stat failures: %d paths, %d messages", len(paths), len(lines))
				break
			}
			for i, p := range paths {
				a.fails[p] = errText([]byte(lines[i]))
			}
		}
	}
	if err := c.end(); err != nil {
		return nil, fmt.Errorf("stat section: %w", err)
	}
	return a, nil
}

// nulList splits a list of NUL-terminated names; nil when the list is not
// NUL-terminated or holds an empty name.
func nulList(b []byte) []string {
	if len(b) == 0 {
		return []string{}
	}
	if b[len(b)-1] != 0 {
		return nil
	}
	var out []string
	for p := range bytes.SplitSeq(b[:len(b)-1], []byte{0}) {
		if len(p) == 0 {
			return nil
		}
		out = append(out, string(p))
	}
	return out
}

// lookup answers a stat of one path from the stat section: its record, or
// its failure (a missing path is not an error).
func (a *statAnswers) lookup(p string) (target.FileInfo, bool) {
	if fi, ok := a.recs[p]; ok {
		return fi, true
	}
	if msg, ok := a.fails[p]; ok {
		fi := target.FileInfo{Path: p}
		if !isNotExist(msg) {
			fi.Err = msg
		}
		return fi, true
	}
	return target.FileInfo{}, false
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
	f      []field
	pieces map[int][]byte
	err    error
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

// piece returns the piece a field refers to by number.
func (c *fields) piece(tag string) []byte {
	v, ok := c.take(tag)
	if !ok {
		return nil
	}
	n, ok := index(v, math.MaxInt32)
	if !ok {
		c.err = fmt.Errorf("field %q: bad piece number %q", tag, v)
		return nil
	}
	d, ok := c.pieces[n]
	if !ok {
		c.err = fmt.Errorf("field %q: piece %d %w", tag, n, errLost)
		return nil
	}
	return d
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

// decoder turns frames into responses, with what the whole output holds.
type decoder struct {
	pieces      map[int][]byte
	stat        *statAnswers
	statErr     error
	remoteStart int64
}

// decode fills r from the fields of its frame.
func (d *decoder) decode(r *target.Response, ff []field) error {
	c := &fields{f: ff, pieces: d.pieces}
	switch r.Req.Op {
	case target.OpRead:
		d.decodeRead(c, r)
	case target.OpStat:
		d.decodeStat(c, r)
	case target.OpGlob:
		d.decodeGlob(c, r)
	case target.OpExec:
		decodeExec(c, r, d.remoteStart)
	case target.OpPackages:
		decodePackages(c, r)
	case target.OpService:
		decodeService(c, r)
	case target.OpModule:
		r.Loaded = c.flag("l")
		r.Available = c.flag("a")
		r.Builtin = c.flag("bi")
	default:
		return fmt.Errorf("unknown op")
	}
	return c.end()
}

// readResult decodes one "_vrd" answer: data, a file-level error, or
// nonexistence.
type readResult struct {
	exists    bool
	data      []byte
	truncated bool
	err       string
}

func (d *decoder) takeRead(c *fields, path string) readResult {
	switch c.peek() {
	case "f":
		c.flag("f")
		return readResult{exists: true, err: "is a named pipe (FIFO); not read"}
	case "m":
		// [ -e ] failed; the stat section says why.
		if !c.flag("m") {
			c.err = fmt.Errorf("field \"m\": want 1")
			return readResult{}
		}
		if d.statErr != nil {
			c.err = d.statErr
			return readResult{}
		}
		if msg, ok := d.stat.fails[path]; ok {
			if isNotExist(msg) {
				return readResult{}
			}
			return readResult{exists: true, err: msg}
		}
		if _, ok := d.stat.recs[path]; !ok {
			c.err = fmt.Errorf("no stat answer for %q", path)
		}
		// It appeared after it was found missing: missing when read.
		return readResult{}
	case "x":
		msg := errText(c.piece("x"))
		if isNotExist(msg) {
			return readResult{}
		}
		return readResult{exists: true, err: msg}
	default:
		data := c.piece("d")
		res := readResult{exists: true, data: data}
		if len(data) > target.ReadLimit {
			res.data, res.truncated = data[:target.ReadLimit], true
		}
		return res
	}
}

func (d *decoder) decodeRead(c *fields, r *target.Response) {
	res := d.takeRead(c, r.Req.Path)
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

func (d *decoder) decodeStat(c *fields, r *target.Response) {
	var paths []string
	if !hasMeta(r.Req.Path) {
		paths = []string{r.Req.Path}
	} else if c.more() {
		// A pattern with matches; none means no fields at all.
		if paths = nulList(c.piece("g")); paths == nil && c.err == nil {
			c.err = fmt.Errorf("bad list of matches")
		}
	}
	if c.err != nil || len(paths) == 0 {
		return
	}
	if d.statErr != nil {
		c.err = d.statErr
		return
	}
	for _, p := range paths {
		fi, ok := d.stat.lookup(p)
		if !ok {
			c.err = fmt.Errorf("no stat answer for %q", p)
			return
		}
		r.Files = append(r.Files, fi)
	}
	// The shell expanded the glob in C-locale (byte) order; sort all the
	// same, as every target answers sorted.
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

func (d *decoder) decodeGlob(c *fields, r *target.Response) {
	// The list comes last, after the contents of the files it names.
	last := len(c.f) - 1
	if last < 0 || c.f[last].tag != "n" {
		c.err = fmt.Errorf("glob: no list of files")
		return
	}
	list := &fields{f: c.f[last:], pieces: c.pieces}
	paths := nulList(list.piece("n"))
	c.f = c.f[:last]
	switch {
	case list.err != nil:
		c.err = list.err
		return
	case paths == nil:
		c.err = fmt.Errorf("bad glob list")
		return
	}
	var reads []readResult
	for i := 0; c.more(); i++ {
		if !r.Req.Content || i >= len(paths) {
			c.err = fmt.Errorf("glob: %d paths but more contents", len(paths))
			return
		}
		reads = append(reads, d.takeRead(c, paths[i]))
	}
	if c.err != nil {
		return
	}
	if r.Req.Content && len(reads) != len(paths) {
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
	stdout := c.piece("o")
	stderr := c.piece("e")
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
		data := c.piece("d")
		stderr := c.piece("de")
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
		data := c.piece("r")
		stderr := c.piece("re")
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
	r.Enabled = unitState(c.int("ec"), c.piece("en"))
	if c.peek() == "ac" {
		r.Active = unitState(c.int("ac"), c.piece("an"))
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
