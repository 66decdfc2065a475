package check

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/engine/target"
)

func readReq(p string) target.Request { return target.Request{Op: target.OpRead, Path: p} }

func statReq(p string) target.Request { return target.Request{Op: target.OpStat, Path: p} }

func globReq(p string) target.Request {
	return target.Request{Op: target.OpGlob, Path: p, Content: true}
}

// fileSources returns the request for a path: a read for a literal path, a
// reading glob for a pattern.
func fileSource(p string) target.Request {
	if hasGlob(p) {
		return globReq(p)
	}
	return readReq(p)
}

type fileText struct {
	path string
	data []byte
}

// filesOf returns the files a read or reading glob produced, or an outcome
// (with the check's expected value as evidence) when nothing could be
// observed.
func filesOf(m string, r *target.Response, expected string) ([]fileText, *Outcome) {
	if r == nil || r.Err != nil {
		o := unobserved(m, r, expected)
		return nil, &o
	}
	if r.Req.Op == target.OpRead {
		if !r.Exists {
			return nil, nil
		}
		return []fileText{{r.Req.Path, r.Data}}, nil
	}
	var out []fileText
	for _, fi := range r.Files {
		if fi.Err != "" {
			o := errored(fi.Path+": "+fi.Err, ev(m, r, expected, "not observed: "+fi.Err))
			return nil, &o
		}
		out = append(out, fileText{fi.Path, fi.Data})
	}
	return out, nil
}

// --- config_value ---

func needsConfigValue(p params, env Env) []target.Request {
	reqs := []target.Request{fileSource(p.str("path"))}
	if d := p.str("dropin_dir"); d != "" {
		reqs = append(reqs, globReq(dropinPattern(p)))
	}
	return reqs
}

func dropinPattern(p params) string {
	pat := p.str("scan_pattern")
	if pat == "" {
		pat = "*.conf"
	}
	return path.Join(p.str("dropin_dir"), pat)
}

type match struct {
	file  string
	line  int
	value string
}

func evalConfigValue(p params, env Env, f *target.Facts) Outcome {
	const m = "config_value"
	key, expected, cmp := p.str("key"), p.str("expected"), p.str("comparator")
	want := describe(cmp, expected)
	if expected == "" && cmp == "" {
		want = "key present"
	}
	var files []fileText
	mainReq := fileSource(p.str("path"))
	mainResp := f.Get(mainReq)
	fs, bad := filesOf(m, mainResp, want)
	if bad != nil {
		return *bad
	}
	files = append(files, fs...)
	probe := p.str("path")
	if p.str("dropin_dir") != "" {
		dr := f.Get(globReq(dropinPattern(p)))
		ds, bad := filesOf(m, dr, want)
		if bad != nil {
			return *bad
		}
		files = append(files, ds...)
		probe += " + " + dropinPattern(p)
	}
	e := ev(m, mainResp, want, "")
	e.Probe = probe
	if len(files) == 0 {
		e.Actual = "file not found"
		return verdict(false, fmt.Sprintf("%s does not exist", probe), e)
	}
	var last *match
	for _, ft := range files {
		if mt := findKey(ft, key, p.str("delimiter")); mt != nil {
			last = mt
		}
	}
	if last == nil {
		e.Actual = "key not set"
		return verdict(false, fmt.Sprintf("%s is not set in %s", key, probe), e)
	}
	e.Actual = fmt.Sprintf("%s (%s:%d)", last.value, last.file, last.line)
	if expected == "" && cmp == "" {
		return verdict(true, fmt.Sprintf("%s is set to %q", key, last.value), e)
	}
	ok, err := compare(last.value, cmp, expected, false)
	if err == errNotNumber {
		return verdict(false, fmt.Sprintf("%s is %q, not an integer", key, last.value), e)
	}
	if err != nil {
		return errored(err.Error(), e)
	}
	return verdict(ok, fmt.Sprintf("%s is %q, expected %s", key, last.value, want), e)
}

