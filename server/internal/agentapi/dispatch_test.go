package agentapi_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// countingStore is the real store, noting which agents claimed and how
// many dispatcher passes asked for due agents.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	claims []int64 // agent id of every ClaimDue
	passes int     // DueAgents calls
}

func (c *countingStore) ClaimDue(ctx context.Context, r store.ClaimRequest) ([]store.Claim, error) {
	c.mu.Lock()
	c.claims = append(c.claims, r.AgentID)
	c.mu.Unlock()
	return c.Store.ClaimDue(ctx, r)
}

func (c *countingStore) DueAgents(ctx context.Context, now time.Time) ([]int64, error) {
	c.mu.Lock()
	c.passes++
	c.mu.Unlock()
	return c.Store.DueAgents(ctx, now)
}

func (c *countingStore) snapshot() (claims []int64, passes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.claims), c.passes
}

// waitFor polls cond every 10 ms for at most callTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(callTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdleStreamsNeverClaimAndDueHostGoesToItsAgentOnly(t *testing.T) {
	const n = 50
	var cs *countingStore
	h := newHarness(t, func(c *agentapi.Config) {
		cs = &countingStore{Store: c.Store}
		c.Store = cs
	})
	ctx := context.Background()
	h.publish(t, []byte("bundle"))
	tok := h.token(t, n, time.Hour, time.Now())
	agents := make([]*agent, n)
	hosts := make([]store.Host, n)
	for i := range agents {
		a := h.enrol(t, tok, "idle"+string(rune('a'+i/26))+string(rune('a'+i%26)))
		host, err := h.st.HostByName(ctx, a.name)
		if err != nil {
			t.Fatal(err)
		}
		// Its first scan is done: nothing of it is due for an hour.
		now := time.Now()
		cl, err := h.st.ClaimDue(ctx, store.ClaimRequest{Owner: "setup", Now: now, Limit: 5, Lease: time.Minute, AgentID: a.id})
		if err != nil || len(cl) != 1 {
			t.Fatalf("setup claim of %s: %+v, %v", a.name, cl, err)
		}
		if err := h.st.CompleteClaim(ctx, host.ID, "setup", store.Completion{ScannedAt: now, NextScanAt: now.Add(time.Hour),
			Score: 100, Band: "good"}); err != nil {
			t.Fatal(err)
		}
		agents[i], hosts[i] = a, host
	}
	streams := make([]agentpb.AgentService_WatchAssignmentsClient, n)
	for i, a := range agents {
		s, err := a.c.WatchAssignments(callCtx(t), &agentpb.WatchRequest{})
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = s
	}
	waitFor(t, "all streams open", func() bool { return h.svc.Watching() == n })
	_, p0 := cs.snapshot()
	waitFor(t, "three dispatcher passes", func() bool { _, p := cs.snapshot(); return p >= p0+3 })
	if claims, _ := cs.snapshot(); len(claims) != 0 {
		t.Fatalf("%d idle streams made %d ClaimDue calls (agents %v), want none", n, len(claims), claims)
	}

	const k = 7
	if err := h.st.RequestScan(ctx, hosts[k].ID, "manual", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.svc.Wake()
	asg := recvAssignment(t, streams[k])
	if asg.GetHostId() != hosts[k].ID || asg.GetTrigger() != "manual" {
		t.Fatalf("assignment %+v, want a manual scan of host %d", asg, hosts[k].ID)
	}
	_, p1 := cs.snapshot()
	waitFor(t, "three more passes", func() bool { _, p := cs.snapshot(); return p >= p1+3 })
	claims, _ := cs.snapshot()
	if len(claims) == 0 {
		t.Fatal("the assignment was sent without a ClaimDue call")
	}
	for _, id := range claims {
		if id != agents[k].id {
			t.Errorf("agent %d claimed although only agent %d had a due host (claims %v)", id, agents[k].id, claims)
		}
	}
}
