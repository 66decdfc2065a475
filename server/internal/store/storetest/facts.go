package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// factsTests are the contract cases for the store.Facts methods.
var factsTests = []contractTest{
	{"FactsLatestAndChangesOnlyOnChange", testFactsChanges},
	{"FactsSearch", testFactsSearch},
	{"ImportRecords", testImportRecords},
	{"SetHostPosture", testSetHostPosture},
}

func sampleFacts(at time.Time) store.HostFacts {
	return store.HostFacts{
		OS: "Debian GNU/Linux 12", Kernel: "6.1.0-18-amd64",
		Packages: []store.Package{
			{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64"},
			{Name: "bash", Version: "5.2.15-2", Arch: "amd64"},
			{Name: "libc6", Version: "2.36-9", Arch: "amd64"},
			{Name: "libc6", Version: "2.36-9", Arch: "i386"},
		},
		Services: []store.Service{{Name: "ssh", Enabled: true, Active: true}, {Name: "cron", Enabled: true, Active: true}},
		Users:    []store.Account{{Name: "root", ID: 0, Home: "/root", Shell: "/bin/bash"}},
		Groups:   []store.Account{{Name: "sudo", ID: 27, Members: []string{"bob", "alice"}}},
		Ports: []store.Port{
			{Protocol: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"},
			{Protocol: "tcp6", Address: "::", Port: 22, Process: "sshd"},
		},
		Interfaces:  []store.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", Addresses: []string{"10.0.0.5/24"}}},
		CollectedAt: at,
	}
}

func putFacts(t *testing.T, s store.Store, hostID int64, f store.HostFacts) int {
	t.Helper()
	n, err := s.PutFacts(context.Background(), hostID, f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testFactsChanges(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "inv1")
	if _, err := s.PutFacts(ctx, h.ID+1000, sampleFacts(base)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("facts of unknown host: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Facts(ctx, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("facts before any inventory: err = %v, want ErrNotFound", err)
	}
	if n := putFacts(t, s, h.ID, sampleFacts(base)); n != 0 {
		t.Errorf("first inventory logged %d changes, want 0", n)
	}
	got, err := s.Facts(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := sampleFacts(base).Normalize(); !reflect.DeepEqual(got, want) {
		t.Errorf("facts round trip\n got %+v\nwant %+v", got, want)
	}
	if got.Packages[0].Name != "bash" || got.Groups[0].Members[0] != "alice" {
		t.Errorf("facts not normalised: packages %v, members %v", got.Packages, got.Groups[0].Members)
	}

	// The same inventory listed in another order, an hour later: nothing
	// logged, only the collection time moves.
	same := sampleFacts(base.Add(time.Hour))
	same.Packages[0], same.Packages[3] = same.Packages[3], same.Packages[0]
	same.Ports[0], same.Ports[1] = same.Ports[1], same.Ports[0]
	if n := putFacts(t, s, h.ID, same); n != 0 {
		t.Errorf("identical inventory logged %d changes", n)
	}
	if got, _ := s.Facts(ctx, h.ID); !got.CollectedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("collected at %s, want %s", got.CollectedAt, base.Add(time.Hour))
	}

	// Two hours later: one package upgraded, one installed, a port opened,
	// a service stopped and another removed, a user's shell changed, the kernel.
	next := sampleFacts(base.Add(2 * time.Hour))
	next.Kernel = "6.1.0-20-amd64"
	next.Packages[0].Version = "1:9.2p1-2+deb12u2"
	next.Packages = append(next.Packages, store.Package{Name: "nginx", Version: "1.22.1-9", Arch: "amd64"})
	next.Ports = append(next.Ports, store.Port{Protocol: "tcp", Address: "0.0.0.0", Port: 80, Process: "nginx"})
	next.Services = []store.Service{{Name: "ssh", Enabled: true, Active: false}}
	next.Users[0].Shell = "/bin/sh"
	if n := putFacts(t, s, h.ID, next); n != 7 {
		t.Errorf("changed inventory logged %d changes, want 7", n)
	}
	ch, err := s.FactChanges(ctx, h.ID, base, base.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range ch {
		if !c.At.Equal(base.Add(2*time.Hour)) || c.HostID != h.ID || c.ID == 0 {
			t.Errorf("change %+v: want host %d, at +2h, an id", c, h.ID)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s [%s -> %s]", c.Kind, c.Change, c.Item, c.Old, c.New))
	}
	want := []string{
		"kernel changed kernel [6.1.0-18-amd64 -> 6.1.0-20-amd64]",
		"package added nginx:amd64 [ -> 1.22.1-9]",
		"package changed openssh-server:amd64 [1:9.2p1-2 -> 1:9.2p1-2+deb12u2]",
		"service removed cron [enabled=true active=true -> ]",
		"service changed ssh [enabled=true active=true -> enabled=true active=false]",
		"user changed root [uid=0 home=/root shell=/bin/bash -> uid=0 home=/root shell=/bin/sh]",
		"port added tcp/0.0.0.0:80 [ -> nginx]",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("changes\n got %q\nwant %q", lines, want)
	}
	// Half-open window.
	if ch, _ := s.FactChanges(ctx, h.ID, base, base.Add(2*time.Hour)); len(ch) != 0 {
		t.Errorf("changes before +2h: %+v, want none", ch)
	}
	// An older inventory arriving late (an import) changes nothing.
	if n := putFacts(t, s, h.ID, sampleFacts(base.Add(90*time.Minute))); n != 0 {
		t.Errorf("late inventory logged %d changes", n)
	}
	got, _ = s.Facts(ctx, h.ID)
	if want := next.Normalize(); !reflect.DeepEqual(got, want) {
		t.Errorf("late inventory replaced the latest:\n got %+v\nwant %+v", got, want)
	}
	// Another host's inventory stays its own.
	other := host(t, s, "inv2")
	putFacts(t, s, other.ID, store.HostFacts{OS: "x", CollectedAt: base})
	if ch, _ := s.FactChanges(ctx, other.ID, base, base.Add(24*time.Hour)); len(ch) != 0 {
		t.Errorf("other host has changes %+v", ch)
	}
}

func testFactsSearch(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c := host(t, s, "search-a"), host(t, s, "search-b"), host(t, s, "search-c")
	fa := sampleFacts(base)
	putFacts(t, s, a.ID, fa)
	fb := sampleFacts(base)
	fb.Packages = []store.Package{{Name: "openssh-server", Version: "1:8.4p1-5", Arch: "amd64"}}
	fb.Ports = []store.Port{{Protocol: "tcp", Address: "127.0.0.1", Port: 5432, Process: "postgres"}}
	putFacts(t, s, b.ID, fb)
	fc := sampleFacts(base)
	fc.Packages = []store.Package{{Name: "busybox", Version: "1.35", Arch: "amd64"}}
	putFacts(t, s, c.ID, fc)

	search := func(q store.FactQuery) []string {
		t.Helper()
		ms, err := s.SearchFacts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, m := range ms {
			switch m.Kind {
			case store.FactPackage:
				out = append(out, fmt.Sprintf("%s/%d package %s %s %s", m.HostName, m.HostID, m.Name, m.Arch, m.Version))
			case store.FactPort:
				out = append(out, fmt.Sprintf("%s/%d port %s %s %d %s", m.HostName, m.HostID, m.Protocol, m.Address, m.Port, m.Name))
			default:
				out = append(out, fmt.Sprintf("%s/%d service %s %t %t", m.HostName, m.HostID, m.Name, m.Enabled, m.Active))
			}
		}
		return out
	}
	cases := []struct {
		q    store.FactQuery
		want []string
	}{
		{store.FactQuery{Package: "openssh-server"}, []string{
			fmt.Sprintf("search-a/%d package openssh-server amd64 1:9.2p1-2", a.ID),
			fmt.Sprintf("search-b/%d package openssh-server amd64 1:8.4p1-5", b.ID)}},
		{store.FactQuery{Package: "openssh"}, []string{}},
		{store.FactQuery{Port: 22}, []string{
			fmt.Sprintf("search-a/%d port tcp 0.0.0.0 22 sshd", a.ID),
			fmt.Sprintf("search-a/%d port tcp6 :: 22 sshd", a.ID),
			fmt.Sprintf("search-c/%d port tcp 0.0.0.0 22 sshd", c.ID),
			fmt.Sprintf("search-c/%d port tcp6 :: 22 sshd", c.ID)}},
		{store.FactQuery{Port: 5432}, []string{fmt.Sprintf("search-b/%d port tcp 127.0.0.1 5432 postgres", b.ID)}},
		{store.FactQuery{Service: "cron"}, []string{
			fmt.Sprintf("search-a/%d service cron true true", a.ID),
			fmt.Sprintf("search-b/%d service cron true true", b.ID),
			fmt.Sprintf("search-c/%d service cron true true", c.ID)}},
		// Several criteria: hosts matching all of them, every matching item.
		{store.FactQuery{Package: "openssh-server", Port: 22}, []string{
			fmt.Sprintf("search-a/%d package openssh-server amd64 1:9.2p1-2", a.ID),
			fmt.Sprintf("search-a/%d port tcp 0.0.0.0 22 sshd", a.ID),
			fmt.Sprintf("search-a/%d port tcp6 :: 22 sshd", a.ID)}},
		{store.FactQuery{Port: 22, Limit: 1}, []string{fmt.Sprintf("search-a/%d port tcp 0.0.0.0 22 sshd", a.ID)}},
	}
	for _, tc := range cases {
		if got := search(tc.q); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("search %+v\n got %q\nwant %q", tc.q, got, tc.want)
		}
	}
	// An inventory change is what search sees next.
	fc.Packages = append(fc.Packages, store.Package{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64"})
	fc.CollectedAt = base.Add(time.Hour)
	putFacts(t, s, c.ID, fc)
	if got := search(store.FactQuery{Package: "openssh-server"}); len(got) != 3 {
		t.Errorf("after installing on search-c: %q, want 3 hosts", got)
	}
	// Deleted hosts leave search results.
	if err := s.DeleteHost(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := search(store.FactQuery{Port: 22}); len(got) != 2 {
		t.Errorf("after deleting search-a: %q, want search-c's two sockets", got)
	}
	if _, err := s.SearchFacts(ctx, store.FactQuery{}); err == nil {
		t.Error("search without a criterion was accepted")
	}
}

func testImportRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "offline1")
	sc1, sc2 := scan(t, s, h.ID, base), scan(t, s, h.ID, base)
	const digest = "sha256:0123abcd"
	if _, err := s.ImportedArchive(ctx, digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown archive: err = %v, want ErrNotFound", err)
	}
	first := store.ImportRecord{Digest: digest, HostID: h.ID, ScanID: sc1.ID, AgentID: 7, StartedAt: base}
	got, err := s.RecordImport(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("record import = %+v, want %+v", got, first)
	}
	// A second importer of the same archive gets the first one's record.
	got, err = s.RecordImport(ctx, store.ImportRecord{Digest: digest, HostID: h.ID, ScanID: sc2.ID, AgentID: 7, StartedAt: base.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("second record import = %+v, want the first %+v", got, first)
	}
	if err := s.FinishImport(ctx, digest, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = s.ImportedArchive(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	first.FinishedAt = base.Add(time.Hour)
	if !reflect.DeepEqual(got, first) {
		t.Errorf("finished import = %+v, want %+v", got, first)
	}
	if err := s.FinishImport(ctx, "sha256:ffff", base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finish unknown import: err = %v, want ErrNotFound", err)
	}
}

func testSetHostPosture(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := host(t, s, "posture-offline")
	if err := s.SetHostPosture(ctx, h.ID, base, 72.5, "fair"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Host(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastScanAt.Equal(base) || got.Score != 72.5 || got.Band != "fair" || !got.NextScanAt.Equal(h.NextScanAt) {
		t.Errorf("host after SetHostPosture: %+v (before %+v)", got, h)
	}
	// An older scan does not rewind the host.
	if err := s.SetHostPosture(ctx, h.ID, base.Add(-time.Hour), 10, "critical"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Host(ctx, h.ID); got.Band != "fair" || !got.LastScanAt.Equal(base) {
		t.Errorf("older scan rewound the host: %+v", got)
	}
	if err := s.SetHostPosture(ctx, h.ID+1000, base, 1, "poor"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: err = %v, want ErrNotFound", err)
	}
}
