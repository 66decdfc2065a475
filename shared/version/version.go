// Package version carries the build identity shared by every Vigil binary,
// so that an agent and a server can tell each other what they run.
package version

import "runtime/debug"

// Version is set at link time (-ldflags "-X .../version.Version=v1.2.3");
// a development build reports "dev" plus the VCS revision when known.
var Version = "dev"

// String returns the version with the VCS revision of a development build.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return Version
}
