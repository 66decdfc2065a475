package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// jsonExport is the subset of the JSON schema the tests read.
type jsonExport struct {
	Version     int       `json:"vigil_export"`
	Issuer      string    `json:"issuer"`
	GeneratedBy string    `json:"generated_by"`
	AsOf        time.Time `json:"as_of"`
	Scope       struct {
		Kind   string `json:"kind"`
		Name   string `json:"name"`
		ScanID int64  `json:"scan_id"`
	} `json:"scope"`
	Framework *struct {
		ID string `json:"id"`
	} `json:"framework"`
	Summary struct {
		Hosts               int     `json:"hosts"`
		Score               float64 `json:"score"`
		ScoreWithExceptions float64 `json:"score_with_exceptions"`
		Counts              struct {
			Pass, Fail, Error, Skipped, Accepted int
		} `json:"counts"`
	} `json:"summary"`
	Controls []struct {
		ID       string   `json:"id"`
		Status   string   `json:"status"`
		Rules    []string `json:"rules"`
		Fail     int      `json:"fail"`
		Accepted int      `json:"accepted"`
	} `json:"controls"`
	Hosts []struct {
		Name                string  `json:"name"`
		Score               float64 `json:"score"`
		ScoreWithExceptions float64 `json:"score_with_exceptions"`
		Rules               []struct {
			RuleID      string   `json:"rule_id"`
			Title       string   `json:"title"`
			Status      string   `json:"status"`
			Accepted    bool     `json:"accepted"`
			ExceptionID int64    `json:"exception_id"`
			Controls    []string `json:"controls"`
			ScanID      int64    `json:"scan_id"`
			Reason      string   `json:"reason"`
		} `json:"rules"`
		Failures []struct {
			RuleID   string `json:"rule_id"`
			Accepted bool   `json:"accepted"`
			Evidence []struct {
				Command   string `json:"command"`
				Output    string `json:"output"`
				Truncated bool   `json:"truncated"`
			} `json:"evidence"`
		} `json:"failures"`
	} `json:"hosts"`
	Exceptions []struct {
		ID            int64  `json:"id"`
		RuleID        string `json:"rule_id"`
		Scope         string `json:"scope"`
		ScopeName     string `json:"scope_name"`
		Justification string `json:"justification"`
		RequestedBy   string `json:"requested_by"`
		ApprovedBy    string `json:"approved_by"`
		ExpiresAt     *time.Time
	} `json:"exceptions"`
	Signature string `json:"signature"`
}

func decodeJSON(t *testing.T, body []byte) jsonExport {
	t.Helper()
	var d jsonExport
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("JSON export does not parse: %v", err)
	}
	return d
}

