// Package shellbatch turns a whole batch of fact requests into one POSIX sh
// script and parses that script's output back into responses.
//
// It exists so a remote target can answer every fact of a scan in one round
// trip: the script is sent once (over SSH, to `sh -s`), runs every probe on
// the host, and prints one framed answer per request. The functions here are
// pure; running the script is the caller's business.
//
// Output protocol. Every line the script prints is either a marker line or a
// field line. A marker line starts with "VIGIL-<nonce> ", where the nonce is
// 32 random hex digits drawn afresh for every batch:
//
//	VIGIL-<nonce> start <remote clock, ns>
//	VIGIL-<nonce> <i> b          request i begins
//	<tag> <value>                 field lines, value base64 or integers
//	VIGIL-<nonce> <i> e          request i ends
//	VIGIL-<nonce> done           the whole batch ran
//
// File contents, command output, names and paths only ever travel
// base64-encoded, so nothing a probed file contains can look like a marker,
// and the nonce keeps stray output from forging one. The parser is strict:
// a frame that is missing or malformed fails that request, and output that
// stops before "done" fails the batch.
package shellbatch

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// Batch is the script for one list of requests, and what is needed to parse
// its output: the requests and the batch's nonce.
type Batch struct {
	reqs   []target.Request
	nonce  string
	script []byte
	// preErr holds requests refused before the script was built (a bad
	// path, an unknown op). They get no frame in the script.
	preErr []error
}

// New builds the script for reqs. Requests that cannot be expressed safely
// (NUL or newline in a path, a malformed glob, an unknown op) are left out
// of the script and answered by Parse with Response.Err. The error is
// non-nil only when no random nonce could be drawn.
func New(reqs []target.Request) (*Batch, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("shellbatch: drawing nonce: %w", err)
	}
	return newBatch(reqs, hex.EncodeToString(raw[:])), nil
}

// newBatch builds a batch with a given nonce; tests use it to get stable
// output.
func newBatch(reqs []target.Request, nonce string) *Batch {
	b := &Batch{
		reqs:   append([]target.Request(nil), reqs...),
		nonce:  nonce,
		preErr: make([]error, len(reqs)),
	}
	b.script = b.build()
	return b
}

// Script returns the POSIX sh script to feed to `sh -s`.
func (b *Batch) Script() []byte { return b.script }

// Requests returns the requests of the batch, in order.
func (b *Batch) Requests() []target.Request { return b.reqs }

// marker is the prefix of every marker line of this batch.
func (b *Batch) marker() string { return "VIGIL-" + b.nonce }

// readCap is how much of a file or output stream the script transfers: one
// byte more than target.ReadLimit, so the parser can tell a file of exactly
// ReadLimit bytes from a longer one and set Truncated.
const readCap = target.ReadLimit + 1