// findKey returns the last assignment of key in a config file. Comment lines
// (# or ;) are ignored; keys compare without case; a value in matching
// quotes loses them.
func findKey(ft fileText, key, delim string) *match {
	var last *match
	for i, line := range strings.Split(string(ft.data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		var k, v string
		if delim == " " {
			fields := strings.Fields(line)
			k = fields[0]
			v = strings.TrimSpace(strings.TrimPrefix(line, k))
		} else {
			d := delim
			if d == "" {
				d = "="
			}
			idx := strings.Index(line, d)
			if idx < 0 {
				// A bare flag (enforce_for_root, even_deny_root) is a key
				// set without a value.
				if strings.EqualFold(line, key) {
					last = &match{file: ft.path, line: i + 1, value: ""}
				}
				continue
			}
			k, v = strings.TrimSpace(line[:idx]), strings.TrimSpace(line[idx+len(d):])
		}
		if !strings.EqualFold(k, key) {
			continue
		}
		last = &match{file: ft.path, line: i + 1, value: unquote(v)}
	}
	return last
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}

// --- file_permissions, file_exists, file_absent ---

func needsStat(p params, env Env) []target.Request { return []target.Request{statReq(p.str("path"))} }

func evalFilePermissions(p params, env Env, f *target.Facts) Outcome {
	const m = "file_permissions"
	r := f.Get(statReq(p.str("path")))
	var want []string
	mode, hasMode := uint32(0), p.has("mode")
	if hasMode {
		mode, _ = rule.ParseMode(p.str("mode"))
		want = append(want, fmt.Sprintf("mode %04o", mode))
	}
	maxMode, hasMax := uint32(0), p.has("max_mode")
	if hasMax {
		maxMode, _ = rule.ParseMode(p.str("max_mode"))
		want = append(want, fmt.Sprintf("mode %04o or stricter", maxMode))
	}
	if p.has("owner") {
		want = append(want, "owner "+p.str("owner"))
	}
	if p.has("group") {
		want = append(want, "group "+p.str("group"))
	}
	expected := strings.Join(want, ", ")
	if r == nil || r.Err != nil {
		return unobserved(m, r, expected)
	}
	e := ev(m, r, expected, "")
	if len(r.Files) == 0 {
		e.Actual = "no file matches"
		return verdict(true, "no file matches "+p.str("path"), e)
	}
	var actual, bad []string
	for _, fi := range r.Files {
		if fi.Err != "" {
			e.Actual = fi.Path + ": " + fi.Err
			return errored(fi.Path+": "+fi.Err, e)
		}
		if !fi.Exists {
			actual = append(actual, fi.Path+": does not exist")
			bad = append(bad, fi.Path+" does not exist")
			continue
		}
		actual = append(actual, fmt.Sprintf("%s: mode %04o owner %s group %s", fi.Path, fi.Mode&07777, fi.Owner, fi.Group))
		var why []string
		if hasMode && fi.Mode&07777 != mode {
			why = append(why, fmt.Sprintf("mode %04o, not %04o", fi.Mode&07777, mode))
		}
		if hasMax && fi.Mode&07777&^maxMode != 0 {
			why = append(why, fmt.Sprintf("mode %04o is more permissive than %04o", fi.Mode&07777, maxMode))
		}
		if p.has("owner") && fi.Owner != p.str("owner") {
			why = append(why, fmt.Sprintf("owner %s, not %s", fi.Owner, p.str("owner")))
		}
		if p.has("group") && fi.Group != p.str("group") {
			why = append(why, fmt.Sprintf("group %s, not %s", fi.Group, p.str("group")))
		}
		if len(why) > 0 {
			bad = append(bad, fi.Path+": "+strings.Join(why, ", "))
		}
	}
	e.Actual = strings.Join(actual, "; ")
	if len(bad) > 0 {
		return verdict(false, strings.Join(bad, "; "), e)
	}
	return verdict(true, fmt.Sprintf("%d file(s) have %s", len(r.Files), expected), e)
}

func evalFileExists(want bool) func(p params, env Env, f *target.Facts) Outcome {
	return func(p params, env Env, f *target.Facts) Outcome {
		m := "file_absent"
		if want {
			m = "file_exists"
		}
		exp := "absent"
		if want {
			exp = "present"
		}
		r := f.Get(statReq(p.str("path")))
		if r == nil || r.Err != nil {
			return unobserved(m, r, exp)
		}
		var present []string
		for _, fi := range r.Files {
			if fi.Err != "" {
				return errored(fi.Path+": "+fi.Err, ev(m, r, exp, "not observed: "+fi.Err))
			}
			if fi.Exists {
				present = append(present, fi.Path)
			}
		}
		actual := "absent"
		if len(present) > 0 {
			actual = "present: " + strings.Join(present, ", ")
		}
		e := ev(m, r, exp, actual)
		return verdict((len(present) > 0) == want, fmt.Sprintf("%s is %s", p.str("path"), actual), e)
	}
}

// --- file_content, file_content_match ---

func needsRead(p params, env Env) []target.Request {
	return []target.Request{fileSource(p.str("path"))}
}

func evalFileContent(p params, env Env, f *target.Facts) Outcome {
	const m = "file_content"
	want := p.str("expected_content")
	r := f.Get(fileSource(p.str("path")))
	files, bad := filesOf(m, r, "contains "+quoteShort(want))
	if bad != nil {
		return *bad
	}
	e := ev(m, r, "contains "+quoteShort(want), "")
	if len(files) == 0 {
		e.Actual = "file not found"
		return verdict(false, p.str("path")+" does not exist", e)
	}
	for _, ft := range files {
		if idx := strings.Index(string(ft.data), want); idx >= 0 {
			line := 1 + strings.Count(string(ft.data[:idx]), "\n")
			e.Actual = fmt.Sprintf("found at %s:%d", ft.path, line)
			return verdict(true, "text found in "+ft.path, e)
		}
	}
	e.Actual = "text not found; file starts: " + quoteShort(string(files[0].data))
	return verdict(false, "text not found in "+p.str("path"), e)
}

func evalFileContentMatch(p params, env Env, f *target.Facts) Outcome {
	const m = "file_content_match"
	pat := p.str("pattern")
	r := f.Get(fileSource(p.str("path")))
	e := ev(m, r, "a line matches /"+pat+"/", "")
	re, err := compileERE(pat)
	if err != nil {
		return errored(fmt.Sprintf("pattern %q is not a valid extended regular expression: %v", pat, err), e)
	}
	files, bad := filesOf(m, r, e.Expected)
	if bad != nil {
		return *bad
	}
	if len(files) == 0 {
		e.Actual = "file not found"
		return verdict(false, p.str("path")+" does not exist", e)
	}
	for _, ft := range files {
		for i, line := range strings.Split(string(ft.data), "\n") {
			if re.MatchString(line) {
				e.Actual = fmt.Sprintf("%s:%d: %s", ft.path, i+1, quoteShort(line))
				return verdict(true, "pattern matches "+ft.path+" line "+fmt.Sprint(i+1), e)
			}
		}
	}
	e.Actual = "no line matches"
	return verdict(false, "no line of "+p.str("path")+" matches /"+pat+"/", e)
}

func quoteShort(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// compileERE compiles a POSIX extended regular expression. Go's RE2 syntax
// is a superset of ERE except for the GNU word anchors \< and \>, which
// grep users write often; they become \b.
func compileERE(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	for i := 0; i < len(pat); i++ {
		if pat[i] == '\\' && i+1 < len(pat) {
			switch pat[i+1] {
			case '<', '>':
				b.WriteString(`\b`)
			default:
				b.WriteByte(pat[i])
				b.WriteByte(pat[i+1])
			}
			i++
			continue
		}
		b.WriteByte(pat[i])
	}
	return regexp.Compile(b.String())
}
