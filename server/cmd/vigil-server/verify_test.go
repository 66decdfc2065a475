package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// TestVerifyCommand runs `vigil-server verify` on real exports signed with
// the data directory's key: OK for each format, exit 1 naming the reason
// for a tampered file, another key and an unsigned file.
func TestVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	idx, err := posture.LoadIndex("../../../rules")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	h, err := st.UpsertHost(ctx, store.Host{Name: "web1", Address: "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	ru := idx.Rules()[0]
	sc, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "manual", StartedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: []result.Result{{RuleID: ru.ID, Title: ru.Title,
		Severity: ru.Severity, Status: result.Fail, Reason: "differs", Time: now}}}); err != nil {
		t.Fatal(err)
	}
	signer, err := export.LoadOrCreateSigner(filepath.Join(dataDir, "export-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	ps := posture.NewService(st, idx, func() time.Time { return now.Add(time.Hour) })
	exp := export.New(export.Deps{Store: st, Posture: ps, Signer: signer, Now: func() time.Time { return now.Add(time.Hour) }})

	outDir := t.TempDir()
	for _, fm := range export.Formats() {
		file, err := exp.Export(ctx, export.Scope{HostID: h.ID}, fm, "auditor")
		if err != nil {
			t.Fatalf("export %s: %v", fm, err)
		}
		path := filepath.Join(outDir, file.Name)
		if err := os.WriteFile(path, file.Body, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := vs(t, "", "verify", path, "--data-dir", dataDir)
		want := "OK " + path + ": signed by key " + signer.KeyID() + ", sha256 " + file.SHA256 + "\n"
		if err != nil || out != want {
			t.Fatalf("verify %s: %v\n%s\nwant %s", fm, err, out, want)
		}
		// The flag may come first, too.
		if out, err := vs(t, "", "verify", "--data-dir", dataDir, path); err != nil || out != want {
			t.Fatalf("verify %s (flags first): %v\n%s", fm, err, out)
		}
	}

	file, err := exp.Export(ctx, export.Scope{}, export.JSON, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(outDir, "fleet.json")
	if err := os.WriteFile(good, file.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	// An auditor with only the public key.
	pub := filepath.Join(outDir, "export-public.pem")
	if err := os.WriteFile(pub, signer.PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := vs(t, "", "verify", good, "--public-key", pub); err != nil || !strings.HasPrefix(out, "OK "+good+": signed by key "+signer.KeyID()) {
		t.Fatalf("verify with --public-key: %v\n%s", err, out)
	}

	// Failures exit 1 and say why.
	tampered := filepath.Join(outDir, "tampered.json")
	body := []byte(strings.Replace(string(file.Body), `"generated_by": "auditor"`, `"generated_by": "auditos"`, 1))
	if string(body) == string(file.Body) {
		t.Fatal("tampering changed nothing")
	}
	if err := os.WriteFile(tampered, body, 0o600); err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	other, err := export.LoadOrCreateSigner(filepath.Join(otherDir, "export-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(outDir, "unsigned.json")
	if err := os.WriteFile(unsigned, []byte(`{"vigil_export":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", tampered, "--data-dir", dataDir}, "content altered: sha256 "},
		{[]string{"verify", good, "--data-dir", otherDir}, "signed by key " + signer.KeyID() + ", not " + other.KeyID()},
		{[]string{"verify", unsigned, "--data-dir", dataDir}, "no Vigil signature"},
		{[]string{"verify", filepath.Join(outDir, "missing.json"), "--data-dir", dataDir}, "no such file"},
		{[]string{"verify", good, "--data-dir", t.TempDir()}, "export-signing.key"}, // no key: refused, not created
		{[]string{"verify", "--data-dir", dataDir}, "FILE is required"},
	} {
		out, err := vs(t, "", c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: err %v, output %q, want it to name %q", c.args, err, out, c.want)
		}
		if ee, ok := err.(interface{ ExitCode() int }); ok && ee.ExitCode() != 1 {
			t.Errorf("%v: exit %d, want 1", c.args, ee.ExitCode())
		}
	}
}