// prelude starts the script. Everything is wrapped in one brace group
// closed by "} </dev/null" in the epilogue, for two reasons: the shell must
// parse the whole group before running any of it, so a script cut short in
// transit runs nothing at all; and no probe can read (and so swallow) the
// rest of the script from the shell's own stdin.
//
// LC_ALL=C makes stat, glob sorting and error messages predictable (the
// parser classifies "No such file or directory"). PATH gains the sbin
// directories, which a non-root SSH login lacks and probes such as `sshd -T`
// need.
//
// One private temporary directory (mktemp -d makes it 0700, whatever the
// umask, which is left alone for the probes) holds every probe's output;
// the EXIT trap removes it and the signal traps turn a hang-up or a broken
// pipe (the SSH connection died) into a normal exit so the EXIT trap runs.
//
// Helpers:
//
//	_vb TAG FILE   print "TAG <base64 of FILE>" on one line.
//	_vr PATH       read a file: "d <data>" or "x <stderr>" (the parser
//	               classifies ENOENT as missing), or "f 1" for a FIFO,
//	               which is never opened because that could block forever.
//	_vs MODE ARGS  stat the already expanded ARGS following symlinks, all
//	               in one stat call: "s <base64 of NUL-separated records>".
//	               Only when stat complained is each path retried alone, to
//	               pair every failing path ("p") with its own error ("x").
//	               MODE g means ARGS came from a glob: a single argument
//	               that does not exist is the unexpanded pattern, i.e. no
//	               match, and yields no fields.
//	_vg MODE ARGS  list the regular files among ARGS ("n", NUL-separated)
//	               and with MODE c read each one ("d"/"x", in order).
//	_vx SECS SCRIPT  run SCRIPT with sh -c in its own process, stdin from
//	               /dev/null, under `timeout` when the host has it. The two
//	               nested pipes route stdout and stderr each through _vcap,
//	               which keeps readCap bytes and drains the rest so a chatty
//	               command neither fills the disk nor dies of SIGPIPE.
//	               Prints "c <exit code>", "t <start ns> <end ns>" and the
//	               two outputs.
//	_vk            packages: the dpkg status file filtered to the fields
//	               ParseDpkgStatus needs ("dc", "d", "de") and, when rpm
//	               exists, `rpm -qa` ("rc", "r", "re").
//	_vu UNIT       systemd: "y 0" without systemctl; else is-enabled ("ec",
//	               "en") and, when systemd runs (/run/systemd/system),
//	               is-active ("ac", "an").
//	_vm ERE        kernel module: loaded per /proc/modules ("l 0|1"), file
//	               present for the running kernel ("a 0|1"), looked up in a
//	               list of module files made once per batch.
const prelude = `{
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}; export PATH
M='%s'
echo "$M start $(date +%%s%%N)"
_vT=$(mktemp -d 2>/dev/null) || _vT=$(mktemp -d /dev/shm/vigil.XXXXXXXX 2>/dev/null) || { echo "$M fatal"; exit 1; }
trap 'rm -rf "$_vT"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
_vto=; command -v timeout >/dev/null 2>&1 && _vto=1
_vb() { printf '%%s ' "$1"; base64 -w 0 <"$2"; echo; }
_vr() {
  if [ -p "$1" ]; then echo "f 1"; return 0; fi
  if head -c %d -- "$1" >"$_vT/o" 2>"$_vT/e"; then _vb d "$_vT/o"; else _vb x "$_vT/e"; fi
}
_vs() {
  _vmode=$1; shift
  if [ "$_vmode" = g ] && [ $# -eq 1 ] && [ ! -e "$1" ] && [ ! -L "$1" ]; then return 0; fi
  stat -L --printf '%%n\0%%f\0%%u\0%%g\0%%s\0%%U\0%%G\0' -- "$@" >"$_vT/o" 2>"$_vT/e"
  _vb s "$_vT/o"
  [ -s "$_vT/e" ] || return 0
  for _vp; do
    stat -L -c %%f -- "$_vp" >/dev/null 2>"$_vT/e" && continue
    printf 'p '; printf '%%s' "$_vp" | base64 -w 0; echo
    _vb x "$_vT/e"
  done
}
_vg() {
  _vmode=$1; shift
  : >"$_vT/l"
  for _vp; do
    [ -f "$_vp" ] || continue
    printf '%%s\0' "$_vp" >>"$_vT/l"
    if [ "$_vmode" = c ]; then _vr "$_vp"; fi
  done
  _vb n "$_vT/l"
}
_vcap() { head -c %d; cat >/dev/null; }
_vx() {
  _vt0=$(date +%%s%%N)
  { { if [ -n "$_vto" ]; then timeout -k 2 "$1" sh -c "$2"; else sh -c "$2"; fi </dev/null 2>&1 1>&3 3>&-; echo $? >"$_vT/c"; } | _vcap >"$_vT/e" 3>&-; } 3>&1 | _vcap >"$_vT/o"
  _vt1=$(date +%%s%%N)
  _vc=; read -r _vc <"$_vT/c"
  echo "c $_vc"; echo "t $_vt0 $_vt1"; _vb o "$_vT/o"; _vb e "$_vT/e"
}
_vk() {
  if [ -e /var/lib/dpkg/status ]; then
    grep -E '^(Package|Status|Version):|^$' /var/lib/dpkg/status >"$_vT/o" 2>"$_vT/e"
    echo "dc $?"; _vb d "$_vT/o"; _vb de "$_vT/e"
  fi
  if command -v rpm >/dev/null 2>&1; then
    rpm -qa --qf '%%{NAME}\t%%{VERSION}-%%{RELEASE}\n' </dev/null >"$_vT/o" 2>"$_vT/e"
    echo "rc $?"; _vb r "$_vT/o"; _vb re "$_vT/e"
  fi
}
_vu() {
  if ! command -v systemctl >/dev/null 2>&1; then echo "y 0"; return 0; fi
  echo "y 1"
  systemctl is-enabled -- "$1" </dev/null >"$_vT/o" 2>/dev/null; echo "ec $?"; _vb en "$_vT/o"
  if [ -d /run/systemd/system ]; then
    systemctl is-active -- "$1" </dev/null >"$_vT/o" 2>/dev/null; echo "ac $?"; _vb an "$_vT/o"
  fi
}
_vm() {
  if grep -q -E "^$1 " /proc/modules 2>/dev/null; then echo "l 1"; else echo "l 0"; fi
  if grep -q -E "/$1"'\.ko(\.(xz|zst|gz))?$' "$_vT/m" 2>/dev/null; then echo "a 1"; else echo "a 0"; fi
}
`

