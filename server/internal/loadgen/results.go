package loadgen

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/shared/agentpb"
)

// syntheticResults is the scan every simulated agent reports: n results of
// distinct rules, about one in five failing (never critical, so that no
// confirming re-scan is triggered), each with one piece of evidence of a
// realistic size.
func syntheticResults(n int, at time.Time) []*agentpb.Result {
	sevs := []string{"high", "medium", "low"}
	ts := timestamppb.New(at)
	out := make([]*agentpb.Result, n)
	for i := range out {
		status, reason := "pass", ""
		if i%5 == 0 {
			status, reason = "fail", "value differs from the expected one"
		}
		id := fmt.Sprintf("loadgen-rule-%04d", i)
		out[i] = &agentpb.Result{RuleId: id, Title: "Synthetic load-generator rule " + id, Severity: sevs[i%len(sevs)],
			Category: "system", Status: status, Reason: reason, Implementation: "file_content", Time: ts, DurationMs: 0.4,
			References: []*agentpb.Ref{{Framework: "cis-debian12", Control: fmt.Sprintf("%d.%d", i/10+1, i%10+1)}},
			Evidence: []*agentpb.Evidence{{Method: "file_content", Probe: "/etc/ssh/sshd_config",
				Stdout: "PermitRootLogin no\nPasswordAuthentication no\n", Expected: "no", Actual: "no",
				HasExitCode: true, ExitCode: 0, Time: ts, DurationMs: 0.3}}}
	}
	return out
}

// scanBatches cuts the shared results into BatchSize batches for one
// scan; the last carries the scan's end with its counts.
func (r *run) scanBatches(scanID int64, started time.Time) []*agentpb.ResultBatch {
	var out []*agentpb.ResultBatch
	for off := 0; off < len(r.results); off += r.cfg.BatchSize {
		end := min(off+r.cfg.BatchSize, len(r.results))
		out = append(out, &agentpb.ResultBatch{ScanId: scanID, Seq: int64(len(out) + 1), Results: r.results[off:end]})
	}
	pass, fail := 0, 0
	for _, res := range r.results {
		if res.GetStatus() == "fail" {
			fail++
		} else {
			pass++
		}
	}
	out[len(out)-1].End = &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED, Started: timestamppb.New(started),
		Finished: timestamppb.Now(), Platform: "debian 12", Total: int32(len(r.results)), Pass: int32(pass),
		Fail: int32(fail)}
	return out
}
