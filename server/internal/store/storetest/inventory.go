package storetest

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// inventoryTests are the contract cases for the store.Inventory methods.
var inventoryTests = []contractTest{
	{"HostUpsertFieldsAndAgent", testHostUpsertFields},
	{"HostDeleteAndRevive", testHostDeleteAndRevive},
	{"Groups", testGroups},
	{"Agents", testAgents},
	{"ScansFilterPagingAndFail", testScans},
	{"Credentials", testCredentials},
}

func testHostUpsertFields(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := time.Now()
	h, err := s.UpsertHost(ctx, store.Host{Name: "web1", Address: "127.0.0.2", OS: "debian 12", AgentID: 7,
		Labels: map[string]string{"env": "prod"}, Groups: []string{"web", "pci"}})
	if err != nil {
		t.Fatal(err)
	}
	// A new host is due for its first scan at once: no later than the
	// moment UpsertHost returned, no earlier than the moment it was called.
	if h.NextScanAt.IsZero() || h.NextScanAt.After(time.Now()) || h.NextScanAt.Before(store.Micro(before)) {
		t.Errorf("new host next scan at %v, want the time of its creation", h.NextScanAt)
	}
	want := store.Host{ID: h.ID, Name: "web1", Address: "127.0.0.2", OS: "debian 12", AgentID: 7,
		Labels: map[string]string{"env": "prod"}, Groups: []string{"web", "pci"}, NextScanAt: h.NextScanAt}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("upsert returned %+v\nwant %+v", h, want)
	}
	for _, get := range []func() (store.Host, error){
		func() (store.Host, error) { return s.Host(ctx, h.ID) },
		func() (store.Host, error) { return s.HostByName(ctx, "web1") },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read host %+v\nwant %+v", got, want)
		}
	}
	// Upserting again replaces the fields, agent 0 means agentless, and
	// the schedule of a live host is not reset.
	h2, err := s.UpsertHost(ctx, store.Host{Name: "web1", Address: "127.0.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	want = store.Host{ID: h.ID, Name: "web1", Address: "127.0.0.3", Labels: map[string]string{}, Groups: []string{},
		NextScanAt: h.NextScanAt}
	if !reflect.DeepEqual(h2, want) {
		t.Errorf("second upsert returned %+v\nwant %+v", h2, want)
	}
	if got, err := s.Host(ctx, h.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("host after second upsert %+v (err %v)\nwant %+v", got, err, want)
	}
	if _, err := s.Host(ctx, h.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.HostByName(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host name: err = %v, want ErrNotFound", err)
	}
}

func testHostDeleteAndRevive(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone, keep := host(t, s, "gone"), host(t, s, "keep")
	sc := scan(t, s, gone.ID, base)
	ingest(t, s, sc.ID, 1, res("r1", result.Fail, base))
	if err := s.SetCredential(ctx, gone.ID, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHost(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHost(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of a deleted host: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteHost(ctx, keep.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of an unknown host: err = %v, want ErrNotFound", err)
	}
	hosts, err := s.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].ID != keep.ID {
		t.Errorf("hosts after delete = %+v, want only %q", hosts, "keep")
	}
	if _, err := s.Host(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted host by id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.HostByName(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted host by name: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Credential(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("credential of a deleted host: err = %v, want ErrNotFound (erased)", err)
	}
	if err := s.SetCredential(ctx, gone.ID, []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("set credential of a deleted host: err = %v, want ErrNotFound", err)
	}
	// History stays answerable.
	if got, err := s.Scan(ctx, sc.ID); err != nil || got.HostID != gone.ID {
		t.Errorf("scan of a deleted host = %+v, %v; want it readable", got, err)
	}
	if cur, err := s.CurrentState(ctx, gone.ID); err != nil || len(cur) != 1 {
		t.Errorf("current state of a deleted host = %+v, %v; want 1 rule", cur, err)
	}
	if tr, err := s.Transitions(ctx, gone.ID, base, base.Add(time.Hour)); err != nil || len(tr) != 1 {
		t.Errorf("transitions of a deleted host = %+v, %v; want 1", tr, err)
	}
	// The same name brings it back with the same id and its history.
	back, err := s.UpsertHost(ctx, store.Host{Name: "gone", Address: "127.0.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != gone.ID || back.Address != "127.0.0.9" || back.NextScanAt.IsZero() {
		t.Errorf("revived host %+v, want id %d, the new address and a due time", back, gone.ID)
	}
	if got, err := s.HostByName(ctx, "gone"); err != nil || got.ID != gone.ID {
		t.Errorf("revived host by name = %+v, %v", got, err)
	}
	if scans, err := s.Scans(ctx, store.ScanFilter{HostID: gone.ID}); err != nil || len(scans) != 1 || scans[0].ID != sc.ID {
		t.Errorf("scans of the revived host = %+v, %v; want the scan from before", scans, err)
	}
	if hosts, err = s.Hosts(ctx); err != nil || len(hosts) != 2 {
		t.Errorf("hosts after revive = %+v, %v; want 2", hosts, err)
	}
}

func testGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := base.Add(123456789 * time.Nanosecond)
	web, err := s.CreateGroup(ctx, store.Group{Name: "web", Description: "front ends", CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	db, err := s.CreateGroup(ctx, store.Group{Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if web.ID == 0 || db.ID == 0 || web.ID == db.ID || db.CreatedAt.IsZero() {
		t.Errorf("created groups %+v and %+v: want distinct ids and a creation time", web, db)
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: "web"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate group: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{}); err == nil {
		t.Error("group without a name was accepted")
	}
	groups, err := s.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Group{db, {ID: web.ID, Name: "web", Description: "front ends", CreatedAt: store.Micro(at)}}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("groups = %+v\nwant %+v", groups, want)
	}
	h1, err := s.UpsertHost(ctx, store.Host{Name: "h1", Groups: []string{"pci", "web", "db"}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.UpsertHost(ctx, store.Host{Name: "h2", Groups: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	h3, err := s.UpsertHost(ctx, store.Host{Name: "h3", Groups: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	// A deleted host loses the membership too, so reviving it does not
	// resurrect a group that no longer exists.
	if err := s.DeleteHost(ctx, h2.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, web.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete of a deleted group: err = %v, want ErrNotFound", err)
	}
	for id, want := range map[int64][]string{h1.ID: {"pci", "db"}, h3.ID: {"db"}} {
		got, err := s.Host(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Groups, want) {
			t.Errorf("host %s groups after deleting web = %q, want %q", got.Name, got.Groups, want)
		}
	}
	if err := s.DeleteHost(ctx, h3.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, db.ID); err != nil {
		t.Fatal(err)
	}
	revived, err := s.UpsertHost(ctx, store.Host{Name: "h2", Groups: []string{"new"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(revived.Groups, []string{"new"}) {
		t.Errorf("revived host groups %q", revived.Groups)
	}
	got, err := s.Host(ctx, h1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Groups, []string{"pci"}) {
		t.Errorf("host h1 groups = %q, want [pci]", got.Groups)
	}
	if groups, err = s.Groups(ctx); err != nil || len(groups) != 0 {
		t.Errorf("groups after deleting both = %+v, %v", groups, err)
	}
}

func testAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	enrolled := base.Add(987654321 * time.Nanosecond)
	a, err := s.UpsertAgent(ctx, store.Agent{Name: "jump1", Version: "1.0.0", OS: "debian 12", CertSerial: "01",
		Labels: map[string]string{"site": "lab"}, EnrolledAt: enrolled})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Agent{ID: a.ID, Name: "jump1", Status: store.AgentActive, Version: "1.0.0", OS: "debian 12",
		CertSerial: "01", Labels: map[string]string{"site": "lab"}, EnrolledAt: store.Micro(enrolled)}
	if a.ID == 0 || !reflect.DeepEqual(a, want) {
		t.Errorf("upsert agent = %+v\nwant %+v", a, want)
	}
	b, err := s.UpsertAgent(ctx, store.Agent{Name: "edge", Status: store.AgentActive})
	if err != nil {
		t.Fatal(err)
	}
	// Updating by name keeps the id and the enrolment time.
	seen := base.Add(time.Hour)
	a2, err := s.UpsertAgent(ctx, store.Agent{Name: "jump1", Status: store.AgentActive, Version: "1.1.0", OS: "debian 12",
		CertSerial: "02", Labels: map[string]string{"site": "dc"}, LastSeenAt: seen, EnrolledAt: base.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want = store.Agent{ID: a.ID, Name: "jump1", Status: store.AgentActive, Version: "1.1.0", OS: "debian 12",
		CertSerial: "02", Labels: map[string]string{"site": "dc"}, EnrolledAt: store.Micro(enrolled), LastSeenAt: seen}
	if !reflect.DeepEqual(a2, want) {
		t.Errorf("second upsert = %+v\nwant %+v", a2, want)
	}
	revoked := base.Add(2 * time.Hour)
	want.Status, want.RevokedAt = store.AgentRevoked, revoked
	a3 := want
	a3.ID, a3.LastSeenAt = 0, time.Time{} // a zero last-seen does not erase the recorded one
	if _, err := s.UpsertAgent(ctx, a3); err != nil {
		t.Fatal(err)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("revoked agent = %+v\nwant %+v", got, want)
	}
	if _, err := s.Agent(ctx, a.ID+b.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown agent: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpsertAgent(ctx, store.Agent{}); err == nil {
		t.Error("agent without a name was accepted")
	}
	list, err := s.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != b.ID || !reflect.DeepEqual(list[1], want) {
		t.Errorf("agents = %+v, want edge then jump1", list)
	}
}

func testScans(t *testing.T, s store.Store) {
	ctx := context.Background()
	h1, h2 := host(t, s, "s1"), host(t, s, "s2")
	var ids []int64 // creation order, alternating hosts
	for i := range 10 {
		h := h1
		if i%2 == 1 {
			h = h2
		}
		ids = append(ids, scan(t, s, h.ID, base.Add(time.Duration(i)*time.Minute)).ID)
	}
	idsOf := func(f store.ScanFilter) []int64 {
		t.Helper()
		scans, err := s.Scans(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, sc := range scans {
			out = append(out, sc.ID)
		}
		return out
	}
	rev := func(xs ...int64) []int64 {
		out := make([]int64, 0, len(xs))
		for i := len(xs) - 1; i >= 0; i-- {
			out = append(out, xs[i])
		}
		return out
	}
	if got, want := idsOf(store.ScanFilter{}), rev(ids...); !reflect.DeepEqual(got, want) {
		t.Errorf("all scans = %v, want %v (newest first)", got, want)
	}
	if got, want := idsOf(store.ScanFilter{HostID: h2.ID}), rev(ids[1], ids[3], ids[5], ids[7], ids[9]); !reflect.DeepEqual(got, want) {
		t.Errorf("scans of s2 = %v, want %v", got, want)
	}
	// Paging: three at a time, each page starting below the last id seen.
	var paged []int64
	var before int64
	for page := 0; page < 10; page++ {
		got := idsOf(store.ScanFilter{Limit: 3, BeforeID: before})
		if len(got) == 0 {
			break
		}
		if len(got) > 3 {
			t.Fatalf("page of %d scans with limit 3", len(got))
		}
		paged = append(paged, got...)
		before = got[len(got)-1]
	}
	if want := rev(ids...); !reflect.DeepEqual(paged, want) {
		t.Errorf("paged scans = %v, want %v", paged, want)
	}

	failedAt := base.Add(time.Hour + 987*time.Nanosecond)
	if err := s.FailScan(ctx, ids[2], failedAt, "dial 127.0.0.2:22: connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishScan(ctx, ids[4], store.ScanCompleted, base.Add(time.Hour), result.Summary{Total: 1, Pass: 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := idsOf(store.ScanFilter{Status: store.ScanFailed}), []int64{ids[2]}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed scans = %v, want %v", got, want)
	}
	if got, want := idsOf(store.ScanFilter{HostID: h1.ID, Status: store.ScanRunning, BeforeID: ids[8]}), []int64{ids[6], ids[0]}; !reflect.DeepEqual(got, want) {
		t.Errorf("running scans of s1 before %d = %v, want %v", ids[8], got, want)
	}
	got, err := s.Scan(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	want := store.Scan{ID: ids[2], HostID: h1.ID, Trigger: "scheduled", Status: store.ScanFailed, BundleVersion: "1.0.0",
		StartedAt: base.Add(2 * time.Minute), FinishedAt: store.Micro(failedAt), Message: "dial 127.0.0.2:22: connection refused"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("failed scan = %+v\nwant %+v", got, want)
	}
	list, err := s.Scans(ctx, store.ScanFilter{Status: store.ScanFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], want) {
		t.Errorf("Scans() row = %+v\nwant %+v", list, want)
	}
	if err := s.FailScan(ctx, ids[9]+1000, base, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fail unknown scan: err = %v, want ErrNotFound", err)
	}
	// A finished scan keeps its outcome.
	if err := s.FailScan(ctx, ids[4], base.Add(2*time.Hour), "late"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("fail a completed scan: err = %v, want ErrConflict", err)
	}
	if sc, err := s.Scan(ctx, ids[4]); err != nil || sc.Status != store.ScanCompleted || sc.Message != "" {
		t.Errorf("completed scan after a late FailScan = %+v, %v", sc, err)
	}
	// The default limit is 100.
	for i := range 100 {
		scan(t, s, h1.ID, base.Add(time.Duration(i)*time.Second))
	}
	if got := idsOf(store.ScanFilter{}); len(got) != 100 {
		t.Errorf("default page has %d scans, want 100", len(got))
	}
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	h1, h2 := host(t, s, "c1"), host(t, s, "c2")
	if _, err := s.Credential(ctx, h1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("credential never set: err = %v, want ErrNotFound", err)
	}
	for i, sealed := range [][]byte{[]byte("first\x00sealed"), {0xff, 0x00, 0x01}} {
		if err := s.SetCredential(ctx, h1.ID, sealed); err != nil {
			t.Fatal(err)
		}
		got, err := s.Credential(ctx, h1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sealed) {
			t.Errorf("credential after set %d = %x, want %x", i, got, sealed)
		}
	}
	if err := s.SetCredential(ctx, h2.ID, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCredential(ctx, h2.ID+1000, []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("credential of unknown host: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteHost(ctx, h1.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Credential(ctx, h2.ID); err != nil || string(got) != "two" {
		t.Errorf("another host's credential after a delete = %q, %v", got, err)
	}
	// Reviving the host does not bring the erased credential back.
	host(t, s, "c1")
	if _, err := s.Credential(ctx, h1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("credential of a revived host: err = %v, want ErrNotFound", err)
	}
}
