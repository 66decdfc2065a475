package agentapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// maxPassGap bounds how long the dispatcher waits after a pass before it
// answers the next wake, so that a wave of connecting agents costs a few
// passes rather than one per agent.
const maxPassGap = 250 * time.Millisecond

// dispatcher decides which open assignment streams should claim. Once per
// Poll (or on a wake) it makes two reads on the store, the agents with due
// hosts and the revoked agents, then signals only the streams of agents
// with work and closes those of revoked agents. Idle streams therefore
// never take the store's writer (on SQLite a single connection), which is
// what let a few thousand agents saturate it when every stream claimed
// every Poll.
type dispatcher struct {
	st   store.Store
	log  *slog.Logger
	now  func() time.Time
	poll time.Duration

	kick chan struct{} // buffered 1: run a pass soon

	mu      sync.Mutex
	streams map[int64]map[*watch]struct{} // by agent id
	open    int
}

// watch is one open WatchAssignments stream as the dispatcher sees it.
type watch struct {
	agentID int64
	due     chan struct{} // buffered 1: the agent has due hosts; claim
	revoked chan struct{} // closed when the agent is found revoked
	closed  bool          // revoked is closed; guarded by dispatcher.mu
}

func newDispatcher(st store.Store, log *slog.Logger, now func() time.Time, poll time.Duration) *dispatcher {
	return &dispatcher{st: st, log: log, now: now, poll: poll, kick: make(chan struct{}, 1),
		streams: map[int64]map[*watch]struct{}{}}
}

// register adds a stream of agentID and asks for a pass, which finds its
// due hosts and whether it was revoked meanwhile.
func (d *dispatcher) register(agentID int64) *watch {
	w := &watch{agentID: agentID, due: make(chan struct{}, 1), revoked: make(chan struct{})}
	d.mu.Lock()
	m := d.streams[agentID]
	if m == nil {
		m = map[*watch]struct{}{}
		d.streams[agentID] = m
	}
	m[w] = struct{}{}
	d.open++
	d.mu.Unlock()
	d.wakeAll()
	return w
}

// unregister removes a stream added by register.
func (d *dispatcher) unregister(w *watch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.streams[w.agentID]
	if _, ok := m[w]; !ok {
		return
	}
	delete(m, w)
	if len(m) == 0 {
		delete(d.streams, w.agentID)
	}
	d.open--
}

// watching returns how many streams are registered.
func (d *dispatcher) watching() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}

// wakeAgent makes the open streams of one agent claim now, without asking
// the store whether it has due hosts. It never blocks.
func (d *dispatcher) wakeAgent(agentID int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for w := range d.streams[agentID] {
		signal(w.due)
	}
}

// wakeAll asks for a pass now (coalesced with any pending one). It never
// blocks.
func (d *dispatcher) wakeAll() { signal(d.kick) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run makes passes every poll and on wakes until ctx ends.
func (d *dispatcher) run(ctx context.Context) {
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.kick:
		}
		if err := d.pass(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%30 == 0 {
				d.log.Error("dispatching assignments failed; retrying every poll", "err", err, "failures", failures)
			}
		} else {
			failures = 0
		}
		gap.Reset(min(d.poll/4, maxPassGap))
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
	}
}

// pass closes the streams of revoked agents and signals the streams of
// agents with due hosts: two reads, and nothing at all when no stream is
// open.
func (d *dispatcher) pass(ctx context.Context) error {
	if d.watching() == 0 {
		return nil
	}
	revoked, err := d.st.RevokedAgents(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for _, id := range revoked {
		for w := range d.streams[id] {
			if !w.closed {
				close(w.revoked)
				w.closed = true
			}
		}
	}
	d.mu.Unlock()
	due, err := d.st.DueAgents(ctx, d.now())
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range due {
		for w := range d.streams[id] {
			signal(w.due)
		}
	}
	return nil
}
