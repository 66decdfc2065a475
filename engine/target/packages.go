package target

import (
	"bufio"
	"bytes"
	"strings"
)

// ParseDpkgStatus reads the dpkg status database (/var/lib/dpkg/status, or
// any subset of its lines that keeps the Package, Status and Version fields
// and the blank lines between stanzas) and returns the installed packages
// by name, with Source "dpkg".
//
// Installed means the Status field is "install ok installed" (dpkg -l's
// "ii") or "hold ok installed" ("hi": installed and pinned; counting it as
// absent would let a held package pass a package_absent rule). Packages
// removed with their configuration left behind ("deinstall ok
// config-files") or half-installed are not listed.
// When a package is installed for several architectures, the first stanza
// wins; versions of Multi-Arch: same packages are identical anyway.
func ParseDpkgStatus(data []byte) map[string]Package {
	out := map[string]Package{}
	var name, version, status string
	flush := func() {
		if name != "" && (status == "install ok installed" || status == "hold ok installed") {
			if _, dup := out[name]; !dup {
				out[name] = Package{Name: name, Version: version, Source: "dpkg"}
			}
		}
		name, version, status = "", "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	// Description fields can be long lines; the filtered form never is.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		// deb822 field names are case-insensitive.
		switch strings.ToLower(key) {
		case "package":
			if name != "" {
				flush() // a stanza without its blank line still ends here
			}
			name = val
		case "version":
			version = val
		case "status":
			status = strings.Join(strings.Fields(val), " ")
		}
	}
	flush()
	return out
}

// ParseRPMList reads the output of
//
//	rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n'
//
// and returns the packages by name, with Source "rpm". Malformed lines are
// skipped. A name installed in several versions (kernel, gpg-pubkey) keeps
// the first one rpm printed.
func ParseRPMList(data []byte) map[string]Package {
	out := map[string]Package{}
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		name, version, ok := strings.Cut(line, "\t")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		if _, dup := out[name]; !dup {
			out[name] = Package{Name: name, Version: strings.TrimSpace(version), Source: "rpm"}
		}
	}
	return out
}

// RPMQueryFormat is the rpm -qa format ParseRPMList reads.
const RPMQueryFormat = `%{NAME}\t%{VERSION}-%{RELEASE}\n`

// MergePackages adds the packages of b to a (a wins on a name clash).
func MergePackages(a, b map[string]Package) map[string]Package {
	if a == nil {
		a = map[string]Package{}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			a[k] = v
		}
	}
	return a
}