func TestJSONHostExport(t *testing.T) {
	f := newFixture(t)
	f.populate()
	file := f.export(hostScope(f.web.ID), JSON)
	if file.ContentType != "application/json" || file.Name != "vigil-host-web1-20261102.json" {
		t.Fatalf("name %q, type %q", file.Name, file.ContentType)
	}
	d := decodeJSON(t, file.Body)
	if d.Version != 1 || d.Issuer != "vigil.example.test" || d.GeneratedBy != "carol" || d.Scope.Kind != "host" || d.Scope.Name != "web1" {
		t.Fatalf("header: %+v", d)
	}
	if !strings.HasPrefix(d.Signature, sigPrefix) || len(d.Signature) != TokenLen {
		t.Fatalf("signature %q", d.Signature)
	}
	if len(d.Hosts) != 1 || len(d.Hosts[0].Rules) != 6 {
		t.Fatalf("hosts: %+v", d.Hosts)
	}
	h := d.Hosts[0]
	byRule := map[string]int{}
	for i, r := range h.Rules {
		byRule[r.RuleID] = i
		if r.ScanID != f.scanWeb.ID {
			t.Errorf("rule %s scan id %d, want %d", r.RuleID, r.ScanID, f.scanWeb.ID)
		}
		if r.Title != f.ruleTitle(r.RuleID) {
			t.Errorf("rule %s title %q", r.RuleID, r.Title)
		}
		if len(r.Controls) == 0 {
			t.Errorf("rule %s lists no control refs", r.RuleID)
		}
	}
	acc := h.Rules[byRule[f.rules[1]]]
	if !acc.Accepted || acc.ExceptionID != f.hostExc.ID || acc.Status != "fail" || acc.Reason != injectReason {
		t.Fatalf("host-excepted rule: %+v", acc)
	}
	grp := h.Rules[byRule[f.rules[2]]]
	if !grp.Accepted || grp.ExceptionID != f.groupExc.ID {
		t.Fatalf("group-excepted rule: %+v", grp)
	}
	if h.Rules[byRule[f.rules[3]]].Accepted {
		t.Fatal("a rule whose exception was rejected shows accepted")
	}
	if d.Summary.Counts.Fail != 3 || d.Summary.Counts.Accepted != 2 || d.Summary.Counts.Pass != 1 ||
		d.Summary.Counts.Error != 1 || d.Summary.Counts.Skipped != 1 {
		t.Fatalf("summary counts %+v", d.Summary.Counts)
	}
	if !(d.Summary.ScoreWithExceptions > d.Summary.Score) || h.Score != d.Summary.Score {
		t.Fatalf("scores: raw %v, with exceptions %v, host %v", d.Summary.Score, d.Summary.ScoreWithExceptions, h.Score)
	}
	// Failures: 3 fail + 1 error, with evidence cut to size.
	if len(h.Failures) != 4 {
		t.Fatalf("%d failures, want 4", len(h.Failures))
	}
	var sawLong, sawMarker bool
	for _, fl := range h.Failures {
		for _, ev := range fl.Evidence {
			if n := utf8.RuneCountInString(ev.Output); n > maxExcerptLen {
				t.Fatalf("excerpt of %s is %d runes", fl.RuleID, n)
			}
			if fl.RuleID == f.rules[1] {
				sawLong = ev.Truncated && strings.HasPrefix(ev.Output, "PermitRootLogin yes # ünïcödé") && ev.Command != ""
			}
			if strings.Contains(ev.Output, "output mentions vigil-sig/v1/") {
				sawMarker = true
			}
		}
	}
	if !sawLong || !sawMarker {
		t.Fatalf("evidence excerpts: long output cut %v, signature marker neutralised %v", sawLong, sawMarker)
	}
	// Exceptions in force: the two approved ones, not the rejected one.
	if len(d.Exceptions) != 2 {
		t.Fatalf("exceptions %+v", d.Exceptions)
	}
	x := d.Exceptions[0]
	if x.ID != f.hostExc.ID || x.Scope != "host" || x.ScopeName != "web1" || x.Justification != unicodeJust ||
		x.RequestedBy != "alice" || x.ApprovedBy != "bob" {
		t.Fatalf("host exception %+v", x)
	}
	if g := d.Exceptions[1]; g.Scope != "group" || g.ScopeName != "dmz" || g.RuleID != f.rules[2] {
		t.Fatalf("group exception %+v", g)
	}
}

