package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Facts holds the latest host inventory (packages, services, accounts,
// ports, interfaces) per host and a log of what changed, so that a user can
// see a host's context and search the fleet for a package or an open port.
// It also keeps the bookkeeping of offline results imports.
type Facts interface {
	// PutFacts replaces the host's latest inventory with f (collected at
	// f.CollectedAt) and logs every difference from the previous one as
	// FactChanges stamped f.CollectedAt; it returns how many it logged.
	// The first inventory of a host logs nothing (there is nothing to
	// compare with), an identical one logs nothing and only moves
	// CollectedAt, and one collected before the stored one (a late import)
	// changes nothing. Unknown host: ErrNotFound.
	PutFacts(ctx context.Context, hostID int64, f HostFacts) (int, error)
	// Facts returns the host's latest inventory; ErrNotFound when none.
	Facts(ctx context.Context, hostID int64) (HostFacts, error)
	// FactChanges returns the host's inventory changes with from <= At < to,
	// oldest first.
	FactChanges(ctx context.Context, hostID int64, from, to time.Time) ([]FactChange, error)
	// SearchFacts finds hosts (not deleted) whose latest inventory matches
	// every criterion set in q, and returns one match per matching item,
	// ordered by host name, kind and item.
	SearchFacts(ctx context.Context, q FactQuery) ([]FactMatch, error)

	// RecordImport notes that an offline results archive (by digest) is
	// being imported into scan rec.ScanID. If the digest is known already it
	// changes nothing and returns the stored record, so that of two
	// importers of one archive only one proceeds, and an import interrupted
	// before FinishImport resumes in the same scan.
	RecordImport(ctx context.Context, rec ImportRecord) (ImportRecord, error)
	// ImportedArchive returns the record of an archive; ErrNotFound when it
	// was never imported.
	ImportedArchive(ctx context.Context, digest string) (ImportRecord, error)
	// FinishImport marks the archive's import complete at `at`.
	FinishImport(ctx context.Context, digest string, at time.Time) error
	// SetHostPosture records the posture of a scan that no lease covered (an
	// offline import): last scan time, score and band, unless the host holds
	// a later scan already. The schedule (next scan, leases) is untouched.
	SetHostPosture(ctx context.Context, hostID int64, scannedAt time.Time, score float64, band string) error
}

// HostFacts is a host's inventory as an agent collected it.
type HostFacts struct {
	OS          string
	Kernel      string
	Packages    []Package
	Services    []Service
	Users       []Account
	Groups      []Account
	Ports       []Port
	Interfaces  []Interface
	CollectedAt time.Time
}

// Package is an installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
}

// Service is a system service and its state.
type Service struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Active  bool   `json:"active"`
}

// Account is a local user or group.
type Account struct {
	Name    string   `json:"name"`
	ID      int64    `json:"id"`
	Home    string   `json:"home,omitempty"`
	Shell   string   `json:"shell,omitempty"`
	Members []string `json:"members,omitempty"`
}

// Port is a listening socket.
type Port struct {
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Process  string `json:"process,omitempty"`
}

// Interface is a network interface.
type Interface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// The kinds of inventory item a FactChange or FactMatch is about.
const (
	FactOS        = "os"
	FactKernel    = "kernel"
	FactPackage   = "package"
	FactService   = "service"
	FactUser      = "user"
	FactGroup     = "group"
	FactPort      = "port"
	FactInterface = "interface"
)

// The changes a FactChange records.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// FactChange is one difference between two successive inventories of a
// host. Item is the item's key (package "name" or "name:arch", port
// "tcp/0.0.0.0:22", or the name); Old and New describe it before and after
// ("" when absent).
type FactChange struct {
	ID     int64
	HostID int64
	At     time.Time
	Kind   string
	Change string
	Item   string
	Old    string
	New    string
}

// FactQuery selects inventory items across the fleet. Empty fields do not
// filter; at least one must be set.
type FactQuery struct {
	Package string // exact package name
	Port    int    // listening port number, any protocol and address
	Service string // exact service name
	Limit   int    // at most this many matches; 0 means 1000
}

// Empty tells whether q sets no criterion.
func (q FactQuery) Empty() bool { return q.Package == "" && q.Port == 0 && q.Service == "" }

// FactMatch is one inventory item of a host that matched a FactQuery.
// Kind says which fields are set.
type FactMatch struct {
	HostID   int64
	HostName string
	Kind     string // package, port or service
	Name     string // package or service name, or the port's process
	Version  string // package
	Arch     string // package
	Protocol string // port
	Address  string // port
	Port     int    // port
	Enabled  bool   // service
	Active   bool   // service
}

// ImportRecord is the bookkeeping of one imported results archive.
type ImportRecord struct {
	Digest     string // "sha256:<hex>" of the archive file
	HostID     int64
	ScanID     int64
	AgentID    int64
	StartedAt  time.Time
	FinishedAt time.Time // zero while the import is incomplete
}

