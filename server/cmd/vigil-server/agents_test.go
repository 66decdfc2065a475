package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
	"github.com/vigilfleet/vigil/shared/pki"
)

func TestTokenCreateAndAgentRevoke(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"token", "create", "--data-dir", dir, "--ttl", "2h", "--uses", "2", "--labels", "site=lab,tier=1", "--json"},
		strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("token create exit %d: %s", code, errb.String())
	}
	var tok struct {
		Token     string            `json:"token"`
		CAPin     string            `json:"ca_pin"`
		ExpiresAt time.Time         `json:"expires_at"`
		Labels    map[string]string `json:"labels"`
		Enroll    string            `json:"enroll_command"`
	}
	if err := json.Unmarshal(out.Bytes(), &tok); err != nil {
		t.Fatalf("token create output %q: %v", out.String(), err)
	}
	ca, err := pki.LoadCA(filepath.Join(dir, "ca", "ca.crt"), filepath.Join(dir, "ca", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, agentapi.TokenPrefix) || tok.CAPin != ca.Pin() || tok.Labels["tier"] != "1" ||
		time.Until(tok.ExpiresAt) > 2*time.Hour || time.Until(tok.ExpiresAt) < time.Hour ||
		!strings.Contains(tok.Enroll, "--token "+tok.Token) || !strings.Contains(tok.Enroll, "--ca-pin "+ca.Pin()) {
		t.Errorf("token create printed %+v", tok)
	}
	out.Reset()
	if code := run([]string{"token", "create", "--data-dir", dir}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "ca_pin:     "+ca.Pin()) || !strings.Contains(out.String(), "vigil-agent enroll --server 127.0.0.1:8444") {
		t.Errorf("token create (text) exit %d: %s %s", code, out.String(), errb.String())
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.CreateAgent(ctx, store.Agent{Name: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"agent", "revoke", "--data-dir", dir, "1"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "revoked agent 1 (web1)") {
		t.Fatalf("agent revoke exit %d: %s %s", code, out.String(), errb.String())
	}
	got, err := st.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.AgentRevoked {
		t.Errorf("agent status %q after revoke", got.Status)
	}
	if code := run([]string{"agent", "revoke", "--data-dir", dir, "99"}, strings.NewReader(""), &out, &errb); code == 0 {
		t.Error("revoking an unknown agent succeeded")
	}
	for action, n := range map[string]int{"enrollment_token.create": 2, "agent.revoke": 1} {
		entries, err := st.Audit(ctx, store.AuditFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != n || entries[0].Actor != "cli" {
			t.Errorf("%s audit entries %+v, want %d by cli", action, entries, n)
		}
	}
}
