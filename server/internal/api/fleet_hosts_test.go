package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/agentless"
	"github.com/vigilfleet/vigil/server/internal/store"
)

func TestFleetHostCreateReadUpdateDelete(t *testing.T) {
	f := newFleetAPI(t)
	f.addGroup("web")
	f.addGroup("db")
	key, known := testKey(t)
	const password = "s3cret-sudo-password"
	body := map[string]any{
		"name": "web-01.example", "address": "10.0.0.5", "os": "debian 12",
		"labels": map[string]string{"env": "prod"}, "groups": []string{"web"},
		"ssh": map[string]any{"user": "vigil", "port": 2222, "private_key": key, "password": password, "known_hosts": known, "sudo": true},
	}
	r := f.post("/api/v1/hosts", body)
	f.want(r, http.StatusCreated, "")
	if bytes.Contains(r.body, []byte("PRIVATE KEY")) || bytes.Contains(r.body, []byte(password)) {
		t.Fatalf("create echoed a secret: %s", r.body)
	}
	var h map[string]any
	r.json(t, &h)
	want := []string{"address", "agent_id", "band", "groups", "id", "labels", "last_scan_at", "mode", "name", "next_scan_at", "os", "score"}
	if got := keysOf(h); !slices.Equal(got, want) {
		t.Fatalf("host keys %v, want %v", got, want)
	}
	if h["name"] != "web-01.example" || h["address"] != "10.0.0.5" || h["os"] != "debian 12" || h["mode"] != "agentless" ||
		h["agent_id"] != nil || h["score"] != nil || h["band"] != nil || h["last_scan_at"] != nil {
		t.Fatalf("created host %v", h)
	}
	id := int64(h["id"].(float64))

	// The credential is stored sealed for this host alone.
	sealed, err := f.st.Credential(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) || bytes.Contains(sealed, []byte(password)) || bytes.Contains(sealed, []byte("vigil")) {
		t.Fatal("the stored credential holds plaintext")
	}
	cred, err := agentless.OpenCredential(f.box, id, sealed)
	if err != nil {
		t.Fatalf("open stored credential: %v", err)
	}
	if cred.User != "vigil" || cred.Port != 2222 || cred.PrivateKey != key || cred.Password != password || !cred.Sudo {
		t.Fatalf("stored credential %+v differs from what was sent", cred)
	}
	if _, err := agentless.OpenCredential(f.box, id+1, sealed); err == nil {
		t.Fatal("the credential opens for another host")
	}
	if f.wakes.Load() == 0 {
		t.Error("adding a host did not wake the scheduler")
	}

	// Duplicate name.
	f.want(f.post("/api/v1/hosts", body), http.StatusConflict, "name")

	// Read.
	r = f.get(fmt.Sprintf("/api/v1/hosts/%d", id))
	f.want(r, http.StatusOK, "")
	f.want(f.get("/api/v1/hosts/abc"), http.StatusBadRequest, "id")
	f.want(f.get("/api/v1/hosts/999999"), http.StatusNotFound, "-")

	// Update: address, labels and groups; a new credential replaces the old.
	key2, known2 := testKey(t)
	r = f.put(fmt.Sprintf("/api/v1/hosts/%d", id), map[string]any{
		"address": "web-01.internal", "labels": map[string]string{"env": "staging", "tier": "1"}, "groups": []string{"db", "web", "db"},
		"ssh": map[string]any{"user": "scanner", "private_key": key2, "known_hosts": known2},
	})
	f.want(r, http.StatusOK, "")
	var up hostJSON
	r.json(t, &up)
	if up.Address != "web-01.internal" || up.OS != "debian 12" || up.Labels["tier"] != "1" || !slices.Equal(up.Groups, []string{"db", "web"}) {
		t.Fatalf("updated host %+v", up)
	}
	sealed, _ = f.st.Credential(context.Background(), id)
	if cred, err = agentless.OpenCredential(f.box, id, sealed); err != nil || cred.User != "scanner" || cred.PrivateKey != key2 {
		t.Fatalf("replaced credential %+v, %v", cred, err)
	}
	f.want(f.put(fmt.Sprintf("/api/v1/hosts/%d", id), map[string]any{"name": "other"}), http.StatusBadRequest, "name")
	f.want(f.put(fmt.Sprintf("/api/v1/hosts/%d", id), map[string]any{"groups": []string{"nope"}}), http.StatusBadRequest, "groups")
	f.want(f.put("/api/v1/hosts/424242", map[string]any{"os": "x"}), http.StatusNotFound, "-")

	// The audit log names each change without secrets.
	var actions []string
	for _, e := range f.auditEntries() {
		actions = append(actions, e.Action)
		if strings.Contains(e.Detail, "PRIVATE KEY") || strings.Contains(e.Detail, password) {
			t.Fatalf("audit entry %s holds a secret: %s", e.Action, e.Detail)
		}
		if e.Action == "host.create" && (e.Target != fmt.Sprintf("host/%d", id) || !strings.Contains(e.Detail, `"user":"vigil"`)) {
			t.Fatalf("host.create entry %+v", e)
		}
	}
	if !slices.Contains(actions, "host.create") || !slices.Contains(actions, "host.update") {
		t.Fatalf("audit actions %v", actions)
	}

	// Delete: gone from reads, credential erased, history kept.
	f.want(f.del(fmt.Sprintf("/api/v1/hosts/%d", id)), http.StatusNoContent, "")
	f.want(f.get(fmt.Sprintf("/api/v1/hosts/%d", id)), http.StatusNotFound, "-")
	f.want(f.del(fmt.Sprintf("/api/v1/hosts/%d", id)), http.StatusNotFound, "-")
	if _, err := f.st.Credential(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("credential after delete: %v", err)
	}
	if last := f.auditEntries(); last[len(last)-1].Action != "host.delete" {
		t.Fatalf("last audit action %s, want host.delete", last[len(last)-1].Action)
	}
}

