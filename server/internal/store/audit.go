package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// AuditGenesis is the PrevHash of the first audit entry.
const AuditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// AuditHash is the chain hash of e: SHA-256 over the previous entry's hash
// and a canonical JSON encoding of every field of e except Hash. Changing,
// inserting or deleting any entry breaks every hash after it.
func AuditHash(e AuditEntry) string {
	canon, _ := json.Marshal(struct {
		ID        int64  `json:"id"`
		At        string `json:"at"`
		Actor     string `json:"actor"`
		Action    string `json:"action"`
		Target    string `json:"target"`
		Detail    string `json:"detail"`
		Source    string `json:"source"`
		RequestID string `json:"request_id"`
		PrevHash  string `json:"prev_hash"`
	}{e.ID, Micro(e.At).Format(time.RFC3339Nano), e.Actor, e.Action, e.Target, e.Detail, e.Source, e.RequestID, e.PrevHash})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// VerifyAudit checks that entries, oldest first and starting at id 1, form
// an unbroken chain; it names the first entry that does not.
func VerifyAudit(entries []AuditEntry) error {
	prev := AuditGenesis
	for i, e := range entries {
		if want := int64(i + 1); e.ID != want {
			return fmt.Errorf("audit entry %d: expected id %d (an entry is missing or out of order)", e.ID, want)
		}
		if e.PrevHash != prev {
			return fmt.Errorf("audit entry %d: prev_hash %s does not match entry %d's hash %s", e.ID, e.PrevHash, e.ID-1, prev)
		}
		if h := AuditHash(e); h != e.Hash {
			return fmt.Errorf("audit entry %d: content does not match its hash (altered)", e.ID)
		}
		prev = e.Hash
	}
	return nil
}

// ChainAudit completes an entry to append after the entry (lastID,
// lastHash), lastID 0 meaning an empty log: it sets ID, PrevHash, a
// microsecond At (now when zero), an empty Detail as "{}" and Hash. Both
// drivers call it under their append lock.
func ChainAudit(e AuditEntry, lastID int64, lastHash string) AuditEntry {
	if lastID == 0 {
		lastHash = AuditGenesis
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.Detail == "" {
		e.Detail = "{}"
	}
	e.ID, e.PrevHash, e.At = lastID+1, lastHash, Micro(e.At)
	e.Hash = AuditHash(e)
	return e
}

// AuditLimit applies AuditFilter.Limit's default (100) and a cap (1000) so
// one request cannot read the whole log at once.
func AuditLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
