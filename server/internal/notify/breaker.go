package notify

import (
	"sync"
	"time"
)

// breakerAfter is how many consecutive failed deliveries open a channel's
// circuit breaker.
const breakerAfter = 3

// breaker keeps, per channel and per process, how a channel's recent
// deliveries went. A receiver that is down costs every delivery its full
// retry series (seconds each); after breakerAfter failures in a row the
// channel is open: deliveries are not attempted until the cooldown ends.
// The first delivery after it is a real attempt (half-open); its failure
// doubles the cooldown (up to max), its success closes the breaker. It is
// safe for concurrent use.
type breaker struct {
	base, max time.Duration

	mu   sync.Mutex
	byID map[int64]*circuit // channels with failures since their last success
}

// circuit is one channel's failure run.
type circuit struct {
	fails    int           // consecutive failed deliveries
	since    time.Time     // the first failure of the run
	until    time.Time     // open until then; zero: closed
	cooldown time.Duration // the current cooldown, once opened
}

func newBreaker(base, max time.Duration) *breaker {
	return &breaker{base: base, max: max, byID: map[int64]*circuit{}}
}

// admit says whether a delivery to channel id may be attempted at now.
// When the channel is open it returns skip, the status to record instead
// ("skipped: channel failing since ...; next attempt after ..."). When the
// cooldown has ended it admits one trial and keeps the channel open for
// every other delivery until that trial's outcome is known.
func (b *breaker) admit(id int64, now time.Time) (trial bool, skip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.byID[id]
	if c == nil || c.until.IsZero() {
		return false, ""
	}
	if now.Before(c.until) {
		return false, "skipped: channel failing since " + c.since.UTC().Format(time.RFC3339) +
			"; next attempt after " + c.until.UTC().Format(time.RFC3339)
	}
	c.until = now.Add(c.cooldown) // reserved for the trial
	return true, ""
}

// done records the outcome of a real attempt at now. A success closes the
// breaker. A failure counts; the breakerAfter-th in a row opens the
// channel for the base cooldown, and a failed trial reopens it for twice
// the previous cooldown (at most max). A failure while the channel is
// already open (a test message, or a delivery that started before it
// opened) counts but moves no deadline.
func (b *breaker) done(id int64, now time.Time, ok, trial bool) (opened bool, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		delete(b.byID, id)
		return false, time.Time{}
	}
	c := b.byID[id]
	if c == nil {
		c = &circuit{since: now}
		b.byID[id] = c
	}
	c.fails++
	switch {
	case trial:
		c.cooldown = min(2*c.cooldown, b.max)
		c.until = now.Add(c.cooldown)
		return true, c.until
	case c.until.IsZero() && c.fails >= breakerAfter:
		c.cooldown = b.base
		c.until = now.Add(c.cooldown)
		return true, c.until
	}
	return false, time.Time{}
}

// keep forgets the channels not in ids (deleted channels).
func (b *breaker) keep(ids map[int64]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.byID {
		if !ids[id] {
			delete(b.byID, id)
		}
	}
}