// modulePrelude lists the module files of the running kernel once, only in
// batches that ask about modules. find does not follow the build/source
// symlinks, so kernel headers are not walked.
const modulePrelude = `find "/lib/modules/$(uname -r)/" -type f -name '*.ko*' >"$_vT/m" 2>/dev/null
`

// epilogue marks a batch that ran to the end, and closes the brace group
// opened by prelude with stdin from /dev/null.
const epilogue = `echo "$M done"
} </dev/null
`

// build writes the script. Each embedded request is one frame: a begin
// marker, one helper call whose every argument is shell-quoted, an end
// marker.
func (b *Batch) build() []byte {
	var s strings.Builder
	s.WriteString("# vigil fact batch: one frame per request, see package shellbatch\n")
	fmt.Fprintf(&s, prelude, b.marker(), readCap, readCap)
	for _, r := range b.reqs {
		if r.Op == target.OpModule {
			s.WriteString(modulePrelude)
			break
		}
	}
	for i, r := range b.reqs {
		call, err := command(r)
		if err != nil {
			b.preErr[i] = err
			continue
		}
		fmt.Fprintf(&s, "echo \"$M %d b\"\n%s\necho \"$M %d e\"\n", i, call, i)
	}
	s.WriteString(epilogue)
	return []byte(s.String())
}

// command renders the helper call answering r.
func command(r target.Request) (string, error) {
	switch r.Op {
	case target.OpRead:
		if err := checkPath("path", r.Path); err != nil {
			return "", err
		}
		return "_vr " + Quote(r.Path), nil
	case target.OpStat:
		if err := checkPath("path", r.Path); err != nil {
			return "", err
		}
		if !hasMeta(r.Path) {
			return "_vs l " + Quote(r.Path), nil
		}
		g, err := QuoteGlob(r.Path)
		if err != nil {
			return "", err
		}
		return "_vs g " + g, nil
	case target.OpGlob:
		if err := checkPath("pattern", r.Path); err != nil {
			return "", err
		}
		g := Quote(r.Path)
		if hasMeta(r.Path) {
			var err error
			if g, err = QuoteGlob(r.Path); err != nil {
				return "", err
			}
		}
		mode := "n"
		if r.Content {
			mode = "c"
		}
		return "_vg " + mode + " " + g, nil
	case target.OpExec:
		if strings.ContainsRune(r.Script, 0) {
			return "", fmt.Errorf("script contains a NUL byte")
		}
		if strings.TrimSpace(r.Script) == "" {
			return "", fmt.Errorf("empty script")
		}
		return "_vx " + timeoutArg(r.Timeout) + " " + Quote(r.Script), nil
	case target.OpPackages:
		return "_vk", nil
	case target.OpService:
		if err := checkPath("unit name", r.Path); err != nil {
			return "", err
		}
		return "_vu " + Quote(r.Path), nil
	case target.OpModule:
		re, err := moduleRegexp(r.Path)
		if err != nil {
			return "", err
		}
		return "_vm " + Quote(re), nil
	}
	return "", fmt.Errorf("unknown op %q", r.Op)
}

// timeoutArg renders an exec timeout for GNU timeout, which accepts
// fractional seconds ("0.5").
func timeoutArg(d time.Duration) string {
	if d <= 0 {
		d = target.DefaultExecTimeout
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// moduleRegexp turns a module name into an extended regexp in which '-' and
// '_' match each other, as the kernel treats them. Names are restricted to
// the characters module names use, so the regexp needs no escaping.
func moduleRegexp(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty module name")
	}
	var re strings.Builder
	for _, c := range []byte(name) {
		switch {
		case c == '-' || c == '_':
			re.WriteString("[-_]")
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			re.WriteByte(c)
		default:
			return "", fmt.Errorf("module name %q: only letters, digits, '-' and '_' allowed", name)
		}
	}
	return re.String(), nil
}
