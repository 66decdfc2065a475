package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// dueTests are the contract cases for the methods the agent dispatcher
// and the heartbeat buffer use: DueAgents, RevokedAgents, TouchAgents.
var dueTests = []contractTest{
	{"DueAgents", testDueAgents},
	{"RevokedAgents", testRevokedAgents},
	{"TouchAgentsBatch", testTouchAgents},
}

func agentNamed(t *testing.T, s store.Store, name string) store.Agent {
	t.Helper()
	a, err := s.CreateAgent(context.Background(), store.Agent{Name: name, EnrolledAt: base})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func agentHost(t *testing.T, s store.Store, name string, agentID int64) store.Host {
	t.Helper()
	h, err := s.UpsertHost(context.Background(), store.Host{Name: name, AgentID: agentID})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testDueAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	// New hosts are due at the wall-clock time of their creation; asking
	// an hour earlier sees only the hosts whose scan was requested before.
	now := time.Now().Add(-time.Hour)
	a1, a2, a3, a4 := agentNamed(t, s, "due1"), agentNamed(t, s, "due2"), agentNamed(t, s, "due3"), agentNamed(t, s, "due4")
	h1, h1b := agentHost(t, s, "due1-a", a1.ID), agentHost(t, s, "due1-b", a1.ID)
	agentHost(t, s, "due2-a", a2.ID) // due only at its creation time
	h3, h4 := agentHost(t, s, "due3-a", a3.ID), agentHost(t, s, "due4-a", a4.ID)
	local := host(t, s, "agentless")
	for _, h := range []store.Host{h1, h1b, h3, h4, local} {
		if err := s.RequestScan(ctx, h.ID, "manual", now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteHost(ctx, h4.ID); err != nil {
		t.Fatal(err)
	}
	cl, err := s.ClaimDue(ctx, store.ClaimRequest{Owner: "agent/3", Now: now, Limit: 10, Lease: time.Minute, AgentID: a3.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl) != 1 || cl[0].HostID != h3.ID {
		t.Fatalf("agent 3 claimed %+v, want host %d", cl, h3.ID)
	}
	got, err := s.DueAgents(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{a1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("DueAgents(now) = %v, want %v (future, leased, deleted and agentless hosts excluded; one id per agent)", got, want)
	}
	got, err = s.DueAgents(ctx, now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{a1.ID, a2.ID, a3.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("DueAgents(now+2h) = %v, want %v (expired lease and newly due host included)", got, want)
	}
	// DueAgents only reads: the leases are where they were.
	cl, err = s.ClaimDue(ctx, store.ClaimRequest{Owner: "agent/1", Now: now, Limit: 10, Lease: time.Minute, AgentID: a1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl) != 2 {
		t.Errorf("agent 1 claimed %d hosts after DueAgents, want 2", len(cl))
	}
}

func testRevokedAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.RevokedAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("RevokedAgents with no agents = %v", got)
	}
	a, b, c := agentNamed(t, s, "rv1"), agentNamed(t, s, "rv2"), agentNamed(t, s, "rv3")
	for _, id := range []int64{c.ID, a.ID} {
		if err := s.RevokeAgent(ctx, id, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.RevokedAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{a.ID, c.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("RevokedAgents = %v, want %v (not active agent %d)", got, want, b.ID)
	}
}

func testTouchAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.TouchAgents(ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	x, y := agentNamed(t, s, "touch-x"), agentNamed(t, s, "touch-y")
	t1 := base.Add(time.Hour)
	err := s.TouchAgents(ctx, []store.AgentTouch{
		{AgentID: x.ID, AgentHeartbeat: store.AgentHeartbeat{At: t1, Version: "1.0.0", OS: "debian 12", SpoolBatches: 3,
			SpoolBytes: 100, BundleDigest: "sha256:aa"}},
		{AgentID: 1 << 40, AgentHeartbeat: store.AgentHeartbeat{At: t1, Version: "9.9.9"}}, // unknown: skipped
		{AgentID: y.ID, AgentHeartbeat: store.AgentHeartbeat{At: t1.Add(time.Second), Version: "1.1.0"}},
	})
	if err != nil {
		t.Fatalf("batch with an unknown agent: %v", err)
	}
	// An older heartbeat with empty fields moves nothing back but the spool.
	err = s.TouchAgents(ctx, []store.AgentTouch{{AgentID: x.ID, AgentHeartbeat: store.AgentHeartbeat{At: t1.Add(-time.Minute),
		SpoolBatches: 1, SpoolBytes: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	gx, err := s.Agent(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !gx.LastSeenAt.Equal(t1) || gx.Version != "1.0.0" || gx.OS != "debian 12" || gx.BundleDigest != "sha256:aa" ||
		gx.SpoolBatches != 1 || gx.SpoolBytes != 10 {
		t.Errorf("agent x after two batches: %+v", gx)
	}
	gy, err := s.Agent(ctx, y.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !gy.LastSeenAt.Equal(t1.Add(time.Second)) || gy.Version != "1.1.0" {
		t.Errorf("agent y after batch: %+v", gy)
	}
}
