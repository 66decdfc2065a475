package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vigilfleet/vigil/engine/target"
)

// --- audit_rule_exists ---

var auditFiles = []target.Request{globReq("/etc/audit/rules.d/*.rules"), readReq("/etc/audit/audit.rules")}

func needsAudit(p params, env Env) []target.Request {
	if env.Live() {
		return []target.Request{execReq(scriptAudit)}
	}
	return auditFiles
}

func evalAudit(p params, env Env, f *target.Facts) Outcome {
	const m = "audit_rule_exists"
	var wanted []string
	for _, l := range strings.Split(p.str("rule"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			wanted = append(wanted, l)
		}
	}
	expected := strings.Join(wanted, "\n")
	var loaded []string
	var evResp *target.Response
	source := "auditctl -l"
	if env.Live() {
		r := f.Get(execReq(scriptAudit))
		if o := execFailed(m, r, expected); o != nil {
			return *o
		}
		evResp = r
		if r.ExitCode == 127 {
			e := ev(m, r, expected, "auditctl not installed: no audit rules are loaded")
			return verdict(false, "auditctl is not installed, so no audit rules are loaded", e)
		}
		if r.ExitCode != 0 {
			return errored(fmt.Sprintf("auditctl -l exited %d: %s", r.ExitCode, firstLine(r.Stderr)), ev(m, r, expected, exitActual(r)))
		}
		loaded = strings.Split(string(r.Stdout), "\n")
	} else {
		source = "/etc/audit/rules.d/*.rules and /etc/audit/audit.rules (persistent)"
		for _, req := range auditFiles {
			r := f.Get(req)
			files, bad := filesOf(m, r, expected)
			if bad != nil {
				return *bad
			}
			evResp = r
			for _, ft := range files {
				loaded = append(loaded, strings.Split(string(ft.data), "\n")...)
			}
		}
	}
	var have []auditRule
	for _, l := range loaded {
		if ar, ok := parseAuditRule(l); ok {
			have = append(have, ar)
		}
	}
	var missing, found []string
	for _, w := range wanted {
		wr, ok := parseAuditRule(w)
		if !ok {
			return errored(fmt.Sprintf("cannot parse audit rule %q", w), ev(m, evResp, expected, ""))
		}
		hit := ""
		for _, h := range have {
			if wr.matches(h) {
				hit = h.raw
				break
			}
		}
		if hit == "" {
			hit = wr.coveredByUnion(have)
		}
		if hit == "" {
			missing = append(missing, w)
		} else {
			found = append(found, hit)
		}
	}
	e := ev(m, evResp, expected, "")
	e.Probe = source
	e.Stdout = ""
	if len(missing) > 0 {
		e.Actual = fmt.Sprintf("%d of %d rules loaded; missing: %s", len(found), len(wanted), strings.Join(missing, " | "))
		return verdict(false, "audit rule not loaded: "+strings.Join(missing, " | "), e)
	}
	e.Actual = strings.Join(found, "\n")
	return verdict(true, fmt.Sprintf("all %d audit rules are loaded", len(wanted)), e)
}

// auditRule is an audit rule normalised for comparison: auditctl -l prints
// rules in its own canonical form (keys as -F key=, auid -1 as unset, the
// syscalls of one rule joined), so both sides are reduced to the same shape.
type auditRule struct {
	raw      string
	watch    string // path of a -w rule
	perm     string // sorted permission letters
	action   string // "always,exit" normalised order
	syscalls map[string]bool
	fields   []string // sorted "name op value", key excluded
	key      string
}

var auditOps = []string{"!=", "<=", ">=", "&=", "=", "<", ">", "&"}

