package target

import (
	"maps"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	status := `Package: bash
Essential: yes
Status: install ok installed
Priority: required
Version: 5.2.15-2+b7
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Status: deinstall ok config-files

Package: telnet
Status: deinstall ok config-files
Version: 0.17+2.4-2

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u4

package: lower
status: install  ok  installed
version: 1.0

Package: half
Status: install reinstreq half-installed
Version: 1

Package: held
Status: hold ok installed
Version: 2
Package: nostatus
Version: 3`
	got := ParseDpkgStatus([]byte(status))
	want := map[string]Package{
		"bash":  {Name: "bash", Version: "5.2.15-2+b7", Source: "dpkg"},
		"libc6": {Name: "libc6", Version: "2.36-9+deb12u4", Source: "dpkg"},
		"lower": {Name: "lower", Version: "1.0", Source: "dpkg"},
		"held":  {Name: "held", Version: "2", Source: "dpkg"},
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if len(ParseDpkgStatus(nil)) != 0 {
		t.Error("empty input gave packages")
	}
}

func TestParseRPMList(t *testing.T) {
	out := "bash\t5.1.8-9.el9\nkernel\t5.14.0-427.el9\nkernel\t5.14.0-362.el9\ngarbage line\n\nopenssh-server\t8.7p1-38.el9\r\n"
	got := ParseRPMList([]byte(out))
	want := map[string]Package{
		"bash":           {Name: "bash", Version: "5.1.8-9.el9", Source: "rpm"},
		"kernel":         {Name: "kernel", Version: "5.14.0-427.el9", Source: "rpm"},
		"openssh-server": {Name: "openssh-server", Version: "8.7p1-38.el9", Source: "rpm"},
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
