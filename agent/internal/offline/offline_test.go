package offline

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/enroll"
	"github.com/vigilfleet/vigil/agent/internal/servertest"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/bundle"
	"github.com/vigilfleet/vigil/shared/resultsarchive"
)

func TestOfflineArchiveVerifies(t *testing.T) {
	srv := servertest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	id, err := enroll.Enroll(t.Context(), enroll.Options{Server: srv.Addr, Token: srv.Token, CAPin: srv.CA.Pin(),
		StateDir: stateDir, Hostname: "airgap-1"})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := bundletest.Keys(t)
	corpus := bundletest.Corpus(t, "ssh-", "accounts-no-")
	bfile := filepath.Join(t.TempDir(), "rules.bundle")
	if err := os.WriteFile(bfile, bundletest.Signed(t, corpus, "2026.11.7", priv), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results.vra")
	a, err := Scan(t.Context(), Options{BundleFile: bfile, Out: out, StateDir: stateDir,
		Trusted: []ed25519.PublicKey{pub}, Hostname: "airgap-1"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := resultsarchive.Read(data)
	if err != nil {
		t.Fatalf("archive does not verify: %v", err)
	}
	if err := got.VerifyChain(srv.CA.Pool()); err != nil {
		t.Errorf("archive certificate does not chain to the server CA: %v", err)
	}
	ga := got.Archive
	if ga.GetAgentId() != id.AgentID || ga.GetAgentName() != "airgap-1" || ga.GetHostname() != "airgap-1" ||
		ga.GetBundleVersion() != "2026.11.7" || ga.GetBundleDigest() != a.GetBundleDigest() || ga.GetArchiveId() == "" {
		t.Errorf("archive header = %+v", ga)
	}
	end := ga.GetEnd()
	if end.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED || end.GetTotal() == 0 || int(end.GetTotal()) != len(ga.GetResults()) {
		t.Errorf("end = %+v with %d results", end, len(ga.GetResults()))
	}
	if end.GetInventory() == nil || end.GetInventory().GetKernel() == "" {
		t.Error("archive lacks the inventory")
	}

	// An older bundle is now a downgrade: refused, nothing written.
	older := filepath.Join(t.TempDir(), "older.bundle")
	if err := os.WriteFile(older, bundletest.Signed(t, corpus, "2026.11.6", priv), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "results2.vra")
	_, err = Scan(t.Context(), Options{BundleFile: older, Out: out2, StateDir: stateDir, Trusted: []ed25519.PublicKey{pub}})
	if !errors.Is(err, bundle.ErrDowngrade) {
		t.Errorf("older bundle: %v, want ErrDowngrade", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Error("archive written for a refused bundle")
	}
	// Expired, with another key: refused as well.
	now := time.Now()
	_, otherPriv, _ := bundletest.Keys(t)
	foreign := filepath.Join(t.TempDir(), "foreign.bundle")
	if err := os.WriteFile(foreign, bundletest.Sign(t, bundletest.Build(t, corpus, "2026.12.1", now.Add(-time.Hour), now.Add(time.Hour)), otherPriv), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(t.Context(), Options{BundleFile: foreign, Out: out2, StateDir: stateDir, Trusted: []ed25519.PublicKey{pub}}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Errorf("foreign bundle: %v, want ErrUntrusted", err)
	}
}

func TestOfflineNeedsEnrolment(t *testing.T) {
	pub, _, _ := bundletest.Keys(t)
	_, err := Scan(t.Context(), Options{BundleFile: "x", Out: filepath.Join(t.TempDir(), "o"), StateDir: t.TempDir(), Trusted: []ed25519.PublicKey{pub}})
	if err == nil {
		t.Fatal("offline scan without an enrolment succeeded")
	}
}
