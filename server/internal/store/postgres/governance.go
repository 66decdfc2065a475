package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// exceptionColumns is the column list every exception read selects, in
// the order scanException expects.
const exceptionColumns = `id, rule_id, host_id, group_id, justification, expires_at, state, requested_by, requested_at,
	decided_by, decided_at, decision_note, revoked_by, revoked_at, revoke_note, expired_at`

func scanException(r pgx.Row) (store.Exception, error) {
	var e store.Exception
	var host, group *int64
	var expires, decided, revoked, expired *time.Time
	var state string
	if err := r.Scan(&e.ID, &e.RuleID, &host, &group, &e.Justification, &expires, &state, &e.RequestedBy, &e.RequestedAt,
		&e.DecidedBy, &decided, &e.DecisionNote, &e.RevokedBy, &revoked, &e.RevokeNote, &expired); err != nil {
		return store.Exception{}, err
	}
	e.HostID, e.GroupID = fromNullID(host), fromNullID(group)
	e.State = store.ExceptionState(state)
	e.RequestedAt, e.ExpiresAt = e.RequestedAt.UTC(), fromNull(expires)
	e.DecidedAt, e.RevokedAt, e.ExpiredAt = fromNull(decided), fromNull(revoked), fromNull(expired)
	return e, nil
}

// fromNullID reads a NULL reference back as id 0.
func fromNullID(id *int64) int64 {
	if id == nil {
		return 0
	}
	return *id
}

