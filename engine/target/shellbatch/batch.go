// Package shellbatch turns a whole batch of fact requests into one POSIX sh
// script and parses that script's output back into responses.
//
// It exists so a remote target can answer every fact of a scan in one round
// trip: the script is sent once (over SSH, to `sh -s`), runs every probe on
// the host, and prints one framed answer per request. The functions here are
// pure; running the script is the caller's business.
//
// The script starts processes per distinct program rather than per request:
// the shell's own test sorts the paths of the batch into those that exist
// and those that do not, and one stat call answers each group (the second
// for the reasons: missing, permission denied...); file contents, command
// outputs and error texts all travel through one base64 process per pool
// (see below); command timings come from one clock process. What remains
// per request is one head per file read and, per command, the command
// itself, its timeout and two output cappers.
//
// Output protocol. Every line the script prints is either a marker line or a
// field line. A marker line starts with "VIGIL-<nonce> ", where the nonce is
// 32 random hex digits drawn afresh for every batch:
//
//	VIGIL-<nonce> start <remote clock, ns>
//	VIGIL-<nonce> <i> b          request i begins
//	<tag> <value>                 field lines: integers or piece numbers
//	VIGIL-<nonce> <i> e          request i ends
//	VIGIL-<nonce> stat b         the batch's stat results begin
//	VIGIL-<nonce> stat e
//	VIGIL-<nonce> pool <n> b     pieces n, n+1, ... begin
//	k <len> <len> ...             the byte length of each piece
//	z <base64>                    all the pieces, concatenated
//	VIGIL-<nonce> pool <n> e
//	VIGIL-<nonce> done           the whole batch ran
//
// Frames appear in any order, each at most once (the script answers file
// requests first), and a pool may come between two fields of a frame. Everything a host controls (file contents, command
// output, names, paths, error messages) is written to a "piece", a file in
// the script's private temporary directory; a frame refers to pieces by
// number, and the pools carry them base64-encoded, cut apart by lengths
// that stat measured on those private files. So nothing a probed file
// contains can look like a marker or move a boundary, and the nonce keeps
// stray output from forging one. The parser is strict: a frame that is
// missing or malformed, or that refers to a piece or stat result the output
// lacks, fails that request, and output that stops before "done" fails the
// batch.
package shellbatch

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
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

// marker is the prefix of every marker line of this batch.
func (b *Batch) marker() string { return "VIGIL-" + b.nonce }

// readCap is how much of a file or output stream the script transfers: one
// byte more than target.ReadLimit, so the parser can tell a file of exactly
// ReadLimit bytes from a longer one and set Truncated.
const readCap = target.ReadLimit + 1

// flushAt is how many non-empty pieces the script collects before it sends
// them as a pool, which bounds the temporary space a batch takes on the
// host to about flushAt pieces of readCap bytes.
const flushAt = 32

