package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/store"
)

const testPin = "sha256:" + "5e" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

func TestCreateEnrollmentToken(t *testing.T) {
	e := startEnv(t, false, func(d *Deps) { d.CAPin = testPin })
	tok, _ := e.tokenFor(e.addUser("sec", RoleSecurityAdmin), time.Time{})
	r := e.do("POST", "/api/v1/enrollment-tokens", tok, map[string]any{"ttl": "2h", "uses": 3, "labels": map[string]string{"site": "lab"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	var got struct {
		Token     string            `json:"token"`
		CAPin     string            `json:"ca_pin"`
		ExpiresAt time.Time         `json:"expires_at"`
		Uses      int               `json:"uses"`
		Labels    map[string]string `json:"labels"`
	}
	r.json(t, &got)
	if !strings.HasPrefix(got.Token, agentapi.TokenPrefix) || got.CAPin != testPin || !got.ExpiresAt.Equal(e.clock.Now().Add(2*time.Hour)) ||
		got.Uses != 3 || got.Labels["site"] != "lab" {
		t.Errorf("created %+v", got)
	}
	ctx := context.Background()
	stored, err := e.st.JoinTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].Hash != agentapi.HashJoinToken(got.Token) || stored[0].CreatedBy != "sec" {
		t.Errorf("stored tokens %+v: want only the hash of the token, created by sec", stored)
	}
	entries, err := e.st.Audit(ctx, store.AuditFilter{Action: "enrollment_token.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor != "sec" || strings.Contains(entries[0].Detail, got.Token) {
		t.Errorf("audit entries %+v: want one by sec that does not hold the token", entries)
	}
	// The token enrols for real: one use of three spent.
	if _, err := e.st.UseJoinToken(ctx, agentapi.HashJoinToken(got.Token), e.clock.Now()); err != nil {
		t.Errorf("use the created token: %v", err)
	}

	// No body: one use for an hour.
	r = e.do("POST", "/api/v1/enrollment-tokens", tok, nil)
	r.json(t, &got)
	if r.status != http.StatusCreated || got.Uses != 1 || !got.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("create with no body = %d %s", r.status, r.body)
	}
	for _, bad := range []struct {
		body  any
		field string
	}{
		{map[string]any{"ttl": "soon"}, "ttl"},
		{map[string]any{"ttl": "-1h"}, "ttl"},
		{map[string]any{"ttl": "9000h"}, "ttl"},
		{map[string]any{"uses": -2}, "uses"},
		{map[string]any{"uses": 1, "scope": "all"}, "scope"},
	} {
		r := e.do("POST", "/api/v1/enrollment-tokens", tok, bad.body)
		if r.status != http.StatusBadRequest || r.errorBody(t).Error.Field != bad.field {
			t.Errorf("create with %v = %d %s, want 400 naming %s", bad.body, r.status, r.body, bad.field)
		}
	}
}

func TestRevokeAgentAndOnlineState(t *testing.T) {
	e := startEnv(t, false, func(d *Deps) { d.AgentHeartbeat = 20 * time.Second })
	ctx := context.Background()
	tok, _ := e.tokenFor(e.addUser("sec", RoleSecurityAdmin), time.Time{})
	a, err := e.st.CreateAgent(ctx, store.Agent{Name: "web1", Hostname: "web1", EnrolledAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpsertHost(ctx, store.Host{Name: "web1", AgentID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.TouchAgent(ctx, a.ID, store.AgentHeartbeat{At: e.clock.Now(), Version: "0.1.0", SpoolBatches: 2}); err != nil {
		t.Fatal(err)
	}
	state := func() agentJSON {
		t.Helper()
		var out struct {
			Agents []agentJSON `json:"agents"`
		}
		r := e.do("GET", "/api/v1/agents", tok, nil)
		r.json(t, &out)
		if r.status != http.StatusOK || len(out.Agents) != 1 {
			t.Fatalf("agents = %d %s", r.status, r.body)
		}
		return out.Agents[0]
	}
	if got := state(); !got.Online || got.State != "online" || got.Hosts != 1 || got.SpoolBatches != 2 || got.Hostname != "web1" {
		t.Errorf("fresh agent %+v, want online with its host", got)
	}
	if got := state(); len(got.HostList) != 1 || got.HostList[0].Name != "web1" || got.LastSeen == nil || !got.LastSeen.Equal(*got.LastSeenAt) {
		t.Errorf("agent host list %+v, last_seen %v", got.HostList, got.LastSeen)
	}
	e.clock.Advance(59 * time.Second) // under three 20 s heartbeats
	if got := state(); got.State != "online" {
		t.Errorf("after 59 s: state %q, want online", got.State)
	}
	e.clock.Advance(2 * time.Second)
	if got := state(); got.Online || got.State != "offline" {
		t.Errorf("after three missed heartbeats: %+v, want offline", got)
	}

	r := e.do("POST", fmt.Sprintf("/api/v1/agents/%d/revoke", a.ID), tok, nil)
	var revoked agentJSON
	r.json(t, &revoked)
	if r.status != http.StatusOK || revoked.Status != "revoked" || revoked.State != "revoked" || revoked.RevokedAt == nil {
		t.Fatalf("revoke = %d %s", r.status, r.body)
	}
	stored, err := e.st.Agent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != store.AgentRevoked {
		t.Errorf("stored agent status %q after revoke", stored.Status)
	}
	entries, err := e.st.Audit(ctx, store.AuditFilter{Action: "agent.revoke"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Target != fmt.Sprintf("agent/%d", a.ID) || entries[0].Actor != "sec" {
		t.Errorf("revoke audit entries %+v", entries)
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/agents/%d/revoke", a.ID+100), tok, nil); r.status != http.StatusNotFound {
		t.Errorf("revoke unknown agent = %d %s, want 404", r.status, r.body)
	}
}
