package export

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// benchFleet fills a fixture with hosts x rules results: about one rule in
// seven failing (with evidence shared across hosts, as identical failures
// are), some erroring and skipped, and one fleet-wide approved exception.
func benchFleet(b *testing.B, hosts, rules int) *fixture {
	b.Helper()
	f := newFixture(b)
	all := f.idx.Rules()
	if len(all) < rules {
		b.Fatalf("corpus has %d rules, benchmark wants %d", len(all), rules)
	}
	exit1 := 1
	evAt := f.clk.Now()
	for h := 0; h < hosts; h++ {
		host, err := f.st.UpsertHost(f.ctx, store.Host{Name: fmt.Sprintf("host-%03d", h), Address: fmt.Sprintf("10.1.%d.%d", h/250, h%250+1),
			OS: "debian 12", Labels: map[string]string{"env": "prod"}})
		if err != nil {
			b.Fatal(err)
		}
		rs := make([]result.Result, 0, rules)
		for i, ru := range all[:rules] {
			st, reason := result.Pass, ""
			var evs []result.Evidence
			switch {
			case (i+h)%7 == 0:
				st, reason = result.Fail, "setting differs"
				evs = []result.Evidence{{Method: "command", Probe: "check " + ru.ID, Stdout: fmt.Sprintf("%s: value is wrong\n%0400d", ru.ID, i),
					ExitCode: &exit1, Expected: "compliant", Actual: "non-compliant", Time: evAt}}
			case i%13 == 0:
				st, reason = result.Error, "probe timed out"
			case i%11 == 0:
				st, reason = result.Skipped, "not applicable"
			}
			rs = append(rs, f.res(ru.ID, st, reason, evs...))
		}
		f.scan(b, host.ID, rs)
	}
	f.clk.Add(time.Minute)
	x, err := f.gov.RequestException(f.ctx, "alice", governance.ExceptionRequest{RuleID: all[0].ID,
		Justification: "Accepted fleet-wide for the benchmark."})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.gov.DecideException(f.ctx, "bob", x.ID, store.ExceptionApproved, ""); err != nil {
		b.Fatal(err)
	}
	f.clk.Add(time.Minute)
	return f
}

func benchExport(b *testing.B, fm Format) {
	f := benchFleet(b, 200, 300)
	b.ReportAllocs()
	var size int
	var cpu0 time.Duration
	for b.Loop() {
		if cpu0 == 0 {
			cpu0 = processCPU(b)
		}
		file, err := f.exp.Export(f.ctx, Scope{}, fm, "bench")
		if err != nil {
			b.Fatal(err)
		}
		size = len(file.Body)
	}
	b.ReportMetric(float64(size), "bytes/export")
	// CPU time (user + system, garbage collection included) says more
	// than ns/op on a machine other jobs share.
	b.ReportMetric((processCPU(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// processCPU returns the CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExportFleetPDF measures a fleet PDF over 200 hosts x 300 rules.
func BenchmarkExportFleetPDF(b *testing.B) { benchExport(b, PDF) }

// BenchmarkExportFleetJSON measures a fleet JSON over 200 hosts x 300 rules.
func BenchmarkExportFleetJSON(b *testing.B) { benchExport(b, JSON) }
