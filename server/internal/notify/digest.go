package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Digest bounds: a webhook digest lists this many alerts, a Slack digest
// this many titles, an e-mail digest this many lines; the rest is counted
// as "more".
const (
	digestWebhookAlerts = 100
	digestSlackTitles   = 20
	digestEmailLines    = 100
)

// digestBody is the JSON a webhook channel receives instead of one message
// per alert when an evaluation sends it more than Options.DigestOver
// events. Its field names are part of the documented contract.
type digestBody struct {
	Event  string     `json:"event"` // always "digest"
	SentAt time.Time  `json:"sent_at"`
	Digest digestInfo `json:"digest"`
}

type digestInfo struct {
	Total      int                       `json:"total"`
	Opened     int                       `json:"opened"`
	Resolved   int                       `json:"resolved"`
	BySeverity map[string]map[string]int `json:"by_severity"` // event -> severity -> count
	ByKind     map[string]map[string]int `json:"by_kind"`     // event -> kind -> count
	Alerts     []digestItem              `json:"alerts"`      // the first digestWebhookAlerts, in order
	More       int                       `json:"more"`        // events not listed
	URL        string                    `json:"url"`         // the UI's alert list ("" without a base URL)
}

type digestItem struct {
	Event string       `json:"event"`
	Alert webhookAlert `json:"alert"`
}

// tally counts a batch by event, severity and kind.
type tally struct {
	opened, resolved int
	bySeverity       map[string]map[string]int
	byKind           map[string]map[string]int
}

func count(evs []Event) tally {
	t := tally{bySeverity: map[string]map[string]int{}, byKind: map[string]map[string]int{}}
	for _, e := range evs {
		switch e.Name {
		case EventOpened:
			t.opened++
		case EventResolved:
			t.resolved++
		}
		sev := e.Alert.Severity
		if sev == "" {
			sev = "unknown"
		}
		if t.bySeverity[e.Name] == nil {
			t.bySeverity[e.Name] = map[string]int{}
			t.byKind[e.Name] = map[string]int{}
		}
		t.bySeverity[e.Name][sev]++
		t.byKind[e.Name][e.Alert.Kind]++
	}
	return t
}

// plural is "1 alert" or "n alerts".
func plural(n int) string {
	if n == 1 {
		return "1 alert"
	}
	return strconv.Itoa(n) + " alerts"
}

// summary is the digest's one line: "37 alerts opened, 4 resolved".
func (t tally) summary() string {
	switch {
	case t.opened > 0 && t.resolved > 0:
		return fmt.Sprintf("%s opened, %d resolved", plural(t.opened), t.resolved)
	case t.resolved > 0:
		return plural(t.resolved) + " resolved"
	default:
		return plural(t.opened) + " opened"
	}
}

// breakdown renders counts most severe first, then by name:
// "critical 3, high 34".
func breakdown(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := severityRank(a), severityRank(b); ra != rb {
			return rb - ra
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ", ")
}

// eventsInOrder lists the events a tally holds: opened, resolved, others.
func eventsInOrder(m map[string]map[string]int) []string {
	out := make([]string, 0, len(m))
	for _, e := range []string{EventOpened, EventResolved} {
		if m[e] != nil {
			out = append(out, e)
		}
	}
	for _, e := range slices.Sorted(maps.Keys(m)) {
		if e != EventOpened && e != EventResolved {
			out = append(out, e)
		}
	}
	return out
}

// capital is s with its first letter upper-cased ("opened" -> "Opened").
func capital(s string) string {
	if s == "" {
		return "Other"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (n *Notifier) alertsURL() string {
	if n.o.BaseURL == "" {
		return ""
	}
	return strings.TrimRight(n.o.BaseURL, "/") + "/alerts"
}

func (n *Notifier) digestWebhookPayload(evs []Event, now time.Time) ([]byte, error) {
	t := count(evs)
	shown := evs[:min(len(evs), digestWebhookAlerts)]
	items := make([]digestItem, len(shown))
	for i, e := range shown {
		items[i] = digestItem{Event: e.Name, Alert: n.webhookAlert(e.Alert)}
	}
	return json.Marshal(digestBody{
		Event:  EventDigest,
		SentAt: now.UTC(),
		Digest: digestInfo{
			Total: len(evs), Opened: t.opened, Resolved: t.resolved,
			BySeverity: t.bySeverity, ByKind: t.byKind,
			Alerts: items, More: len(evs) - len(shown), URL: n.alertsURL(),
		},
	})
}

func (n *Notifier) digestSlackPayload(evs []Event) ([]byte, error) {
	t := count(evs)
	head := "Vigil: " + t.summary()
	blocks := []slackBlock{{Type: "header", Text: &slackText{"plain_text", head}}}
	var fields []slackText
	for _, e := range eventsInOrder(t.bySeverity) {
		if len(fields) >= 8 {
			break
		}
		fields = append(fields,
			slackText{"mrkdwn", "*" + slackEscape(capital(e)) + " by severity*\n" + slackEscape(oneLine(breakdown(t.bySeverity[e]), 500))},
			slackText{"mrkdwn", "*" + slackEscape(capital(e)) + " by kind*\n" + slackEscape(oneLine(breakdown(t.byKind[e]), 500))})
	}
	blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	var list strings.Builder
	shown := 0
	for _, e := range evs[:min(len(evs), digestSlackTitles)] {
		line := "• " + slackEscape(headline(e.Name, e.Alert))
		if u := n.alertURL(e.Alert); u != "" {
			line += " <" + u + "|open>"
		}
		if list.Len()+len(line)+1 > 2900 { // Slack's section text limit is 3000
			break
		}
		list.WriteString(line + "\n")
		shown++
	}
	blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", list.String()}})
	foot := "Vigil digest"
	if more := len(evs) - shown; more > 0 {
		foot = fmt.Sprintf("… and %d more", more)
	}
	text := slackEscape(head)
	if u := n.alertsURL(); u != "" {
		foot += " · <" + u + "|all alerts in Vigil>"
		text += " <" + u + "|open in Vigil>"
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{"mrkdwn", foot}}})
	return json.Marshal(map[string]any{"text": text, "blocks": blocks})
}

// digestEmail returns the subject and plain-text body of a digest mail.
func (n *Notifier) digestEmail(evs []Event) (subject, text string) {
	t := count(evs)
	var b strings.Builder
	b.WriteString(t.summary() + "\n\n")
	for _, e := range eventsInOrder(t.bySeverity) {
		fmt.Fprintf(&b, "%-13s %s\n", oneLine(capital(e), 12)+":", oneLine(breakdown(t.bySeverity[e]), 500))
		fmt.Fprintf(&b, "%-13s %s\n", "", oneLine(breakdown(t.byKind[e]), 500))
	}
	b.WriteString("\n")
	shown := evs[:min(len(evs), digestEmailLines)]
	for _, e := range shown {
		b.WriteString(headline(e.Name, e.Alert))
		if u := n.alertURL(e.Alert); u != "" {
			b.WriteString("\n    " + u)
		}
		b.WriteString("\n")
	}
	if more := len(evs) - len(shown); more > 0 {
		fmt.Fprintf(&b, "… and %d more\n", more)
	}
	if u := n.alertsURL(); u != "" {
		b.WriteString("\nAll alerts: " + u + "\n")
	}
	b.WriteString("\n-- \nSent by vigil-server.\n")
	return "[Vigil] " + t.summary(), b.String()
}
