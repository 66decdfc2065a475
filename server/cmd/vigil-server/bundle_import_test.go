package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/bundle"
	"github.com/vigilfleet/vigil/shared/pki"
	"github.com/vigilfleet/vigil/shared/resultsarchive"
)

const repoRules = "../../../rules"

// signedBundle builds the repository's rules as version v, signed by key.
func signedBundle(t *testing.T, v string, key []byte) string {
	t.Helper()
	var unsigned, signed bytes.Buffer
	if _, err := bundle.Build(&unsigned, repoRules, bundle.BuildOptions{Version: v, Created: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Sign(&unsigned, &signed, key); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "bundle-"+v+".tar")
	if err := os.WriteFile(f, signed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBundlePublishCommand(t *testing.T) {
	data := t.TempDir()
	pub, priv, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "release.pub")
	if err := bundle.WritePublicKey(pubFile, pub); err != nil {
		t.Fatal(err)
	}
	newer := signedBundle(t, "3000.2", priv)
	out, err := vs(t, "", "bundle", "publish", newer, "--data-dir", data, "--trusted-key", pubFile)
	if err != nil || !strings.Contains(out, "published bundle version 3000.2") {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(data, "bundle-signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key: %v, mode %v", err, fi)
	}
	// Air-gapped alias, refusing an older bundle.
	older := signedBundle(t, "3000.1", priv)
	out, err = vs(t, "", "bundle", "import", "--data-dir", data, "--trusted-key", pubFile, older)
	if err == nil || !strings.Contains(out, "older") {
		t.Errorf("older bundle import: err %v\n%s", err, out)
	}
	// Without the signer's key it is untrusted.
	out, err = vs(t, "", "bundle", "publish", signedBundle(t, "3000.3", priv), "--data-dir", data)
	if err == nil || !strings.Contains(out, "trusted key") {
		t.Errorf("untrusted bundle: err %v\n%s", err, out)
	}
	if out, err := vs(t, "", "bundle", "publish", "--data-dir", data); err == nil || !strings.Contains(out, "FILE is required") {
		t.Errorf("no file: err %v\n%s", err, out)
	}
}

func TestImportCommand(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	now := time.Now()
	ca, err := pki.LoadOrCreateCA(filepath.Join(data, "ca"), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(data, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	ag, err := st.UpsertAgent(ctx, store.Agent{Name: "airgap1", Status: store.AgentActive, EnrolledAt: now.Add(-time.Hour)})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "airgap1")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClient(csr, ag.ID, ag.Name, 24*time.Hour, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a := &agentpb.ResultsArchive{AgentId: ag.ID, AgentName: ag.Name, Hostname: "airgap1", BundleVersion: "1",
		Created: timestamppb.New(now), ArchiveId: "x1",
		End: &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED, Finished: timestamppb.New(now)}}
	for _, id := range []string{"r1", "r2", "r3"} {
		a.Results = append(a.Results, &agentpb.Result{RuleId: id, Status: "pass", Severity: "low", Time: timestamppb.New(now)})
	}
	var buf bytes.Buffer
	if err := resultsarchive.Write(&buf, a, key, certPEM); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "results.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := vs(t, "", "import", file, "--data-dir", data, "--rules-dir", repoRules)
	if err != nil || !strings.Contains(out, "imported 3 results from agent airgap1") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = vs(t, "", "import", "--data-dir", data, "--rules-dir", repoRules, file)
	if err != nil || !strings.Contains(out, "already imported") {
		t.Errorf("second import: %v\n%s", err, out)
	}
	// A server without a CA refuses and says how to get one.
	out, err = vs(t, "", "import", file, "--data-dir", t.TempDir(), "--rules-dir", repoRules)
	if err == nil || !strings.Contains(out, "vigil-server serve") {
		t.Errorf("import without a CA: %v\n%s", err, out)
	}
}
