package scan

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

func TestBatches(t *testing.T) {
	for _, tc := range []struct {
		results int
		detail  int
		want    []int
	}{
		{0, 0, []int{0}},
		{1, 0, []int{1}},
		{500, 0, []int{500}},
		{1201, 0, []int{500, 500, 201}},
		// Large evidence splits by size before the count is reached.
		{300, 20 << 10, []int{153, 147}},
	} {
		o := &Outcome{End: &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED}}
		for i := 0; i < tc.results; i++ {
			o.Results = append(o.Results, &agentpb.Result{RuleId: "r", Detail: strings.Repeat("x", tc.detail)})
		}
		bs := o.Batches(9)
		var got []int
		for i, b := range bs {
			got = append(got, len(b.GetResults()))
			if b.GetScanId() != 9 || b.GetSeq() != int64(i+1) {
				t.Errorf("batch %d: scan %d seq %d", i, b.GetScanId(), b.GetSeq())
			}
			if (b.GetEnd() != nil) != (i == len(bs)-1) {
				t.Errorf("%d results: end on batch %d of %d", tc.results, i+1, len(bs))
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%d results of %d bytes: batches %v, want %v", tc.results, tc.detail, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%d results of %d bytes: batches %v, want %v", tc.results, tc.detail, got, tc.want)
				break
			}
		}
	}
}

func TestToProto(t *testing.T) {
	code := 3
	now := time.Now()
	p := ToProto(result.Result{RuleID: "ssh-x", Severity: rule.Severity("high"), Status: result.Fail, Reason: "why",
		References: []rule.Ref{{Framework: "cis", Control: "5.1"}},
		Evidence:   []result.Evidence{{Method: "exec", Probe: "sshd -T", Stdout: "out", ExitCode: &code, Time: now}, {Method: "file"}},
		Time:       now, Duration: 1.5})
	if p.GetRuleId() != "ssh-x" || p.GetSeverity() != "high" || p.GetStatus() != "fail" || p.GetReason() != "why" ||
		p.GetDurationMs() != 1.5 || !p.GetTime().AsTime().Equal(now) {
		t.Errorf("result = %v", p)
	}
	if len(p.GetReferences()) != 1 || p.GetReferences()[0].GetControl() != "5.1" {
		t.Errorf("references = %v", p.GetReferences())
	}
	e := p.GetEvidence()
	if len(e) != 2 || !e[0].GetHasExitCode() || e[0].GetExitCode() != 3 || e[0].GetStdout() != "out" || e[1].GetHasExitCode() || e[1].GetTime() != nil {
		t.Errorf("evidence = %v", e)
	}
}
