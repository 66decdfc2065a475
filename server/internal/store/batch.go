package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
)

// The helpers below are shared by the drivers so that both compute hashes,
// timestamps and transitions the same way; only the SQL differs.

// Row is one result flattened for writing.
type Row struct {
	RuleID       string
	Status       result.Status
	Severity     string
	Reason       string
	Refs         []byte // JSON array of references
	EvidenceHash string
	At           time.Time
}

// Prepared is a batch ready for a driver: rows in batch order and the
// distinct evidence bodies by hash, with Hashes sorted so that concurrent
// writers insert in the same order.
type Prepared struct {
	Rows     []Row
	Evidence map[string][]byte
	Hashes   []string
}

// Prepare flattens a batch. A result without a time takes fallback (the
// scan's start). Times are cut to microseconds, the precision both
// databases keep, so what is read back equals what was written.
func Prepare(b Batch, fallback time.Time) (Prepared, error) {
	p := Prepared{Rows: make([]Row, 0, len(b.Results)), Evidence: map[string][]byte{}}
	for i, r := range b.Results {
		if r.RuleID == "" {
			return Prepared{}, fmt.Errorf("result %d: empty rule id", i)
		}
		rj, err := json.Marshal(r.References)
		if err != nil {
			return Prepared{}, fmt.Errorf("rule %s: references: %w", r.RuleID, err)
		}
		if string(rj) == "null" {
			rj = []byte("[]")
		}
		var hash string
		if len(r.Evidence) > 0 {
			body, err := json.Marshal(r.Evidence)
			if err != nil {
				return Prepared{}, fmt.Errorf("rule %s: evidence: %w", r.RuleID, err)
			}
			sum := sha256.Sum256(body)
			hash = hex.EncodeToString(sum[:])
			if _, ok := p.Evidence[hash]; !ok {
				p.Evidence[hash] = body
				p.Hashes = append(p.Hashes, hash)
			}
		}
		at := r.Time
		if at.IsZero() {
			at = fallback
		}
		p.Rows = append(p.Rows, Row{
			RuleID: r.RuleID, Status: r.Status, Severity: string(r.Severity), Reason: r.Reason,
			Refs: rj, EvidenceHash: hash, At: Micro(at),
		})
	}
	sort.Strings(p.Hashes)
	return p, nil
}

// Micro cuts t to microseconds in UTC.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Prior is the current state a driver read for a rule before applying a batch.
type Prior struct {
	Status result.Status
	At     time.Time
}

// TransitionRow is a state change to log.
type TransitionRow struct {
	Row
	From result.Status
}

// Plan decides what a batch does to current state: updates holds the final
// row per rule (one per rule, sorted by rule id, as an upsert may touch a
// row only once), transitions every status change in batch order. A row
// older than the state already held is kept in the per-scan results but
// does not move current state, so a late retry of an old batch cannot
// roll a host's state back.
func Plan(rows []Row, prior map[string]Prior) (updates []Row, transitions []TransitionRow) {
	state := make(map[string]Prior, len(prior))
	for k, v := range prior {
		state[k] = v
	}
	last := map[string]Row{}
	for _, r := range rows {
		cur, seen := state[r.RuleID]
		if seen && r.At.Before(cur.At) {
			continue
		}
		if !seen || cur.Status != r.Status {
			transitions = append(transitions, TransitionRow{Row: r, From: cur.Status})
		}
		state[r.RuleID] = Prior{Status: r.Status, At: r.At}
		last[r.RuleID] = r
	}
	for _, r := range last {
		updates = append(updates, r)
	}
	sort.Slice(updates, func(i, j int) bool { return updates[i].RuleID < updates[j].RuleID })
	return updates, transitions
}

// RuleIDs returns the distinct rule ids of rows, sorted.
func RuleIDs(rows []Row) []string {
	seen := map[string]bool{}
	var ids []string
	for _, r := range rows {
		if !seen[r.RuleID] {
			seen[r.RuleID] = true
			ids = append(ids, r.RuleID)
		}
	}
	sort.Strings(ids)
	return ids
}
