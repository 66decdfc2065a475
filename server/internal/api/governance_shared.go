package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Bounds on what callers write into governance records.
const (
	minJustification = 10
	maxJustification = 4000
	maxDecisionNote  = 2000
	maxRuleIDLen     = 200
	// maxSilence is the longest an alert may be silenced for: an alert
	// silenced for good is an alert nobody will see again.
	maxSilence = 30 * 24 * time.Hour
)

// ExceptionInput is a request for an exception as POST /exceptions takes it.
type ExceptionInput struct {
	HostID        int64  `json:"host_id"`
	GroupID       int64  `json:"group_id"`
	RuleID        string `json:"rule_id"`
	Justification string `json:"justification"`
	ExpiresAt     string `json:"expires_at"` // RFC 3339 or YYYY-MM-DD (end of that day); "" no expiry
}

// exceptionActions maps the decision verbs of the API (and the UI's
// buttons) to the state each moves an exception to.
func exceptionActions() map[string]store.ExceptionState {
	return map[string]store.ExceptionState{
		"approve": store.ExceptionApproved,
		"reject":  store.ExceptionRejected,
		"revoke":  store.ExceptionRevoked,
	}
}

// alertActions maps the alert verbs to the state each moves an alert to.
func alertActions() map[string]store.AlertState {
	return map[string]store.AlertState{
		"acknowledge": store.AlertAcknowledged,
		"silence":     store.AlertSilenced,
		"resolve":     store.AlertResolved,
		"reactivate":  store.AlertActive,
	}
}

// governanceReady refuses with 503 when the server runs without the
// governance services (a wiring fault, never a caller's), rather than
// letting a nil pointer answer 500 without explanation.
func (s *Server) governanceReady(what string, ok bool) *Refusal {
	if ok {
		return nil
	}
	return &Refusal{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: what + " is not configured on this server"}
}

// actorOf is the signed-in caller's username, the name audit entries and
// governance records carry.
func actorOf(c *gin.Context) string {
	if pr := principal(c); pr != nil {
		return pr.User.Username
	}
	return "anonymous"
}

// exceptionTarget and friends name audit targets.
func exceptionTarget(id int64) string { return "exception/" + strconv.FormatInt(id, 10) }
func alertTarget(id int64) string     { return "alert/" + strconv.FormatInt(id, 10) }
func channelTarget(id int64) string   { return "channel/" + strconv.FormatInt(id, 10) }

// exceptionScope names an exception's scope: host, group or fleet.
func exceptionScope(e store.Exception) string {
	switch {
	case e.HostID != 0:
		return "host"
	case e.GroupID != 0:
		return "group"
	}
	return "fleet"
}

// exceptionAudit is the detail every exception.* audit entry carries: the
// rule and the scope, with the scope's id.
func exceptionAudit(e store.Exception) map[string]any {
	d := map[string]any{"rule_id": e.RuleID, "scope": exceptionScope(e)}
	if e.HostID != 0 {
		d["host_id"] = e.HostID
	}
	if e.GroupID != 0 {
		d["group_id"] = e.GroupID
	}
	return d
}

// fieldRefusal turns the governance and notify services' field errors into
// a 400 naming the field; ok is false for any other error.
func fieldRefusal(err error) (*Refusal, bool) {
	var gf *governance.FieldError
	if errors.As(err, &gf) {
		return invalid(gf.Field, "%s", gf.Msg), true
	}
	var nf *notify.FieldError
	if errors.As(err, &nf) {
		return invalid(nf.Field, "%s", nf.Msg), true
	}
	return nil, false
}

