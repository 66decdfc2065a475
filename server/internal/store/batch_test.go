package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(id string, st result.Status, m int) Row {
		return Row{RuleID: id, Status: st, At: t0.Add(time.Duration(m) * time.Minute)}
	}
	tests := []struct {
		name        string
		prior       map[string]Prior
		rows        []Row
		updates     []string // rule:status
		transitions []string // rule:from->to
	}{
		{"first sight", nil,
			[]Row{row("b", result.Fail, 0), row("a", result.Pass, 0)},
			[]string{"a:pass", "b:fail"}, []string{"b:->fail", "a:->pass"}},
		{"unchanged", map[string]Prior{"a": {result.Pass, t0}},
			[]Row{row("a", result.Pass, 1)},
			[]string{"a:pass"}, nil},
		{"same rule twice in a batch", map[string]Prior{"a": {result.Pass, t0}},
			[]Row{row("a", result.Fail, 1), row("a", result.Pass, 2)},
			[]string{"a:pass"}, []string{"a:pass->fail", "a:fail->pass"}},
		{"older than current state", map[string]Prior{"a": {result.Fail, t0.Add(time.Hour)}},
			[]Row{row("a", result.Pass, 1)},
			nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, tr := Plan(tc.rows, tc.prior)
			var gotUp, gotTr []string
			for _, r := range up {
				gotUp = append(gotUp, fmt.Sprintf("%s:%s", r.RuleID, r.Status))
			}
			for _, x := range tr {
				gotTr = append(gotTr, fmt.Sprintf("%s:%s->%s", x.RuleID, x.From, x.Status))
			}
			if !reflect.DeepEqual(gotUp, tc.updates) || !reflect.DeepEqual(gotTr, tc.transitions) {
				t.Errorf("updates %v transitions %v; want %v and %v", gotUp, gotTr, tc.updates, tc.transitions)
			}
		})
	}
}

func TestPrepareHashesEvidenceOnce(t *testing.T) {
	ev := []result.Evidence{{Method: "file_content", Probe: "/etc/passwd"}}
	b := Batch{Results: []result.Result{
		{RuleID: "a", Status: result.Pass, Evidence: ev},
		{RuleID: "b", Status: result.Pass, Evidence: ev},
		{RuleID: "c", Status: result.Pass},
	}}
	fallback := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	p, err := Prepare(b, fallback)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hashes) != 1 || p.Rows[0].EvidenceHash != p.Hashes[0] || p.Rows[1].EvidenceHash != p.Hashes[0] || p.Rows[2].EvidenceHash != "" {
		t.Errorf("hashes %v rows %+v", p.Hashes, p.Rows)
	}
	if want := fallback.Truncate(time.Microsecond); !p.Rows[2].At.Equal(want) || string(p.Rows[2].Refs) != "[]" {
		t.Errorf("row without time or references: at %s refs %s", p.Rows[2].At, p.Rows[2].Refs)
	}
	if _, err := Prepare(Batch{Results: []result.Result{{Status: result.Pass}}}, fallback); err == nil {
		t.Error("result without a rule id was accepted")
	}
}
