package governance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Justification and note bounds, in characters.
const (
	minJustification = 10
	maxJustification = 4000
	maxNote          = 4000
)

// maxExceptions bounds how many exceptions one read takes; exceptions are
// few (each one is a decision a person made), so this is far above any
// real fleet and only guards memory.
const maxExceptions = 100_000

// RequestException validates and records a request by actor. A refused
// argument is a *FieldError naming the JSON field (rule_id, host_id,
// group_id, justification, expires_at).
func (s *Service) RequestException(ctx context.Context, actor string, req ExceptionRequest) (store.Exception, error) {
	if actor == "" {
		return store.Exception{}, errors.New("governance: an exception request needs a requester")
	}
	now := s.now()
	ruleID := strings.TrimSpace(req.RuleID)
	switch {
	case ruleID == "":
		return store.Exception{}, &FieldError{Field: "rule_id", Msg: "is required"}
	case s.idx.Rule(ruleID) == nil:
		return store.Exception{}, &FieldError{Field: "rule_id", Msg: fmt.Sprintf("no rule %q in the corpus", ruleID)}
	}
	switch {
	case req.HostID < 0:
		return store.Exception{}, &FieldError{Field: "host_id", Msg: "must be a host id"}
	case req.GroupID < 0:
		return store.Exception{}, &FieldError{Field: "group_id", Msg: "must be a group id"}
	case req.HostID > 0 && req.GroupID > 0:
		return store.Exception{}, &FieldError{Field: "group_id", Msg: "give host_id or group_id (or neither for the fleet), not both"}
	}
	if req.HostID > 0 {
		if _, err := s.st.Host(ctx, req.HostID); errors.Is(err, store.ErrNotFound) {
			return store.Exception{}, &FieldError{Field: "host_id", Msg: fmt.Sprintf("no host %d", req.HostID)}
		} else if err != nil {
			return store.Exception{}, fmt.Errorf("governance: exception for host %d: %w", req.HostID, err)
		}
	}
	if req.GroupID > 0 {
		groups, err := s.st.Groups(ctx)
		if err != nil {
			return store.Exception{}, fmt.Errorf("governance: exception for group %d: %w", req.GroupID, err)
		}
		if !slices.ContainsFunc(groups, func(g store.Group) bool { return g.ID == req.GroupID }) {
			return store.Exception{}, &FieldError{Field: "group_id", Msg: fmt.Sprintf("no group %d", req.GroupID)}
		}
	}
	just := strings.TrimSpace(req.Justification)
	if n := utf8.RuneCountInString(just); n < minJustification || n > maxJustification {
		return store.Exception{}, &FieldError{Field: "justification",
			Msg: fmt.Sprintf("must be %d to %d characters, got %d", minJustification, maxJustification, n)}
	}
	if !req.ExpiresAt.IsZero() && !req.ExpiresAt.After(now) {
		return store.Exception{}, &FieldError{Field: "expires_at", Msg: "must be in the future"}
	}
	e := store.Exception{RuleID: ruleID, HostID: req.HostID, GroupID: req.GroupID, Justification: just,
		State: store.ExceptionRequested, RequestedBy: actor, RequestedAt: now}
	if !req.ExpiresAt.IsZero() {
		e.ExpiresAt = req.ExpiresAt.UTC()
	}
	out, err := s.st.CreateException(ctx, e)
	if err != nil {
		return store.Exception{}, fmt.Errorf("governance: exception for rule %s (%s): %w", ruleID, scopeOf(e), err)
	}
	return out, nil
}

// DecideException applies to (approved, rejected, revoked) by actor.
// Approval and rejection take a requested exception and refuse its own
// requester (ErrSelfApproval); revocation takes an approved one. An
// exception in another state is a wrapped store.ErrConflict naming it.
func (s *Service) DecideException(ctx context.Context, actor string, id int64, to store.ExceptionState, note string) (store.Exception, error) {
	if actor == "" {
		return store.Exception{}, fmt.Errorf("governance: decision on exception %d needs a decider", id)
	}
	note = strings.TrimSpace(note)
	if n := utf8.RuneCountInString(note); n > maxNote {
		return store.Exception{}, &FieldError{Field: "note", Msg: fmt.Sprintf("must be at most %d characters, got %d", maxNote, n)}
	}
	now := s.now()
	d := store.ExceptionDecision{ID: id, To: to, By: actor, At: now, Note: note}
	switch to {
	case store.ExceptionApproved, store.ExceptionRejected:
		cur, err := s.st.Exception(ctx, id)
		if err != nil {
			return store.Exception{}, fmt.Errorf("governance: exception %d: %w", id, err)
		}
		if cur.RequestedBy == actor {
			return store.Exception{}, fmt.Errorf("governance: exception %d: %s: %w", id, actor, ErrSelfApproval)
		}
		if to == store.ExceptionApproved && cur.State == store.ExceptionRequested &&
			!cur.ExpiresAt.IsZero() && !cur.ExpiresAt.After(now) {
			return store.Exception{}, &FieldError{Field: "expires_at",
				Msg: fmt.Sprintf("exception %d expired at %s before it was approved; request a new one", id, cur.ExpiresAt.Format(time.RFC3339))}
		}
		d.From = []store.ExceptionState{store.ExceptionRequested}
	case store.ExceptionRevoked:
		d.From = []store.ExceptionState{store.ExceptionApproved}
	default:
		return store.Exception{}, &FieldError{Field: "state", Msg: fmt.Sprintf("an operator may approve, reject or revoke, not move to %q", to)}
	}
	out, err := s.st.DecideException(ctx, d)
	if err != nil {
		return store.Exception{}, fmt.Errorf("governance: %s exception %d: %w", verb(to), id, err)
	}
	return out, nil
}

