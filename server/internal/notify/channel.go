package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// Mask replaces a secret value wherever a channel is shown.
const Mask = "••••"

// Config keys notify keeps beside the operator's non-secret settings.
const (
	// configURLHost is scheme://host[:port] of a webhook or Slack URL: the
	// part of a secret URL that may be shown.
	configURLHost = "url_host"
	// configSecrets lists, comma-separated, the secret settings that are
	// set, so that a channel can be shown without opening its secret.
	configSecrets = "secrets"
)

// alertKinds are the alert kinds a channel may filter on (governance
// raises them; see the issue 7 design).
var alertKinds = [...]string{
	"rule_failing", "score_drop", "band_drop", "mass_drift",
	"scan_overdue", "agent_offline", "bundle_refused", "exception_expiring",
}

// severityRank orders severities; a higher rank is more severe.
func severityRank(s string) int {
	switch s {
	case "critical":
		return 4
	case "high":
		return 3
	case "medium":
		return 2
	case "low":
		return 1
	}
	return 0
}

// settingSpec says which settings a kind has and which of them are secret.
type settingSpec struct {
	name   string
	secret bool
}

func kindSettings(kind string) []settingSpec {
	switch kind {
	case KindWebhook:
		return []settingSpec{{"url", true}, {"hmac_secret", true}}
	case KindSlack:
		return []settingSpec{{"url", true}}
	case KindEmail:
		return []settingSpec{
			{"smtp_host", false}, {"smtp_port", false}, {"from", false}, {"to", false},
			{"username", false}, {"password", true}, {"starttls", false},
		}
	}
	return nil
}

// Matches reports whether alert a passes channel ch's filters: its
// severity is at least ch.MinSeverity (unknown severities count as low),
// its labels contain every one of ch.Labels, and its kind is among
// ch.Kinds when that list is not empty. Whether the channel is enabled is
// not a filter; Notify checks it separately.
func Matches(ch store.Channel, a store.Alert) bool {
	rank := max(severityRank(a.Severity), 1)
	if rank < max(severityRank(ch.MinSeverity), 1) {
		return false
	}
	for k, v := range ch.Labels {
		got, ok := a.Labels[k]
		if !ok || got != v {
			return false
		}
	}
	return len(ch.Kinds) == 0 || slices.Contains(ch.Kinds, a.Kind)
}

// validated is a ChannelInput checked and split into what is stored in the
// clear and what is sealed.
type validated struct {
	name, kind  string
	config      map[string]string
	secrets     map[string]string
	minSeverity string
	labels      map[string]string
	kinds       []string
	enabled     bool
}

// validate checks in. old holds the stored secret settings (Update) that
// an empty or masked secret setting keeps; oldConfig the stored config,
// used to recognise masked values sent back unchanged.
func validate(in ChannelInput, old map[string]string, oldConfig map[string]string, allow []netip.Prefix) (validated, error) {
	v := validated{
		name:    strings.TrimSpace(in.Name),
		kind:    strings.TrimSpace(in.Kind),
		config:  map[string]string{},
		secrets: map[string]string{},
		enabled: in.Enabled == nil || *in.Enabled,
	}
	if v.name == "" {
		return v, &FieldError{"name", "is required"}
	}
	if len(v.name) > 100 || hasControl(v.name) {
		return v, &FieldError{"name", "must be at most 100 printable characters"}
	}
	specs := kindSettings(v.kind)
	if specs == nil {
		return v, &FieldError{"kind", "must be webhook, slack or email"}
	}
	for _, k := range slices.Sorted(maps.Keys(in.Settings)) {
		val := in.Settings[k]
		i := slices.IndexFunc(specs, func(s settingSpec) bool { return s.name == k })
		if i < 0 {
			return v, &FieldError{"settings." + k, "is not a setting of a " + v.kind + " channel"}
		}
		if hasControl(val) {
			return v, &FieldError{"settings." + k, "must not contain control characters"}
		}
		if len(val) > 4096 {
			return v, &FieldError{"settings." + k, "must be at most 4096 bytes"}
		}
		if specs[i].secret {
			if val == "" || val == Mask || (k == "url" && oldConfig != nil && val == maskURL(oldConfig[configURLHost])) {
				continue // keep the stored value
			}
			if k == "url" {
				val = strings.TrimSpace(val)
			}
			v.secrets[k] = val
		} else if val = strings.TrimSpace(val); val != "" {
			v.config[k] = val
		}
	}
	for _, s := range specs {
		if _, set := v.secrets[s.name]; s.secret && !set && old[s.name] != "" {
			v.secrets[s.name] = old[s.name]
		}
	}
	var err error
	switch v.kind {
	case KindWebhook, KindSlack:
		err = v.checkHTTP(allow)
	case KindEmail:
		err = v.checkEmail(allow)
	}
	if err != nil {
		return v, err
	}
	names := make([]string, 0, len(v.secrets))
	for k := range v.secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > 0 {
		v.config[configSecrets] = strings.Join(names, ",")
	}
	return v, v.checkFilters(in)
}