func TestFleetHostCreateRejectsBadInput(t *testing.T) {
	f := newFleetAPI(t)
	f.addGroup("web")
	key, known := testKey(t)
	good := func() map[string]any {
		return map[string]any{"name": "h1", "address": "192.0.2.1", "groups": []string{"web"},
			"ssh": map[string]any{"user": "u", "private_key": key, "known_hosts": known}}
	}
	sshWith := func(k string, v any) map[string]any {
		b := good()
		s := b["ssh"].(map[string]any)
		if v == nil {
			delete(s, k)
		} else {
			s[k] = v
		}
		return b
	}
	with := func(k string, v any) map[string]any {
		b := good()
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"bad name", with("name", "web 01"), "name"},
		{"empty name", with("name", ""), "name"},
		{"long name", with("name", strings.Repeat("a", 254)), "name"},
		{"bad address", with("address", "-bad-.example"), "address"},
		{"no address", with("address", nil), "address"},
		{"unknown group", with("groups", []string{"web", "nope"}), "groups"},
		{"bad label key", with("labels", map[string]string{"bad key": "v"}), "labels"},
		{"control char in os", with("os", "deb\x00ian"), "os"},
		{"no ssh", with("ssh", nil), "ssh"},
		{"no user", sshWith("user", nil), "ssh.user"},
		{"bad port", sshWith("port", 70000), "ssh.port"},
		{"no key or password", sshWith("private_key", nil), "ssh.private_key"},
		{"garbage key", sshWith("private_key", "not a key"), "ssh.private_key"},
		{"no known_hosts", sshWith("known_hosts", nil), "ssh.known_hosts"},
		{"bad known_hosts", sshWith("known_hosts", known+"garbage line here\n"), "ssh.known_hosts"},
		{"unknown field", with("colour", "red"), "colour"},
		{"unknown ssh field", sshWith("passphrase", "x"), "passphrase"},
		{"wrong type", with("labels", []string{"a"}), "labels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.post("/api/v1/hosts", c.body)
			f.want(r, http.StatusBadRequest, c.field)
			if bytes.Contains(r.body, []byte("PRIVATE KEY")) {
				t.Fatalf("error echoed the key: %s", r.body)
			}
		})
	}
	f.want(f.post("/api/v1/hosts", "{"), http.StatusBadRequest, "")
	big := good()
	big["os"] = strings.Repeat("x", 2<<20)
	f.want(f.post("/api/v1/hosts", big), http.StatusRequestEntityTooLarge, "")
	hosts, err := f.st.Hosts(context.Background())
	if err != nil || len(hosts) != 0 {
		t.Fatalf("rejected creates left hosts: %v %v", hosts, err)
	}
	// An IPv6 address and a DNS name are both fine.
	f.want(f.post("/api/v1/hosts", with("address", "2001:db8::1")), http.StatusCreated, "")
	b := with("address", "db-1.example.org")
	b["name"] = "h2"
	f.want(f.post("/api/v1/hosts", b), http.StatusCreated, "")
}