// verb names a decision for error messages.
func verb(to store.ExceptionState) string {
	switch to {
	case store.ExceptionApproved:
		return "approve"
	case store.ExceptionRejected:
		return "reject"
	case store.ExceptionRevoked:
		return "revoke"
	}
	return string(to)
}

// scopeOf names an exception's scope as the API and audit spell it.
func scopeOf(e store.Exception) string {
	switch {
	case e.HostID > 0:
		return "host"
	case e.GroupID > 0:
		return "group"
	}
	return "fleet"
}

// ActiveAt reports whether exception e accepted failures at moment t,
// from the record alone (so it answers for past moments too): it was
// approved at or before t (its state is approved, revoked or expired with
// a decider), not revoked at or before t, and had not expired by t.
func ActiveAt(e store.Exception, t time.Time) bool {
	switch e.State {
	case store.ExceptionApproved, store.ExceptionRevoked, store.ExceptionExpired:
	default:
		return false
	}
	if e.DecidedBy == "" || e.DecidedAt.IsZero() || e.DecidedAt.After(t) {
		return false
	}
	if !e.RevokedAt.IsZero() && !e.RevokedAt.After(t) {
		return false
	}
	if !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(t) {
		return false
	}
	return true
}

// Accepted implements posture.Waivers: per host, the rules an exception
// active at `at` (zero: now) covers, mapped to that exception's id. When
// several cover one (host, rule), a host exception wins over a group one
// over a fleet one, then the lowest id. Group membership is the hosts'
// Groups as given (membership now). Hosts no exception covers are absent.
func (s *Service) Accepted(ctx context.Context, at time.Time, hosts []store.Host) (map[int64]map[string]int64, error) {
	if at.IsZero() {
		at = s.now()
	}
	if len(hosts) == 0 {
		return map[int64]map[string]int64{}, nil
	}
	active, err := s.activeAt(ctx, at)
	if err != nil {
		return nil, err
	}
	out := map[int64]map[string]int64{}
	if len(active) == 0 {
		return out, nil
	}
	groupNames := map[int64]string{}
	if slices.ContainsFunc(active, func(e store.Exception) bool { return e.GroupID > 0 }) {
		groups, err := s.st.Groups(ctx)
		if err != nil {
			return nil, fmt.Errorf("governance: accepted at %s: %w", at.Format(time.RFC3339), err)
		}
		for _, g := range groups {
			groupNames[g.ID] = g.Name
		}
	}
	// Precedence: scope rank (host, group, fleet), then lowest id; the
	// first exception to claim a (host, rule) keeps it.
	slices.SortFunc(active, func(a, b store.Exception) int {
		if ra, rb := scopeRank(a), scopeRank(b); ra != rb {
			return ra - rb
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for _, h := range hosts {
		for _, e := range active {
			if !covers(e, h, groupNames) {
				continue
			}
			m := out[h.ID]
			if m == nil {
				m = map[string]int64{}
				out[h.ID] = m
			}
			if _, taken := m[e.RuleID]; !taken {
				m[e.RuleID] = e.ID
			}
		}
	}
	return out, nil
}

// activeAt returns the exceptions active at t.
func (s *Service) activeAt(ctx context.Context, t time.Time) ([]store.Exception, error) {
	all, err := s.st.Exceptions(ctx, store.ExceptionFilter{
		States: []store.ExceptionState{store.ExceptionApproved, store.ExceptionRevoked, store.ExceptionExpired},
		Limit:  maxExceptions})
	if err != nil {
		return nil, fmt.Errorf("governance: exceptions active at %s: %w", t.Format(time.RFC3339), err)
	}
	if len(all) >= maxExceptions {
		s.log.Warn("governance: exception read hit its bound; the oldest are not applied", "bound", maxExceptions)
	}
	var out []store.Exception
	for _, e := range all {
		if ActiveAt(e, t) {
			out = append(out, e)
		}
	}
	return out, nil
}

// scopeRank orders scopes by precedence: host 0, group 1, fleet 2.
func scopeRank(e store.Exception) int {
	switch {
	case e.HostID > 0:
		return 0
	case e.GroupID > 0:
		return 1
	}
	return 2
}

// covers reports whether exception e applies to host h.
func covers(e store.Exception, h store.Host, groupNames map[int64]string) bool {
	switch {
	case e.HostID > 0:
		return e.HostID == h.ID
	case e.GroupID > 0:
		name, ok := groupNames[e.GroupID]
		return ok && slices.Contains(h.Groups, name)
	}
	return true
}
