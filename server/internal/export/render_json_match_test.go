package export

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestJSONMatchesReference checks that the streaming JSON writer produces
// exactly the bytes encoding/json writes for the schema types, over the
// standard scenario's scopes (its texts exercise escaping) and a report
// with hostile strings.
func TestJSONMatchesReference(t *testing.T) {
	f := newFixture(t)
	f.populate()
	scopes := []Scope{{}, {Framework: testFramework}, hostScope(f.web.ID), {Group: "dmz", Framework: testFramework},
		{ScanID: f.scanWeb.ID}, {At: f.beforeAppr}}
	for _, s := range scopes {
		r, err := f.exp.build(f.ctx, s, "carol <&> \u2028")
		if err != nil {
			t.Fatalf("build %+v: %v", s, err)
		}
		compareJSON(t, r)
	}
	hostile := "a\"b\\c\x01\x7f<tag>&amp;\u2028\u2029\b\f\r\n\t\xff日本語" + placeholder[:5]
	r := &report{Issuer: hostile, GeneratedBy: hostile, Scope: scopeInfo{Kind: "group", Name: hostile, Group: hostile},
		GeneratedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)),
		Framework:   &frameworkInfo{ID: hostile, Title: ""},
		Summary:     summary{Hosts: 1, Score: 1e-7, ScoreWithExceptions: 99.95, Bands: map[string]int{"": 1, "fair": 2}},
		Controls:    []controlRow{{ID: "c1", Status: "not-assessed"}, {ID: "c2", Title: hostile, Rules: []string{hostile}}},
		Hosts: []hostReport{{ID: 3, Name: hostile, Labels: map[string]string{"b": hostile, "a": ""}, Score: 1e21,
			Rules:    []ruleRow{{RuleID: "r", Controls: []string{}}, {RuleID: "s", Accepted: true, ExceptionID: 4, Reason: hostile}},
			Failures: []failure{{RuleID: "r", Evidence: []excerpt{{Output: hostile, Truncated: true}, {}}}}, FailuresOmitted: 2}},
		Exceptions: []exceptionRow{{ID: 1, ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, {ID: 2}},
	}
	compareJSON(t, r)
	r.Hosts = nil
	r.Controls = nil
	r.Summary.Bands = nil
	compareJSON(t, r)
	r.Summary.Score = math.NaN()
	if _, err := renderJSON(r); err == nil {
		t.Fatal("NaN score rendered without error")
	}
}

func compareJSON(t *testing.T, r *report) {
	t.Helper()
	want, err := renderJSONReference(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		lo := max(i-200, 0)
		t.Fatalf("JSON differs at byte %d of %d/%d:\ngot:  %q\nwant: %q", i, len(got), len(want),
			got[lo:min(i+100, len(got))], want[lo:min(i+100, len(want))])
	}
}

// TestAppendJSONString compares string quoting with encoding/json over
// every single byte and rune class boundary.
func TestAppendJSONString(t *testing.T) {
	var cases []string
	for b := 0; b < 256; b++ {
		cases = append(cases, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	cases = append(cases, "", "\u2028x\u2029", "\ufffd", "\xed\xa0\x80", "日本語", strings.Repeat("é<", 50), "\U0001F600")
	for _, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, c); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", c, got, want)
		}
	}
}

// TestCleanShortcut checks that clean's shortcut for plain text gives what
// the full cleaning gives, over every ASCII byte in context and the
// signature marker.
func TestCleanShortcut(t *testing.T) {
	cases := []string{"plain text\twith\nlines", "ends with marker " + sigPrefix, sigPrefix + sigPrefix[:5] + sigPrefix,
		"vigil-sig:v1", "é", "\xff"}
	for b := 0; b < 128; b++ {
		cases = append(cases, "a"+string(rune(b))+"b")
	}
	for _, c := range cases {
		if got, want := clean(c), cleanSlow(c); got != want {
			t.Errorf("clean(%q) = %q, want %q", c, got, want)
		}
	}
}