func (v *validated) checkHTTP(allow []netip.Prefix) error {
	raw, ok := v.secrets["url"]
	if !ok {
		return &FieldError{"settings.url", "is required"}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return &FieldError{"settings.url", "must be an http or https URL"}
	}
	if strings.ContainsAny(raw, " \t") {
		return &FieldError{"settings.url", "must not contain spaces"}
	}
	host := u.Hostname()
	if host == "" {
		return &FieldError{"settings.url", "must name a host"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return &FieldError{"settings.url", "port must be 1..65535"}
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := CheckAddr(a, allow); err != nil {
			return &FieldError{"settings.url", err.Error()}
		}
	}
	v.config[configURLHost] = u.Scheme + "://" + u.Host
	if s, ok := v.secrets["hmac_secret"]; ok && (len(s) < 16 || len(s) > 1024) {
		return &FieldError{"settings.hmac_secret", "must be 16 to 1024 characters"}
	}
	return nil
}

func (v *validated) checkEmail(allow []netip.Prefix) error {
	host := v.config["smtp_host"]
	if host == "" {
		return &FieldError{"settings.smtp_host", "is required"}
	}
	addr, isIP := netip.ParseAddr(strings.Trim(host, "[]"))
	if isIP == nil {
		host = addr.String()
		v.config["smtp_host"] = host
		if err := CheckAddr(addr, allow); err != nil {
			return &FieldError{"settings.smtp_host", err.Error()}
		}
	} else if !validHostname(host) {
		return &FieldError{"settings.smtp_host", "must be a host name or IP address"}
	}
	port := v.config["smtp_port"]
	if port == "" {
		port = "587"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return &FieldError{"settings.smtp_port", "must be a port number 1..65535"}
	}
	v.config["smtp_port"] = port
	if v.config["from"] == "" {
		return &FieldError{"settings.from", "is required"}
	}
	from, err := mail.ParseAddress(v.config["from"])
	if err != nil {
		return &FieldError{"settings.from", "must be an e-mail address"}
	}
	v.config["from"] = from.String()
	var to []string
	for _, part := range strings.Split(v.config["to"], ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		a, err := mail.ParseAddress(part)
		if err != nil {
			return &FieldError{"settings.to", fmt.Sprintf("%q is not an e-mail address", part)}
		}
		to = append(to, a.Address)
	}
	if len(to) == 0 {
		return &FieldError{"settings.to", "needs at least one e-mail address (comma-separated)"}
	}
	if len(to) > 50 {
		return &FieldError{"settings.to", "must list at most 50 addresses"}
	}
	v.config["to"] = strings.Join(to, ", ")
	switch v.config["starttls"] {
	case "", "required":
		v.config["starttls"] = "required"
	case "none":
		if !isLoopbackHost(host) {
			return &FieldError{"settings.starttls", `"none" is allowed only when smtp_host is a loopback address`}
		}
	default:
		return &FieldError{"settings.starttls", `must be "required" or "none"`}
	}
	user, pass := v.config["username"], v.secrets["password"]
	switch {
	case user != "" && pass == "":
		return &FieldError{"settings.password", "is required with a username"}
	case user == "" && pass != "":
		return &FieldError{"settings.username", "is required with a password"}
	case user != "" && v.config["starttls"] == "none":
		return &FieldError{"settings.username", "authentication is sent only over STARTTLS; set starttls to required"}
	}
	return nil
}

func (v *validated) checkFilters(in ChannelInput) error {
	v.minSeverity = strings.ToLower(strings.TrimSpace(in.MinSeverity))
	if v.minSeverity == "" {
		v.minSeverity = "low"
	}
	if severityRank(v.minSeverity) == 0 {
		return &FieldError{"min_severity", "must be critical, high, medium or low"}
	}
	if len(in.Labels) > 50 {
		return &FieldError{"labels", "at most 50 labels"}
	}
	if len(in.Labels) > 0 {
		v.labels = make(map[string]string, len(in.Labels))
	}
	for k, val := range in.Labels {
		k = strings.TrimSpace(k)
		if k == "" || len(k) > 100 || hasControl(k) || len(val) > 200 || hasControl(val) {
			return &FieldError{"labels", fmt.Sprintf("label %q: key 1..100 and value up to 200 printable characters", k)}
		}
		v.labels[k] = strings.TrimSpace(val)
	}
	for _, k := range in.Kinds {
		k = strings.TrimSpace(k)
		if !slices.Contains(alertKinds[:], k) {
			return &FieldError{"kinds", fmt.Sprintf("%q is not an alert kind (%s)", k, strings.Join(alertKinds[:], ", "))}
		}
		if !slices.Contains(v.kinds, k) {
			v.kinds = append(v.kinds, k)
		}
	}
	sort.Strings(v.kinds)
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// validHostname accepts DNS names: letters, digits, hyphens and dots.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// isLoopbackHost reports whether host is a loopback IP literal or
// "localhost"; the e-mail sender checks the address it actually connected
// to as well.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

func maskURL(urlHost string) string {
	if urlHost == "" {
		return Mask
	}
	return urlHost + "/" + Mask
}

// aad binds a channel's sealed secret to its name, so that it does not
// open when copied to another channel's row.
func aad(name string) []byte { return []byte("channel:" + name) }

func (n *Notifier) seal(name string, secrets map[string]string) ([]byte, error) {
	b, err := json.Marshal(secrets)
	if err != nil {
		return nil, fmt.Errorf("channel %q: encode secret settings: %w", name, err)
	}
	sealed, err := n.o.Box.Seal(b, aad(name))
	if err != nil {
		return nil, fmt.Errorf("channel %q: seal secret settings: %w", name, err)
	}
	return sealed, nil
}

func (n *Notifier) open(ch store.Channel) (map[string]string, error) {
	secrets := map[string]string{}
	if len(ch.Secret) == 0 {
		return secrets, nil
	}
	b, err := n.o.Box.Open(ch.Secret, aad(ch.Name))
	if err != nil {
		return nil, fmt.Errorf("channel %q: open secret settings: %w", ch.Name, err)
	}
	if err := json.Unmarshal(b, &secrets); err != nil {
		return nil, fmt.Errorf("channel %q: decode secret settings: %w", ch.Name, err)
	}
	return secrets, nil
}

// view masks ch for display.
func view(ch store.Channel) ChannelView {
	settings := make(map[string]string, len(ch.Config)+2)
	for k, v := range ch.Config {
		if k != configURLHost && k != configSecrets {
			settings[k] = v
		}
	}
	if s := ch.Config[configSecrets]; s != "" {
		for _, k := range strings.Split(s, ",") {
			if k == "url" {
				settings[k] = maskURL(ch.Config[configURLHost])
			} else {
				settings[k] = Mask
			}
		}
	}
	return ChannelView{
		ID:          ch.ID,
		Name:        ch.Name,
		Kind:        ch.Kind,
		Settings:    settings,
		MinSeverity: ch.MinSeverity,
		Labels:      ch.Labels,
		Kinds:       ch.Kinds,
		Enabled:     ch.Enabled,
		CreatedBy:   ch.CreatedBy,
		CreatedAt:   ch.CreatedAt,
	}
}

// hostPort joins an e-mail channel's host and port for dialling.
func hostPort(cfg map[string]string) string {
	return net.JoinHostPort(cfg["smtp_host"], cfg["smtp_port"])
}
