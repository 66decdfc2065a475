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