func TestJSONScopesAndMoments(t *testing.T) {
	f := newFixture(t)
	f.populate()

	// Before any approval nothing is accepted and no exception is listed.
	d := decodeJSON(t, f.export(Scope{HostID: f.web.ID, At: f.beforeAppr}, JSON).Body)
	if !d.AsOf.Equal(f.beforeAppr) {
		t.Fatalf("as_of %s, want %s", d.AsOf, f.beforeAppr)
	}
	for _, r := range d.Hosts[0].Rules {
		if r.Accepted {
			t.Fatalf("rule %s accepted before any approval", r.RuleID)
		}
	}
	if len(d.Exceptions) != 0 || d.Summary.Counts.Accepted != 0 || d.Summary.Score != d.Summary.ScoreWithExceptions {
		t.Fatalf("before approval: exceptions %d, summary %+v", len(d.Exceptions), d.Summary)
	}

	// Fleet: both hosts; the group exception covers web1 only.
	d = decodeJSON(t, f.export(Scope{}, JSON).Body)
	if d.Scope.Kind != "fleet" || d.Summary.Hosts != 2 || len(d.Hosts) != 2 || d.Hosts[0].Name != "db1" {
		t.Fatalf("fleet: %+v", d.Summary)
	}
	for _, r := range d.Hosts[0].Rules {
		if r.Accepted {
			t.Fatalf("db1 rule %s accepted; no exception covers db1", r.RuleID)
		}
	}
	if d.Summary.Counts.Accepted != 2 || d.Summary.Counts.Fail != 5 {
		t.Fatalf("fleet counts %+v", d.Summary.Counts)
	}

	// Group dmz: web1 only, both exceptions listed.
	d = decodeJSON(t, f.export(Scope{Group: "dmz"}, JSON).Body)
	if d.Scope.Kind != "group" || len(d.Hosts) != 1 || d.Hosts[0].Name != "web1" || len(d.Exceptions) != 2 {
		t.Fatalf("group: hosts %d, exceptions %d", len(d.Hosts), len(d.Exceptions))
	}
	// Group core: db1 only; neither exception touches it.
	d = decodeJSON(t, f.export(Scope{Group: "core"}, JSON).Body)
	if len(d.Hosts) != 1 || d.Hosts[0].Name != "db1" || len(d.Exceptions) != 0 {
		t.Fatalf("group core: hosts %+v, exceptions %+v", d.Hosts, d.Exceptions)
	}

	// Scan scope: the scan's own results, as of its end.
	file := f.export(Scope{ScanID: f.scanWeb.ID}, JSON)
	d = decodeJSON(t, file.Body)
	if d.Scope.Kind != "scan" || d.Scope.ScanID != f.scanWeb.ID || len(d.Hosts) != 1 || len(d.Hosts[0].Rules) != 6 {
		t.Fatalf("scan scope: %+v", d.Scope)
	}
	if !d.AsOf.Equal(f.scanWeb.FinishedAt) {
		t.Fatalf("scan as_of %s, want the scan's end %s", d.AsOf, f.scanWeb.FinishedAt)
	}
	if file.Name != "vigil-scan-"+fmtID(f.scanWeb.ID)+"-20261102.json" {
		t.Fatalf("scan file name %q", file.Name)
	}

	// Framework: per-control table, rules outside the framework left out.
	d = decodeJSON(t, f.export(Scope{HostID: f.web.ID, Framework: testFramework}, JSON).Body)
	if d.Framework == nil || d.Framework.ID != testFramework || len(d.Controls) == 0 {
		t.Fatalf("framework export without control table: %+v", d.Framework)
	}
	states := map[string]int{}
	for _, c := range d.Controls {
		states[c.Status]++
		if c.Accepted > c.Fail {
			t.Fatalf("control %s accepted %d > fail %d", c.ID, c.Accepted, c.Fail)
		}
	}
	if states["not-satisfied"] == 0 || states["not-assessed"] == 0 {
		t.Fatalf("control statuses %v", states)
	}
	for _, r := range d.Hosts[0].Rules {
		for _, c := range r.Controls {
			if strings.Contains(c, " ") {
				t.Fatalf("framework export lists %q, want bare control ids", c)
			}
		}
	}
	// A framework none of the scenario's rules maps to selects nothing.
	other := ""
	for _, fw := range f.idx.Frameworks() {
		ids, _ := f.idx.RuleIDs(fw.ID)
		if !slices.ContainsFunc(f.rules, func(r string) bool { return slices.Contains(ids, r) }) {
			other = fw.ID
			break
		}
	}
	if other != "" {
		d = decodeJSON(t, f.export(Scope{HostID: f.web.ID, Framework: other}, JSON).Body)
		if len(d.Hosts[0].Rules) != 0 || len(d.Exceptions) != 0 {
			t.Fatalf("framework %s: %d rules, %d exceptions", other, len(d.Hosts[0].Rules), len(d.Exceptions))
		}
	}
}

