package api

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

func (f *fleetAPI) putFacts(hostID int64, facts store.HostFacts) {
	f.t.Helper()
	if _, err := f.st.PutFacts(context.Background(), hostID, facts); err != nil {
		f.t.Fatal(err)
	}
}

func TestHostInventory(t *testing.T) {
	f := newFleetAPI(t)
	h := f.addHost(store.Host{Name: "inv-web1", Address: "127.0.0.9"})

	// Before any inventory: the shape with nulls and empty lists.
	var empty map[string]any
	r := f.get(fmt.Sprintf("/api/v1/hosts/%d/inventory", h.ID))
	f.want(r, http.StatusOK, "-")
	r.json(t, &empty)
	if empty["collected_at"] != nil || fmt.Sprint(empty["packages"]) != "[]" || fmt.Sprint(empty["changes"]) != "[]" || empty["host"] != "inv-web1" {
		t.Errorf("inventory before the first report: %s", r.body)
	}

	at := f.clock.Now().Add(-2 * time.Hour)
	facts := store.HostFacts{
		OS: "Debian GNU/Linux 12", Kernel: "6.1.0-18-amd64",
		Packages:    []store.Package{{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64"}},
		Services:    []store.Service{{Name: "ssh", Enabled: true, Active: true}},
		Users:       []store.Account{{Name: "root", ID: 0, Home: "/root", Shell: "/bin/bash"}},
		Groups:      []store.Account{{Name: "sudo", ID: 27, Members: []string{"alice"}}},
		Ports:       []store.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"}},
		Interfaces:  []store.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", Addresses: []string{"10.0.0.5/24"}}},
		CollectedAt: at,
	}
	f.putFacts(h.ID, facts)
	facts.Packages = append(facts.Packages, store.Package{Name: "nginx", Version: "1.22.1-9", Arch: "amd64"})
	facts.CollectedAt = at.Add(time.Hour)
	f.putFacts(h.ID, facts)

	var got inventoryJSON
	r = f.get(fmt.Sprintf("/api/v1/hosts/%d/inventory", h.ID))
	f.want(r, http.StatusOK, "-")
	r.json(t, &got)
	if got.HostID != h.ID || got.CollectedAt == nil || !got.CollectedAt.Equal(at.Add(time.Hour)) || got.Kernel != "6.1.0-18-amd64" ||
		len(got.Packages) != 2 || got.Packages[0].Name != "nginx" || len(got.Ports) != 1 || got.Ports[0].Port != 22 ||
		len(got.Groups) != 1 || !reflect.DeepEqual(got.Groups[0].Members, []string{"alice"}) || len(got.Interfaces) != 1 {
		t.Errorf("inventory: %s", r.body)
	}
	want := []factChangeJSON{{At: at.Add(time.Hour).UTC(), Kind: "package", Change: "added", Item: "nginx:amd64", New: "1.22.1-9"}}
	if !reflect.DeepEqual(got.Changes, want) {
		t.Errorf("changes %+v, want %+v", got.Changes, want)
	}
	// since after the change: none listed.
	r = f.get(fmt.Sprintf("/api/v1/hosts/%d/inventory?since=%s", h.ID, at.Add(90*time.Minute).UTC().Format(time.RFC3339)))
	f.want(r, http.StatusOK, "-")
	r.json(t, &got)
	if len(got.Changes) != 0 {
		t.Errorf("changes since after the change: %+v", got.Changes)
	}

	f.want(f.get("/api/v1/hosts/999999/inventory"), http.StatusNotFound, "")
	f.want(f.get("/api/v1/hosts/abc/inventory"), http.StatusBadRequest, "id")
	f.want(f.get(fmt.Sprintf("/api/v1/hosts/%d/inventory?since=yesterday", h.ID)), http.StatusBadRequest, "since")
	// A deleted host is gone here too.
	if err := f.st.DeleteHost(context.Background(), h.ID); err != nil {
		t.Fatal(err)
	}
	f.want(f.get(fmt.Sprintf("/api/v1/hosts/%d/inventory", h.ID)), http.StatusNotFound, "")
}

func TestInventorySearch(t *testing.T) {
	f := newFleetAPI(t)
	a := f.addHost(store.Host{Name: "srch-a"})
	b := f.addHost(store.Host{Name: "srch-b"})
	at := f.clock.Now()
	f.putFacts(a.ID, store.HostFacts{
		Packages:    []store.Package{{Name: "openssl", Version: "3.0.11-1", Arch: "amd64"}},
		Ports:       []store.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 443, Process: "nginx"}},
		Services:    []store.Service{{Name: "nginx", Enabled: true, Active: false}},
		CollectedAt: at,
	})
	f.putFacts(b.ID, store.HostFacts{
		Packages:    []store.Package{{Name: "openssl", Version: "3.0.9-1", Arch: "amd64"}},
		CollectedAt: at,
	})

	var out struct {
		Matches []map[string]any `json:"matches"`
	}
	r := f.get("/api/v1/inventory/search?package=openssl")
	f.want(r, http.StatusOK, "-")
	out.Matches = nil
	r.json(t, &out)
	wantPkg := []map[string]any{
		{"host_id": float64(a.ID), "host": "srch-a", "kind": "package", "name": "openssl", "version": "3.0.11-1", "arch": "amd64"},
		{"host_id": float64(b.ID), "host": "srch-b", "kind": "package", "name": "openssl", "version": "3.0.9-1", "arch": "amd64"},
	}
	if !reflect.DeepEqual(out.Matches, wantPkg) {
		t.Errorf("package search: %s", r.body)
	}
	r = f.get("/api/v1/inventory/search?port=443")
	f.want(r, http.StatusOK, "-")
	out.Matches = nil
	r.json(t, &out)
	wantPort := []map[string]any{{"host_id": float64(a.ID), "host": "srch-a", "kind": "port", "protocol": "tcp",
		"address": "0.0.0.0", "port": float64(443), "process": "nginx"}}
	if !reflect.DeepEqual(out.Matches, wantPort) {
		t.Errorf("port search: %s", r.body)
	}
	r = f.get("/api/v1/inventory/search?service=nginx")
	f.want(r, http.StatusOK, "-")
	out.Matches = nil
	r.json(t, &out)
	wantSvc := []map[string]any{{"host_id": float64(a.ID), "host": "srch-a", "kind": "service", "name": "nginx", "enabled": true, "active": false}}
	if !reflect.DeepEqual(out.Matches, wantSvc) {
		t.Errorf("service search: %s", r.body)
	}
	r = f.get("/api/v1/inventory/search?package=openssl&port=443")
	f.want(r, http.StatusOK, "-")
	out.Matches = nil
	r.json(t, &out)
	if len(out.Matches) != 2 || out.Matches[0]["host"] != "srch-a" || out.Matches[1]["kind"] != "port" {
		t.Errorf("package and port: %s", r.body)
	}
	r = f.get("/api/v1/inventory/search?port=8080")
	f.want(r, http.StatusOK, "-")
	if string(r.body) != `{"matches":[]}` {
		t.Errorf("no match: %s, want an empty list", r.body)
	}
	f.want(f.get("/api/v1/inventory/search"), http.StatusBadRequest, "package")
	f.want(f.get("/api/v1/inventory/search?port=70000"), http.StatusBadRequest, "port")
	f.want(f.get("/api/v1/inventory/search?port=ssh"), http.StatusBadRequest, "port")
	f.want(f.get("/api/v1/inventory/search?package=x&limit=0"), http.StatusBadRequest, "limit")
}
