package export

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
)

// OSCAL constants: the model version written and Vigil's property
// namespace.
const (
	oscalVersion = "1.1.2"
	oscalNS      = "https://vigil.dev/ns/oscal"
)

// The OSCAL JSON shapes Vigil writes: the subset of the Assessment Results
// and Assessment Plan models it fills.
type (
	oscalProp struct {
		Name  string `json:"name"`
		NS    string `json:"ns,omitempty"`
		Value string `json:"value"`
	}
	oscalMetadata struct {
		Title        string      `json:"title"`
		LastModified string      `json:"last-modified"`
		Version      string      `json:"version"`
		OSCALVersion string      `json:"oscal-version"`
		Props        []oscalProp `json:"props,omitempty"`
		Remarks      string      `json:"remarks,omitempty"`
	}
	oscalHref struct {
		Href string `json:"href"`
	}
	oscalBase64 struct {
		Filename  string `json:"filename"`
		MediaType string `json:"media-type"`
		Value     string `json:"value"`
	}
	oscalResource struct {
		UUID        string       `json:"uuid"`
		Title       string       `json:"title,omitempty"`
		Description string       `json:"description,omitempty"`
		Base64      *oscalBase64 `json:"base64,omitempty"`
	}
	oscalBackMatter struct {
		Resources []oscalResource `json:"resources"`
	}
	oscalInventoryItem struct {
		UUID        string      `json:"uuid"`
		Description string      `json:"description"`
		Props       []oscalProp `json:"props,omitempty"`
	}
	oscalLocalDefs struct {
		InventoryItems []oscalInventoryItem `json:"inventory-items,omitempty"`
	}
	oscalControlSel struct {
		IncludeAll      *struct{}        `json:"include-all,omitempty"`
		IncludeControls []oscalControlID `json:"include-controls,omitempty"`
	}
	oscalControlID struct {
		ControlID string `json:"control-id"`
	}
	oscalReviewed struct {
		Description       string            `json:"description,omitempty"`
		ControlSelections []oscalControlSel `json:"control-selections"`
	}
	oscalSubjectRef struct {
		SubjectUUID string `json:"subject-uuid"`
		Type        string `json:"type"`
		Title       string `json:"title,omitempty"`
	}
	oscalSubjectSel struct {
		SubjectUUID string `json:"subject-uuid"`
		Type        string `json:"type"`
	}
	oscalAssessmentSubject struct {
		Type            string            `json:"type"`
		Description     string            `json:"description,omitempty"`
		IncludeSubjects []oscalSubjectSel `json:"include-subjects,omitempty"`
		IncludeAll      *struct{}         `json:"include-all,omitempty"`
	}
	oscalEvidence struct {
		Description string      `json:"description"`
		Props       []oscalProp `json:"props,omitempty"`
	}
	oscalObservation struct {
		UUID             string            `json:"uuid"`
		Title            string            `json:"title"`
		Description      string            `json:"description"`
		Props            []oscalProp       `json:"props,omitempty"`
		Methods          []string          `json:"methods"`
		Types            []string          `json:"types,omitempty"`
		Subjects         []oscalSubjectRef `json:"subjects,omitempty"`
		RelevantEvidence []oscalEvidence   `json:"relevant-evidence,omitempty"`
		Collected        string            `json:"collected"`
		Remarks          string            `json:"remarks,omitempty"`
	}
	oscalStatus struct {
		State string `json:"state"`
	}
	oscalTarget struct {
		Type     string      `json:"type"`
		TargetID string      `json:"target-id"`
		Title    string      `json:"title,omitempty"`
		Status   oscalStatus `json:"status"`
	}
	oscalRelatedObs struct {
		ObservationUUID string `json:"observation-uuid"`
	}
	oscalFinding struct {
		UUID                string            `json:"uuid"`
		Title               string            `json:"title"`
		Description         string            `json:"description"`
		Props               []oscalProp       `json:"props,omitempty"`
		Target              oscalTarget       `json:"target"`
		RelatedObservations []oscalRelatedObs `json:"related-observations,omitempty"`
		Remarks             string            `json:"remarks,omitempty"`
	}
	oscalResult struct {
		UUID             string             `json:"uuid"`
		Title            string             `json:"title"`
		Description      string             `json:"description"`
		Start            string             `json:"start"`
		End              string             `json:"end,omitempty"`
		Props            []oscalProp        `json:"props,omitempty"`
		LocalDefinitions *oscalLocalDefs    `json:"local-definitions,omitempty"`
		ReviewedControls oscalReviewed      `json:"reviewed-controls"`
		Observations     []oscalObservation `json:"observations,omitempty"`
		Findings         []oscalFinding     `json:"findings,omitempty"`
	}
	oscalAR struct {
		UUID       string          `json:"uuid"`
		Metadata   oscalMetadata   `json:"metadata"`
		ImportAP   oscalHref       `json:"import-ap"`
		Results    []oscalResult   `json:"results"`
		BackMatter oscalBackMatter `json:"back-matter"`
	}
	oscalAP struct {
		UUID               string                   `json:"uuid"`
		Metadata           oscalMetadata            `json:"metadata"`
		ImportSSP          oscalHref                `json:"import-ssp"`
		LocalDefinitions   *oscalLocalDefs          `json:"local-definitions,omitempty"`
		ReviewedControls   oscalReviewed            `json:"reviewed-controls"`
		AssessmentSubjects []oscalAssessmentSubject `json:"assessment-subjects,omitempty"`
		BackMatter         oscalBackMatter          `json:"back-matter"`
	}
)

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("export: random source failed: %v", err)) // crypto/rand never fails on supported systems
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// token turns s into an OSCAL token (an NCName): characters outside
// letters, digits, '.', '-' and '_' become '_', and a leading character
// that may not start one gets a '_' before it.
func token(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	t := b.String()
	if t == "" || !(t[0] == '_' || (t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')) {
		t = "_" + t
	}
	return t
}

// props builds a property list from name, value pairs, leaving out empty
// values and folding the rest onto one line as OSCAL requires.
func props(kv ...string) []oscalProp {
	var out []oscalProp
	for i := 0; i+1 < len(kv); i += 2 {
		if v := oneLine(kv[i+1]); v != "" {
			out = append(out, oscalProp{Name: kv[i], NS: oscalNS, Value: v})
		}
	}
	return out
}

func oscalTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// renderOSCAL writes OSCAL 1.1.2 Assessment Results: one result over the
// scope, one observation per host x rule, one finding per failing control
// (with a framework) or rule (without), and in back-matter the minimal
// Assessment Plan import-ap points at, as base64 JSON.
func renderOSCAL(r *report) ([]byte, error) {
	at := oscalTime(r.At)
	modified := oscalTime(r.GeneratedAt)
	scopeDesc := "Vigil compliance results for " + r.Scope.Label()
	if r.Framework != nil {
		scopeDesc += ", framework " + r.Framework.ID + " (" + r.Framework.Title + ")"
	}
	scopeDesc += ", as of " + at + "."

	items := make([]oscalInventoryItem, 0, len(r.Hosts))
	itemOf := make(map[int64]string, len(r.Hosts))
	for _, h := range r.Hosts {
		u := newUUID()
		itemOf[h.ID] = u
		var labels []string
		for _, k := range sortedKeys(h.Labels) {
			labels = append(labels, k+"="+h.Labels[k])
		}
		items = append(items, oscalInventoryItem{UUID: u, Description: "Host " + h.Name,
			Props: props("host-name", h.Name, "host-id", strconv.FormatInt(h.ID, 10), "address", h.Address,
				"os", h.OS, "groups", strings.Join(h.Groups, ", "), "labels", strings.Join(labels, ", "))})
	}
	reviewed := oscalReviewed{ControlSelections: []oscalControlSel{{IncludeAll: &struct{}{}}}}
	if r.Framework != nil {
		var ids []oscalControlID
		for _, c := range r.Controls {
			if len(c.Rules) > 0 {
				ids = append(ids, oscalControlID{ControlID: token(c.ID)})
			}
		}
		reviewed.Description = "Controls of " + r.Framework.ID + " (" + r.Framework.Title + ") that Vigil rules check."
		if len(ids) > 0 {
			reviewed.ControlSelections = []oscalControlSel{{IncludeControls: ids}}
		}
	}

	ap, err := assessmentPlan(r, items, reviewed, scopeDesc)
	if err != nil {
		return nil, err
	}
	apRes := oscalResource{UUID: newUUID(), Title: "Vigil assessment plan",
		Description: "The minimal Assessment Plan these results follow: the hosts and controls in scope.",
		Base64:      &oscalBase64{Filename: "assessment-plan.json", MediaType: "application/json", Value: base64.StdEncoding.EncodeToString(ap)}}

	exc := map[int64]exceptionRow{}
	for _, x := range r.Exceptions {
		exc[x.ID] = x
	}
	res := oscalResult{
		UUID: newUUID(), Title: "Vigil results: " + r.Scope.Label(), Description: scopeDesc,
		Start: at, End: at,
		Props: props("score", fmt.Sprintf("%.1f", r.Summary.Score),
			"score-with-exceptions", fmt.Sprintf("%.1f", r.Summary.ScoreWithExceptions),
			"hosts", strconv.Itoa(r.Summary.Hosts)),
		ReviewedControls: reviewed,
	}
	if len(items) > 0 {
		res.LocalDefinitions = &oscalLocalDefs{InventoryItems: items}
	}
	start := r.At
	type failing struct {
		title    string
		obs      []string
		accepted int
		excIDs   map[int64]bool
		hosts    map[string]bool
	}
	findings := map[string]*failing{}
	for _, h := range r.Hosts {
		fails := make(map[string]failure, len(h.Failures))
		for _, f := range h.Failures {
			fails[f.RuleID] = f
		}
		for _, ru := range h.Rules {
			if ru.ObservedAt.Before(start) {
				start = ru.ObservedAt
			}
			o := oscalObservation{
				UUID: newUUID(), Title: ru.RuleID + " on " + h.Name,
				Description: fmt.Sprintf("%s: %s on host %s.", ru.Title, ru.Status, h.Name),
				Props: props("rule-id", ru.RuleID, "status", string(ru.Status), "severity", ru.Severity,
					"accepted", strconv.FormatBool(ru.Accepted), "exception-id", idOrEmpty(ru.ExceptionID),
					"scan-id", strconv.FormatInt(ru.ScanID, 10), "controls", strings.Join(ru.Controls, ", ")),
				Methods:   []string{"TEST"},
				Types:     []string{"finding"},
				Subjects:  []oscalSubjectRef{{SubjectUUID: itemOf[h.ID], Type: "inventory-item", Title: h.Name}},
				Collected: oscalTime(ru.ObservedAt),
				Remarks:   ru.Reason,
			}
			if f, ok := fails[ru.RuleID]; ok {
				for _, x := range f.Evidence {
					o.RelevantEvidence = append(o.RelevantEvidence, oscalEvidence{
						Description: excerptText(x),
						Props:       props("method", x.Method, "command", clip(x.Command, 200), "expected", clip(x.Expected, 200), "actual", clip(x.Actual, 200)),
					})
				}
				if len(o.RelevantEvidence) == 0 && f.Reason != "" {
					o.RelevantEvidence = []oscalEvidence{{Description: "Reason: " + f.Reason}}
				}
			}
			res.Observations = append(res.Observations, o)
			if ru.Status != result.Fail {
				continue
			}
			keys := []string{ru.RuleID}
			if r.Framework != nil {
				keys = ru.Controls
			}
			for _, k := range keys {
				fi := findings[k]
				if fi == nil {
					fi = &failing{title: ru.Title, excIDs: map[int64]bool{}, hosts: map[string]bool{}}
					if r.Framework != nil {
						fi.title = ""
					}
					findings[k] = fi
				}
				fi.obs = append(fi.obs, o.UUID)
				fi.hosts[h.Name] = true
				if ru.Accepted {
					fi.accepted++
					fi.excIDs[ru.ExceptionID] = true
				}
			}
		}
	}
	res.Start = oscalTime(start)
	ctlTitle := map[string]string{}
	for _, c := range r.Controls {
		ctlTitle[c.ID] = c.Title
	}
	keys := make([]string, 0, len(findings))
	for k := range findings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fi := findings[k]
		kind, title := "rule", fi.title
		if r.Framework != nil {
			kind, title = "control", ctlTitle[k]
		}
		hosts := make([]string, 0, len(fi.hosts))
		for h := range fi.hosts {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		f := oscalFinding{
			UUID:  newUUID(),
			Title: fmt.Sprintf("%s %s not satisfied", kind, k),
			Description: fmt.Sprintf("%d failing observation(s) of %s %s on: %s.", len(fi.obs), kind, k,
				clip(strings.Join(hosts, ", "), 2000)),
			Target: oscalTarget{Type: "objective-id", TargetID: token(k), Title: oneLine(title),
				Status: oscalStatus{State: "not-satisfied"}},
			Props: props(kind+"-id", k, "failing", strconv.Itoa(len(fi.obs)), "accepted", strconv.Itoa(fi.accepted)),
		}
		if f.Target.Title == "" {
			f.Target.Title = k
		}
		for _, u := range fi.obs {
			f.RelatedObservations = append(f.RelatedObservations, oscalRelatedObs{ObservationUUID: u})
		}
		if fi.accepted > 0 {
			state := "partially-accepted"
			if fi.accepted == len(fi.obs) {
				state = "risk-accepted"
			}
			f.Props = append(f.Props, props("risk-status", state)...)
			var notes []string
			ids := make([]int64, 0, len(fi.excIDs))
			for id := range fi.excIDs {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			for _, id := range ids {
				x := exc[id]
				notes = append(notes, fmt.Sprintf("Exception #%d (%s %s), approved by %s at %s: %s", id, x.Scope,
					x.ScopeName, x.ApprovedBy, oscalTime(x.ApprovedAt), x.Justification))
			}
			f.Remarks = fmt.Sprintf("Risk accepted for %d of %d failing observation(s). %s", fi.accepted, len(fi.obs),
				strings.Join(notes, "\n"))
		}
		res.Findings = append(res.Findings, f)
	}

	doc := map[string]oscalAR{"assessment-results": {
		UUID: newUUID(),
		Metadata: oscalMetadata{
			Title: "Vigil assessment results: " + r.Scope.Label(), LastModified: modified, Version: "1",
			OSCALVersion: oscalVersion,
			Props: append([]oscalProp{{Name: "export-signature", NS: oscalNS, Value: placeholder}},
				props("issuer", r.Issuer, "generated-by", r.GeneratedBy, "scope", r.Scope.Label(), "as-of", at,
					"framework", frameworkID(r))...),
		},
		ImportAP:   oscalHref{Href: "#" + apRes.UUID},
		Results:    []oscalResult{res},
		BackMatter: oscalBackMatter{Resources: []oscalResource{apRes}},
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// assessmentPlan renders the minimal Assessment Plan: the hosts as
// inventory items and subjects, the reviewed controls, and a back-matter
// stand-in for the system security plan Vigil does not hold.
func assessmentPlan(r *report, items []oscalInventoryItem, reviewed oscalReviewed, scopeDesc string) ([]byte, error) {
	ssp := oscalResource{UUID: newUUID(), Title: "System under assessment",
		Description: "Vigil holds no system security plan; the system is the set of hosts listed as inventory items."}
	ap := oscalAP{
		UUID: newUUID(),
		Metadata: oscalMetadata{Title: "Vigil assessment plan: " + r.Scope.Label(), LastModified: oscalTime(r.GeneratedAt),
			Version: "1", OSCALVersion: oscalVersion, Remarks: scopeDesc},
		ImportSSP:        oscalHref{Href: "#" + ssp.UUID},
		ReviewedControls: reviewed,
		BackMatter:       oscalBackMatter{Resources: []oscalResource{ssp}},
	}
	if len(items) > 0 {
		ap.LocalDefinitions = &oscalLocalDefs{InventoryItems: items}
		subj := oscalAssessmentSubject{Type: "inventory-item", Description: "The hosts in scope."}
		for _, it := range items {
			subj.IncludeSubjects = append(subj.IncludeSubjects, oscalSubjectSel{SubjectUUID: it.UUID, Type: "inventory-item"})
		}
		ap.AssessmentSubjects = []oscalAssessmentSubject{subj}
	}
	return json.Marshal(map[string]oscalAP{"assessment-plan": ap})
}

func frameworkID(r *report) string {
	if r.Framework == nil {
		return ""
	}
	return r.Framework.ID
}

func idOrEmpty(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// excerptText lays out one evidence record for reading.
func excerptText(x excerpt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Method: %s\nCommand: %s\nExpected: %s\nActual: %s", x.Method, x.Command, x.Expected, x.Actual)
	if x.Output != "" {
		b.WriteString("\nOutput:\n" + x.Output)
	}
	if x.Truncated {
		b.WriteString("\n[output truncated]")
	}
	return b.String()
}
