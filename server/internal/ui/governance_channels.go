package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// channelDeliveries is how many deliveries the page shows per channel.
const channelDeliveries = 10

// channelKindFields lists each kind's settings as the create form asks
// for them, in order; secret ones are never echoed back to the page.
var channelKindFields = map[string][]channelField{
	notify.KindWebhook: {
		{Name: "url", Label: "URL (http or https)", Type: "url", Secret: true, Required: true},
		{Name: "hmac_secret", Label: "HMAC secret (optional: signs each request, X-Vigil-Signature)", Type: "password", Secret: true},
	},
	notify.KindSlack: {
		{Name: "url", Label: "Incoming webhook URL", Type: "url", Secret: true, Required: true},
	},
	notify.KindEmail: {
		{Name: "smtp_host", Label: "SMTP host", Type: "text", Required: true},
		{Name: "smtp_port", Label: "SMTP port (default 587)", Type: "number"},
		{Name: "from", Label: "From address", Type: "email", Required: true},
		{Name: "to", Label: "To (comma-separated addresses)", Type: "text", Required: true},
		{Name: "username", Label: "Username (optional)", Type: "text"},
		{Name: "password", Label: "Password (optional)", Type: "password", Secret: true},
	},
}

// channelKindTitles name the kinds for the create forms' headings.
var channelKindTitles = map[string]string{notify.KindWebhook: "Webhook", notify.KindSlack: "Slack", notify.KindEmail: "E-mail (SMTP)"}

// channelKinds is the order the create forms appear in.
var channelKinds = []string{notify.KindWebhook, notify.KindSlack, notify.KindEmail}

// channelSecretSettings are the settings View masks; an update leaves
// them empty so the stored values stay.
var channelSecretSettings = []string{"url", "hmac_secret", "password"}

// channelField is one kind-specific setting of the create form.
type channelField struct {
	Name, Label, Type string
	Secret, Required  bool
}

// channelsData is what notifications.html shows.
type channelsData struct {
	Channels   []channelRow
	Kinds      []channelKindForm
	Severities []string
	AlertKinds []string
	RowID      int64 // the channel whose action was refused
	RowErr     string
}

// channelRow is one channel with its recent deliveries.
type channelRow struct {
	notify.ChannelView
	Settings   []kv
	LabelsText string
	Deliveries []store.Delivery
}

// Has reports whether the channel delivers alert kind k (templates call
// it); no kinds means every kind.
func (r channelRow) Has(k string) bool { return slices.Contains(r.Kinds, k) }

// kv is one setting shown.
type kv struct{ Key, Value string }

// channelKindForm is the create form of one kind, with what was sent
// when it was refused.
type channelKindForm struct {
	Kind, Title string
	Fields      []channelField
	Form        channelForm
	Errs        fieldErrs
}

// Value is the echoed value of setting name ("" for secrets).
func (f channelKindForm) Value(name string) string { return f.Form.Settings[name] }

// Has reports whether the echoed form ticked alert kind k.
func (f channelKindForm) Has(k string) bool { return slices.Contains(f.Form.Kinds, k) }

// channelForm is a create or update form as sent.
type channelForm struct {
	Name        string
	Settings    map[string]string
	MinSeverity string
	Labels      string
	Kinds       []string
	Enabled     bool
	STARTTLS    string
}

// notificationsPage lists the channels with their delivery logs and the
// create forms.
func (u *UI) notificationsPage(c *gin.Context) {
	u.renderChannels(c, http.StatusOK, "", channelForm{}, nil, 0, "", "")
}