// RequestException validates a request for an exception, records it in
// state requested by the caller and audits it ("exception.request"). The
// REST API and the web UI both request exceptions through it.
func (s *Server) RequestException(c *gin.Context, in ExceptionInput) (store.Exception, *Refusal) {
	if r := s.governanceReady("exceptions", s.d.Governance != nil); r != nil {
		return store.Exception{}, r
	}
	req, r := s.exceptionRequest(c, in)
	if r != nil {
		return store.Exception{}, r
	}
	e, err := s.d.Governance.RequestException(c.Request.Context(), actorOf(c), req)
	if err != nil {
		if fr, ok := fieldRefusal(err); ok {
			return store.Exception{}, fr
		}
		if errors.Is(err, store.ErrNotFound) {
			// The host or group went away between the check and the insert.
			field := "host_id"
			if in.GroupID != 0 {
				field = "group_id"
			}
			return store.Exception{}, invalid(field, "%v", err)
		}
		return store.Exception{}, failed(fmt.Errorf("request exception for rule %s: %w", in.RuleID, err))
	}
	d := exceptionAudit(e)
	d["justification"] = e.Justification
	if !e.ExpiresAt.IsZero() {
		d["expires_at"] = e.ExpiresAt.UTC()
	}
	if err := s.AppendAudit(c, "exception.request", exceptionTarget(e.ID), d); err != nil {
		return store.Exception{}, failed(err)
	}
	return e, nil
}

// exceptionRequest checks an ExceptionInput field by field: the rule is in
// the corpus, the host or group exists (at most one of them), the
// justification says something and the expiry is a future moment.
func (s *Server) exceptionRequest(c *gin.Context, in ExceptionInput) (governance.ExceptionRequest, *Refusal) {
	ctx := c.Request.Context()
	req := governance.ExceptionRequest{RuleID: strings.TrimSpace(in.RuleID), HostID: in.HostID, GroupID: in.GroupID,
		Justification: strings.TrimSpace(in.Justification)}
	switch {
	case req.RuleID == "":
		return req, invalid("rule_id", "rule_id is required")
	case len(req.RuleID) > maxRuleIDLen:
		return req, invalid("rule_id", "rule_id is longer than %d bytes", maxRuleIDLen)
	case s.d.Posture != nil && s.index().Rule(req.RuleID) == nil:
		return req, invalid("rule_id", "no rule %q in the corpus; GET /api/v1/rules lists them", truncate(req.RuleID, 80))
	case in.HostID < 0:
		return req, invalid("host_id", "host_id must be a positive host id, got %d", in.HostID)
	case in.GroupID < 0:
		return req, invalid("group_id", "group_id must be a positive group id, got %d", in.GroupID)
	case in.HostID != 0 && in.GroupID != 0:
		return req, invalid("group_id", "give host_id or group_id (or neither, for the whole fleet), not both")
	}
	if n := utf8.RuneCountInString(req.Justification); n < minJustification || n > maxJustification {
		return req, invalid("justification", "justification must be %d to %d characters, got %d", minJustification, maxJustification, n)
	}
	if in.HostID != 0 {
		if _, err := s.d.Store.Host(ctx, in.HostID); errors.Is(err, store.ErrNotFound) {
			return req, invalid("host_id", "no host with id %d", in.HostID)
		} else if err != nil {
			return req, failed(fmt.Errorf("request exception: host %d: %w", in.HostID, err))
		}
	}
	if in.GroupID != 0 {
		groups, err := s.d.Store.Groups(ctx)
		if err != nil {
			return req, failed(fmt.Errorf("request exception: groups: %w", err))
		}
		if !slices.ContainsFunc(groups, func(g store.Group) bool { return g.ID == in.GroupID }) {
			return req, invalid("group_id", "no group with id %d", in.GroupID)
		}
	}
	if v := strings.TrimSpace(in.ExpiresAt); v != "" {
		at, err := parseMoment(v, true)
		if err != nil {
			return req, invalid("expires_at", "expires_at: %v", err)
		}
		if !at.After(s.now()) {
			return req, invalid("expires_at", "expires_at %s is not in the future", at.Format(time.RFC3339))
		}
		req.ExpiresAt = at
	}
	return req, nil
}