func TestFleetHostListFiltersSortsAndPages(t *testing.T) {
	f := newFleetAPI(t)
	f.addGroup("web")
	f.addGroup("db")
	var ids []int64
	for i := range 12 {
		groups := []string{"web"}
		if i%3 == 0 {
			groups = []string{"db"}
		}
		os := "debian 12"
		if i%2 == 1 {
			os = "ubuntu 22.04"
		}
		h := f.addHost(store.Host{Name: fmt.Sprintf("host-%02d", i), Address: fmt.Sprintf("10.0.0.%d", i+1), OS: os,
			Labels: map[string]string{"env": []string{"prod", "dev"}[i%2], "rack": fmt.Sprint(i % 4)}, Groups: groups})
		ids = append(ids, h.ID)
	}
	// Scores: host-00 all pass (excellent), host-01 half failing (poor or
	// worse), host-02 all failing; the rest never scanned.
	pass := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == "low" })
	fail := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == "medium" })
	f.scan(ids[0], f.res(pass.ID, result.Pass), f.res(fail.ID, result.Pass))
	f.clock.Advance(time.Minute)
	f.scan(ids[1], f.res(pass.ID, result.Pass), f.res(fail.ID, result.Fail))
	f.clock.Advance(time.Minute)
	f.scan(ids[2], f.res(pass.ID, result.Fail), f.res(fail.ID, result.Fail))

	list := func(q string) ([]hostJSON, int) {
		t.Helper()
		r := f.get("/api/v1/hosts" + q)
		f.want(r, http.StatusOK, "")
		var out struct {
			Hosts []hostJSON `json:"hosts"`
			Total int        `json:"total"`
		}
		r.json(t, &out)
		return out.Hosts, out.Total
	}
	names := func(hs []hostJSON) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}

	all, total := list("")
	if total != 12 || len(all) != 12 || all[0].Name != "host-00" {
		t.Fatalf("list: total %d, %v", total, names(all))
	}
	if all[0].Score == nil || *all[0].Score != 100 || all[0].Band == nil || *all[0].Band != "excellent" || all[0].LastScanAt == nil {
		t.Fatalf("scanned host %+v", all[0])
	}
	if all[5].Score != nil || all[5].Band != nil || all[5].LastScanAt != nil {
		t.Fatalf("never-scanned host %+v", all[5])
	}
	// The raw JSON has the contract fields with null for never.
	var raw struct {
		Hosts []map[string]any `json:"hosts"`
	}
	f.get("/api/v1/hosts?q=host-05").json(t, &raw)
	for _, k := range []string{"id", "name", "address", "os", "score", "last_scan_at"} {
		if _, ok := raw.Hosts[0][k]; !ok {
			t.Fatalf("host item lacks %q: %v", k, raw.Hosts[0])
		}
	}
	if raw.Hosts[0]["score"] != nil || raw.Hosts[0]["last_scan_at"] != nil {
		t.Fatalf("never-scanned host item %v", raw.Hosts[0])
	}

	cases := []struct {
		q    string
		want []string
	}{
		{"?q=HOST-1", []string{"host-10", "host-11"}},
		{"?q=10.0.0.12", []string{"host-11"}},
		{"?group=db", []string{"host-00", "host-03", "host-06", "host-09"}},
		{"?os=ubuntu&group=db", []string{"host-03", "host-09"}},
		{"?label=env=dev&label=rack=1", []string{"host-01", "host-05", "host-09"}},
		{"?label=rack", names(all)},
		{"?band=excellent", []string{"host-00"}},
		{"?band=critical,fair", []string{"host-01", "host-02"}},
		{"?sort=-score&limit=3", []string{"host-00", "host-01", "host-02"}},
		{"?sort=score&limit=4", []string{"host-02", "host-01", "host-00", "host-03"}},
		{"?sort=-last_scan_at&limit=3", []string{"host-02", "host-01", "host-00"}},
		{"?sort=-name&limit=2", []string{"host-11", "host-10"}},
		{"?limit=2&offset=10", []string{"host-10", "host-11"}},
		{"?offset=50", nil},
	}
	for _, c := range cases {
		got, _ := list(c.q)
		if !slices.Equal(names(got), c.want) {
			t.Errorf("%s: %v, want %v", c.q, names(got), c.want)
		}
	}
	if _, total := list("?band=none&limit=1"); total != 9 {
		t.Errorf("band=none total %d, want 9", total)
	}

	bad := []struct{ q, field string }{
		{"?limit=0", "limit"}, {"?limit=1001", "limit"}, {"?limit=x", "limit"}, {"?offset=-1", "offset"},
		{"?sort=size", "sort"}, {"?band=great", "band"}, {"?group=nope", "group"}, {"?label==v", "label"},
	}
	for _, b := range bad {
		f.want(f.get("/api/v1/hosts"+b.q), http.StatusBadRequest, b.field)
	}
}

