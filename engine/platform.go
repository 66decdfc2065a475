package engine

import (
	"fmt"
	"strings"

	"github.com/vigilfleet/vigil/engine/rule"
)

// Platform is what /etc/os-release says about a host.
type Platform struct {
	ID         string   `json:"id"`      // lower-case ID, e.g. "debian", "rhel"
	IDLike     []string `json:"id_like"` // ID_LIKE entries
	VersionID  string   `json:"version_id"`
	Major      int      `json:"major"`
	PrettyName string   `json:"pretty_name"`
}

// elFamily is the Enterprise Linux family: with derivatives (the default) a
// rule written for one of them applies to all.
var elFamily = map[string]bool{"rhel": true, "redhat": true, "centos": true, "rocky": true, "almalinux": true, "ol": true}

// ParseOSRelease reads os-release text. It fails when there is no ID, so a
// host without a readable os-release is reported, not guessed.
func ParseOSRelease(data []byte) (Platform, error) {
	var p Platform
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch k {
		case "ID":
			p.ID = strings.ToLower(v)
		case "ID_LIKE":
			p.IDLike = strings.Fields(strings.ToLower(v))
		case "VERSION_ID":
			p.VersionID = v
		case "PRETTY_NAME":
			p.PrettyName = v
		}
	}
	if p.ID == "" {
		return p, fmt.Errorf("os-release has no ID")
	}
	p.Major, _ = rule.MajorVersion(p.VersionID)
	return p, nil
}

// String renders "debian 12".
func (p Platform) String() string {
	if p.VersionID == "" {
		return p.ID
	}
	return p.ID + " " + p.VersionID
}

// Matches reports whether a rule's platform list admits this host, and why
// not when it does not. An empty list admits every host. When an entry
// names the host's own ID (or its EL family), those entries alone decide,
// with their version bounds; only a host the rule does not name at all
// matches through ID_LIKE, without version bounds.
func (p Platform) Matches(list []rule.Platform) (bool, string) {
	if len(list) == 0 {
		return true, ""
	}
	named := false
	for _, rp := range list {
		if p.names(rp) {
			named = true
			if p.versionIn(rp) {
				return true, ""
			}
		}
	}
	if !named {
		for _, rp := range list {
			if p.likes(rp) {
				return true, ""
			}
		}
	}
	fams := make([]string, 0, len(list))
	for _, rp := range list {
		s := rp.Family
		if rp.MinVersion != "" || rp.MaxVersion != "" {
			s += fmt.Sprintf(" %s-%s", rp.MinVersion, rp.MaxVersion)
		}
		fams = append(fams, s)
	}
	return false, fmt.Sprintf("platform %s is not among the rule's platforms (%s)", p, strings.Join(fams, ", "))
}

// names reports whether the entry is written for the host's own ID, or for
// its EL family when derivatives are allowed.
func (p Platform) names(rp rule.Platform) bool {
	fam := strings.ToLower(rp.Family)
	return fam == p.ID || rp.Derivatives && elFamily[fam] && elFamily[p.ID]
}

// likes reports whether the host derives from the entry's family through
// ID_LIKE (Linux Mint through ubuntu, say).
func (p Platform) likes(rp rule.Platform) bool {
	if !rp.Derivatives {
		return false
	}
	fam := strings.ToLower(rp.Family)
	for _, like := range p.IDLike {
		if like == fam || elFamily[fam] && elFamily[like] {
			return true
		}
	}
	return false
}

func (p Platform) versionIn(rp rule.Platform) bool {
	if rp.MinVersion != "" {
		if min, ok := rule.MajorVersion(rp.MinVersion); ok && p.Major < min {
			return false
		}
	}
	if rp.MaxVersion != "" {
		if max, ok := rule.MajorVersion(rp.MaxVersion); ok && p.Major > max {
			return false
		}
	}
	return true
}

// Family returns the name frameworks key on: "rhel" for the EL family,
// otherwise the ID ("debian", "ubuntu").
func (p Platform) Family() string {
	if elFamily[p.ID] {
		return "rhel"
	}
	return p.ID
}
