package check

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/target"
)

// --- special_files (Vigil extension) ---
//
// Rules about world-writable, set-id and ownerless files each need a walk of
// every local filesystem, the slowest probe a scan can make. They all share
// one script, so a scan walks the disks once and every such rule filters the
// same list in memory.

// specialKinds maps a special_files kind to the tag the walk prints for it.
var specialKinds = map[string]string{
	"world_writable_files":           "wwf",
	"world_writable_dirs_not_sticky": "wwd",
	"suid":                           "suid",
	"sgid":                           "sgid",
	"unowned":                        "nouser",
	"ungrouped":                      "nogroup",
}

// scriptSpecial walks the local disk filesystems (network and pseudo
// filesystems, /proc, /sys and /run excluded) once with GNU find, printing
// "tag<TAB>path" for each special file.
const scriptSpecial = sbinPath + `mounts=$(awk '$3 ~ /^(ext[234]|xfs|btrfs|zfs|f2fs|jfs|vfat|overlay|tmpfs)$/ && $2 !~ /^\/(proc|sys|run|dev)(\/|$)/ { print $2 }' /proc/self/mounts 2>/dev/null)
for m in / $mounts; do
  find "$m" -xdev \( -path /proc -o -path /sys -o -path /run -o -path /dev \) -prune -o \( \
    \( -type f -perm -0002 -printf 'wwf\t%p\n' \) , \
    \( -type d -perm -0002 ! -perm -1000 -printf 'wwd\t%p\n' \) , \
    \( -type f -perm -4000 -printf 'suid\t%p\n' \) , \
    \( -type f -perm -2000 -printf 'sgid\t%p\n' \) , \
    \( -nouser -printf 'nouser\t%p\n' \) , \
    \( -nogroup -printf 'nogroup\t%p\n' \) \) 2>/dev/null
done | sort -u
exit 0`

func needsSpecial(p params, env Env) []target.Request {
	return []target.Request{{Op: target.OpExec, Script: scriptSpecial, Timeout: specialTimeout}}
}

// specialTimeout bounds the walk: a large host takes minutes, not hours.
const specialTimeout = 15 * time.Minute

func evalSpecial(p params, env Env, f *target.Facts) Outcome {
	const m = "special_files"
	kind := p.str("kind")
	tag := specialKinds[kind]
	allowed := map[string]bool{}
	for _, a := range p.list("authorized") {
		allowed[a] = true
	}
	want := "no " + strings.ReplaceAll(kind, "_", " ")
	if len(allowed) > 0 {
		want = "only authorized " + strings.ReplaceAll(kind, "_", " ") + ": " + strings.Join(p.list("authorized"), ", ")
	}
	r := f.Get(target.Request{Op: target.OpExec, Script: scriptSpecial, Timeout: specialTimeout})
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	e.Stdout, e.Probe = "", "find over local filesystems (one walk per scan)"
	if r.ExitCode != 0 {
		return errored(fmt.Sprintf("filesystem walk exited %d: %s", r.ExitCode, firstLine(r.Stderr)), e)
	}
	var found, bad []string
	for _, line := range strings.Split(string(r.Stdout), "\n") {
		t, path, ok := strings.Cut(line, "\t")
		if !ok || t != tag {
			continue
		}
		found = append(found, path)
		if !allowed[path] {
			bad = append(bad, path)
		}
	}
	sort.Strings(bad)
	e.Actual = fmt.Sprintf("%d found", len(found))
	if len(found) > 0 {
		e.Actual += ": " + capList(found, 50)
	}
	if r.OutputTruncated {
		e.Truncated = true
	}
	if len(bad) > 0 {
		return verdict(false, fmt.Sprintf("%d not authorized: %s", len(bad), capList(bad, 20)), e)
	}
	return verdict(true, fmt.Sprintf("%d found, all authorized", len(found)), e)
}

// capList joins at most n items and says how many more there were.
func capList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