// Normalize sorts every list of f by its key and drops later duplicates,
// so that two inventories listing the same items in another order compare
// equal and drivers can use the keys as unique row keys.
func (f HostFacts) Normalize() HostFacts {
	f.Packages = dedup(f.Packages, Package.Key)
	f.Services = dedup(f.Services, func(s Service) string { return s.Name })
	f.Users = dedup(f.Users, func(a Account) string { return a.Name })
	f.Groups = dedup(f.Groups, func(a Account) string { return a.Name })
	f.Ports = dedup(f.Ports, Port.Key)
	f.Interfaces = dedup(f.Interfaces, func(i Interface) string { return i.Name })
	for i := range f.Groups {
		f.Groups[i].Members = slices.Sorted(slices.Values(f.Groups[i].Members))
	}
	for i := range f.Interfaces {
		f.Interfaces[i].Addresses = slices.Sorted(slices.Values(f.Interfaces[i].Addresses))
	}
	return f
}

// Key is the package's identity: its name, with ":arch" when it has one
// (Debian installs one package for several architectures).
func (p Package) Key() string {
	if p.Arch == "" {
		return p.Name
	}
	return p.Name + ":" + p.Arch
}

// Key is the socket's identity: "tcp/0.0.0.0:22".
func (p Port) Key() string {
	return p.Protocol + "/" + p.Address + ":" + strconv.Itoa(p.Port)
}

func dedup[T any](in []T, key func(T) string) []T {
	out := make([]T, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, v := range in {
		k := key(v)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return out
}

// DiffFacts lists what changed from old to cur (both normalised), in kind
// then item order, stamped cur.CollectedAt. Drivers share it so that both
// log the same changes.
func DiffFacts(hostID int64, old, cur HostFacts) []FactChange {
	var out []FactChange
	add := func(kind, change, item, o, n string) {
		out = append(out, FactChange{HostID: hostID, At: Micro(cur.CollectedAt), Kind: kind, Change: change, Item: item, Old: o, New: n})
	}
	if old.OS != cur.OS {
		add(FactOS, ChangeChanged, FactOS, old.OS, cur.OS)
	}
	if old.Kernel != cur.Kernel {
		add(FactKernel, ChangeChanged, FactKernel, old.Kernel, cur.Kernel)
	}
	diffList(FactPackage, old.Packages, cur.Packages, Package.Key, func(p Package) string { return p.Version }, add)
	diffList(FactService, old.Services, cur.Services, func(s Service) string { return s.Name }, describeService, add)
	diffList(FactUser, old.Users, cur.Users, func(a Account) string { return a.Name }, describeUser, add)
	diffList(FactGroup, old.Groups, cur.Groups, func(a Account) string { return a.Name }, describeGroup, add)
	diffList(FactPort, old.Ports, cur.Ports, Port.Key, func(p Port) string { return p.Process }, add)
	diffList(FactInterface, old.Interfaces, cur.Interfaces, func(i Interface) string { return i.Name }, describeInterface, add)
	return out
}

// diffList compares two key-sorted lists: an item in one only is added or
// removed, an item in both whose description differs is changed.
func diffList[T any](kind string, old, cur []T, key, describe func(T) string, add func(kind, change, item, o, n string)) {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && key(old[i]) < key(cur[j])):
			add(kind, ChangeRemoved, key(old[i]), describe(old[i]), "")
			i++
		case i == len(old) || key(cur[j]) < key(old[i]):
			add(kind, ChangeAdded, key(cur[j]), "", describe(cur[j]))
			j++
		default:
			if o, n := describe(old[i]), describe(cur[j]); o != n {
				add(kind, ChangeChanged, key(cur[j]), o, n)
			}
			i++
			j++
		}
	}
}

func describeService(s Service) string {
	return fmt.Sprintf("enabled=%t active=%t", s.Enabled, s.Active)
}

func describeUser(a Account) string {
	return fmt.Sprintf("uid=%d home=%s shell=%s", a.ID, a.Home, a.Shell)
}

func describeGroup(a Account) string {
	return fmt.Sprintf("gid=%d members=%s", a.ID, strings.Join(a.Members, ","))
}

func describeInterface(i Interface) string {
	return fmt.Sprintf("mac=%s addresses=%s", i.MAC, strings.Join(i.Addresses, ","))
}

// IntersectMatches keeps the matches of hosts present in every set (one
// set per FactQuery criterion), ordered by host name, kind and item, at
// most limit of them (0 means 1000). Drivers share it so that both answer
// a multi-criterion search alike.
func IntersectMatches(sets [][]FactMatch, limit int) []FactMatch {
	if limit <= 0 {
		limit = 1000
	}
	count := map[int64]int{}
	for _, set := range sets {
		seen := map[int64]bool{}
		for _, m := range set {
			if !seen[m.HostID] {
				seen[m.HostID] = true
				count[m.HostID]++
			}
		}
	}
	out := []FactMatch{}
	for _, set := range sets {
		for _, m := range set {
			if count[m.HostID] == len(sets) {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b FactMatch) int {
		if c := strings.Compare(a.HostName, b.HostName); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.itemKey(), b.itemKey())
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (m FactMatch) itemKey() string {
	switch m.Kind {
	case FactPackage:
		return Package{Name: m.Name, Arch: m.Arch}.Key()
	case FactPort:
		return Port{Protocol: m.Protocol, Address: m.Address, Port: m.Port}.Key()
	}
	return m.Name
}