// prelude starts the script. Everything is wrapped in one brace group
// closed by "} </dev/null" in the epilogue, for two reasons: the shell must
// parse the whole group before running any of it, so a script cut short in
// transit runs nothing at all; and no probe can read (and so swallow) the
// rest of the script from the shell's own stdin.
//
// LC_ALL=C makes stat, glob sorting and error messages predictable (the
// parser classifies "No such file or directory"). PATH gains the sbin
// directories, which a non-root SSH login lacks and probes such as `sshd -T`
// need. IFS is set to its default, which the pool flush relies on.
//
// One private temporary directory (mktemp -d makes it 0700, whatever the
// umask, which is left alone for the probes) holds every piece; the EXIT
// trap removes it and the signal traps turn a hang-up or a broken pipe (the
// SSH connection died) into a normal exit so the EXIT trap runs.
//
// Pieces. _vnew allocates the next piece number ($_vpi) and its file
// ($_vpf); _vadd registers an existing file of the directory as the next
// piece. _vP sends every piece registered since the last pool: their sizes
// from one stat call, their bytes through one cat | base64 pipeline; it then
// empties the files to give the space back. _vf calls _vP once flushAt
// pieces with content (_vW counts them) or 1024 pieces in all are waiting.
// Every frame helper calls _vf before its begin marker, and a reading glob
// after each file, so a pool only ever splits a frame between two fields.
//
// Frame helpers, each given the request index first:
//
//	_vs I PATH     stat a literal path. No fields: [ -e ] (a builtin) sorts
//	               PATH into the list of existing paths ($_vSL) or the list
//	               of failing ones ($_vFL), both newline-separated, and the
//	               parser looks PATH up in the stat section.
//	_vg I ARGS     stat the expansion ARGS of a pattern: "g <piece>" lists
//	               the names (NUL-separated), each sorted into the lists. A
//	               single argument that does not exist is the unexpanded
//	               pattern, i.e. no match, and yields no fields.
//	_vr I PATH     read a file (_vrd): "f 1" for a FIFO, which is never
//	               opened because that could block forever; "m 1" when
//	               [ -e ] fails, the reason then being in the stat section;
//	               else one head -c, "d <piece>" or on failure "x <piece>"
//	               with head's message (ENOENT from a race counts as
//	               missing).
//	_vG I MODE ARGS  list the regular files among ARGS and with MODE c read
//	               each ("d"/"x"/"m", in order), then "n <piece>": the files
//	               (NUL-separated), written as it goes to a file that only
//	               becomes a piece at the end.
//	_vx I SECS SCRIPT  run SCRIPT with sh -c in its own process, stdin from
//	               /dev/null, under `timeout` when the host has it. Its
//	               stdout and stderr go through two FIFOs made once per
//	               batch to two _vcap jobs: dd keeps readCap bytes and,
//	               unless it reports reaching the end of the stream before
//	               a full block, cat drains the rest, so a chatty command
//	               neither fills the disk nor dies of SIGPIPE (nor blocks,
//	               should dd fail). The shell holds each FIFO open
//	               read-write while it starts the jobs and the command, so
//	               no open() ever blocks: a job or command that fails to
//	               start cannot hang the batch; the children close every
//	               such descriptor. Prints "c <exit code>", "t <start ns>
//	               <end ns>" (from _vclk, see execPrelude), "o <piece>",
//	               "e <piece>".
//	_vk I          packages: the dpkg status file filtered to the fields
//	               ParseDpkgStatus needs ("dc", "d", "de") and, when rpm
//	               exists, `rpm -qa` ("rc", "r", "re").
//	_vu I UNIT     systemd: "y 0" without systemctl; else is-enabled ("ec",
//	               "en") and, when systemd runs (/run/systemd/system),
//	               is-active ("ac", "an").
//	_vm I ERE      kernel module: loaded per /proc/modules ("l 0|1"), file
//	               present for the running kernel ("a 0|1"), looked up in a
//	               list of module files made once per batch.
//
// _vS runs after the file requests and prints the stat section: one
// `stat -L` call over all existing paths ("r <piece>": NUL-separated
// records of 7 fields) and one over all failing paths ("fn <piece>": the
// paths, NUL-separated; "fe <piece>": stat's messages, one line per path,
// in order). When the first call complains, or the second prints a record
// (a path appeared meanwhile), their paths are stated one by one instead
// (_v1), as are names that hold a newline, which cannot go in the lists;
// those answers come as one more r/fn/fe triple.
const prelude = `{
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}; export PATH
_vnl='
'
IFS=" 	$_vnl"
M='@NONCE@'
echo "$M start $(date +%s%N)"
_vT=$(mktemp -d 2>/dev/null) || _vT=$(mktemp -d /dev/shm/vigil.XXXXXXXX 2>/dev/null) || { echo "$M fatal"; exit 1; }
trap 'rm -rf "$_vT"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
_vto=; command -v timeout >/dev/null 2>&1 && _vto=1
_vn=0; _vb=0; _vw=0; _vPL=; _vSL=; _vFL=; _v1=
_vfmt='%n\0%f\0%u\0%g\0%s\0%U\0%G\0'
_vadd() { _vpi=$_vn; _vn=$((_vn+1)); _vPL="$_vPL $1"; }
_vnew() { _vadd "p$_vn"; _vpf=$_vT/p$_vpi; : >"$_vpf"; }
_vW() { for _vj; do [ -s "$_vj" ] && _vw=$((_vw+1)); done; }
_vP() {
  [ -n "$_vPL" ] || return 0
  set --; for _vj in $_vPL; do set -- "$@" "$_vT/$_vj"; done
  echo "$M pool $_vb b"
  printf 'k '; stat --printf '%s ' -- "$@"; echo
  printf 'z '; cat -- "$@" | base64 -w 0; echo
  echo "$M pool $_vb e"
  for _vj; do : >"$_vj"; done
  _vb=$_vn; _vPL=; _vw=0
}
_vf() { [ "$_vw" -lt @FLUSH@ ] && [ $((_vn-_vb)) -lt 1024 ] || _vP; }
_v1() {
  _v1=1
  stat -L --printf "$_vfmt" -- "$1" >>"$_vT/s1r" 2>"$_vT/sx" && return 0
  printf '%s\0' "$1" >>"$_vT/s1n"
  _vl=; IFS= read -r _vl <"$_vT/sx"
  printf '%s\n' "${_vl:-stat: failed without a message}" >>"$_vT/s1e"
}
_va() {
  case $1 in *"$_vnl"*) _v1 "$1"; return 0;; esac
  if [ -e "$1" ]; then _vSL=$_vSL$1$_vnl; else _vFL=$_vFL$1$_vnl; fi
}
_vs() { echo "$M $1 b"; _va "$2"; echo "$M $1 e"; }
_vg() {
  _vf; _vi=$1; shift
  echo "$M $_vi b"
  if [ $# -gt 1 ] || [ -e "$1" ] || [ -L "$1" ]; then
    _vnew; printf '%s\0' "$@" >"$_vpf"; echo "g $_vpi"
    for _vp; do _va "$_vp"; done
  fi
  echo "$M $_vi e"
}
_vrd() {
  if [ -p "$1" ]; then echo "f 1"; return 0; fi
  if [ ! -e "$1" ]; then _va "$1"; echo "m 1"; return 0; fi
  _vnew; _vd=$_vpi; _vnew
  if head -c @CAP@ -- "$1" >"$_vT/p$_vd" 2>"$_vpf"; then echo "d $_vd"; else echo "x $_vpi"; fi
  _vW "$_vT/p$_vd" "$_vpf"
}
_vr() { _vf; echo "$M $1 b"; _vrd "$2"; echo "$M $1 e"; }
_vG() {
  _vf; _vi=$1; _vmode=$2; shift 2
  echo "$M $_vi b"
  : >"$_vT/g$_vi"
  for _vp; do
    [ -f "$_vp" ] || continue
    printf '%s\0' "$_vp" >>"$_vT/g$_vi"
    if [ "$_vmode" = c ]; then _vrd "$_vp"; _vf; fi
  done
  _vadd "g$_vi"; echo "n $_vpi"
  echo "$M $_vi e"
}
_vS() {
  _vf
  echo "$M stat b"
  if [ -n "$_vSL" ]; then
    IFS=$_vnl; set -f; set -- $_vSL; IFS=" 	$_vnl"; set +f
    _vnew
    if stat -L --printf "$_vfmt" -- "$@" >"$_vpf" 2>"$_vT/sx" && [ ! -s "$_vT/sx" ]; then echo "r $_vpi"
    else for _vp; do _v1 "$_vp"; done; fi
  fi
  if [ -n "$_vFL" ]; then
    IFS=$_vnl; set -f; set -- $_vFL; IFS=" 	$_vnl"; set +f
    _vnew; _vq=$_vpi; printf '%s\0' "$@" >"$_vpf"
    _vnew; stat -L --printf "$_vfmt" -- "$@" >"$_vT/sx" 2>"$_vpf"
    if [ $? -eq 1 ] && [ ! -s "$_vT/sx" ]; then echo "fn $_vq"; echo "fe $_vpi"
    else for _vp; do _v1 "$_vp"; done; fi
  fi
  if [ -n "$_v1" ]; then
    : >>"$_vT/s1r"; : >>"$_vT/s1n"; : >>"$_vT/s1e"
    _vadd s1r; echo "r $_vpi"; _vadd s1n; echo "fn $_vpi"; _vadd s1e; echo "fe $_vpi"
  fi
  echo "$M stat e"
}
_vclk() {
  if [ -n "$_vck" ] && echo now >&8 && IFS= read -r _vnow <&9; then
    case $_vnow in ''|*[!0-9]*) ;; *) return 0;; esac
  fi
  if [ -n "$_vck" ]; then _vck=; exec 8>&- 9<&-; fi
  _vnow=$(date +%s%N)
}
_vcap() {
  exec 4>&- 5>&- 6<&- 7<&- 8>&- 9<&-
  dd bs=@CAP@ count=1 iflag=fullblock of="$1" 2>"$2"
  _vl=; read -r _vl <"$2"
  case $_vl in "0+"[01]" records in") ;; *) exec cat >/dev/null;; esac
}
_vx() {
  _vf
  echo "$M $1 b"
  _vnew; _vo=$_vpi; _vnew; _ve=$_vpi
  exec 4<>"$_vT/fo" 6<"$_vT/fo" 5<>"$_vT/fe" 7<"$_vT/fe"
  _vcap "$_vT/p$_vo" "$_vT/do" <&6 & _vj1=$!
  _vcap "$_vT/p$_ve" "$_vT/de" <&7 & _vj2=$!
  _vclk; _vt0=$_vnow
  if [ -n "$_vto" ]; then timeout -k 2 "$2" sh -c "$3"; else sh -c "$3"; fi </dev/null >"$_vT/fo" 2>"$_vT/fe" 4>&- 5>&- 6<&- 7<&- 8>&- 9<&-
  _vc=$?
  exec 4>&- 5>&- 6<&- 7<&-
  wait $_vj1 $_vj2
  _vclk
  echo "c $_vc"; echo "t $_vt0 $_vnow"; echo "o $_vo"; echo "e $_ve"
  echo "$M $1 e"
  _vW "$_vT/p$_vo" "$_vT/p$_ve"
}
_vk() {
  _vf
  echo "$M $1 b"
  if [ -e /var/lib/dpkg/status ]; then
    _vnew; _vo=$_vpi; _vnew
    grep -E '^(Package|Status|Version):|^$' /var/lib/dpkg/status >"$_vT/p$_vo" 2>"$_vpf"
    echo "dc $?"; echo "d $_vo"; echo "de $_vpi"
    _vW "$_vT/p$_vo"
  fi
  if command -v rpm >/dev/null 2>&1; then
    _vnew; _vo=$_vpi; _vnew
    rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n' </dev/null >"$_vT/p$_vo" 2>"$_vpf"
    echo "rc $?"; echo "r $_vo"; echo "re $_vpi"
    _vW "$_vT/p$_vo"
  fi
  echo "$M $1 e"
}
_vu() {
  _vf
  echo "$M $1 b"
  if ! command -v systemctl >/dev/null 2>&1; then echo "y 0"
  else
    echo "y 1"
    _vnew; systemctl is-enabled -- "$2" </dev/null >"$_vpf" 2>/dev/null; echo "ec $?"; echo "en $_vpi"
    if [ -d /run/systemd/system ]; then
      _vnew; systemctl is-active -- "$2" </dev/null >"$_vpf" 2>/dev/null; echo "ac $?"; echo "an $_vpi"
    fi
  fi
  echo "$M $1 e"
}
_vm() {
  _vf
  echo "$M $1 b"
  if grep -q -E "^$2 " /proc/modules 2>/dev/null; then echo "l 1"; else echo "l 0"; fi
  if grep -q -E "/$2"'\.ko(\.(xz|zst|gz))?$' "$_vT/m" 2>/dev/null; then echo "a 1"; else echo "a 0"; fi
  if grep -q -E "/$2"'\.ko$' "/lib/modules/$(uname -r)/modules.builtin" 2>/dev/null; then echo "bi 1"; else echo "bi 0"; fi
  echo "$M $1 e"
}
`

