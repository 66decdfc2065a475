// Package target abstracts where the engine's facts come from: the local
// host, a host over SSH, or a directory holding a mounted root filesystem.
//
// The engine never asks a target one question at a time. It first plans every
// fact the selected checks need, deduplicates them, and hands the whole list
// to Gather, which answers them in one batch: one round trip for a remote
// target, native reads for the local host. A check then evaluates in memory.
package target

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind names the sort of target, which decides what can be observed live.
type Kind string

// The target kinds.
const (
	KindLocal   Kind = "local"
	KindSSH     Kind = "ssh"
	KindRootDir Kind = "rootdir"
)

// Op is the kind of a fact request.
type Op string

// The fact operations every target implements.
const (
	// OpRead reads one file. Response: Exists, Data, Truncated.
	OpRead Op = "read"
	// OpStat stats a path or a glob pattern (symlinks followed). Response:
	// Files, one entry per match; a literal path that does not exist yields
	// one entry with Exists false; a pattern with no match yields none.
	OpStat Op = "stat"
	// OpGlob lists the regular files matching a glob pattern, sorted, and
	// with Content set reads each of them. Response: Files.
	OpGlob Op = "glob"
	// OpExec runs a POSIX sh script. Response: Stdout, Stderr, ExitCode.
	OpExec Op = "exec"
	// OpPackages lists installed packages from the dpkg database and rpm.
	// Response: Packages, PackageSources.
	OpPackages Op = "packages"
	// OpService reports systemd unit state for Path (the unit name).
	// Response: Enabled, Active (empty when not observable).
	OpService Op = "service"
	// OpModule reports a kernel module: Loaded and Available (a module file
	// exists for the running kernel, or for any kernel on a root directory).
	OpModule Op = "module"
)

// ReadLimit caps how much of one file a target returns. Configuration files
// are far smaller; a larger file is returned truncated with Truncated set.
const ReadLimit = 4 << 20

// DefaultExecTimeout bounds a script that names no timeout of its own.
const DefaultExecTimeout = 30 * time.Second

// ErrUnsupported marks a fact this kind of target cannot observe, such as a
// live kernel value on a root directory. Checks report it as skipped.
var ErrUnsupported = errors.New("not observable on this target")

// Request is one fact to observe. Requests are values: two equal requests
// are the same fact and are observed once per scan.
type Request struct {
	Op      Op
	Path    string        // file, glob pattern, unit name or module name
	Script  string        // OpExec: the POSIX sh script
	Content bool          // OpGlob: also read each file
	Timeout time.Duration // OpExec: zero means DefaultExecTimeout
}

// Key identifies a request for deduplication.
func (r Request) Key() string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%t\x00%d", r.Op, r.Path, r.Script, r.Content, r.Timeout)
}

// String renders the request for evidence: the file, pattern or command.
func (r Request) String() string {
	switch r.Op {
	case OpExec:
		return r.Script
	case OpPackages:
		return "installed package databases (dpkg, rpm)"
	case OpService:
		return "systemctl is-enabled/is-active " + r.Path
	case OpModule:
		return "kernel module " + r.Path
	default:
		return r.Path
	}
}

// FileInfo is what a stat observed about one path.
type FileInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Type   string `json:"type,omitempty"` // file, dir, symlink, char, block, fifo, socket
	Mode   uint32 `json:"mode"`           // permission and setuid/setgid/sticky bits
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Owner  string `json:"owner,omitempty"` // name, or the number when unknown
	Group  string `json:"group,omitempty"`
	Size   int64  `json:"size"`
	Data   []byte `json:"-"` // OpGlob with Content
	// Truncated is set when Data was cut at ReadLimit.
	Truncated bool `json:"truncated,omitempty"`
	// Err is set when this one path could not be observed (e.g. permission).
	Err string `json:"error,omitempty"`
}

// Package is one installed package.
type Package struct {
	Name    string
	Version string
	Source  string // "dpkg" or "rpm"
}

// Response answers one Request.
type Response struct {
	Req Request
	// Err is set when the fact could not be observed at all: transport
	// failure, permission denied, ErrUnsupported. A file that does not exist
	// is not an error: Exists is false.
	Err error

	Exists    bool
	Data      []byte
	Truncated bool

	Files []FileInfo

	Stdout, Stderr []byte
	ExitCode       int
	// OutputTruncated is set when Stdout or Stderr was cut at ReadLimit.
	OutputTruncated bool

	Packages map[string]Package
	// PackageSources lists which databases were read ("dpkg", "rpm"); empty
	// means the target has no package database the engine knows.
	PackageSources []string

	Enabled, Active string

	Loaded, Available bool
	// Builtin is set when modules.builtin lists the module: it is part of
	// the kernel image and modprobe configuration cannot keep it out.
	Builtin bool

	Started  time.Time
	Duration time.Duration
}

// Target answers batches of fact requests about one host.
type Target interface {
	// Name identifies the host in results and errors (user@addr, a path,
	// "localhost").
	Name() string
	// Kind tells what the target can observe live.
	Kind() Kind
	// Gather answers every request, in order, in one batch. The returned
	// slice has one Response per request. The error is set only when the
	// whole batch failed (connection lost); per-fact failures are in
	// Response.Err.
	Gather(ctx context.Context, reqs []Request) ([]Response, error)
	// Close releases the connection or other resources.
	Close() error
}

// RoundTripCounter is implemented by remote targets to report how many
// network round trips they made, for benchmarks and the scan summary.
type RoundTripCounter interface {
	RoundTrips() int
}

// Dedup returns the distinct requests of reqs in first-seen order.
func Dedup(reqs []Request) []Request {
	seen := make(map[string]struct{}, len(reqs))
	out := make([]Request, 0, len(reqs))
	for _, r := range reqs {
		k := r.Key()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, r)
	}
	return out
}

// Facts is the answered batch, indexed by request.
type Facts struct {
	byKey map[string]*Response
}

// NewFacts indexes responses by their requests.
func NewFacts(resps []Response) *Facts {
	f := &Facts{byKey: make(map[string]*Response, len(resps))}
	for i := range resps {
		f.byKey[resps[i].Req.Key()] = &resps[i]
	}
	return f
}

// Add merges more responses into the set.
func (f *Facts) Add(resps []Response) {
	for i := range resps {
		f.byKey[resps[i].Req.Key()] = &resps[i]
	}
}

// Get returns the response to r, or nil when r was never gathered.
func (f *Facts) Get(r Request) *Response {
	if f == nil {
		return nil
	}
	return f.byKey[r.Key()]
}

// Missing returns the requests in reqs not yet answered.
func (f *Facts) Missing(reqs []Request) []Request {
	var out []Request
	for _, r := range Dedup(reqs) {
		if f.Get(r) == nil {
			out = append(out, r)
		}
	}
	return out
}
