package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// exceptionColumns is the column list every exception read selects, in
// the order scanException expects.
const exceptionColumns = `id, rule_id, host_id, group_id, justification, expires_at, state, requested_by, requested_at,
	decided_by, decided_at, decision_note, revoked_by, revoked_at, revoke_note, expired_at`

func scanException(r rowScanner) (store.Exception, error) {
	var e store.Exception
	var host, group, expires, decided, revoked, expired sql.NullInt64
	var state string
	var requested int64
	if err := r.Scan(&e.ID, &e.RuleID, &host, &group, &e.Justification, &expires, &state, &e.RequestedBy, &requested,
		&e.DecidedBy, &decided, &e.DecisionNote, &e.RevokedBy, &revoked, &e.RevokeNote, &expired); err != nil {
		return store.Exception{}, err
	}
	e.HostID, e.GroupID = host.Int64, group.Int64
	e.State = store.ExceptionState(state)
	e.ExpiresAt, e.RequestedAt = fromNullMicros(expires), fromMicros(requested)
	e.DecidedAt, e.RevokedAt, e.ExpiredAt = fromNullMicros(decided), fromNullMicros(revoked), fromNullMicros(expired)
	return e, nil
}

func collectExceptions(rows *sql.Rows) ([]store.Exception, error) {
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
	out, err := scanException(s.w.QueryRowContext(ctx, `INSERT INTO exceptions(rule_id, host_id, group_id, justification,
			expires_at, state, requested_by, requested_at) VALUES (?, ?, ?, ?, ?, 'requested', ?, ?)
		RETURNING `+exceptionColumns,
		e.RuleID, nullID(e.HostID), nullID(e.GroupID), e.Justification, nullMicros(e.ExpiresAt), e.RequestedBy,
		micros(e.RequestedAt)))
	if isForeignKey(err) {
		return store.Exception{}, fmt.Errorf("create exception for rule %s: host %d: %w", e.RuleID, e.HostID, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("create exception for rule %s: %w", e.RuleID, err)
	}
	return out, nil
}

// isForeignKey tells whether err is a FOREIGN KEY constraint violation.
func isForeignKey(err error) bool {
	var se *sqlitedrv.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// Exception implements store.Governance.
func (s *Store) Exception(ctx context.Context, id int64) (store.Exception, error) {
	e, err := scanException(s.r.QueryRowContext(ctx, `SELECT `+exceptionColumns+` FROM exceptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("exception %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("exception %d: %w", id, err)
	}
	return e, nil
}

// Exceptions implements store.Governance.
func (s *Store) Exceptions(ctx context.Context, f store.ExceptionFilter) ([]store.Exception, error) {
	if f.States != nil && len(f.States) == 0 {
		return nil, nil
	}
	states, err := jsonList(f.States)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+exceptionColumns+` FROM exceptions
		WHERE (?1 IS NULL OR state IN (SELECT value FROM json_each(?1)))
			AND (?2 = '' OR rule_id = ?2) AND (?3 = 0 OR host_id = ?3) AND (?4 = 0 OR group_id = ?4)
		ORDER BY requested_at DESC, id DESC LIMIT ?5`, states, f.RuleID, f.HostID, f.GroupID, limit)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	out, err := collectExceptions(rows)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	return out, nil
}

// decisionSet is the SET clause of each target state of DecideException
// (?1 by, ?2 at, ?3 note).
var decisionSet = map[store.ExceptionState]string{
	store.ExceptionApproved: `state = 'approved', decided_by = ?1, decided_at = ?2, decision_note = ?3`,
	store.ExceptionRejected: `state = 'rejected', decided_by = ?1, decided_at = ?2, decision_note = ?3`,
	store.ExceptionRevoked:  `state = 'revoked', revoked_by = ?1, revoked_at = ?2, revoke_note = ?3`,
	store.ExceptionExpired:  `state = 'expired', expired_at = ?2`,
}

// DecideException implements store.Governance: one conditional UPDATE, so
// two deciders racing cannot both move the exception; the loser reads the
// state the winner left.
func (s *Store) DecideException(ctx context.Context, d store.ExceptionDecision) (store.Exception, error) {
	set, ok := decisionSet[d.To]
	if !ok {
		return store.Exception{}, fmt.Errorf("decide exception %d: cannot move to %q", d.ID, d.To)
	}
	from, err := jsonList(d.From)
	if err != nil {
		return store.Exception{}, err
	}
	if from == nil {
		from = "[]"
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	e, err := scanException(s.w.QueryRowContext(ctx, `UPDATE exceptions SET `+set+`
		WHERE id = ?4 AND state IN (SELECT value FROM json_each(?5)) RETURNING `+exceptionColumns,
		d.By, micros(d.At), d.Note, d.ID, from))
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, err)
	}
	var state string
	err = s.w.QueryRowContext(ctx, `SELECT state FROM exceptions WHERE id = ?`, d.ID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Exception{}, fmt.Errorf("decide exception %d: %w", d.ID, err)
	}
	return store.Exception{}, fmt.Errorf("decide exception %d: cannot move to %s, it is %s: %w", d.ID, d.To, state, store.ErrConflict)
}

// ExpireExceptions implements store.Governance. The single writer makes
// the UPDATE exclusive, so concurrent callers get disjoint sets.
func (s *Store) ExpireExceptions(ctx context.Context, now time.Time) ([]store.Exception, error) {
	rows, err := s.w.QueryContext(ctx, `UPDATE exceptions SET state = 'expired', expired_at = ?1
		WHERE state = 'approved' AND expires_at IS NOT NULL AND expires_at <= ?1 RETURNING `+exceptionColumns, micros(now))
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

// FailingAt implements store.Governance: from current_state when at is
// zero, else from the transitions in force at `at` (at <= T < valid_to),
// as CountsAt does.
func (s *Store) FailingAt(ctx context.Context, at time.Time, ruleIDs []string, hostIDs []int64) ([]store.HostRule, error) {
	if len(ruleIDs) == 0 {
		return nil, errors.New("failing rules: no rule ids")
	}
	if hostIDs != nil && len(hostIDs) == 0 {
		return nil, nil
	}
	rules, err := jsonList(ruleIDs)
	if err != nil {
		return nil, err
	}
	hosts, err := jsonList(hostIDs)
	if err != nil {
		return nil, err
	}
	// ?3 NULL: every host not deleted; otherwise exactly the hosts given.
	hostFilter := `((?3 IS NULL AND x.host_id IN (SELECT id FROM hosts WHERE deleted_at IS NULL))
		OR x.host_id IN (SELECT value FROM json_each(?3)))`
	var q string
	var args []any
	if at.IsZero() {
		q = `SELECT x.host_id, x.rule_id, x.severity, x.scan_id FROM current_state x
			WHERE x.status = 'fail' AND x.rule_id IN (SELECT value FROM json_each(?2)) AND ` + hostFilter + `
			ORDER BY x.host_id, x.rule_id`
		args = []any{nil, rules, hosts}
	} else {
		q = `SELECT x.host_id, x.rule_id, x.severity, x.scan_id FROM transitions x
			WHERE x.at <= ?1 AND (x.valid_to IS NULL OR x.valid_to > ?1) AND x.to_status = 'fail'
				AND x.rule_id IN (SELECT value FROM json_each(?2)) AND ` + hostFilter + `
			ORDER BY x.host_id, x.rule_id`
		args = []any{micros(at), rules, hosts}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("failing rules at %s: %w", at, err)
	}
	defer rows.Close()
	var out []store.HostRule
	for rows.Next() {
		var hr store.HostRule
		var sev string
		if err := rows.Scan(&hr.HostID, &hr.RuleID, &sev, &hr.ScanID); err != nil {
			return nil, fmt.Errorf("failing rules at %s: %w", at, err)
		}
		hr.Severity = rule.Severity(sev)
		out = append(out, hr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failing rules at %s: %w", at, err)
	}
	return out, nil
}

// alertColumns is the column list every alert read selects, in the order
// scanAlert expects.
const alertColumns = `id, kind, key, severity, host_id, agent_id, rule_id, exception_id, labels, title, detail, state,
	opened_at, last_seen_at, count, ack_by, ack_at, silenced_until, resolved_by, resolved_at`

func scanAlert(r rowScanner) (store.Alert, error) {
	var a store.Alert
	var host, agent, exc, ack, silenced, resolved sql.NullInt64
	var labels, state string
	var opened, seen int64
	if err := r.Scan(&a.ID, &a.Kind, &a.Key, &a.Severity, &host, &agent, &a.RuleID, &exc, &labels, &a.Title, &a.Detail,
		&state, &opened, &seen, &a.Count, &a.AckBy, &ack, &silenced, &a.ResolvedBy, &resolved); err != nil {
		return store.Alert{}, err
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return store.Alert{}, fmt.Errorf("alert %d: decode labels: %w", a.ID, err)
	}
	a.HostID, a.AgentID, a.ExceptionID = host.Int64, agent.Int64, exc.Int64
	a.State = store.AlertState(state)
	a.OpenedAt, a.LastSeenAt = fromMicros(opened), fromMicros(seen)
	a.AckAt, a.SilencedUntil, a.ResolvedAt = fromNullMicros(ack), fromNullMicros(silenced), fromNullMicros(resolved)
	return a, nil
}

func collectAlerts(rows *sql.Rows) ([]store.Alert, error) {
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

// RaiseAlert implements store.Governance with one upsert on the partial
// unique index of unresolved keys: the single writer runs it whole, so
// concurrent raisers of one key update the one row. Only an insert leaves
// count at 1 (every update adds one), which tells created.
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
	out, err := scanAlert(s.w.QueryRowContext(ctx, `INSERT INTO alerts(kind, key, severity, host_id, agent_id, rule_id,
			exception_id, labels, title, detail, state, opened_at, last_seen_at, count)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'active', ?11, ?11, 1)
		ON CONFLICT (key) WHERE state <> 'resolved' DO UPDATE SET
			last_seen_at = max(alerts.last_seen_at, excluded.last_seen_at), count = alerts.count + 1,
			title = excluded.title, detail = excluded.detail, severity = excluded.severity,
			state = CASE WHEN alerts.state = 'silenced' AND alerts.silenced_until <= ?11 THEN 'active' ELSE alerts.state END,
			ack_by = CASE WHEN alerts.state = 'silenced' AND alerts.silenced_until <= ?11 THEN '' ELSE alerts.ack_by END,
			ack_at = CASE WHEN alerts.state = 'silenced' AND alerts.silenced_until <= ?11 THEN NULL ELSE alerts.ack_at END,
			silenced_until = CASE WHEN alerts.state = 'silenced' AND alerts.silenced_until <= ?11 THEN NULL
				ELSE alerts.silenced_until END
		RETURNING `+alertColumns,
		a.Kind, a.Key, a.Severity, nullID(a.HostID), nullID(a.AgentID), a.RuleID, nullID(a.ExceptionID), lj, a.Title,
		a.Detail, micros(a.At)))
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
		keep = []string{}
	}
	kj, err := jsonList(kinds)
	if err != nil {
		return nil, err
	}
	keepj, err := jsonList(keep)
	if err != nil {
		return nil, err
	}
	rows, err := s.w.QueryContext(ctx, `UPDATE alerts SET state = 'resolved', resolved_by = 'system', resolved_at = ?1
		WHERE state <> 'resolved' AND kind IN (SELECT value FROM json_each(?2))
			AND key NOT IN (SELECT value FROM json_each(?3))
		RETURNING `+alertColumns, micros(at), kj, keepj)
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

// alertChangeSet is the SET clause of each target state of SetAlertState
// (?1 by, ?2 at, ?3 until).
var alertChangeSet = map[store.AlertState]string{
	store.AlertAcknowledged: `state = 'acknowledged', ack_by = ?1, ack_at = ?2, silenced_until = NULL`,
	store.AlertSilenced:     `state = 'silenced', ack_by = ?1, ack_at = ?2, silenced_until = ?3`,
	store.AlertResolved:     `state = 'resolved', resolved_by = ?1, resolved_at = ?2`,
	store.AlertActive:       `state = 'active', ack_by = '', ack_at = NULL, silenced_until = NULL`,
}

// SetAlertState implements store.Governance with one conditional UPDATE
// that never touches a resolved alert.
func (s *Store) SetAlertState(ctx context.Context, ch store.AlertChange) (store.Alert, error) {
	set, ok := alertChangeSet[ch.To]
	if !ok {
		return store.Alert{}, fmt.Errorf("change alert %d: unknown state %q", ch.ID, ch.To)
	}
	if ch.To == store.AlertSilenced && ch.Until.IsZero() {
		return store.Alert{}, fmt.Errorf("silence alert %d: no end time", ch.ID)
	}
	if ch.At.IsZero() {
		ch.At = time.Now()
	}
	a, err := scanAlert(s.w.QueryRowContext(ctx, `UPDATE alerts SET `+set+`
		WHERE id = ?4 AND state <> 'resolved' RETURNING `+alertColumns,
		ch.By, micros(ch.At), nullMicros(ch.Until), ch.ID))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Alert{}, fmt.Errorf("change alert %d to %s: %w", ch.ID, ch.To, err)
	}
	var state string
	err = s.w.QueryRowContext(ctx, `SELECT state FROM alerts WHERE id = ?`, ch.ID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Alert{}, fmt.Errorf("change alert %d: %w", ch.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Alert{}, fmt.Errorf("change alert %d to %s: %w", ch.ID, ch.To, err)
	}
	return store.Alert{}, fmt.Errorf("change alert %d to %s: it is %s: %w", ch.ID, ch.To, state, store.ErrConflict)
}

// Alert implements store.Governance.
func (s *Store) Alert(ctx context.Context, id int64) (store.Alert, error) {
	a, err := scanAlert(s.r.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	states, err := jsonList(f.States)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE (?1 IS NULL OR state IN (SELECT value FROM json_each(?1)))
			AND (?2 = '' OR kind = ?2) AND (?3 = 0 OR host_id = ?3)
		ORDER BY last_seen_at DESC, id DESC LIMIT ?4`, states, f.Kind, f.HostID, limit)
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
	rows, err := s.r.QueryContext(ctx, `SELECT CASE WHEN state = 'silenced' AND silenced_until <= ?1 THEN 'active'
			ELSE state END AS eff, count(*)
		FROM alerts WHERE state <> 'resolved' OR (resolved_at > ?2 AND resolved_at <= ?1)
		GROUP BY eff`, micros(now), micros(now.Add(-24*time.Hour)))
	if err != nil {
		return nil, fmt.Errorf("count alerts at %s: %w", now, err)
	}
	defer rows.Close()
	out := map[store.AlertState]int{store.AlertActive: 0, store.AlertAcknowledged: 0, store.AlertSilenced: 0, store.AlertResolved: 0}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count alerts at %s: %w", now, err)
		}
		out[store.AlertState(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count alerts at %s: %w", now, err)
	}
	return out, nil
}

// channelColumns is the column list every channel read selects, in the
// order scanChannel expects.
const channelColumns = `id, name, kind, config, secret, min_severity, labels, kinds, enabled, created_by, created_at`

func scanChannel(r rowScanner) (store.Channel, error) {
	var c store.Channel
	var config, labels, kinds string
	var created int64
	if err := r.Scan(&c.ID, &c.Name, &c.Kind, &config, &c.Secret, &c.MinSeverity, &labels, &kinds, &c.Enabled,
		&c.CreatedBy, &created); err != nil {
		return store.Channel{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(config), &c.Config), json.Unmarshal([]byte(labels), &c.Labels),
		json.Unmarshal([]byte(kinds), &c.Kinds)); err != nil {
		return store.Channel{}, fmt.Errorf("channel %q: decode settings: %w", c.Name, err)
	}
	if len(c.Secret) == 0 {
		c.Secret = nil
	}
	c.CreatedAt = fromMicros(created)
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
	out, err := scanChannel(s.w.QueryRowContext(ctx, `INSERT INTO notification_channels(name, kind, config, secret,
			min_severity, labels, kinds, enabled, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+channelColumns,
		c.Name, c.Kind, config, secretBytes(c.Secret), c.MinSeverity, labels, kinds, c.Enabled, c.CreatedBy, micros(c.CreatedAt)))
	if isUnique(err) {
		return store.Channel{}, fmt.Errorf("create channel %q: %w", c.Name, store.ErrConflict)
	}
	if err != nil {
		return store.Channel{}, fmt.Errorf("create channel %q: %w", c.Name, err)
	}
	return out, nil
}

// secretBytes stores a nil secret as an empty blob (the column is NOT NULL).
func secretBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Channel implements store.Governance.
func (s *Store) Channel(ctx context.Context, id int64) (store.Channel, error) {
	c, err := scanChannel(s.r.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM notification_channels WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Channel{}, fmt.Errorf("channel %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Channel{}, fmt.Errorf("channel %d: %w", id, err)
	}
	return c, nil
}

// Channels implements store.Governance.
func (s *Store) Channels(ctx context.Context) ([]store.Channel, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+channelColumns+` FROM notification_channels ORDER BY name`)
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
	config, labels, kinds, err := channelJSON(c)
	if err != nil {
		return err
	}
	if c.Name == "" {
		return fmt.Errorf("update channel %d: empty name", c.ID)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE notification_channels SET name = ?, config = ?, secret = ?,
			min_severity = ?, labels = ?, kinds = ?, enabled = ? WHERE id = ?`,
		c.Name, config, secretBytes(c.Secret), c.MinSeverity, labels, kinds, c.Enabled, c.ID)
	if isUnique(err) {
		return fmt.Errorf("update channel %d: name %q: %w", c.ID, c.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update channel %d: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update channel %d: %w", c.ID, store.ErrNotFound)
	}
	return nil
}

// DeleteChannel implements store.Governance; the foreign key's ON DELETE
// CASCADE removes the delivery log in the same statement.
func (s *Store) DeleteChannel(ctx context.Context, id int64) error {
	return s.exec(ctx, fmt.Sprintf("delete channel %d", id), `DELETE FROM notification_channels WHERE id = ?`, id)
}

// deliveryColumns is the column list every delivery read selects, in the
// order scanDelivery expects.
const deliveryColumns = `id, channel_id, alert_id, event, at, ok, attempts, status, duration`

func scanDelivery(r rowScanner) (store.Delivery, error) {
	var d store.Delivery
	var alert sql.NullInt64
	var at, dur int64
	if err := r.Scan(&d.ID, &d.ChannelID, &alert, &d.Event, &at, &d.OK, &d.Attempts, &d.Status, &dur); err != nil {
		return store.Delivery{}, err
	}
	d.AlertID, d.At, d.Duration = alert.Int64, fromMicros(at), time.Duration(dur)
	return d, nil
}

// AppendDelivery implements store.Governance. An unknown channel is
// ErrNotFound.
func (s *Store) AppendDelivery(ctx context.Context, d store.Delivery) (store.Delivery, error) {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	out, err := scanDelivery(s.w.QueryRowContext(ctx, `INSERT INTO notification_deliveries(channel_id, alert_id, event,
			at, ok, attempts, status, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+deliveryColumns,
		d.ChannelID, nullID(d.AlertID), d.Event, micros(d.At), d.OK, d.Attempts, d.Status, int64(d.Duration)))
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM notification_deliveries
		WHERE ?1 = 0 OR channel_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2`, channelID, limit)
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
