package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// corpusIndex loads the rule corpus once per test binary: an Index is
// immutable once built and loading it takes seconds under -race, so every
// fleet test shares one.
var corpusIndex = sync.OnceValues(func() (*posture.Index, error) { return posture.LoadIndex(corpusDir) })

// fleetAPI is the API over a real SQLite store, the real rule corpus and a
// real posture service, with an admin's API token.
type fleetAPI struct {
	*env
	ps    *posture.Service
	idx   *posture.Index
	box   *secrets.Box
	token string
	wakes *atomic.Int64
}

func newFleetAPI(t *testing.T) *fleetAPI {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := corpusIndex()
	if err != nil {
		t.Fatalf("load rule corpus %s: %v", corpusDir, err)
	}
	f := &fleetAPI{idx: idx, box: box, wakes: &atomic.Int64{}}
	f.env = newEnv(t, func(d *Deps) {
		f.ps = posture.NewService(d.Store, f.idx, d.Now)
		d.Posture = f.ps
		d.Sealer = box
		d.Wake = func() { f.wakes.Add(1) }
	})
	f.token, _ = f.tokenFor(f.addUser("fleet-admin", RoleAdmin), time.Time{})
	return f
}

// get, post, put and del call the API as the admin.
func (f *fleetAPI) get(path string) resp { f.t.Helper(); return f.do("GET", path, f.token, nil) }
func (f *fleetAPI) post(path string, body any) resp {
	f.t.Helper()
	return f.do("POST", path, f.token, body)
}
func (f *fleetAPI) put(path string, body any) resp {
	f.t.Helper()
	return f.do("PUT", path, f.token, body)
}
func (f *fleetAPI) del(path string) resp { f.t.Helper(); return f.do("DELETE", path, f.token, nil) }

// want fails unless r has the status; for an error status it also wants
// the error body to name field (when field is not "-").
func (f *fleetAPI) want(r resp, status int, field string) {
	f.t.Helper()
	if r.status != status {
		f.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if status >= 400 && field != "-" {
		if b := r.errorBody(f.t); b.Error.Field != field {
			f.t.Fatalf("error names field %q, want %q; body %s", b.Error.Field, field, r.body)
		}
	}
}

// addHost puts a host straight into the store.
func (f *fleetAPI) addHost(h store.Host) store.Host {
	f.t.Helper()
	out, err := f.st.UpsertHost(context.Background(), h)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fleetAPI) addGroup(name string) store.Group {
	f.t.Helper()
	g, err := f.st.CreateGroup(context.Background(), store.Group{Name: name, CreatedAt: f.clock.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	return g
}

// scan records a completed scan of host at the clock's time with the
// given results, the way the scheduler would: results ingested, scan
// finished, posture recorded (snapshots), score and band on the host.
func (f *fleetAPI) scan(hostID int64, rs ...result.Result) store.Scan {
	f.t.Helper()
	ctx := context.Background()
	at := f.clock.Now()
	for i := range rs {
		if rs[i].Time.IsZero() {
			rs[i].Time = at
		}
	}
	sc, err := f.st.CreateScan(ctx, store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "test-1", StartedAt: at})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: rs}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.FinishScan(ctx, sc.ID, store.ScanCompleted, at.Add(time.Second), result.Summarize(rs)); err != nil {
		f.t.Fatal(err)
	}
	out, err := f.ps.RecordScan(ctx, hostID, sc.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	f.complete(hostID, store.Completion{ScannedAt: at, NextScanAt: at.Add(6 * time.Hour), Score: out.Score, Band: string(out.Band)})
	sc, err = f.st.Scan(ctx, sc.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return sc
}

// complete leases host and completes its claim, as the scheduler does
// after a scan; other hosts claimed along the way are released unchanged.
func (f *fleetAPI) complete(hostID int64, c store.Completion) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.st.RequestScan(ctx, hostID, "manual", c.ScannedAt.Add(-time.Minute)); err != nil {
		f.t.Fatal(err)
	}
	claims, err := f.st.ClaimDue(ctx, store.ClaimRequest{Owner: "fleet-test", Now: time.Now().Add(24 * time.Hour), Limit: 100000, Lease: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	held := false
	for _, cl := range claims {
		if cl.HostID == hostID {
			held = true
			if err := f.st.CompleteClaim(ctx, hostID, "fleet-test", c); err != nil {
				f.t.Fatal(err)
			}
			continue
		}
		if err := f.st.ReleaseClaim(ctx, cl.HostID, "fleet-test", f.clock.Now()); err != nil {
			f.t.Fatal(err)
		}
	}
	if !held {
		f.t.Fatalf("host %d was not claimable", hostID)
	}
}

// res builds a result for a corpus rule the way the engine reports it.
func (f *fleetAPI) res(ruleID string, st result.Status, evidence ...result.Evidence) result.Result {
	f.t.Helper()
	r := f.idx.Rule(ruleID)
	if r == nil {
		f.t.Fatalf("rule %s not in the corpus", ruleID)
	}
	return result.Result{
		RuleID: r.ID, Title: r.Title, Severity: r.Severity, Category: r.Category, Status: st,
		Reason: "test " + string(st), References: r.References.Pairs(), Evidence: evidence,
	}
}

// ruleWhere returns the first corpus rule (by id) that satisfies ok.
func (f *fleetAPI) ruleWhere(ok func(*rule.Rule) bool) *rule.Rule {
	f.t.Helper()
	for _, r := range f.idx.Rules() {
		if ok(r) {
			return r
		}
	}
	f.t.Fatal("no corpus rule fits the test")
	return nil
}

// hasDerivedRef reports whether the index maps the rule to a framework
// its own references do not name (a FedRAMP or CMMC control derived
// through a catalogue).
func (f *fleetAPI) hasDerivedRef(r *rule.Rule) bool {
	direct := r.References.Frameworks()
	for _, ref := range f.idx.Refs(r.ID) {
		if !slices.Contains(direct, ref.Framework) {
			return true
		}
	}
	return false
}

// testKey returns a fresh unencrypted OpenSSH private key and a
// known_hosts line for a host key.
func testKey(t *testing.T) (privateKey, knownHosts string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), "127.0.0.2 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))) + "\n"
}

// keysOf returns a decoded JSON object's keys, sorted.
func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