// DecideException applies action approve, reject or revoke by the caller
// to exception id, with an optional note, and audits it
// ("exception.approve", ".reject", ".revoke"). The requester may not
// approve or reject their own request (403 "self_approval"); an exception
// in the wrong state is 409 naming the state it is in.
func (s *Server) DecideException(c *gin.Context, id int64, action, note string) (store.Exception, *Refusal) {
	if r := s.governanceReady("exceptions", s.d.Governance != nil); r != nil {
		return store.Exception{}, r
	}
	to, ok := exceptionActions()[action]
	if !ok {
		return store.Exception{}, invalid("action", "action must be approve, reject or revoke, got %q", truncate(action, 40))
	}
	note = strings.TrimSpace(note)
	if n := utf8.RuneCountInString(note); n > maxDecisionNote {
		return store.Exception{}, invalid("note", "note is %d characters, at most %d", n, maxDecisionNote)
	}
	ctx := c.Request.Context()
	before, err := s.d.Store.Exception(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Exception{}, &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no exception with id %d", id)}
	} else if err != nil {
		return store.Exception{}, failed(fmt.Errorf("exception %d: %w", id, err))
	}
	e, err := s.d.Governance.DecideException(ctx, actorOf(c), id, to, note)
	switch {
	case errors.Is(err, governance.ErrSelfApproval):
		return store.Exception{}, &Refusal{Status: http.StatusForbidden, Code: "self_approval",
			Message: fmt.Sprintf("exception %d was requested by %s; someone else must %s it", id, before.RequestedBy, action)}
	case errors.Is(err, store.ErrConflict):
		state := before.State
		if cur, gerr := s.d.Store.Exception(ctx, id); gerr == nil {
			state = cur.State
		}
		return store.Exception{}, &Refusal{Status: http.StatusConflict, Code: "conflict", Field: "state",
			Message: fmt.Sprintf("exception %d is %s; %s needs it %s", id, state, action, neededExceptionState(to))}
	case errors.Is(err, store.ErrNotFound):
		return store.Exception{}, &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no exception with id %d", id)}
	case err != nil:
		if fr, ok := fieldRefusal(err); ok {
			return store.Exception{}, fr
		}
		return store.Exception{}, failed(fmt.Errorf("%s exception %d: %w", action, id, err))
	}
	d := exceptionAudit(e)
	d["from"], d["to"] = string(before.State), string(e.State)
	if note != "" {
		d["note"] = note
	}
	if err := s.AppendAudit(c, "exception."+action, exceptionTarget(id), d); err != nil {
		return store.Exception{}, failed(err)
	}
	return e, nil
}

// neededExceptionState says which state a move starts from, for the 409.
func neededExceptionState(to store.ExceptionState) string {
	if to == store.ExceptionRevoked {
		return string(store.ExceptionApproved)
	}
	return string(store.ExceptionRequested)
}

// ChangeAlert applies action acknowledge, silence (until a moment after
// now, at most 30 days ahead), resolve or reactivate by the caller to
// alert id, and audits it ("alert.acknowledge", ...). A resolved alert
// cannot change (409 naming its state).
func (s *Server) ChangeAlert(c *gin.Context, id int64, action string, until time.Time) (store.Alert, *Refusal) {
	if r := s.governanceReady("alerts", s.d.Governance != nil); r != nil {
		return store.Alert{}, r
	}
	to, ok := alertActions()[action]
	if !ok {
		return store.Alert{}, invalid("action", "action must be acknowledge, silence, resolve or reactivate, got %q", truncate(action, 40))
	}
	now := s.now()
	if to == store.AlertSilenced {
		switch {
		case until.IsZero():
			return store.Alert{}, invalid("until", "silence needs until, the moment the alert becomes active again")
		case !until.After(now):
			return store.Alert{}, invalid("until", "until %s is not in the future", until.UTC().Format(time.RFC3339))
		case until.Sub(now) > maxSilence:
			return store.Alert{}, invalid("until", "until %s is more than 30 days ahead", until.UTC().Format(time.RFC3339))
		}
	} else if !until.IsZero() {
		return store.Alert{}, invalid("until", "until applies to silence only")
	}
	ctx := c.Request.Context()
	before, err := s.d.Store.Alert(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Alert{}, &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no alert with id %d", id)}
	} else if err != nil {
		return store.Alert{}, failed(fmt.Errorf("alert %d: %w", id, err))
	}
	a, err := s.d.Governance.SetAlertState(ctx, actorOf(c), id, to, until)
	switch {
	case errors.Is(err, store.ErrConflict):
		state := effectiveAlertState(before, now)
		if cur, gerr := s.d.Store.Alert(ctx, id); gerr == nil {
			state = effectiveAlertState(cur, now)
		}
		return store.Alert{}, &Refusal{Status: http.StatusConflict, Code: "conflict", Field: "state",
			Message: fmt.Sprintf("alert %d is %s; it cannot be %s", id, state, alertPastTense(action))}
	case errors.Is(err, store.ErrNotFound):
		return store.Alert{}, &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no alert with id %d", id)}
	case err != nil:
		if fr, ok := fieldRefusal(err); ok {
			return store.Alert{}, fr
		}
		return store.Alert{}, failed(fmt.Errorf("%s alert %d: %w", action, id, err))
	}
	d := map[string]any{"kind": a.Kind, "key": a.Key, "severity": a.Severity,
		"from": string(effectiveAlertState(before, now)), "to": string(effectiveAlertState(a, now))}
	if to == store.AlertSilenced {
		d["until"] = until.UTC()
	}
	if err := s.AppendAudit(c, "alert."+action, alertTarget(id), d); err != nil {
		return store.Alert{}, failed(err)
	}
	return a, nil
}

