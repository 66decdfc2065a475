package target

import (
	"bufio"
	"bytes"
	"strings"
)

// ParseDpkgStatus reads /var/lib/dpkg/status and returns the packages whose
// status is "install ok installed" (dpkg -l's "ii"), keyed by name.
func ParseDpkgStatus(data []byte) map[string]Package {
	out := map[string]Package{}
	var name, version, status string
	flush := func() {
		if name != "" && status == "install ok installed" {
			out[name] = Package{Name: name, Version: version, Source: "dpkg"}
		}
		name, version, status = "", "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			name = v
		case "Version":
			version = v
		case "Status":
			status = v
		}
	}
	flush()
	return out
}

// RPMQueryFormat is the rpm -qa format ParseRPMList reads.
const RPMQueryFormat = `%{NAME}\t%{VERSION}-%{RELEASE}\n`

// ParseRPMList reads `rpm -qa --qf RPMQueryFormat` output.
func ParseRPMList(data []byte) map[string]Package {
	out := map[string]Package{}
	for _, line := range strings.Split(string(data), "\n") {
		name, version, _ := strings.Cut(strings.TrimSpace(line), "\t")
		if name == "" || strings.HasPrefix(name, "gpg-pubkey") {
			continue
		}
		out[name] = Package{Name: name, Version: version, Source: "rpm"}
	}
	return out
}

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