func TestScopeErrors(t *testing.T) {
	f := newFixture(t)
	f.populate()
	cases := []struct {
		name  string
		scope Scope
		fm    Format
		want  error
	}{
		{"two scopes", Scope{HostID: f.web.ID, Group: "dmz"}, JSON, ErrInvalidScope},
		{"unknown framework", Scope{Framework: "no_such_fw"}, JSON, ErrInvalidScope},
		{"unknown format", Scope{}, Format("docx"), ErrInvalidScope},
		{"unknown group", Scope{Group: "nope"}, JSON, store.ErrNotFound},
		{"unknown host", Scope{HostID: 9999}, JSON, store.ErrNotFound},
		{"unknown scan", Scope{ScanID: 9999}, JSON, store.ErrNotFound},
	}
	for _, c := range cases {
		if _, err := f.exp.Export(f.ctx, c.scope, c.fm, "carol"); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
	_, err := f.exp.Export(f.ctx, Scope{Framework: "no_such_fw"}, JSON, "carol")
	var ae *posture.ArgError
	if !errors.As(err, &ae) || ae.Field != "framework" || !errors.Is(err, posture.ErrUnknownFramework) {
		t.Errorf("unknown framework: %v does not name the field", err)
	}
	if !bytes.Equal(f.exp.PublicKeyPEM(), f.signer.PublicKeyPEM()) || f.exp.KeyID() != f.signer.KeyID() {
		t.Error("exporter does not hand out its signer's public key")
	}
	if _, err := f.st.CreateGroup(f.ctx, store.Group{Name: "empty", CreatedAt: f.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.exp.Export(f.ctx, Scope{Group: "empty"}, ARF, "carol"); !errors.Is(err, ErrEmpty) {
		t.Errorf("ARF of an empty group: %v, want ErrEmpty", err)
	}
	for _, fm := range []Format{JSON, CSV, PDF, OSCAL} {
		if _, err := f.exp.Export(f.ctx, Scope{Group: "empty"}, fm, "carol"); err != nil {
			t.Errorf("%s of an empty group: %v", fm, err)
		}
	}
}

func TestCSVExport(t *testing.T) {
	f := newFixture(t)
	f.populate()
	file := f.export(Scope{}, CSV)
	if file.ContentType != "text/csv" || !strings.HasSuffix(file.Name, ".csv") || !strings.HasPrefix(file.Name, "vigil-fleet-all-") {
		t.Fatalf("name %q type %q", file.Name, file.ContentType)
	}
	rd := csv.NewReader(bytes.NewReader(file.Body))
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if !slices.Equal(recs[0], csvHeader) {
		t.Fatalf("header %v", recs[0])
	}
	last := recs[len(recs)-1]
	if len(last) != 2 || last[0] != "#signature" || !strings.HasPrefix(last[1], sigPrefix) || len(last[1]) != TokenLen {
		t.Fatalf("last row %v", last)
	}
	rows := recs[1 : len(recs)-1]
	if len(rows) != 10 { // 6 rules on web1, 4 on db1
		t.Fatalf("%d rows, want 10", len(rows))
	}
	col := map[string]int{}
	for i, h := range csvHeader {
		col[h] = i
	}
	var sawInject, sawPlus, sawAccepted bool
	for _, r := range rows {
		if len(r) != len(csvHeader) {
			t.Fatalf("row of %d fields: %v", len(r), r)
		}
		for i, cell := range r {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("column %s cell %q starts with a formula character", csvHeader[i], cell)
			}
		}
		switch r[col["reason"]] {
		case "'" + injectReason:
			sawInject = true
		case "'" + plusReason:
			sawPlus = true
		}
		if r[col["host"]] == "web1" && r[col["rule_id"]] == f.rules[1] {
			sawAccepted = r[col["accepted"]] == "true" && r[col["exception_id"]] == fmtID(f.hostExc.ID)
		}
	}
	if !sawInject || !sawPlus || !sawAccepted {
		t.Fatalf("injection neutralised: = %v, + %v; accepted row %v", sawInject, sawPlus, sawAccepted)
	}
	for _, c := range []string{"=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"} {
		if got := csvCell(c); got != "'"+c {
			t.Errorf("csvCell(%q) = %q", c, got)
		}
	}
	if got := csvCell("safe = fine"); got != "safe = fine" {
		t.Errorf("csvCell changed a harmless cell: %q", got)
	}
}

// Without Deps.Waivers the exporter reads the accepted flags from
// posture's per-rule states; both paths give the same report.
func TestWaiversPathsAgree(t *testing.T) {
	f := newFixture(t)
	f.populate()
	slow := New(Deps{Store: f.st, Posture: f.ps, Signer: f.signer, Now: f.clk.Now, ServerName: "vigil.example.test"})
	for _, s := range []Scope{{}, {HostID: f.web.ID}, {ScanID: f.scanWeb.ID}, {Group: "dmz", Framework: testFramework}, {At: f.beforeAppr}} {
		a, err := f.exp.Export(f.ctx, s, JSON, "carol")
		if err != nil {
			t.Fatal(err)
		}
		b, err := slow.Export(f.ctx, s, JSON, "carol")
		if err != nil {
			t.Fatal(err)
		}
		da, db := decodeJSON(t, a.Body), decodeJSON(t, b.Body)
		da.Signature, db.Signature = "", ""
		ja, _ := json.Marshal(da)
		jb, _ := json.Marshal(db)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("scope %+v: reports differ:\n%s\n%s", s, ja, jb)
		}
	}
}

// TestExportHostCap refuses a scope larger than MaxHosts with ErrTooLarge,
// naming the count and the way out, and still exports a scope within it.
func TestExportHostCap(t *testing.T) {
	f := newFixture(t)
	for _, g := range []string{"web", "db"} {
		if _, err := f.st.CreateGroup(f.ctx, store.Group{Name: g, CreatedAt: f.clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"web1", "web2", "db1"} {
		groups := []string{"db"}
		if name != "db1" {
			groups = []string{"web"}
		}
		if _, err := f.st.UpsertHost(f.ctx, store.Host{Name: name, Address: "127.0.0.2", OS: "debian 12", Groups: groups}); err != nil {
			t.Fatal(err)
		}
	}
	capped := New(Deps{Store: f.st, Posture: f.ps, Signer: f.signer, Now: f.clk.Now, ServerName: "vigil.example.test", MaxHosts: 2})
	_, err := capped.Export(f.ctx, Scope{}, JSON, "carol")
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "3 hosts") || !strings.Contains(err.Error(), "group by group") {
		t.Fatalf("fleet of 3 hosts with a cap of 2: %v, want ErrTooLarge naming the count and the way out", err)
	}
	if _, err := capped.Export(f.ctx, Scope{Group: "web"}, JSON, "carol"); err != nil {
		t.Fatalf("group of 2 hosts with a cap of 2: %v", err)
	}
}