// execPrelude, only in batches that run commands, makes the FIFOs the exec
// helper routes output through and starts the clock: one `date -f -`
// process that answers each "now" line with the time, line-buffered by
// stdbuf, in place of a date process per reading. The clock is trusted only
// once a first answer came within two seconds (read by a `timeout`-bound
// head, so a clock that is missing or buffers its output cannot hang the
// batch); the shell then reads it with the read builtin through a read-only
// end (fd 9), so a clock that dies later yields end of file, and _vclk falls
// back to date. Each end is opened while the shell holds a read-write one,
// so no open() blocks.
const execPrelude = `mkfifo "$_vT/fo" "$_vT/fe" "$_vT/ci" "$_vT/co" 2>/dev/null || { echo "$M fatal"; exit 1; }
_vck=
if [ -n "$_vto" ] && command -v stdbuf >/dev/null 2>&1; then
  exec 8<>"$_vT/ci" 7<"$_vT/ci" 9<>"$_vT/co"
  stdbuf -oL date -f - +%s%N <&7 >"$_vT/co" 2>/dev/null 7<&- 8>&- 9<&- &
  exec 7<&-
  echo now >&8
  _vck=$(timeout 2 head -n 1 <&9 2>/dev/null)
  case $_vck in
  ''|*[!0-9]*) _vck=; exec 8>&- 9<&-;;
  *) exec 7<"$_vT/co"; exec 9<&7 7<&-;;
  esac
fi
`

