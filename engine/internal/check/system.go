package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/target"
)

// Scripts for probes whose output serves many rules. They are fixed text, so
// each is one request per scan however many rules use it. Exit 127 means the
// program is not installed.
const (
	sbinPath     = `PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"; export PATH; `
	scriptSSHD   = sbinPath + `command -v sshd >/dev/null 2>&1 || { echo "sshd is not installed" >&2; exit 127; }; sshd -T`
	scriptAudit  = sbinPath + `command -v auditctl >/dev/null 2>&1 || { echo "auditctl is not installed" >&2; exit 127; }; auditctl -l`
	scriptSELnx  = sbinPath + `command -v getenforce >/dev/null 2>&1 || { echo "getenforce is not installed" >&2; exit 127; }; getenforce`
	scriptTarget = sbinPath + `command -v systemctl >/dev/null 2>&1 || { echo "systemctl is not installed" >&2; exit 127; }; systemctl get-default`
)

func execReq(script string) target.Request { return target.Request{Op: target.OpExec, Script: script} }

// execFailed turns a probe that could not run into an outcome.
func execFailed(m string, r *target.Response, expected string) *Outcome {
	if r == nil || r.Err != nil {
		o := unobserved(m, r, expected)
		return &o
	}
	return nil
}

// --- sshd_effective_config ---

func needsSSHD(p params, env Env) []target.Request { return []target.Request{execReq(scriptSSHD)} }

func evalSSHD(p params, env Env, f *target.Facts) Outcome {
	const m = "sshd_effective_config"
	r := f.Get(execReq(scriptSSHD))
	key, expected, cmp := strings.ToLower(p.str("key")), p.str("expected"), p.str("comparator")
	want := describe(cmp, expected)
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	e.Stdout = "" // the full sshd -T dump is in one record per scan, not per rule
	switch {
	case r.ExitCode == 127:
		e.Actual = "sshd not installed"
		return skipped("sshd is not installed", e)
	case r.ExitCode != 0:
		e.Stdout, _ = result.Cap(r.Stdout)
		e.Actual = "sshd -T failed: " + exitActual(r)
		return errored(fmt.Sprintf("sshd -T exited %d: %s", r.ExitCode, firstLine(r.Stderr)), e)
	}
	var values []string
	for _, line := range strings.Split(string(r.Stdout), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.EqualFold(k, key) {
			values = append(values, strings.TrimSpace(v))
		}
	}
	if len(values) == 0 {
		e.Actual = "not in sshd -T output"
		return verdict(false, key+" is not in the effective sshd configuration", e)
	}
	e.Actual = strings.Join(values, "; ")
	e.Stdout = key + " " + e.Actual
	for _, v := range values {
		ok, err := compare(v, cmp, expected, false)
		if err == errNotNumber {
			return verdict(false, fmt.Sprintf("%s is %q, not an integer", key, v), e)
		}
		if err != nil {
			return errored(err.Error(), e)
		}
		if ok && (cmp == "" || cmp == "==") {
			return verdict(true, fmt.Sprintf("%s is %q", key, v), e)
		}
		if !ok && cmp != "" && cmp != "==" {
			return verdict(false, fmt.Sprintf("%s is %q, expected %s", key, v, want), e)
		}
	}
	if cmp == "" || cmp == "==" {
		return verdict(false, fmt.Sprintf("%s is %q, expected %s", key, e.Actual, want), e)
	}
	return verdict(true, fmt.Sprintf("%s is %q", key, e.Actual), e)
}

// exitActual is the evidence's actual value for a probe that exited with
// an unexpected code: the code and the first line of its stderr.
func exitActual(r *target.Response) string {
	return strings.TrimSpace(fmt.Sprintf("exit %d: %s", r.ExitCode, firstLine(r.Stderr)))
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// --- sysctl_value ---

// sysctlPath maps a key to its /proc/sys file. As in sysctl(8), a dot
// separates components and a slash stands for a dot inside one (an
// interface named eth0.100 is written net.ipv4.conf.eth0/100.rp_filter),
// unless the key starts in the slash form (kernel/pid_max).
func sysctlPath(key string) string {
	key = strings.TrimSpace(key)
	// A key written with slashes first (kernel/pid_max) is already a path.
	if s, d := strings.IndexByte(key, '/'), strings.IndexByte(key, '.'); s >= 0 && (d < 0 || s < d) {
		return "/proc/sys/" + strings.TrimPrefix(key, "/")
	}
	return "/proc/sys/" + strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, key)
}