func parseAuditRule(line string) (auditRule, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || line == "No rules" {
		return auditRule{}, false
	}
	t := strings.Fields(line)
	ar := auditRule{raw: line, syscalls: map[string]bool{}}
	for i := 0; i < len(t); i++ {
		arg := ""
		if i+1 < len(t) {
			arg = t[i+1]
		}
		switch t[i] {
		case "-w":
			ar.watch, i = arg, i+1
		case "-p":
			ar.perm, i = sortLetters(arg), i+1
		case "-k":
			ar.key, i = arg, i+1
		case "-a", "-A":
			parts := strings.Split(arg, ",")
			sort.Strings(parts)
			ar.action, i = strings.Join(parts, ","), i+1
		case "-S":
			for _, s := range strings.Split(arg, ",") {
				ar.syscalls[s] = true
			}
			i++
		case "-F", "-C":
			f := normField(arg)
			if t[i] == "-C" {
				f = normCompare(f)
			}
			if strings.HasPrefix(f, "key=") {
				ar.key = strings.TrimPrefix(f, "key=")
			} else if strings.HasPrefix(f, "perm=") {
				ar.perm = sortLetters(strings.TrimPrefix(f, "perm="))
			} else {
				ar.fields = append(ar.fields, f)
			}
			i++
		default:
			// -e, -b, -f, -D and other control lines are not rules to match.
			if strings.HasPrefix(t[i], "-") && ar.watch == "" && ar.action == "" {
				return auditRule{}, false
			}
		}
	}
	if ar.watch == "" && ar.action == "" {
		return auditRule{}, false
	}
	// A syscall rule without -S applies to every syscall; auditctl -l
	// prints it with "-S all".
	if ar.action != "" && len(ar.syscalls) == 0 {
		ar.syscalls["all"] = true
	}
	ar.watch = trimSlash(ar.watch)
	for i, f := range ar.fields {
		for _, p := range []string{"path=", "dir="} {
			if v, ok := strings.CutPrefix(f, p); ok {
				ar.fields[i] = p + trimSlash(v)
			}
		}
	}
	sort.Strings(ar.fields)
	return ar, true
}

// normField canonicalises one -F field: unset auid spellings, sorted perms.
func normField(f string) string {
	for _, op := range auditOps {
		if i := strings.Index(f, op); i > 0 {
			name, val := f[:i], f[i+len(op):]
			if (name == "auid" || name == "uid" || name == "euid") && (val == "4294967295" || val == "-1") {
				val = "unset"
			}
			return name + op + val
		}
	}
	return f
}

// normCompare orders the sides of a symmetric -C comparison: the kernel
// stores uid!=euid and euid!=uid as one comparison and auditctl -l prints
// it one way.
func normCompare(f string) string {
	for _, op := range []string{"!=", "="} {
		if l, r, ok := strings.Cut(f, op); ok {
			if r < l {
				l, r = r, l
			}
			return l + op + r
		}
	}
	return f
}

func sortLetters(s string) string {
	b := []byte(s)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(b)
}

// watchMatches compares a wanted watch as a whole line: the same path, the
// same permissions (auditctl's default is rwxa) and the same key. Some
// auditctl versions print a watch as a path rule over all syscalls; that
// form counts only when it carries nothing but the path and perm fields.
func (w auditRule) watchMatches(h auditRule) bool {
	hp := h.watch
	if hp == "" {
		if h.action != "always,exit" && h.action != "exit,always" {
			return false
		}
		if len(h.syscalls) > 1 || len(h.syscalls) == 1 && !h.syscalls["all"] {
			return false
		}
		for _, f := range h.fields {
			switch {
			case strings.HasPrefix(f, "path="), strings.HasPrefix(f, "dir="):
				hp = f[strings.IndexByte(f, '=')+1:]
			case strings.HasPrefix(f, "arch="):
			default:
				return false
			}
		}
	}
	perm := func(p string) string {
		if p == "" {
			return "arwx"
		}
		return p
	}
	return hp == w.watch && perm(w.perm) == perm(h.perm) && (w.key == "" || w.key == h.key)
}

// trimSlash drops a trailing slash from a watched path: auditctl prints
// /etc/sudoers.d/ as /etc/sudoers.d.
func trimSlash(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}