// renderChannels builds and renders the notifications page; kind/form/
// errs echo a refused create form, rowID/rowErr a refused row action.
func (u *UI) renderChannels(c *gin.Context, status int, kind string, form channelForm, errs fieldErrs, rowID int64, rowErr, errMsg string) {
	if u.d.Notifier == nil {
		u.adminFail(c, errors.New("ui: notifications page: no Notifier in ui.Deps"))
		return
	}
	ctx := c.Request.Context()
	chs, err := u.d.Store.Channels(ctx)
	if err != nil {
		u.adminFail(c, fmt.Errorf("list channels: %w", err))
		return
	}
	d := channelsData{Severities: fleetSeverities, AlertKinds: alertKinds, RowID: rowID, RowErr: rowErr}
	for _, ch := range chs {
		v := u.d.Notifier.View(ch)
		row := channelRow{ChannelView: v, LabelsText: strings.Join(fleetLabels(v.Labels), ", ")}
		for k, val := range v.Settings {
			row.Settings = append(row.Settings, kv{k, val})
		}
		sort.Slice(row.Settings, func(i, j int) bool { return row.Settings[i].Key < row.Settings[j].Key })
		if row.Deliveries, err = u.d.Store.Deliveries(ctx, ch.ID, channelDeliveries); err != nil {
			u.adminFail(c, fmt.Errorf("deliveries of channel %d: %w", ch.ID, err))
			return
		}
		d.Channels = append(d.Channels, row)
	}
	for _, k := range channelKinds {
		f := channelKindForm{Kind: k, Title: channelKindTitles[k], Fields: channelKindFields[k],
			Form: channelForm{Enabled: true, MinSeverity: "high", STARTTLS: "required"}}
		if k == kind {
			f.Form, f.Errs = form, errs
		}
		d.Kinds = append(d.Kinds, f)
	}
	u.render(c, status, "notifications", Page{Title: "Notifications", Nav: "notifications", Error: errMsg, Data: d})
}

// readChannelForm reads the common fields of a create or update form.
func readChannelForm(c *gin.Context) channelForm {
	f := channelForm{Name: strings.TrimSpace(c.PostForm("name")), MinSeverity: c.PostForm("min_severity"),
		Labels: strings.TrimSpace(c.PostForm("labels")), Kinds: c.PostFormArray("kinds"), Enabled: c.PostForm("enabled") != "",
		STARTTLS: c.PostForm("starttls"), Settings: map[string]string{}}
	return f
}

// input converts a form to the notifier's input; a malformed label list
// is a field error.
func (f channelForm) input(kind string) (notify.ChannelInput, fieldErrs) {
	labels, err := parseLabels(f.Labels)
	if err != nil {
		return notify.ChannelInput{}, fieldErrs{"labels": upperFirst(err.Error()) + "."}
	}
	enabled := f.Enabled
	settings := map[string]string{}
	for k, v := range f.Settings {
		if v != "" {
			settings[k] = v
		}
	}
	return notify.ChannelInput{Name: f.Name, Kind: kind, Settings: settings, MinSeverity: f.MinSeverity, Labels: labels,
		Kinds: f.Kinds, Enabled: &enabled}, nil
}

// channelFormFields are the names a create form's errors may be shown at.
func channelFormFields(kind string) []string {
	out := []string{"name", "min_severity", "labels", "kinds", "starttls"}
	for _, f := range channelKindFields[kind] {
		out = append(out, f.Name)
	}
	return out
}