func needsSysctl(p params, env Env) []target.Request {
	if !env.Live() {
		return nil
	}
	return []target.Request{readReq(sysctlPath(p.str("key")))}
}

func evalSysctl(p params, env Env, f *target.Facts) Outcome {
	const m = "sysctl_value"
	key, expected, cmp := p.str("key"), p.str("expected"), p.str("comparator")
	want := describe(cmp, expected)
	if !env.Live() {
		return skipped("no live kernel on a root directory target", ev(m, nil, want, "not observable"))
	}
	r := f.Get(readReq(sysctlPath(key)))
	if r == nil || r.Err != nil {
		return unobserved(m, r, want)
	}
	e := ev(m, r, want, "")
	if !r.Exists {
		e.Actual = "parameter not present in this kernel"
		return skipped(fmt.Sprintf("the kernel has no parameter %s", key), e)
	}
	got := strings.Join(strings.Fields(string(r.Data)), " ")
	e.Actual = got
	ok, err := compare(got, cmp, strings.Join(strings.Fields(expected), " "), true)
	if err == errNotNumber {
		return verdict(false, fmt.Sprintf("%s is %q, not an integer", key, got), e)
	}
	if err != nil {
		return errored(err.Error(), e)
	}
	return verdict(ok, fmt.Sprintf("%s is %q, expected %s", key, got, want), e)
}

// --- packages ---

var pkgReq = target.Request{Op: target.OpPackages}

func needsPackages(p params, env Env) []target.Request { return []target.Request{pkgReq} }

func evalPackageState(p params, env Env, f *target.Facts) Outcome {
	return pkgMethod("package_state", p.str("state"), "")(p, env, f)
}

