package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// govServices are the real governance, notification and export services
// a test server runs with.
type govServices struct {
	gov    *governance.Service
	ntf    *notify.Notifier
	exp    *export.Exporter
	signer *export.Signer
}

// wireGovernance builds the real services over d's store, posture service
// (made from the corpus when d has none) and clock, the way app/serve.go
// does: waivers applied to posture, the notifier as the alert sink, an
// export signing key in a temporary directory. Delivery retries are short
// so a refused connection fails within the test's patience.
func wireGovernance(t *testing.T, d *Deps, box notify.Box) govServices {
	t.Helper()
	if d.Posture == nil {
		idx, err := corpusIndex()
		if err != nil {
			t.Fatalf("load rule corpus %s: %v", corpusDir, err)
		}
		d.Posture = posture.NewService(d.Store, idx, d.Now)
	}
	ntf, err := notify.New(notify.Options{Store: d.Store, Box: box, Now: d.Now,
		RetryMax: 1, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("notify.New: %v", err)
	}
	gov, err := governance.New(governance.Config{Store: d.Store, Posture: d.Posture, Sink: ntf, Now: d.Now})
	if err != nil {
		t.Fatalf("governance.New: %v", err)
	}
	d.Posture.SetWaivers(gov)
	signer, err := export.LoadOrCreateSigner(filepath.Join(t.TempDir(), "export-signing.key"))
	if err != nil {
		t.Fatalf("export signer: %v", err)
	}
	exp := export.New(export.Deps{Store: d.Store, Posture: d.Posture, Signer: signer, Now: d.Now, ServerName: "vigil-test"})
	d.Governance, d.Notifier, d.Exporter = gov, ntf, exp
	return govServices{gov: gov, ntf: ntf, exp: exp, signer: signer}
}

// govAPI is fleetAPI with the governance services wired, and one signed-in
// user per role (the admin is fleetAPI's).
type govAPI struct {
	*fleetAPI
	govServices
	operator, secAdmin, secAdmin2, viewer, auditor string // tokens
}

func newGovAPI(t *testing.T) *govAPI {
	t.Helper()
	g := &govAPI{}
	f := newFleetAPIWith(t, func(d *Deps, box notify.Box) { g.govServices = wireGovernance(t, d, box) })
	g.fleetAPI = f
	g.operator, _ = f.tokenFor(f.addUser("olive", RoleOperator), time.Time{})
	g.secAdmin, _ = f.tokenFor(f.addUser("sam", RoleSecurityAdmin), time.Time{})
	g.secAdmin2, _ = f.tokenFor(f.addUser("sasha", RoleSecurityAdmin), time.Time{})
	g.viewer, _ = f.tokenFor(f.addUser("vic", RoleViewer), time.Time{})
	g.auditor, _ = f.tokenFor(f.addUser("audrey", RoleAuditor), time.Time{})
	return g
}

// newFleetAPIWith is newFleetAPI with a hook that may add to the Deps
// once the posture service and the secrets box are in place.
func newFleetAPIWith(t *testing.T, more func(d *Deps, box notify.Box)) *fleetAPI {
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
		more(d, box)
	})
	f.token, _ = f.tokenFor(f.addUser("fleet-admin", RoleAdmin), time.Time{})
	return f
}

// as calls the API with a given token.
func (g *govAPI) as(token, method, path string, body any) resp {
	g.t.Helper()
	return g.do(method, path, token, body)
}

// auditWith returns the audit entries of one action, oldest first.
func (g *govAPI) auditWith(action string) []store.AuditEntry {
	g.t.Helper()
	var out []store.AuditEntry
	for _, e := range g.auditEntries() {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// publicKey fetches and parses GET /export/public-key.
func (g *govAPI) publicKey(token string) ed25519.PublicKey {
	g.t.Helper()
	r := g.as(token, "GET", "/api/v1/export/public-key", nil)
	if r.status != 200 {
		g.t.Fatalf("public key: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-pem-file") {
		g.t.Fatalf("public key content type %q", ct)
	}
	block, _ := pem.Decode(r.body)
	if block == nil || block.Type != "PUBLIC KEY" {
		g.t.Fatalf("public key is not a PUBLIC KEY PEM block: %q", r.body)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		g.t.Fatalf("parse public key: %v", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		g.t.Fatalf("public key is %T, want ed25519", k)
	}
	return pub
}

// raiseAlert opens an alert directly in the store, as the evaluator would.
func (g *govAPI) raiseAlert(a store.Alert) store.Alert {
	g.t.Helper()
	if a.At.IsZero() {
		a.At = g.clock.Now()
	}
	out, created, err := g.st.RaiseAlert(context.Background(), a)
	if err != nil || !created {
		g.t.Fatalf("raise alert %s: created %v, %v", a.Key, created, err)
	}
	return out
}

// path formats a path with ids.
func pathf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