func collectExceptions(rows pgx.Rows) ([]store.Exception, error) {
	defer rows.Close()
	var out []store.Exception
	for rows.Next() {
		e, err := scanException(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// isForeignKey tells whether err is a foreign_key_violation.
func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// CreateException implements store.Governance. The decision fields start
// empty whatever e holds: a new exception is always requested.
func (s *Store) CreateException(ctx context.Context, e store.Exception) (store.Exception, error) {
	if e.RuleID == "" {
		return store.Exception{}, errors.New("create exception: empty rule id")
	}
	if e.HostID != 0 && e.GroupID != 0 {
		return store.Exception{}, fmt.Errorf("create exception for rule %s: both host %d and group %d set", e.RuleID, e.HostID, e.GroupID)
	}
	if e.RequestedAt.IsZero() {
		e.RequestedAt = time.Now()
	}
	out, err := scanException(s.pool.QueryRow(ctx, `INSERT INTO exceptions(rule_id, host_id, group_id, justification,
			expires_at, state, requested_by, requested_at) VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7)
		RETURNING `+exceptionColumns,
		e.RuleID, nullID(e.HostID), nullID(e.GroupID), e.Justification, nullTime(e.ExpiresAt), e.RequestedBy,
		store.Micro(e.RequestedAt)))
	if isForeignKey(err) {
		return store.Exception{}, fmt.Errorf("create exception for rule %s: host %d: %w", e.RuleID, e.HostID, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("create exception for rule %s: %w", e.RuleID, err)
	}
	return out, nil
}

// Exception implements store.Governance.
func (s *Store) Exception(ctx context.Context, id int64) (store.Exception, error) {
	e, err := scanException(s.pool.QueryRow(ctx, `SELECT `+exceptionColumns+` FROM exceptions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("exception %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("exception %d: %w", id, err)
	}
	return e, nil
}

// stateList converts states to text for a text[] parameter; nil stays
// nil (NULL: no filter).
func stateList[T ~string](states []T) []string {
	if states == nil {
		return nil
	}
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// Exceptions implements store.Governance.
func (s *Store) Exceptions(ctx context.Context, f store.ExceptionFilter) ([]store.Exception, error) {
	if f.States != nil && len(f.States) == 0 {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT `+exceptionColumns+` FROM exceptions
		WHERE ($1::text[] IS NULL OR state = ANY($1))
			AND ($2 = '' OR rule_id = $2) AND ($3::bigint = 0 OR host_id = $3) AND ($4::bigint = 0 OR group_id = $4)
		ORDER BY requested_at DESC, id DESC LIMIT $5`, stateList(f.States), f.RuleID, f.HostID, f.GroupID, limit)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	out, err := collectExceptions(rows)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	return out, nil
}

// decideSQL moves an exception ($5) from one of the states $6 to $1,
// filling the fields that target state records ($2 by, $3 at, $4 note).
const decideSQL = `UPDATE exceptions SET state = $1::text,
		decided_by = CASE WHEN $1 IN ('approved', 'rejected') THEN $2::text ELSE decided_by END,
		decided_at = CASE WHEN $1 IN ('approved', 'rejected') THEN $3::timestamptz ELSE decided_at END,
		decision_note = CASE WHEN $1 IN ('approved', 'rejected') THEN $4::text ELSE decision_note END,
		revoked_by = CASE WHEN $1 = 'revoked' THEN $2 ELSE revoked_by END,
		revoked_at = CASE WHEN $1 = 'revoked' THEN $3 ELSE revoked_at END,
		revoke_note = CASE WHEN $1 = 'revoked' THEN $4 ELSE revoke_note END,
		expired_at = CASE WHEN $1 = 'expired' THEN $3 ELSE expired_at END
	WHERE id = $5 AND state = ANY($6::text[]) RETURNING ` + exceptionColumns

// decisionTargets are the states DecideException can move to.
var decisionTargets = map[store.ExceptionState]bool{
	store.ExceptionApproved: true, store.ExceptionRejected: true, store.ExceptionRevoked: true, store.ExceptionExpired: true,
}

// DecideException implements store.Governance: one conditional UPDATE,
// whose WHERE PostgreSQL re-checks after taking the row lock, so two
// deciders racing cannot both move the exception; the loser reads the
// state the winner left.
func (s *Store) DecideException(ctx context.Context, d store.ExceptionDecision) (store.Exception, error) {
	if !decisionTargets[d.To] {
		return store.Exception{}, fmt.Errorf("decide exception %d: cannot move to %q", d.ID, d.To)
	}
	from := stateList(d.From)
	if from == nil {
		from = []string{}
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	e, err := scanException(s.pool.QueryRow(ctx, decideSQL, string(d.To), d.By, store.Micro(d.At), d.Note, d.ID, from))
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, err)
	}
	var state string
	err = s.pool.QueryRow(ctx, `SELECT state FROM exceptions WHERE id = $1`, d.ID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, err)
	}
	return store.Exception{}, fmt.Errorf("decide exception %d: cannot move to %s, it is %s: %w", d.ID, d.To, state, store.ErrConflict)
}

// ExpireExceptions implements store.Governance. Replicas running the
// UPDATE at once block on each other's row locks and re-check the WHERE
// on the row the first left (state expired), so each row is returned by
// exactly one of them.
func (s *Store) ExpireExceptions(ctx context.Context, now time.Time) ([]store.Exception, error) {
	rows, err := s.pool.Query(ctx, `UPDATE exceptions SET state = 'expired', expired_at = $1
		WHERE state = 'approved' AND expires_at IS NOT NULL AND expires_at <= $1 RETURNING `+exceptionColumns,
		store.Micro(now))
	if err != nil {
		return nil, fmt.Errorf("expire exceptions at %s: %w", now, err)
	}
	out, err := collectExceptions(rows)
	if err != nil {
		return nil, fmt.Errorf("expire exceptions at %s: %w", now, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// failingHosts selects the hosts FailingAt looks at: hosts (a bigint[]
// parameter) NULL means every host not deleted, otherwise exactly the ids
// given.
func failingHosts(hosts string) string {
	return `SELECT id FROM hosts WHERE (` + hosts + `::bigint[] IS NULL AND deleted_at IS NULL) OR id = ANY(` + hosts + `)`
}

// FailingAt implements store.Governance. Now is current_state. A past
// moment needs each rule's severity and scan, which the state checkpoints
// that CountsAt replays do not hold, so each (host, rule) asked about is
// one backward probe of the (host_id, rule_id, at) index for its latest
// transition at or before `at`, as StateAt selects: a few index pages per
// pair, and callers ask about the handful of rules under exception.
func (s *Store) FailingAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]store.HostRule, error) {
	if len(ruleIDs) == 0 {
		return nil, errors.New("failing rules: no rule ids")
	}
	if hostIDs != nil && len(hostIDs) == 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	if at.IsZero() {
		rows, err = s.pool.Query(ctx, `SELECT c.host_id, c.rule_id, c.severity, c.scan_id FROM current_state c
			WHERE c.status = 'fail' AND c.rule_id = ANY($1::text[]) AND c.host_id IN (`+failingHosts("$2")+`)
			ORDER BY c.host_id, c.rule_id`, ruleIDs, hostIDs)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT h.id, r.rule_id, t.severity, t.scan_id
			FROM (`+failingHosts("$3")+`) h
			CROSS JOIN (SELECT DISTINCT unnest($2::text[]) AS rule_id) r
			CROSS JOIN LATERAL (SELECT x.to_status, x.severity, x.scan_id FROM transitions x
				WHERE x.host_id = h.id AND x.rule_id = r.rule_id AND x.at <= $1
				ORDER BY x.at DESC, x.id DESC LIMIT 1) t
			WHERE t.to_status = 'fail'
			ORDER BY h.id, r.rule_id`, store.Micro(at), ruleIDs, hostIDs)
	}
	if err != nil {
		return nil, fmt.Errorf("failing rules at %s: %w", at, err)
	}
	var out []store.HostRule
	var hr store.HostRule
	var sev string
	_, err = pgx.ForEachRow(rows, []any{&hr.HostID, &hr.RuleID, &sev, &hr.ScanID}, func() error {
		hr.Severity = rule.Severity(sev)
		out = append(out, hr)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failing rules at %s: %w", at, err)
	}
	return out, nil
}

// alertColumns is the column list every alert read selects, in the order
// scanAlert expects.
const alertColumns = `id, kind, key, severity, host_id, agent_id, rule_id, exception_id, labels::text, title, detail, state,
	opened_at, last_seen_at, count, ack_by, ack_at, silenced_until, resolved_by, resolved_at`

func scanAlert(r pgx.Row) (store.Alert, error) {
	var a store.Alert
	var host, agent, exc *int64
	var ack, silenced, resolved *time.Time
	var labels, state string
	var count int32
	if err := r.Scan(&a.ID, &a.Kind, &a.Key, &a.Severity, &host, &agent, &a.RuleID, &exc, &labels, &a.Title, &a.Detail,
		&state, &a.OpenedAt, &a.LastSeenAt, &count, &a.AckBy, &ack, &silenced, &a.ResolvedBy, &resolved); err != nil {
		return store.Alert{}, err
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return store.Alert{}, fmt.Errorf("alert %d: decode labels: %w", a.ID, err)
	}
	a.HostID, a.AgentID, a.ExceptionID = fromNullID(host), fromNullID(agent), fromNullID(exc)
	a.State, a.Count = store.AlertState(state), int(count)
	a.OpenedAt, a.LastSeenAt = a.OpenedAt.UTC(), a.LastSeenAt.UTC()
	a.AckAt, a.SilencedUntil, a.ResolvedAt = fromNull(ack), fromNull(silenced), fromNull(resolved)
	return a, nil
}

func collectAlerts(rows pgx.Rows) ([]store.Alert, error) {
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RaiseAlert implements store.Governance with one INSERT ... ON CONFLICT
// on the partial unique index of unresolved keys: replicas raising one key
// at once either insert the row or wait for the inserter and update it,
// and an update racing a resolution retries as an insert. Only an insert
// leaves count at 1 (every update adds one), which tells created.
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	if a.Key == "" || a.Kind == "" {
		return store.Alert{}, false, fmt.Errorf("raise alert %q: kind and key are required", a.Key)
	}
	if a.At.IsZero() {
		a.At = time.Now()
	}
	lj, err := labelsJSON("alert "+a.Key, a.Labels)
	if err != nil {
		return store.Alert{}, false, err
	}
	const lapsed = `alerts.state = 'silenced' AND alerts.silenced_until <= excluded.last_seen_at`
	out, err := scanAlert(s.pool.QueryRow(ctx, `INSERT INTO alerts(kind, key, severity, host_id, agent_id, rule_id,
			exception_id, labels, title, detail, state, opened_at, last_seen_at, count)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, 'active', $11, $11, 1)
		ON CONFLICT (key) WHERE state <> 'resolved' DO UPDATE SET
			last_seen_at = greatest(alerts.last_seen_at, excluded.last_seen_at), count = alerts.count + 1,
			title = excluded.title, detail = excluded.detail, severity = excluded.severity,
			state = CASE WHEN `+lapsed+` THEN 'active' ELSE alerts.state END,
			ack_by = CASE WHEN `+lapsed+` THEN '' ELSE alerts.ack_by END,
			ack_at = CASE WHEN `+lapsed+` THEN NULL ELSE alerts.ack_at END,
			silenced_until = CASE WHEN `+lapsed+` THEN NULL ELSE alerts.silenced_until END
		RETURNING `+alertColumns,
		a.Kind, a.Key, a.Severity, nullID(a.HostID), nullID(a.AgentID), a.RuleID, nullID(a.ExceptionID), lj, a.Title,
		a.Detail, store.Micro(a.At)))
	if err != nil {
		return store.Alert{}, false, fmt.Errorf("raise alert %s: %w", a.Key, err)
	}
	return out, out.Count == 1, nil
}

// ResolveAlerts implements store.Governance.
func (s *Store) ResolveAlerts(ctx context.Context, kinds []string, keep []string, at time.Time) ([]store.Alert, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	if keep == nil {
		keep = []string{} // NULL would make NOT (key = ANY(NULL)) NULL for every row
	}
	rows, err := s.pool.Query(ctx, `UPDATE alerts SET state = 'resolved', resolved_by = 'system', resolved_at = $1
		WHERE state <> 'resolved' AND kind = ANY($2::text[]) AND NOT (key = ANY($3::text[]))
		RETURNING `+alertColumns, store.Micro(at), kinds, keep)
	if err != nil {
		return nil, fmt.Errorf("resolve alerts of %s: %w", strings.Join(kinds, ","), err)
	}
	out, err := collectAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("resolve alerts of %s: %w", strings.Join(kinds, ","), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// alertChangeSQL moves an unresolved alert ($5) to state $1, filling the
// fields that state records ($2 by, $3 at, $4 silenced until): active
// clears the acknowledgement and the silence, acknowledged the silence.
const alertChangeSQL = `UPDATE alerts SET state = $1::text,
		ack_by = CASE WHEN $1 IN ('acknowledged', 'silenced') THEN $2::text WHEN $1 = 'active' THEN '' ELSE ack_by END,
		ack_at = CASE WHEN $1 IN ('acknowledged', 'silenced') THEN $3::timestamptz WHEN $1 = 'active' THEN NULL
			ELSE ack_at END,
		silenced_until = CASE WHEN $1 = 'silenced' THEN $4::timestamptz WHEN $1 = 'resolved' THEN silenced_until
			ELSE NULL END,
		resolved_by = CASE WHEN $1 = 'resolved' THEN $2 ELSE resolved_by END,
		resolved_at = CASE WHEN $1 = 'resolved' THEN $3 ELSE resolved_at END
	WHERE id = $5 AND state <> 'resolved' RETURNING ` + alertColumns

// alertTargets are the states SetAlertState can move to.
var alertTargets = map[store.AlertState]bool{
	store.AlertActive: true, store.AlertAcknowledged: true, store.AlertSilenced: true, store.AlertResolved: true,
}

// SetAlertState implements store.Governance with one conditional UPDATE
// that never touches a resolved alert.
func (s *Store) SetAlertState(ctx context.Context, ch store.AlertChange) (store.Alert, error) {
	if !alertTargets[ch.To] {
		return store.Alert{}, fmt.Errorf("change alert %d: unknown state %q", ch.ID, ch.To)
	}
	if ch.To == store.AlertSilenced && ch.Until.IsZero() {
		return store.Alert{}, fmt.Errorf("silence alert %d: no end time", ch.ID)
	}
	if ch.At.IsZero() {
		ch.At = time.Now()
	}
	a, err := scanAlert(s.pool.QueryRow(ctx, alertChangeSQL, string(ch.To), ch.By, store.Micro(ch.At),
		nullTime(ch.Until), ch.ID))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Alert{}, fmt.Errorf("change alert %d to %s: %w", ch.ID, ch.To, err)
	}
	var state string
	err = s.pool.QueryRow(ctx, `SELECT state FROM alerts WHERE id = $1`, ch.ID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Alert{}, fmt.Errorf("change alert %d: %w", ch.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Alert{}, fmt.Errorf("change alert %d to %s: %w", ch.ID, ch.To, err)
	}
	return store.Alert{}, fmt.Errorf("change alert %d to %s: it is %s: %w", ch.ID, ch.To, state, store.ErrConflict)
}

// Alert implements store.Governance.
func (s *Store) Alert(ctx context.Context, id int64) (store.Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Alert{}, fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Alert{}, fmt.Errorf("alert %d: %w", id, err)
	}
	return a, nil
}

// Alerts implements store.Governance. States filter on the stored state.
func (s *Store) Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	if f.States != nil && len(f.States) == 0 {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE ($1::text[] IS NULL OR state = ANY($1)) AND ($2 = '' OR kind = $2) AND ($3::bigint = 0 OR host_id = $3)
		ORDER BY last_seen_at DESC, id DESC LIMIT $4`, stateList(f.States), f.Kind, f.HostID, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := collectAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// AlertCounts implements store.Governance. Every state is in the map, zero
// included; a silenced alert whose time has passed counts as active.
func (s *Store) AlertCounts(ctx context.Context, now time.Time) (map[store.AlertState]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT CASE WHEN state = 'silenced' AND silenced_until <= $1 THEN 'active'
			ELSE state END AS eff, count(*)
		FROM alerts WHERE state <> 'resolved' OR (resolved_at > $2 AND resolved_at <= $1)
		GROUP BY eff`, store.Micro(now), store.Micro(now.Add(-24*time.Hour)))
	if err != nil {
		return nil, fmt.Errorf("count alerts at %s: %w", now, err)
	}
	out := map[store.AlertState]int{store.AlertActive: 0, store.AlertAcknowledged: 0, store.AlertSilenced: 0, store.AlertResolved: 0}
	var st string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[store.AlertState(st)] = int(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count alerts at %s: %w", now, err)
	}
	return out, nil
}

// channelColumns is the column list every channel read selects, in the
// order scanChannel expects.
const channelColumns = `id, name, kind, config::text, secret, min_severity, labels::text, kinds::text, enabled,
	created_by, created_at`

func scanChannel(r pgx.Row) (store.Channel, error) {
	var c store.Channel
	var config, labels, kinds string
	if err := r.Scan(&c.ID, &c.Name, &c.Kind, &config, &c.Secret, &c.MinSeverity, &labels, &kinds, &c.Enabled,
		&c.CreatedBy, &c.CreatedAt); err != nil {
		return store.Channel{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(config), &c.Config), json.Unmarshal([]byte(labels), &c.Labels),
		json.Unmarshal([]byte(kinds), &c.Kinds)); err != nil {
		return store.Channel{}, fmt.Errorf("channel %q: decode settings: %w", c.Name, err)
	}
	if len(c.Secret) == 0 {
		c.Secret = nil
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// channelJSON encodes a channel's maps and kinds, nil as empty.
func channelJSON(c store.Channel) (config, labels, kinds string, err error) {
	if c.Config == nil {
		c.Config = map[string]string{}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	if c.Kinds == nil {
		c.Kinds = []string{}
	}
	cj, err1 := json.Marshal(c.Config)
	lj, err2 := json.Marshal(c.Labels)
	kj, err3 := json.Marshal(c.Kinds)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", "", "", fmt.Errorf("channel %q: encode settings: %w", c.Name, err)
	}
	return string(cj), string(lj), string(kj), nil
}

// secretBytes stores a nil secret as an empty value (the column is NOT
// NULL).
func secretBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// CreateChannel implements store.Governance.
func (s *Store) CreateChannel(ctx context.Context, c store.Channel) (store.Channel, error) {
	if c.Name == "" {
		return store.Channel{}, errors.New("create channel: empty name")
	}
	config, labels, kinds, err := channelJSON(c)
	if err != nil {
		return store.Channel{}, err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	out, err := scanChannel(s.pool.QueryRow(ctx, `INSERT INTO notification_channels(name, kind, config, secret,
			min_severity, labels, kinds, enabled, created_by, created_at)
		VALUES ($1, $2, $3::jsonb, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10) RETURNING `+channelColumns,
		c.Name, c.Kind, config, secretBytes(c.Secret), c.MinSeverity, labels, kinds, c.Enabled, c.CreatedBy,
		store.Micro(c.CreatedAt)))
	if isUnique(err) {
		return store.Channel{}, fmt.Errorf("create channel %q: %w", c.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Channel{}, fmt.Errorf("create channel %q: %w", c.Name, err)
	}
	return out, nil
}

// Channel implements store.Governance.
func (s *Store) Channel(ctx context.Context, id int64) (store.Channel, error) {
	c, err := scanChannel(s.pool.QueryRow(ctx, `SELECT `+channelColumns+` FROM notification_channels WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Channel{}, fmt.Errorf("channel %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Channel{}, fmt.Errorf("channel %d: %w", id, err)
	}
	return c, nil
}

// Channels implements store.Governance.
func (s *Store) Channels(ctx context.Context) ([]store.Channel, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+channelColumns+` FROM notification_channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	defer rows.Close()
	var out []store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("list channels: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return out, nil
}

// UpdateChannel implements store.Governance. Kind, CreatedBy and
// CreatedAt stay as created; a rename onto another channel's name is
// ErrConflict.
func (s *Store) UpdateChannel(ctx context.Context, c store.Channel) error {
	if c.Name == "" {
		return fmt.Errorf("update channel %d: empty name", c.ID)
	}
	config, labels, kinds, err := channelJSON(c)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE notification_channels SET name = $1, config = $2::jsonb, secret = $3,
			min_severity = $4, labels = $5::jsonb, kinds = $6::jsonb, enabled = $7 WHERE id = $8`,
		c.Name, config, secretBytes(c.Secret), c.MinSeverity, labels, kinds, c.Enabled, c.ID)
	if isUnique(err) {
		return fmt.Errorf("update channel %d: name %q: %w", c.ID, c.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update channel %d: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update channel %d: %w", c.ID, store.ErrNotFound)
	}
	return nil
}

// DeleteChannel implements store.Governance; the foreign key's ON DELETE
// CASCADE removes the delivery log in the same statement.
func (s *Store) DeleteChannel(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM notification_channels WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete channel %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete channel %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// deliveryColumns is the column list every delivery read selects, in the
// order scanDelivery expects.
const deliveryColumns = `id, channel_id, alert_id, event, at, ok, attempts, status, duration`

func scanDelivery(r pgx.Row) (store.Delivery, error) {
	var d store.Delivery
	var alert *int64
	var attempts int32
	var dur int64
	if err := r.Scan(&d.ID, &d.ChannelID, &alert, &d.Event, &d.At, &d.OK, &attempts, &d.Status, &dur); err != nil {
		return store.Delivery{}, err
	}
	d.AlertID, d.At, d.Attempts, d.Duration = fromNullID(alert), d.At.UTC(), int(attempts), time.Duration(dur)
	return d, nil
}

// AppendDelivery implements store.Governance. An unknown channel is
// ErrNotFound.
func (s *Store) AppendDelivery(ctx context.Context, d store.Delivery) (store.Delivery, error) {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	out, err := scanDelivery(s.pool.QueryRow(ctx, `INSERT INTO notification_deliveries(channel_id, alert_id, event,
			at, ok, attempts, status, duration) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+deliveryColumns,
		d.ChannelID, nullID(d.AlertID), d.Event, store.Micro(d.At), d.OK, d.Attempts, d.Status, int64(d.Duration)))
	if isForeignKey(err) {
		return store.Delivery{}, fmt.Errorf("record delivery to channel %d: %w", d.ChannelID, store.ErrNotFound)
	}
	if err != nil {
		return store.Delivery{}, fmt.Errorf("record delivery to channel %d: %w", d.ChannelID, err)
	}
	return out, nil
}

// Deliveries implements store.Governance.
func (s *Store) Deliveries(ctx context.Context, channelID int64, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM notification_deliveries
		WHERE $1::bigint = 0 OR channel_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, channelID, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of channel %d: %w", channelID, err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("deliveries of channel %d: %w", channelID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deliveries of channel %d: %w", channelID, err)
	}
	return out, nil
}