// alertPastTense words an alert action for messages.
func alertPastTense(action string) string {
	switch action {
	case "acknowledge":
		return "acknowledged"
	case "silence":
		return "silenced"
	case "resolve":
		return "resolved"
	}
	return "reactivated"
}

// effectiveAlertState is the state an alert shows: a silence whose time
// has passed shows as active even before the next evaluation stores it.
func effectiveAlertState(a store.Alert, now time.Time) store.AlertState {
	if a.State == store.AlertSilenced && !a.SilencedUntil.After(now) {
		return store.AlertActive
	}
	return a.State
}

// channelAudit is what channel.* audit entries say about a channel: never
// a setting's value, since some are secrets.
func channelAudit(ch store.Channel) map[string]any {
	d := map[string]any{"name": ch.Name, "kind": ch.Kind, "min_severity": ch.MinSeverity, "enabled": ch.Enabled}
	if len(ch.Kinds) > 0 {
		d["kinds"] = ch.Kinds
	}
	if len(ch.Labels) > 0 {
		d["labels"] = ch.Labels
	}
	return d
}

// settingNames lists a channel input's setting names (not their values)
// for the audit log, sorted.
func settingNames(in notify.ChannelInput) []string {
	names := make([]string, 0, len(in.Settings))
	for k, v := range in.Settings {
		if v != "" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// channelFailed maps the notifier's errors: a refused setting is 400
// naming it, a duplicate name 409, a missing channel 404.
func channelFailed(err error, id int64, name string) *Refusal {
	if fr, ok := fieldRefusal(err); ok {
		return fr
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		return conflictRefusal("name", fmt.Sprintf("a channel named %q already exists", truncate(name, 80)))
	case errors.Is(err, store.ErrNotFound):
		return &Refusal{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no notification channel with id %d", id)}
	}
	return failed(err)
}

// CreateChannel validates and stores a notification channel (its secret
// settings sealed by the notifier) and audits it ("channel.create") with
// the setting names only.
func (s *Server) CreateChannel(c *gin.Context, in notify.ChannelInput) (store.Channel, *Refusal) {
	if r := s.governanceReady("notification channels", s.d.Notifier != nil); r != nil {
		return store.Channel{}, r
	}
	in.Name = strings.TrimSpace(in.Name)
	ch, err := s.d.Notifier.Create(c.Request.Context(), in, actorOf(c))
	if err != nil {
		return store.Channel{}, channelFailed(fmt.Errorf("create channel %q: %w", truncate(in.Name, 80), err), 0, in.Name)
	}
	d := channelAudit(ch)
	d["settings"] = settingNames(in)
	if err := s.AppendAudit(c, "channel.create", channelTarget(ch.ID), d); err != nil {
		return store.Channel{}, failed(err)
	}
	return ch, nil
}

// UpdateChannel replaces a channel; empty secret settings keep their
// value. Audited as "channel.update" with the names of the settings given.
func (s *Server) UpdateChannel(c *gin.Context, id int64, in notify.ChannelInput) (store.Channel, *Refusal) {
	if r := s.governanceReady("notification channels", s.d.Notifier != nil); r != nil {
		return store.Channel{}, r
	}
	in.Name = strings.TrimSpace(in.Name)
	ch, err := s.d.Notifier.Update(c.Request.Context(), id, in)
	if err != nil {
		return store.Channel{}, channelFailed(fmt.Errorf("update channel %d: %w", id, err), id, in.Name)
	}
	d := channelAudit(ch)
	d["settings"] = settingNames(in)
	if err := s.AppendAudit(c, "channel.update", channelTarget(id), d); err != nil {
		return store.Channel{}, failed(err)
	}
	return ch, nil
}

// DeleteChannel removes a channel and its delivery log ("channel.delete").
func (s *Server) DeleteChannel(c *gin.Context, id int64) *Refusal {
	ctx := c.Request.Context()
	ch, err := s.d.Store.Channel(ctx, id)
	if err != nil {
		return channelFailed(fmt.Errorf("channel %d: %w", id, err), id, "")
	}
	if err := s.d.Store.DeleteChannel(ctx, id); err != nil {
		return channelFailed(fmt.Errorf("delete channel %d: %w", id, err), id, "")
	}
	if err := s.AppendAudit(c, "channel.delete", channelTarget(id), channelAudit(ch)); err != nil {
		return failed(err)
	}
	return nil
}

// TestChannel sends a test message through a channel at once, records the
// delivery and audits it ("channel.test" with its outcome). A delivery
// that failed is still an answer: the Delivery says why (OK false).
func (s *Server) TestChannel(c *gin.Context, id int64) (store.Delivery, *Refusal) {
	if r := s.governanceReady("notification channels", s.d.Notifier != nil); r != nil {
		return store.Delivery{}, r
	}
	ctx := c.Request.Context()
	ch, err := s.d.Store.Channel(ctx, id)
	if err != nil {
		return store.Delivery{}, channelFailed(fmt.Errorf("channel %d: %w", id, err), id, "")
	}
	dl, err := s.d.Notifier.Test(ctx, id)
	if err != nil {
		return store.Delivery{}, channelFailed(fmt.Errorf("test channel %d: %w", id, err), id, "")
	}
	dl.Status = scrubURLs(dl.Status)
	d := map[string]any{"name": ch.Name, "kind": ch.Kind, "ok": dl.OK, "attempts": dl.Attempts, "status": dl.Status}
	if err := s.AppendAudit(c, "channel.test", channelTarget(id), d); err != nil {
		return store.Delivery{}, failed(err)
	}
	return dl, nil
}

// exportScopeName names an export's scope for audit entries: scan, host,
// group or fleet.
func exportScopeName(sc export.Scope) string {
	switch {
	case sc.ScanID != 0:
		return "scan"
	case sc.HostID != 0:
		return "host"
	case sc.Group != "":
		return "group"
	}
	return "fleet"
}

// exportTarget is the audit target of an export: what it covers.
func exportTarget(sc export.Scope) string {
	switch {
	case sc.ScanID != 0:
		return "scan/" + strconv.FormatInt(sc.ScanID, 10)
	case sc.HostID != 0:
		return hostTarget(sc.HostID)
	case sc.Group != "":
		return "group/" + sc.Group
	}
	return "fleet"
}

// Export checks scope (one of scan, host, group or none for the fleet;
// each must exist; a known framework; a moment not in the future), renders
// a signed export in format for the caller and audits it ("export.create"
// with format, scope, framework, at and the file's sha256). The REST API
// and the web UI both export through it.
func (s *Server) Export(c *gin.Context, scope export.Scope, format string) (export.File, *Refusal) {
	if r := s.governanceReady("exports", s.d.Exporter != nil); r != nil {
		return export.File{}, r
	}
	f := export.Format(strings.ToLower(strings.TrimSpace(format)))
	if !slices.Contains(export.Formats(), f) {
		return export.File{}, invalid("format", "format must be one of json, csv, pdf, arf, oscal; got %q", truncate(format, 40))
	}
	if r := s.checkExportScope(c, scope); r != nil {
		return export.File{}, r
	}
	if scope.ScanID != 0 {
		scope.At = time.Time{} // a scan export is as of the scan
	}
	file, err := s.d.Exporter.Export(c.Request.Context(), scope, f, actorOf(c))
	if err != nil {
		var ae *posture.ArgError
		switch {
		case errors.As(err, &ae):
			return export.File{}, invalid(ae.Field, "%s", ae.Msg)
		case errors.Is(err, posture.ErrUnknownFramework):
			return export.File{}, invalid("framework", "unknown framework %q", truncate(scope.Framework, 80))
		case errors.Is(err, export.ErrInvalidScope):
			return export.File{}, invalid("", "%v", err)
		case errors.Is(err, export.ErrTooLarge):
			return export.File{}, &Refusal{Status: http.StatusRequestEntityTooLarge, Code: "export_too_large", Field: "group",
				Message: strings.TrimPrefix(err.Error(), "export: ")}
		case errors.Is(err, export.ErrEmpty):
			return export.File{}, &Refusal{Status: http.StatusNotFound, Code: "not_found",
				Message: fmt.Sprintf("%s: nothing to export in format %s", exportTarget(scope), f)}
		}
		return export.File{}, failed(fmt.Errorf("export %s %s: %w", exportTarget(scope), f, err))
	}
	at := scope.At
	if at.IsZero() {
		at = s.now()
	}
	d := map[string]any{"format": string(f), "scope": exportScopeName(scope), "framework": scope.Framework,
		"at": at.UTC(), "sha256": file.SHA256, "key_id": file.KeyID, "file": file.Name}
	if err := s.AppendAudit(c, "export.create", exportTarget(scope), d); err != nil {
		return export.File{}, failed(err)
	}
	return file, nil
}

// checkExportScope refuses a scope that names nothing real: several
// subjects at once, a missing scan, host or group, an unknown framework,
// or a moment in the future.
func (s *Server) checkExportScope(c *gin.Context, sc export.Scope) *Refusal {
	ctx := c.Request.Context()
	n := 0
	for _, set := range []bool{sc.ScanID != 0, sc.HostID != 0, sc.Group != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return invalid("scope", "an export covers one scan, one host, one group or the fleet, not several")
	}
	if sc.Framework != "" && s.d.Posture != nil {
		if _, ok := s.index().RuleIDs(sc.Framework); !ok {
			return invalid("framework", "unknown framework %q; GET /api/v1/frameworks lists them", truncate(sc.Framework, 80))
		}
	}
	if sc.At.After(s.now()) {
		return invalid("at", "at %s is in the future", sc.At.UTC().Format(time.RFC3339))
	}
	switch {
	case sc.ScanID != 0:
		if _, err := s.d.Store.Scan(ctx, sc.ScanID); errors.Is(err, store.ErrNotFound) {
			return &Refusal{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("no scan with id %d", sc.ScanID)}
		} else if err != nil {
			return failed(fmt.Errorf("export scan %d: %w", sc.ScanID, err))
		}
	case sc.HostID != 0:
		if _, err := s.d.Store.Host(ctx, sc.HostID); errors.Is(err, store.ErrNotFound) {
			return &Refusal{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("no host with id %d", sc.HostID)}
		} else if err != nil {
			return failed(fmt.Errorf("export host %d: %w", sc.HostID, err))
		}
	case sc.Group != "":
		groups, err := s.d.Store.Groups(ctx)
		if err != nil {
			return failed(fmt.Errorf("export group %q: %w", sc.Group, err))
		}
		if !slices.ContainsFunc(groups, func(g store.Group) bool { return g.Name == sc.Group }) {
			return invalid("group", "no group named %q", truncate(sc.Group, 80))
		}
	}
	return nil
}
