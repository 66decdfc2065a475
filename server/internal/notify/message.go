package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// webhookBody is the JSON a webhook channel receives. Its field names are
// part of the documented contract; receivers parse them.
type webhookBody struct {
	Event  string       `json:"event"`
	SentAt time.Time    `json:"sent_at"`
	Alert  webhookAlert `json:"alert"`
}

type webhookAlert struct {
	ID          int64             `json:"id"`
	Kind        string            `json:"kind"`
	Key         string            `json:"key"`
	Severity    string            `json:"severity"`
	State       string            `json:"state"`
	Title       string            `json:"title"`
	Detail      json.RawMessage   `json:"detail"`
	HostID      int64             `json:"host_id"`
	RuleID      string            `json:"rule_id"`
	AgentID     int64             `json:"agent_id"`
	ExceptionID int64             `json:"exception_id"`
	Labels      map[string]string `json:"labels"`
	OpenedAt    *time.Time        `json:"opened_at"`
	LastSeenAt  *time.Time        `json:"last_seen_at"`
	Count       int               `json:"count"`
	URL         string            `json:"url"`
}

// testAlert is the made-up alert a test message describes.
func testAlert(ch store.Channel, now time.Time) store.Alert {
	return store.Alert{
		Kind:       "test",
		Key:        "test/channel/" + strconv.FormatInt(ch.ID, 10),
		Severity:   "low",
		State:      store.AlertActive,
		Title:      fmt.Sprintf("Test notification for channel %q", ch.Name),
		Detail:     mustJSON(map[string]string{"channel": ch.Name, "note": "sent by an administrator to check this channel; no action needed"}),
		OpenedAt:   now,
		LastSeenAt: now,
		Count:      1,
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// detailObject returns the alert's Detail as a JSON object; anything else
// is wrapped as {"text": ...} so receivers always get an object.
func detailObject(d string) json.RawMessage {
	var obj map[string]json.RawMessage
	if d != "" && json.Unmarshal([]byte(d), &obj) == nil && obj != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(d)) == nil {
			return buf.Bytes()
		}
	}
	if d == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(mustJSON(map[string]string{"text": d}))
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (n *Notifier) alertURL(a store.Alert) string {
	if n.o.BaseURL == "" || a.ID == 0 {
		return ""
	}
	return strings.TrimRight(n.o.BaseURL, "/") + "/alerts/" + strconv.FormatInt(a.ID, 10)
}

func (n *Notifier) webhookPayload(event string, a store.Alert, now time.Time) ([]byte, error) {
	return json.Marshal(webhookBody{Event: event, SentAt: now.UTC(), Alert: n.webhookAlert(a)})
}

// webhookAlert is alert a as webhook receivers get it, alone or in a digest.
func (n *Notifier) webhookAlert(a store.Alert) webhookAlert {
	labels := a.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return webhookAlert{
		ID: a.ID, Kind: a.Kind, Key: a.Key, Severity: a.Severity, State: string(a.State),
		Title: a.Title, Detail: detailObject(a.Detail),
		HostID: a.HostID, RuleID: a.RuleID, AgentID: a.AgentID, ExceptionID: a.ExceptionID,
		Labels: labels, OpenedAt: timePtr(a.OpenedAt), LastSeenAt: timePtr(a.LastSeenAt),
		Count: a.Count, URL: n.alertURL(a),
	}
}

// headline is the one-line summary: "HIGH opened: <title>".
func headline(event string, a store.Alert) string {
	sev := strings.ToUpper(a.Severity)
	if sev == "" {
		sev = "ALERT"
	}
	return sev + " " + event + ": " + oneLine(a.Title, 200)
}

// oneLine replaces control characters (line breaks above all, which would
// inject mail headers) with spaces and cuts s to at most max runes.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// facts lists an alert's fields as label/value pairs for text messages.
func (n *Notifier) facts(a store.Alert) [][2]string {
	f := [][2]string{{"Kind", a.Kind}, {"Key", a.Key}, {"Severity", a.Severity}, {"State", string(a.State)}}
	if a.HostID != 0 {
		f = append(f, [2]string{"Host ID", strconv.FormatInt(a.HostID, 10)})
	}
	if a.RuleID != "" {
		f = append(f, [2]string{"Rule", a.RuleID})
	}
	if a.AgentID != 0 {
		f = append(f, [2]string{"Agent ID", strconv.FormatInt(a.AgentID, 10)})
	}
	if a.ExceptionID != 0 {
		f = append(f, [2]string{"Exception ID", strconv.FormatInt(a.ExceptionID, 10)})
	}
	if len(a.Labels) > 0 {
		keys := make([]string, 0, len(a.Labels))
		for k := range a.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + a.Labels[k]
		}
		f = append(f, [2]string{"Labels", strings.Join(parts, ", ")})
	}
	if !a.OpenedAt.IsZero() {
		f = append(f, [2]string{"Opened", a.OpenedAt.UTC().Format(time.RFC3339)})
	}
	if !a.LastSeenAt.IsZero() {
		f = append(f, [2]string{"Last seen", a.LastSeenAt.UTC().Format(time.RFC3339)})
	}
	if a.Count > 0 {
		f = append(f, [2]string{"Seen", strconv.Itoa(a.Count) + " time(s)"})
	}
	if !a.ResolvedAt.IsZero() {
		f = append(f, [2]string{"Resolved", a.ResolvedAt.UTC().Format(time.RFC3339)})
	}
	for i := range f {
		f[i][1] = oneLine(f[i][1], 500)
	}
	return f
}

// detailText renders Detail indented for a text message, cut to ~2000 bytes.
func detailText(d string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, detailObject(d), "", "  "); err != nil {
		return ""
	}
	s := buf.String()
	if s == "{}" {
		return ""
	}
	if len(s) > 2000 {
		s = strings.ToValidUTF8(s[:2000], "") + "\n…"
	}
	return s
}

// emailText is the plain-text body of an e-mail notification.
func (n *Notifier) emailText(event string, a store.Alert) string {
	var b strings.Builder
	b.WriteString(headline(event, a) + "\n\n")
	for _, f := range n.facts(a) {
		fmt.Fprintf(&b, "%-13s %s\n", f[0]+":", f[1])
	}
	if d := detailText(a.Detail); d != "" {
		b.WriteString("\nDetail:\n" + d + "\n")
	}
	if u := n.alertURL(a); u != "" {
		b.WriteString("\nOpen in Vigil: " + u + "\n")
	}
	b.WriteString("\n-- \nSent by vigil-server.\n")
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn treats as markup.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

// slackPayload is an incoming-webhook message: text is the notification
// fallback, blocks the rich layout.
func (n *Notifier) slackPayload(event string, a store.Alert) ([]byte, error) {
	head := headline(event, a)
	blocks := []slackBlock{{Type: "header", Text: &slackText{"plain_text", oneLine(head, 150)}}}
	var fields []slackText
	for _, f := range n.facts(a) {
		if len(fields) == 10 { // Slack's limit per section
			break
		}
		fields = append(fields, slackText{"mrkdwn", "*" + f[0] + "*\n" + slackEscape(f[1])})
	}
	blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	if d := detailText(a.Detail); d != "" {
		if len(d) > 2900 {
			d = d[:2900]
		}
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", "```" + slackEscape(d) + "```"}})
	}
	text := slackEscape(head)
	if u := n.alertURL(a); u != "" {
		text += " <" + u + "|open in Vigil>"
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", "<" + u + "|Open in Vigil>"}})
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{"mrkdwn", "Vigil · " + slackEscape(a.Key)}}})
	return json.Marshal(map[string]any{"text": text, "blocks": blocks})
}