// modulePrelude lists the module files of the running kernel once, only in
// batches that ask about modules. find does not follow the build/source
// symlinks, so kernel headers are not walked.
const modulePrelude = `find "/lib/modules/$(uname -r)/" -type f -name '*.ko*' >"$_vT/m" 2>/dev/null
`

// epilogue sends the pieces still waiting, marks a batch that ran to the
// end, and closes the brace group opened by prelude with stdin from
// /dev/null.
const epilogue = `_vP
echo "$M done"
} </dev/null
`

// isFileOp tells the requests answered in the file section, before _vS.
func isFileOp(op target.Op) bool {
	return op == target.OpRead || op == target.OpStat || op == target.OpGlob
}

// build writes the script: the prelude, one helper call per file request
// (shell-quoted arguments), the stat section, one helper call per other
// request, the epilogue. Each helper call prints its request's frame.
func (b *Batch) build() []byte {
	var s strings.Builder
	s.WriteString("# vigil fact batch: one frame per request, see package shellbatch\n")
	strings.NewReplacer("@NONCE@", b.marker(), "@CAP@", strconv.Itoa(readCap), "@FLUSH@", strconv.Itoa(flushAt)).WriteString(&s, prelude)
	if slices.ContainsFunc(b.reqs, func(r target.Request) bool { return r.Op == target.OpExec }) {
		s.WriteString(execPrelude)
	}
	if slices.ContainsFunc(b.reqs, func(r target.Request) bool { return r.Op == target.OpModule }) {
		s.WriteString(modulePrelude)
	}
	calls := make([]string, len(b.reqs))
	for i, r := range b.reqs {
		call, err := command(i, r)
		if err != nil {
			b.preErr[i] = err
			continue
		}
		calls[i] = call
	}
	files := false
	for i, r := range b.reqs {
		if calls[i] != "" && isFileOp(r.Op) {
			s.WriteString(calls[i] + "\n")
			files = true
		}
	}
	if files {
		s.WriteString("_vS\n")
	}
	for i, r := range b.reqs {
		if calls[i] != "" && !isFileOp(r.Op) {
			s.WriteString(calls[i] + "\n")
		}
	}
	s.WriteString(epilogue)
	return []byte(s.String())
}

