package export

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/defenseunicorns/go-oscal/src/pkg/validation"
)

const (
	arfSchema   = "/usr/share/openscap/schemas/arf/1.1/asset-reporting-format_1.1.0.xsd"
	xccdfSchema = "/usr/share/openscap/schemas/xccdf/1.2/xccdf_1.2.xsd"
)

// needTool skips when a validation tool CI installs is absent here.
func needTool(t *testing.T, tool, pkg string, files ...string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (apt-get install %s); CI installs it", tool, pkg)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (apt-get install %s); CI installs it", f, pkg)
		}
	}
}

// run runs a command with a deadline and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// ARF model subset for reading back.
type arfDoc struct {
	XMLName xml.Name `xml:"http://scap.nist.gov/schema/asset-reporting-format/1.1 asset-report-collection"`
	Reports []struct {
		ID         string `xml:"id,attr"`
		TestResult struct {
			ID          string `xml:"id,attr"`
			Target      string `xml:"http://checklists.nist.gov/xccdf/1.2 target"`
			Address     string `xml:"http://checklists.nist.gov/xccdf/1.2 target-address"`
			Identity    string `xml:"http://checklists.nist.gov/xccdf/1.2 identity"`
			RuleResults []struct {
				IDRef    string `xml:"idref,attr"`
				Result   string `xml:"http://checklists.nist.gov/xccdf/1.2 result"`
				Override *struct {
					Authority string `xml:"authority,attr"`
					Old       string `xml:"http://checklists.nist.gov/xccdf/1.2 old-result"`
					New       string `xml:"http://checklists.nist.gov/xccdf/1.2 new-result"`
					Remark    string `xml:"http://checklists.nist.gov/xccdf/1.2 remark"`
				} `xml:"http://checklists.nist.gov/xccdf/1.2 override"`
			} `xml:"http://checklists.nist.gov/xccdf/1.2 rule-result"`
			Scores []struct {
				System string `xml:"system,attr"`
				Value  string `xml:",chardata"`
			} `xml:"http://checklists.nist.gov/xccdf/1.2 score"`
		} `xml:"content>TestResult"`
	} `xml:"reports>report"`
}