func TestFleetHostFindings(t *testing.T) {
	f := newFleetAPI(t)
	h := f.addHost(store.Host{Name: "h1", Address: "10.0.0.1"})
	derived := f.ruleWhere(func(r *rule.Rule) bool { return f.hasDerivedRef(r) && r.Severity == "high" })
	// derivedFw is a framework derived reaches only through a catalogue;
	// other is a rule outside it, so the framework filter tells them apart.
	derivedFw := ""
	for _, ref := range f.idx.Refs(derived.ID) {
		if !slices.Contains(derived.References.Frameworks(), ref.Framework) {
			derivedFw = ref.Framework
		}
	}
	inFw, _ := f.idx.RuleIDs(derivedFw)
	other := f.ruleWhere(func(r *rule.Rule) bool { return r.Severity == "low" && !slices.Contains(inFw, r.ID) })
	ev := result.Evidence{Method: "file_content_match", Probe: "/etc/passwd", Expected: "no hash", Actual: "hash of root", Time: f.clock.Now()}
	sc := f.scan(h.ID, f.res(derived.ID, result.Fail, ev), f.res(other.ID, result.Pass))

	r := f.get(fmt.Sprintf("/api/v1/hosts/%d/findings", h.ID))
	f.want(r, http.StatusOK, "")
	var out struct {
		HostID   int64            `json:"host_id"`
		Findings []map[string]any `json:"findings"`
	}
	r.json(t, &out)
	if out.HostID != h.ID || len(out.Findings) != 2 {
		t.Fatalf("findings %s", r.body)
	}
	var fd map[string]any
	for _, x := range out.Findings {
		if x["rule_id"] == derived.ID {
			fd = x
		}
	}
	if fd["status"] != "fail" || fd["severity"] != "high" || fd["title"] != derived.Title || fd["scan_id"] != float64(sc.ID) ||
		fd["evidence_hash"] == "" || fd["observed_at"] == nil || fd["reason"] != "test fail" {
		t.Fatalf("finding %v", fd)
	}
	var refs []refJSON
	j, _ := json.Marshal(fd["framework_refs"])
	_ = json.Unmarshal(j, &refs)
	wantRefs := f.idx.Refs(derived.ID)
	if len(refs) != len(wantRefs) || len(refs) <= len(derived.References.Pairs()) {
		t.Fatalf("refs %v, want the index's %v (derived included)", refs, wantRefs)
	}
	for i := range refs {
		if refs[i].Framework != wantRefs[i].Framework || refs[i].Control != wantRefs[i].Control {
			t.Fatalf("ref %d: %v, want %v", i, refs[i], wantRefs[i])
		}
	}

	count := func(q string) int {
		t.Helper()
		r := f.get(fmt.Sprintf("/api/v1/hosts/%d/findings%s", h.ID, q))
		f.want(r, http.StatusOK, "")
		var o struct{ Findings []findingJSON }
		r.json(t, &o)
		return len(o.Findings)
	}
	checks := map[string]int{
		"?status=fail": 1, "?status=pass,fail": 2, "?status=error": 0, "?severity=high": 1, "?severity=LOW": 1,
		"?rule=" + other.ID: 1, "?framework=" + derivedFw: 1, "?status=pass&severity=high": 0,
	}
	for q, want := range checks {
		if got := count(q); got != want {
			t.Errorf("%s: %d findings, want %d", q, got, want)
		}
	}
	for q, field := range map[string]string{"?status=broken": "status", "?severity=urgent": "severity", "?framework=nope": "framework"} {
		f.want(f.get(fmt.Sprintf("/api/v1/hosts/%d/findings%s", h.ID, q)), http.StatusBadRequest, field)
	}
	f.want(f.get("/api/v1/hosts/777/findings"), http.StatusNotFound, "-")
	f.want(f.get("/api/v1/hosts/0/findings"), http.StatusBadRequest, "id")
}