// command renders the helper call answering r, request i of the batch.
func command(i int, r target.Request) (string, error) {
	call := func(helper string, args ...string) string {
		return helper + " " + strconv.Itoa(i) + " " + strings.Join(args, " ")
	}
	switch r.Op {
	case target.OpRead:
		if err := checkPath("path", r.Path); err != nil {
			return "", err
		}
		return call("_vr", Quote(r.Path)), nil
	case target.OpStat:
		if err := checkPath("path", r.Path); err != nil {
			return "", err
		}
		if !hasMeta(r.Path) {
			return call("_vs", Quote(r.Path)), nil
		}
		g, err := QuoteGlob(r.Path)
		if err != nil {
			return "", err
		}
		return call("_vg", g), nil
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
		return call("_vG", mode, g), nil
	case target.OpExec:
		if strings.ContainsRune(r.Script, 0) {
			return "", fmt.Errorf("script contains a NUL byte")
		}
		if strings.TrimSpace(r.Script) == "" {
			return "", fmt.Errorf("empty script")
		}
		return call("_vx", timeoutArg(r.Timeout), Quote(r.Script)), nil
	case target.OpPackages:
		return "_vk " + strconv.Itoa(i), nil
	case target.OpService:
		if err := checkPath("unit name", r.Path); err != nil {
			return "", err
		}
		return call("_vu", Quote(r.Path)), nil
	case target.OpModule:
		re, err := moduleRegexp(r.Path)
		if err != nil {
			return "", err
		}
		return call("_vm", Quote(re)), nil
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