// coveredByUnion accepts a wanted syscall rule whose syscalls are spread
// over several loaded rules with the same action, filters and key (a site
// may group syscalls differently than a benchmark). It returns the loaded
// rules, joined, or "" when they do not cover every wanted syscall.
func (w auditRule) coveredByUnion(have []auditRule) string {
	if w.watch != "" || w.syscalls["all"] {
		return ""
	}
	left := map[string]bool{}
	for s := range w.syscalls {
		left[s] = true
	}
	var used []string
	for _, h := range have {
		if h.watch != "" || h.action != w.action || h.perm != w.perm || (w.key != "" && h.key != w.key) || !sameFields(w.fields, h.fields) {
			continue
		}
		hit := false
		for s := range h.syscalls {
			if left[s] {
				delete(left, s)
				hit = true
			}
		}
		if hit {
			used = append(used, h.raw)
		}
	}
	if len(left) > 0 {
		return ""
	}
	return strings.Join(used, " + ")
}

func sameFields(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// matches reports whether a loaded rule h satisfies the wanted rule w.
func (w auditRule) matches(h auditRule) bool {
	if w.key != "" && w.key != h.key {
		return false
	}
	if w.watch != "" {
		return w.watchMatches(h)
	}
	if w.action != h.action || w.perm != h.perm {
		return false
	}
	// A loaded rule auditing more syscalls than wanted still audits the
	// wanted ones.
	for s := range w.syscalls {
		if !h.syscalls[s] && !h.syscalls["all"] {
			return false
		}
	}
	if len(w.fields) != len(h.fields) {
		return false
	}
	for i := range w.fields {
		if w.fields[i] != h.fields[i] {
			return false
		}
	}
	return true
}

// --- grub_parameter ---

var (
	cmdlineReq   = readReq("/proc/cmdline")
	grubDefault  = readReq("/etc/default/grub")
	grubBLS      = globReq("/boot/loader/entries/*.conf")
	grubEnv      = readReq("/boot/grub2/grubenv")
	grubCfgFiles = []target.Request{readReq("/boot/grub/grub.cfg"), readReq("/boot/grub2/grub.cfg"), globReq("/boot/efi/EFI/*/grub.cfg")}
	// Ubuntu (cloud images especially) adds to the command line in
	// /etc/default/grub.d/*.cfg, sourced after /etc/default/grub.
	grubDropins = globReq("/etc/default/grub.d/*.cfg")
)

func needsGrub(p params, env Env) []target.Request {
	reqs := append([]target.Request{grubDefault, grubDropins, grubBLS, grubEnv}, grubCfgFiles...)
	if env.Live() {
		reqs = append(reqs, cmdlineReq)
	}
	return reqs
}

// hasParam reports whether a kernel command line carries key (=expected,
// or with a comparator, a value that compares true: audit_backlog_limit
// >= 8192). The last occurrence of a key is the one the kernel uses.
func hasParam(cmdline, key, expected string, cmp ...string) bool {
	found, last := false, ""
	for _, tok := range strings.Fields(cmdline) {
		tok = strings.Trim(tok, `"'`)
		k, v, _ := strings.Cut(tok, "=")
		if k == key {
			found, last = true, v
		}
	}
	if !found {
		return false
	}
	if expected == "" {
		return true
	}
	c := ""
	if len(cmp) > 0 {
		c = cmp[0]
	}
	if c == "" || c == "==" {
		return last == expected
	}
	ok, err := compare(last, c, expected, true)
	return err == nil && ok
}

func evalGrub(p params, env Env, f *target.Facts) Outcome {
	const m = "grub_parameter"
	key, val, cmp := p.str("key"), p.str("expected"), p.str("comparator")
	want := key
	if val != "" {
		want = key + "=" + val
		if cmp != "" && cmp != "==" {
			want = key + " " + cmp + " " + val
		}
	}
	var actual, bad []string
	var first *target.Response
	if env.Live() {
		r := f.Get(cmdlineReq)
		if r == nil || r.Err != nil {
			return unobserved(m, r, want)
		}
		first = r
		cl := strings.TrimSpace(string(r.Data))
		actual = append(actual, "running: "+cl)
		if !hasParam(cl, key, val, cmp) {
			bad = append(bad, "the running kernel command line lacks "+want)
		}
	}
	configs := 0
	collect := func(req target.Request, check func(fileText)) *Outcome {
		r := f.Get(req)
		files, o := filesOf(m, r, want)
		if o != nil {
			return o
		}
		if first == nil {
			first = r
		}
		for _, ft := range files {
			configs++
			check(ft)
		}
		return nil
	}
	kernelopts := ""
	if o := collect(grubEnv, func(ft fileText) {
		if mt := findKey(ft, "kernelopts", "="); mt != nil {
			kernelopts = mt.value
		}
	}); o != nil {
		return *o
	}
	configs = 0
	checkLines := func(ft fileText, prefixes ...string) {
		n := 0
		for i, line := range strings.Split(string(ft.data), "\n") {
			t := strings.Fields(line)
			if len(t) == 0 || !containsStr(prefixes, t[0]) {
				continue
			}
			n++
			opts := strings.Join(t[1:], " ")
			opts = strings.ReplaceAll(opts, "$kernelopts", kernelopts)
			if !hasParam(opts, key, val, cmp) {
				bad = append(bad, fmt.Sprintf("%s:%d lacks %s", ft.path, i+1, want))
			}
		}
		actual = append(actual, fmt.Sprintf("%s: %d boot entries checked", ft.path, n))
	}
	var defaults []fileText
	for _, o := range []*Outcome{
		collect(grubDefault, func(ft fileText) { defaults = append(defaults, ft) }),
		collect(grubDropins, func(ft fileText) { defaults = append(defaults, ft) }),
		collect(grubBLS, func(ft fileText) { checkLines(ft, "options") }),
		collect(grubCfgFiles[0], func(ft fileText) { checkLines(ft, "linux", "linux16", "linuxefi") }),
		collect(grubCfgFiles[1], func(ft fileText) { checkLines(ft, "linux", "linux16", "linuxefi") }),
		collect(grubCfgFiles[2], func(ft fileText) { checkLines(ft, "linux", "linux16", "linuxefi") }),
	} {
		if o != nil {
			return *o
		}
	}
	if len(defaults) > 0 {
		line := grubCmdline(defaults)
		actual = append(actual, "/etc/default/grub: "+line)
		if !hasParam(line, key, val, cmp) {
			bad = append(bad, "/etc/default/grub GRUB_CMDLINE_LINUX lacks "+want)
		}
	}
	e := ev(m, first, want+" at boot and in the GRUB configuration", strings.Join(actual, "; "))
	e.Probe = "/proc/cmdline, /etc/default/grub, /boot/loader/entries, grub.cfg"
	if configs == 0 {
		return verdict(false, "no GRUB configuration found", e)
	}
	if len(bad) > 0 {
		return verdict(false, strings.Join(bad, "; "), e)
	}
	return verdict(true, want+" is set at boot and in every GRUB configuration found", e)
}

// grubCmdline evaluates the command line /etc/default/grub and its grub.d
// drop-ins give the kernel, as grub-mkconfig sources them in order: an
// assignment replaces the value unless it extends itself with
// $GRUB_CMDLINE_LINUX (or ${...}).
func grubCmdline(files []fileText) string {
	vals := map[string]string{}
	for _, ft := range files {
		for _, line := range strings.Split(string(ft.data), "\n") {
			line = strings.TrimSpace(line)
			for _, k := range []string{"GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"} {
				v, ok := strings.CutPrefix(line, k+"=")
				if !ok {
					continue
				}
				v = unquote(strings.TrimSpace(v))
				v = strings.ReplaceAll(v, "${"+k+"}", vals[k])
				v = strings.ReplaceAll(v, "$"+k, vals[k])
				vals[k] = v
			}
		}
	}
	return strings.TrimSpace(vals["GRUB_CMDLINE_LINUX"] + " " + vals["GRUB_CMDLINE_LINUX_DEFAULT"])
}