func TestARFExport(t *testing.T) {
	f := newFixture(t)
	f.populate()
	file := f.export(Scope{}, ARF)
	if file.ContentType != "application/xml" || !strings.HasSuffix(file.Name, ".arf.xml") {
		t.Fatalf("name %q type %q", file.Name, file.ContentType)
	}
	if !regexp.MustCompile(`^<\?xml [^>]*\?>\n<!-- vigil-sig:v1:[0-9a-f]{16}:[0-9a-f]{64}:[0-9a-f]{128} -->\n<arf:asset-report-collection `).Match(file.Body) {
		t.Fatalf("signature comment not before the root element:\n%.400s", file.Body)
	}
	var d arfDoc
	if err := xml.Unmarshal(file.Body, &d); err != nil {
		t.Fatalf("ARF does not parse: %v", err)
	}
	if len(d.Reports) != 2 {
		t.Fatalf("%d reports, want 2", len(d.Reports))
	}
	web := d.Reports[1].TestResult
	if web.Target != "web1" || web.Address != "10.0.0.5" || web.Identity == "" || !strings.HasPrefix(web.ID, "xccdf_dev.vigil_testresult_") {
		t.Fatalf("web1 TestResult %+v", web)
	}
	if len(web.RuleResults) != 6 || len(web.Scores) != 2 {
		t.Fatalf("web1: %d rule results, %d scores", len(web.RuleResults), len(web.Scores))
	}
	results := map[string]string{}
	overrides := 0
	for _, rr := range web.RuleResults {
		results[rr.IDRef] = rr.Result
		if rr.Override != nil {
			overrides++
			if rr.Override.Authority != "bob" || rr.Override.Old != "fail" || rr.Override.New != "pass" || rr.Result != "pass" ||
				!strings.Contains(rr.Override.Remark, "Exception #") {
				t.Fatalf("override %+v on %s (result %s)", rr.Override, rr.IDRef, rr.Result)
			}
		}
	}
	if overrides != 2 {
		t.Fatalf("%d overrides, want 2 (host and group exceptions)", overrides)
	}
	r := f.rules
	want := map[string]string{r[0]: "pass", r[1]: "pass", r[2]: "pass", r[3]: "fail", r[4]: "error", r[5]: "notapplicable"}
	for id, res := range want {
		if got := results["xccdf_dev.vigil_rule_"+id]; got != res {
			t.Errorf("rule %s: result %q, want %q", id, got, res)
		}
	}

	needTool(t, "xmllint", "libxml2-utils openscap-common", arfSchema, xccdfSchema)
	dir := t.TempDir()
	arfFile := filepath.Join(dir, file.Name)
	if err := os.WriteFile(arfFile, file.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "xmllint", "--noout", "--schema", arfSchema, arfFile); err != nil {
		t.Fatalf("ARF fails schema validation: %v\n%s", err, out)
	}
	// Each TestResult on its own against the XCCDF 1.2 schema.
	body := string(file.Body)
	for i := 0; ; i++ {
		start := strings.Index(body, "<TestResult ")
		if start < 0 {
			if i != 2 {
				t.Fatalf("extracted %d TestResults, want 2", i)
			}
			break
		}
		end := strings.Index(body, "</TestResult>") + len("</TestResult>")
		tr := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + body[start:end] + "\n"
		body = body[end:]
		trFile := filepath.Join(dir, "testresult.xml")
		if err := os.WriteFile(trFile, []byte(tr), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := run(t, "xmllint", "--noout", "--schema", xccdfSchema, trFile); err != nil {
			t.Fatalf("TestResult %d fails XCCDF 1.2 validation: %v\n%s", i, err, out)
		}
	}
	// The validation is real: a broken document fails it.
	broken := bytes.Replace(file.Body, []byte("<result>pass</result>"), []byte("<result>maybe</result>"), 1)
	if err := os.WriteFile(arfFile, broken, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "xmllint", "--noout", "--schema", arfSchema, arfFile); err == nil {
		// ARF content is lax; check the TestResult schema catches it instead.
		start := bytes.Index(broken, []byte("<TestResult "))
		end := bytes.Index(broken, []byte("</TestResult>")) + len("</TestResult>")
		trFile := filepath.Join(dir, "broken.xml")
		if err := os.WriteFile(trFile, broken[start:end], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, "xmllint", "--noout", "--schema", xccdfSchema, trFile); err == nil {
			t.Fatal("a TestResult with result \"maybe\" passes validation: the check proves nothing")
		}
	}
}

// oscalDoc is the subset of Assessment Results the tests read back.
type oscalDoc struct {
	AR struct {
		UUID     string `json:"uuid"`
		Metadata struct {
			OSCALVersion string      `json:"oscal-version"`
			Props        []oscalProp `json:"props"`
		} `json:"metadata"`
		ImportAP struct {
			Href string `json:"href"`
		} `json:"import-ap"`
		Results []struct {
			ReviewedControls json.RawMessage `json:"reviewed-controls"`
			Observations     []struct {
				UUID             string      `json:"uuid"`
				Props            []oscalProp `json:"props"`
				RelevantEvidence []struct {
					Description string `json:"description"`
				} `json:"relevant-evidence"`
			} `json:"observations"`
			Findings []struct {
				Target struct {
					TargetID string `json:"target-id"`
					Status   struct {
						State string `json:"state"`
					} `json:"status"`
				} `json:"target"`
				Props               []oscalProp `json:"props"`
				Remarks             string      `json:"remarks"`
				RelatedObservations []struct {
					ObservationUUID string `json:"observation-uuid"`
				} `json:"related-observations"`
			} `json:"findings"`
		} `json:"results"`
		BackMatter struct {
			Resources []struct {
				UUID   string `json:"uuid"`
				Base64 *struct {
					Value string `json:"value"`
				} `json:"base64"`
			} `json:"resources"`
		} `json:"back-matter"`
	} `json:"assessment-results"`
}

func propValue(ps []oscalProp, name string) string {
	for _, p := range ps {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// validateOSCAL runs go-oscal's validator (the bundled NIST schema) over a
// document and fails with its findings.
func validateOSCAL(t *testing.T, what string, doc []byte) {
	t.Helper()
	v, err := validation.NewValidatorDesiredVersion(doc, oscalVersion)
	if err != nil {
		t.Fatalf("%s: validator: %v", what, err)
	}
	if err := v.Validate(); err != nil {
		res, _ := v.GetValidationResult()
		b, _ := json.MarshalIndent(res.Errors, "", " ")
		t.Fatalf("%s is not valid OSCAL %s: %v\n%.3000s", what, oscalVersion, err, b)
	}
}

func TestOSCALExport(t *testing.T) {
	f := newFixture(t)
	f.populate()
	for _, fw := range []string{"", testFramework} {
		file := f.export(Scope{Framework: fw}, OSCAL)
		if file.ContentType != "application/json" || !strings.HasSuffix(file.Name, ".oscal.json") {
			t.Fatalf("name %q type %q", file.Name, file.ContentType)
		}
		validateOSCAL(t, "assessment results (framework "+fw+")", file.Body)
		var d oscalDoc
		if err := json.Unmarshal(file.Body, &d); err != nil {
			t.Fatal(err)
		}
		ar := d.AR
		if ar.Metadata.OSCALVersion != "1.1.2" || len(propValue(ar.Metadata.Props, "export-signature")) != TokenLen {
			t.Fatalf("metadata %+v", ar.Metadata)
		}
		for _, p := range ar.Metadata.Props {
			if p.Name == "export-signature" && p.NS != oscalNS {
				t.Fatalf("signature prop ns %q", p.NS)
			}
		}
		// import-ap points at the back-matter resource holding the plan.
		if len(ar.BackMatter.Resources) != 1 || ar.ImportAP.Href != "#"+ar.BackMatter.Resources[0].UUID ||
			ar.BackMatter.Resources[0].Base64 == nil {
			t.Fatalf("import-ap %q, back-matter %+v", ar.ImportAP.Href, ar.BackMatter)
		}
		ap, err := base64.StdEncoding.DecodeString(ar.BackMatter.Resources[0].Base64.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(ap, []byte(`"assessment-plan"`)) {
			t.Fatalf("embedded plan: %.300s", ap)
		}
		validateOSCAL(t, "embedded assessment plan", ap)

		res := ar.Results[0]
		if len(res.Observations) != 10 {
			t.Fatalf("%d observations, want 10 (host x rule)", len(res.Observations))
		}
		obs := map[string]bool{}
		withEvidence := 0
		for _, o := range res.Observations {
			obs[o.UUID] = true
			if len(o.RelevantEvidence) > 0 {
				withEvidence++
			}
		}
		if withEvidence < 4 {
			t.Fatalf("%d observations carry evidence", withEvidence)
		}
		if len(res.Findings) == 0 {
			t.Fatal("no findings")
		}
		accepted := 0
		for _, fi := range res.Findings {
			if fi.Target.Status.State != "not-satisfied" || len(fi.RelatedObservations) == 0 {
				t.Fatalf("finding %+v", fi)
			}
			for _, ro := range fi.RelatedObservations {
				if !obs[ro.ObservationUUID] {
					t.Fatalf("finding relates unknown observation %s", ro.ObservationUUID)
				}
			}
			if propValue(fi.Props, "risk-status") != "" {
				accepted++
				if !strings.Contains(fi.Remarks, "approved by bob") {
					t.Fatalf("accepted finding remarks %q", fi.Remarks)
				}
			}
		}
		if accepted == 0 {
			t.Fatal("no finding notes an accepted risk")
		}
		if fw == "" {
			if len(res.Findings) != 3 { // rules[1], rules[2], rules[3] fail somewhere
				t.Fatalf("%d rule findings, want 3", len(res.Findings))
			}
		} else if !bytes.Contains(res.ReviewedControls, []byte("include-controls")) {
			t.Fatalf("framework export reviews %s", res.ReviewedControls)
		}
	}
	// The validator is real: a document without its required results fails.
	broken := []byte(`{"assessment-results":{"uuid":"6f1c3e0a-9a57-4c8e-8a0e-2d6d3c1c9e11","metadata":{"title":"x","last-modified":"2026-11-02T09:00:00Z","version":"1","oscal-version":"1.1.2"},"import-ap":{"href":"#x"}}}`)
	v, err := validation.NewValidatorDesiredVersion(broken, oscalVersion)
	if err != nil {
		t.Fatal(err)
	}
	if v.Validate() == nil {
		t.Fatal("an assessment-results without results validates: the check proves nothing")
	}
}

func TestPDFExport(t *testing.T) {
	f := newFixture(t)
	f.populate()
	file := f.export(Scope{Framework: testFramework}, PDF)
	if file.ContentType != "application/pdf" || !bytes.HasPrefix(file.Body, []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q %.10q", file.ContentType, file.Body)
	}
	if !regexp.MustCompile(`/Keywords \(vigil-sig:v1:[0-9a-f]{16}:[0-9a-f]{64}:[0-9a-f]{128}\)`).Match(file.Body) {
		t.Fatal("signature not in the document information's Keywords")
	}
	needTool(t, "pdftotext", "poppler-utils")
	needTool(t, "pdftoppm", "poppler-utils")
	dir := t.TempDir()
	pdfFile := filepath.Join(dir, file.Name)
	if err := os.WriteFile(pdfFile, file.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "pdftotext", pdfFile, "-")
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := strings.Join(strings.Fields(out), " ") // wrapped lines rejoined
	wants := []string{
		"Vigil compliance report", "vigil.example.test", "fleet", testFramework,
		"Host web1", "Host db1", "Controls of " + testFramework, "Failures and evidence", "Exceptions in force",
		"Legacy payroll app needs this - approved by the CISO \"until migration\"; ??? v Lódz façade",
		"Page 1 of", "fail, accepted #", "alice", "bob", f.rules[1], "sshd -T", "[output truncated]",
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("PDF text lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("PDF text:\n%.4000s", text)
	}
	if m := regexp.MustCompile(`Page (\d+) of (\d+)`).FindAllStringSubmatch(text, -1); len(m) < 4 || m[0][2] != m[len(m)-1][1] {
		t.Fatalf("page numbers %v", m)
	}
	// Render pages to PNG for people to look at (artifacts/ is git-ignored).
	art := filepath.Join("..", "..", "artifacts", "exports")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(art, "fleet-"+testFramework)
	stale, _ := filepath.Glob(prefix + "-*.png")
	for _, p := range stale { // pages of an earlier run
		os.Remove(p)
	}
	if out, err := run(t, "pdftoppm", "-png", "-r", "60", pdfFile, prefix); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pngs, _ := filepath.Glob(prefix + "-*.png")
	if len(pngs) < 4 {
		t.Fatalf("pdftoppm wrote %d pages", len(pngs))
	}
	if err := os.WriteFile(filepath.Join(art, "fleet-"+testFramework+".pdf"), file.Body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLatin1NeverBreaksPDF(t *testing.T) {
	cases := map[string]string{
		"plain":              "plain",
		"café":               "caf\xe9",
		"“q” – ok…":          "\"q\" - ok...",
		"日本":                 "??",
		"a\x00b\x1bc":        "a b c",
		"l1\r\nl2\rl3":       "l1\nl2\nl3",
		"\t":                 "    ",
		"Łódź":               "L\xf3dz",
		"emoji 🚀":            "emoji ?",
		"nbsp\u00a0here":     "nbsp here",
		string([]byte{0xff}): "?",
	}
	for in, want := range cases {
		if got := latin1(clean(in)); got != want {
			t.Errorf("latin1(%q) = %q, want %q", in, got, want)
		}
	}
}
