package agentapi

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// DefaultHeartbeatFlush is how often buffered heartbeats are written.
const DefaultHeartbeatFlush = 5 * time.Second

// heartbeatBuffer keeps the latest heartbeat of each agent in memory until
// the next flush writes them all in one transaction: with thousands of
// agents, one write transaction per heartbeat was what queued behind
// SQLite's single writer. The price is that an agent's last_seen (as the
// REST agents list shows it) lags by up to the flush interval.
type heartbeatBuffer struct {
	mu    sync.Mutex
	dirty map[int64]store.AgentHeartbeat
}

func newHeartbeatBuffer() *heartbeatBuffer {
	return &heartbeatBuffer{dirty: map[int64]store.AgentHeartbeat{}}
}

// mergeHeartbeat folds a newer heartbeat onto an older unwritten one with
// TouchAgent's rules: last seen never moves back and empty strings keep
// the earlier value; the spool depth is the newer one.
func mergeHeartbeat(older, newer store.AgentHeartbeat) store.AgentHeartbeat {
	out := newer
	if older.At.After(out.At) {
		out.At = older.At
	}
	if out.Version == "" {
		out.Version = older.Version
	}
	if out.OS == "" {
		out.OS = older.OS
	}
	if out.BundleDigest == "" {
		out.BundleDigest = older.BundleDigest
	}
	return out
}

// record buffers hb as the agent's latest heartbeat.
func (b *heartbeatBuffer) record(agentID int64, hb store.AgentHeartbeat) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.dirty[agentID]; ok {
		hb = mergeHeartbeat(old, hb)
	}
	b.dirty[agentID] = hb
}

// take empties the buffer and returns what it held, by agent id.
func (b *heartbeatBuffer) take() []store.AgentTouch {
	b.mu.Lock()
	dirty := b.dirty
	if len(dirty) > 0 {
		b.dirty = map[int64]store.AgentHeartbeat{}
	}
	b.mu.Unlock()
	out := make([]store.AgentTouch, 0, len(dirty))
	for _, id := range slices.Sorted(maps.Keys(dirty)) {
		out = append(out, store.AgentTouch{AgentID: id, AgentHeartbeat: dirty[id]})
	}
	return out
}

// restore puts back a batch that could not be written, under any newer
// heartbeats recorded since, so the next flush retries it.
func (b *heartbeatBuffer) restore(batch []store.AgentTouch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range batch {
		hb := t.AgentHeartbeat
		if newer, ok := b.dirty[t.AgentID]; ok {
			hb = mergeHeartbeat(hb, newer)
		}
		b.dirty[t.AgentID] = hb
	}
}

// FlushHeartbeats writes the buffered heartbeats to the store now, in one
// transaction. Serve calls it every HeartbeatFlush and once more when it
// stops; tests call it to read what a heartbeat recorded. Heartbeats that
// could not be written stay buffered for the next flush.
func (s *Service) FlushHeartbeats(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	batch := s.hb.take()
	if len(batch) == 0 {
		return nil
	}
	if err := s.cfg.Store.TouchAgents(ctx, batch); err != nil {
		s.hb.restore(batch)
		return err
	}
	return nil
}

// flushLoop flushes heartbeats every HeartbeatFlush until ctx ends.
func (s *Service) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.FlushHeartbeats(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("writing buffered heartbeats failed; retrying at the next flush", "err", err)
		}
	}
}