// createChannel stores a channel through the API's CreateChannel (same
// validation, sealing and audit entry); a refused setting is shown next
// to its field.
func (u *UI) createChannel(c *gin.Context) {
	kind := c.PostForm("kind")
	fields, ok := channelKindFields[kind]
	if !ok {
		u.renderChannels(c, http.StatusBadRequest, "", channelForm{}, nil, 0, "", fmt.Sprintf("Unknown channel kind %q.", kind))
		return
	}
	form := readChannelForm(c)
	for _, f := range fields {
		form.Settings[f.Name] = strings.TrimSpace(c.PostForm(f.Name))
	}
	if kind == notify.KindEmail && form.STARTTLS != "" {
		form.Settings["starttls"] = form.STARTTLS
	}
	errs := fieldErrs{}
	if form.Name == "" {
		errs["name"] = "Give the channel a name."
	}
	for _, f := range fields {
		if f.Required && form.Settings[f.Name] == "" {
			errs[f.Name] = "Required."
		}
	}
	in, ferrs := form.input(kind)
	for k, v := range ferrs {
		errs[k] = v
	}
	echo := form.withoutSecrets(fields)
	if len(errs) > 0 {
		u.renderChannels(c, http.StatusBadRequest, kind, echo, errs, 0, "", "")
		return
	}
	ch, r := u.d.API.CreateChannel(c, in)
	if r != nil {
		u.refusal(c, r, func(status int, _ string) {
			u.renderChannels(c, status, kind, echo, refusalField(r, channelFormFields(kind)...), 0, "", "")
		})
		return
	}
	u.redirect(c, fmt.Sprintf("/notifications#channel-%d", ch.ID), fmt.Sprintf("Channel %s created. Send it a test message to check it.", ch.Name))
}

// withoutSecrets is the form to echo: secret settings are never put back
// on a page.
func (f channelForm) withoutSecrets(fields []channelField) channelForm {
	out := f
	out.Settings = map[string]string{}
	for _, fd := range fields {
		if !fd.Secret {
			out.Settings[fd.Name] = f.Settings[fd.Name]
		}
	}
	return out
}

// updateChannel changes a channel's filters and enabled flag through the
// API's UpdateChannel; its settings are sent back unchanged (secret
// settings left empty, which keeps them).
func (u *UI) updateChannel(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	ch, err := u.d.Store.Channel(ctx, id)
	if err != nil {
		u.refusal(c, adminStoreRefusal(fmt.Errorf("channel %d: %w", id, err)), func(status int, msg string) { u.renderError(c, req(c), status, msg) })
		return
	}
	v := u.d.Notifier.View(ch)
	form := readChannelForm(c)
	form.Name = ch.Name
	for k, val := range v.Settings {
		if !slices.Contains(channelSecretSettings, k) {
			form.Settings[k] = val
		}
	}
	in, ferrs := form.input(ch.Kind)
	if ferrs != nil {
		u.renderChannels(c, http.StatusBadRequest, "", channelForm{}, nil, id, ferrs["labels"], "")
		return
	}
	nc, r := u.d.API.UpdateChannel(c, id, in)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderChannels(c, status, "", channelForm{}, nil, id, msg, "") })
		return
	}
	u.redirect(c, fmt.Sprintf("/notifications#channel-%d", nc.ID), fmt.Sprintf("Channel %s updated.", nc.Name))
}

// deleteChannel removes a channel and its delivery log through the API's
// DeleteChannel.
func (u *UI) deleteChannel(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	if r := u.d.API.DeleteChannel(c, id); r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderChannels(c, status, "", channelForm{}, nil, id, msg, "") })
		return
	}
	u.redirect(c, "/notifications", fmt.Sprintf("Channel %d deleted with its delivery log.", id))
}

// testChannel sends a test message through the API's TestChannel and
// reports the delivery (also recorded in the channel's log).
func (u *UI) testChannel(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	dl, r := u.d.API.TestChannel(c, id)
	if r != nil {
		u.refusal(c, r, func(status int, msg string) { u.renderChannels(c, status, "", channelForm{}, nil, id, msg, "") })
		return
	}
	msg := fmt.Sprintf("Test message delivered (%s) after %d attempt%s.", dl.Status, dl.Attempts, plural(dl.Attempts))
	if !dl.OK {
		msg = fmt.Sprintf("Test message NOT delivered after %d attempt%s: %s.", dl.Attempts, plural(dl.Attempts), dl.Status)
	}
	if len(msg) > maxFlash {
		msg = strings.ToValidUTF8(msg[:maxFlash-3], "") + "..."
	}
	u.redirect(c, fmt.Sprintf("/notifications#channel-%d", id), msg)
}

// maxFlash keeps a flash message within what takeFlash accepts.
const maxFlash = 280

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