// pkgMethod checks presence or absence in every database, or in one; m is
// the method name recorded in the evidence.
func pkgMethod(m, state, source string) func(p params, env Env, f *target.Facts) Outcome {
	return func(p params, env Env, f *target.Facts) Outcome {
		name := p.str("name")
		r := f.Get(pkgReq)
		if r == nil || r.Err != nil {
			return unobserved(m, r, state)
		}
		e := ev(m, r, state, "")
		srcs := r.PackageSources
		if source != "" {
			if !containsStr(srcs, source) {
				e.Actual = source + " database not present"
				return skipped("the host has no "+source+" database", e)
			}
			srcs = []string{source}
		}
		if len(srcs) == 0 {
			e.Actual = "no package database found"
			return errored("no dpkg or rpm package database found on the host", e)
		}
		e.Probe = strings.Join(srcs, " and ") + " package database"
		pk, installed := r.Packages[name]
		if installed && source != "" && pk.Source != source {
			installed = false
		}
		if installed {
			e.Actual = fmt.Sprintf("installed (%s %s)", pk.Source, pk.Version)
		} else {
			e.Actual = "not installed"
		}
		return verdict(installed == (state == "present"), fmt.Sprintf("package %s is %s", name, e.Actual), e)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- services ---

func unitName(n string) string {
	if strings.Contains(n, ".") {
		return n
	}
	return n + ".service"
}

func svcReq(name string) target.Request {
	return target.Request{Op: target.OpService, Path: unitName(name)}
}

func needsService(p params, env Env) []target.Request { return []target.Request{svcReq(p.str("name"))} }

var enabledStates = map[string]bool{"enabled": true, "enabled-runtime": true, "static": true, "generated": true}

func evalServiceState(p params, env Env, f *target.Facts) Outcome {
	wantEnabled, hasEnabled := p.boolean("enabled")
	wantActive, hasActive := p.boolean("active")
	if wantMasked, hasMasked := p.boolean("masked"); hasMasked {
		o := evalMasked(p.str("name"), wantMasked, f)
		if o.Status != result.Pass || !hasEnabled && !hasActive {
			return o
		}
	}
	return evalService(p.str("name"), "service_state", hasEnabled, wantEnabled, hasActive, wantActive, env, f)
}

// evalMasked checks that a unit is (or is not) masked: linked to /dev/null
// so that nothing, not even a dependency, can start it.
func evalMasked(name string, want bool, f *target.Facts) Outcome {
	const m = "service_state"
	r := f.Get(svcReq(name))
	expected := map[bool]string{true: "masked", false: "not masked"}[want]
	if r == nil || r.Err != nil {
		return unobserved(m, r, expected)
	}
	e := ev(m, r, expected, "is-enabled="+orUnknown(r.Enabled))
	if r.Enabled == "" {
		return skipped("systemctl is not available on the host", e)
	}
	masked := r.Enabled == "masked" || r.Enabled == "masked-runtime"
	return verdict(masked == want, fmt.Sprintf("%s is %s, expected %s", unitName(name), r.Enabled, expected), e)
}

func evalServiceEnabled(p params, env Env, f *target.Facts) Outcome {
	return evalService(p.str("name"), "service_enabled", true, true, false, false, env, f)
}

func evalServiceActive(p params, env Env, f *target.Facts) Outcome {
	return evalService(p.str("name"), "service_active", false, false, true, true, env, f)
}

func evalService(name, m string, hasEnabled, wantEnabled, hasActive, wantActive bool, env Env, f *target.Facts) Outcome {
	r := f.Get(svcReq(name))
	var want []string
	if hasEnabled {
		want = append(want, map[bool]string{true: "enabled", false: "not enabled"}[wantEnabled])
	}
	if hasActive {
		want = append(want, map[bool]string{true: "active", false: "not active"}[wantActive])
	}
	expected := strings.Join(want, ", ")
	if r == nil || r.Err != nil {
		return unobserved(m, r, expected)
	}
	e := ev(m, r, expected, fmt.Sprintf("is-enabled=%s is-active=%s", orUnknown(r.Enabled), orUnknown(r.Active)))
	if hasEnabled && r.Enabled == "" {
		return skipped("systemctl is not available on the host", e)
	}
	var bad []string
	if hasEnabled && enabledStates[r.Enabled] != wantEnabled {
		bad = append(bad, fmt.Sprintf("is %s", r.Enabled))
	}
	if hasActive {
		if r.Active == "" {
			if len(bad) > 0 {
				return verdict(false, unitName(name)+" "+strings.Join(bad, ", "), e)
			}
			return skipped("the unit's run state cannot be observed on this target", e)
		}
		if (r.Active == "active") != wantActive {
			bad = append(bad, fmt.Sprintf("is %s", r.Active))
		}
	}
	if len(bad) > 0 {
		return verdict(false, fmt.Sprintf("%s %s, expected %s", unitName(name), strings.Join(bad, " and "), expected), e)
	}
	return verdict(true, fmt.Sprintf("%s is %s", unitName(name), expected), e)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// --- mount_option ---

func mountsReq(env Env) target.Request {
	if env.Live() {
		return readReq("/proc/self/mounts")
	}
	return readReq("/etc/fstab")
}

func needsMounts(p params, env Env) []target.Request { return []target.Request{mountsReq(env)} }

func evalMountOption(p params, env Env, f *target.Facts) Outcome {
	const m = "mount_option"
	mp, opts := p.str("mount_point"), p.list("options")
	r := f.Get(mountsReq(env))
	expected := mp + " mounted with " + strings.Join(opts, ",")
	if r == nil || r.Err != nil {
		return unobserved(m, r, expected)
	}
	e := ev(m, r, expected, "")
	if !r.Exists {
		// A live host always has /proc/self/mounts; an image without
		// /etc/fstab mounts nothing separately.
		e.Actual = r.Req.Path + " not found"
		if env.Live() {
			return errored(r.Req.Path+" does not exist", e)
		}
		return verdict(false, mp+" is not configured as a separate mount: "+r.Req.Path+" does not exist", e)
	}
	var found []string
	var fstype string
	for _, line := range strings.Split(string(r.Data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if unescapeMount(fields[1]) == mp {
			found = strings.Split(fields[3], ",")
			fstype = fields[2]
		}
	}
	if found == nil {
		e.Actual = "not a separate mount"
		return verdict(false, mp+" is not a separate mount", e)
	}
	e.Actual = fmt.Sprintf("%s %s", fstype, strings.Join(found, ","))
	have := map[string]bool{}
	for _, o := range found {
		have[o] = true
	}
	var missing []string
	for _, o := range opts {
		if !have[o] {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		return verdict(false, fmt.Sprintf("%s lacks %s", mp, strings.Join(missing, ",")), e)
	}
	return verdict(true, fmt.Sprintf("%s has %s", mp, strings.Join(opts, ",")), e)
}

// unescapeMount decodes the octal escapes (\040 for space) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			var v byte
			for _, c := range s[i+1 : i+4] {
				v = v*8 + byte(c-'0')
			}
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// --- kernel_module_state ---

var modprobeDirs = []string{"/etc/modprobe.d/*.conf", "/run/modprobe.d/*.conf", "/usr/lib/modprobe.d/*.conf", "/lib/modprobe.d/*.conf"}

func modReq(name string) target.Request { return target.Request{Op: target.OpModule, Path: name} }

func needsModule(p params, env Env) []target.Request {
	reqs := []target.Request{modReq(p.str("name"))}
	for _, d := range modprobeDirs {
		reqs = append(reqs, globReq(d))
	}
	return reqs
}

func normMod(s string) string { return strings.ReplaceAll(s, "-", "_") }

func evalModule(p params, env Env, f *target.Facts) Outcome {
	const m = "kernel_module_state"
	name, state := p.str("name"), p.str("state")
	r := f.Get(modReq(name))
	if r == nil || r.Err != nil {
		return unobserved(m, r, state)
	}
	var redirect, blacklist []string
	seen := map[string]bool{}
	for _, d := range modprobeDirs {
		gr := f.Get(globReq(d))
		files, bad := filesOf(m, gr, state)
		if bad != nil {
			return *bad
		}
		for _, ft := range files {
			// /etc overrides a same-named file in /usr/lib or /lib.
			base := ft.path[strings.LastIndexByte(ft.path, '/')+1:]
			if seen[base] {
				continue
			}
			seen[base] = true
			for i, line := range strings.Split(string(ft.data), "\n") {
				fields := strings.Fields(line)
				if len(fields) < 2 || normMod(fields[1]) != normMod(name) {
					continue
				}
				loc := fmt.Sprintf("%s:%d", ft.path, i+1)
				switch {
				case fields[0] == "install" && len(fields) >= 3 && isNoop(fields[2]):
					redirect = append(redirect, loc)
				case fields[0] == "blacklist":
					blacklist = append(blacklist, loc)
				}
			}
		}
	}
	var facts []string
	facts = append(facts, map[bool]string{true: "loaded", false: "not loaded"}[r.Loaded])
	facts = append(facts, map[bool]string{true: "module file present", false: "module file absent"}[r.Available])
	if len(redirect) > 0 {
		facts = append(facts, "install redirected at "+strings.Join(redirect, ", "))
	}
	if len(blacklist) > 0 {
		facts = append(facts, "blacklisted at "+strings.Join(blacklist, ", "))
	}
	e := ev(m, r, state, strings.Join(facts, "; "))
	e.Probe = "kernel module " + name + " (/proc/modules, /lib/modules, modprobe.d)"
	if r.Builtin {
		e.Actual += "; built into the kernel (modules.builtin)"
	}
	if r.Loaded {
		return verdict(false, "module "+name+" is loaded", e)
	}
	if r.Builtin {
		return verdict(false, "module "+name+" is built into the kernel: modprobe configuration cannot disable it", e)
	}
	ok := len(redirect) > 0 || !r.Available
	if state == "blacklisted" {
		ok = ok || len(blacklist) > 0
	}
	if !ok {
		return verdict(false, fmt.Sprintf("module %s can be loaded: no install redirect to /bin/true or /bin/false", name), e)
	}
	return verdict(true, "module "+name+" cannot be loaded: "+strings.Join(facts[1:], "; "), e)
}

func isNoop(s string) bool {
	switch s {
	case "/bin/true", "/bin/false", "/usr/bin/true", "/usr/bin/false":
		return true
	}
	return false
}

// --- selinux_state ---

func needsSELinux(p params, env Env) []target.Request {
	if env.Live() {
		return []target.Request{execReq(scriptSELnx)}
	}
	return []target.Request{readReq("/etc/selinux/config")}
}

func evalSELinux(p params, env Env, f *target.Facts) Outcome {
	const m = "selinux_state"
	want := strings.ToLower(p.str("state"))
	if !env.Live() {
		r := f.Get(readReq("/etc/selinux/config"))
		files, bad := filesOf(m, r, want)
		if bad != nil {
			return *bad
		}
		e := ev(m, r, want, "")
		got := "disabled"
		if len(files) > 0 {
			if mt := findKey(files[0], "SELINUX", "="); mt != nil {
				got = strings.ToLower(mt.value)
			}
		}
		e.Actual = got + " (configured)"
		return verdict(got == want, "SELinux is configured "+got, e)
	}
	r := f.Get(execReq(scriptSELnx))
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	got := strings.ToLower(strings.TrimSpace(string(r.Stdout)))
	if r.ExitCode == 127 {
		got = "disabled"
		e.Actual = "SELinux tools not installed (disabled)"
	} else if r.ExitCode != 0 {
		e.Actual = exitActual(r)
		return errored(fmt.Sprintf("getenforce exited %d: %s", r.ExitCode, firstLine(r.Stderr)), e)
	} else {
		e.Actual = got
	}
	return verdict(got == want, "SELinux is "+got, e)
}

// --- apparmor_state ---

var (
	aaEnabled  = readReq("/sys/module/apparmor/parameters/enabled")
	aaProfiles = readReq("/sys/kernel/security/apparmor/profiles")
)

func needsAppArmor(p params, env Env) []target.Request {
	if !env.Live() {
		return nil
	}
	return []target.Request{aaEnabled, aaProfiles}
}

func evalAppArmor(p params, env Env, f *target.Facts) Outcome {
	const m = "apparmor_state"
	want := p.str("state")
	if !env.Live() {
		return skipped("AppArmor state needs a live kernel", ev(m, nil, want, "not observable"))
	}
	en := f.Get(aaEnabled)
	if en == nil || en.Err != nil {
		return unobserved(m, en, want)
	}
	e := ev(m, en, want, "")
	if !en.Exists || strings.TrimSpace(string(en.Data)) != "Y" {
		e.Actual = "AppArmor is not enabled in the kernel"
		return verdict(false, e.Actual, e)
	}
	pr := f.Get(aaProfiles)
	if pr == nil || pr.Err != nil {
		return unobserved(m, pr, want)
	}
	modes := map[string]int{}
	total := 0
	for _, line := range strings.Split(string(pr.Data), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.LastIndex(line, " ("); i >= 0 && strings.HasSuffix(line, ")") {
			modes[line[i+2:len(line)-1]]++
			total++
		}
	}
	var parts []string
	for k, v := range modes {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	e.Probe = aaProfiles.Path
	e.Actual = fmt.Sprintf("%d profiles loaded (%s)", total, strings.Join(parts, ", "))
	if total == 0 {
		return verdict(false, "no AppArmor profiles are loaded", e)
	}
	if want == "enforcing" && modes["complain"] > 0 {
		return verdict(false, fmt.Sprintf("%d profiles are in complain mode", modes["complain"]), e)
	}
	if want == "enforcing" && modes["enforce"] == 0 {
		return verdict(false, "no profile is in enforce mode", e)
	}
	return verdict(true, "AppArmor is "+want+": "+e.Actual, e)
}

// --- systemd_target ---

func needsSystemdTarget(p params, env Env) []target.Request {
	return []target.Request{execReq(scriptTarget)}
}

func evalSystemdTarget(p params, env Env, f *target.Facts) Outcome {
	const m = "systemd_target"
	exp, notExp := p.str("expected"), p.str("not_expected")
	want := exp
	if notExp != "" {
		want = "not " + notExp
		if exp != "" {
			want = exp + " and " + want
		}
	}
	r := f.Get(execReq(scriptTarget))
	if o := execFailed(m, r, want); o != nil {
		return *o
	}
	e := ev(m, r, want, "")
	if r.ExitCode == 127 {
		e.Actual = "systemctl not installed"
		return skipped("systemd is not installed", e)
	}
	if r.ExitCode != 0 {
		e.Actual = exitActual(r)
		return errored(fmt.Sprintf("systemctl get-default exited %d: %s", r.ExitCode, firstLine(r.Stderr)), e)
	}
	got := strings.TrimSpace(string(r.Stdout))
	e.Actual = got
	ok := (exp == "" || got == exp) && (notExp == "" || got != notExp)
	return verdict(ok, "default target is "+got+", expected "+want, e)
}
