// Command vigil-loadgen simulates many Vigil agents in one process against
// one vigil-server, to measure how many connected agents the server holds
// and how fast results flow from agents to committed rows. `make
// bench-agents` drives it; see internal/loadgen.
//
//	vigil-loadgen --server 127.0.0.1:8444 --token vjt_... --ca-pin sha256:... \
//	    --agents 5000 --results-per-scan 300 --duration 10m
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilfleet/vigil/server/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg loadgen.Config
	fs := flag.NewFlagSet("vigil-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Server, "server", "", "vigil-server gRPC address host:port (required)")
	fs.StringVar(&cfg.ServerName, "server-name", "", "name the server certificate must carry; default the host of --server")
	fs.StringVar(&cfg.Token, "token", "", "join token with at least --agents uses (required)")
	fs.StringVar(&cfg.CAPin, "ca-pin", "", "CA pin sha256:... (required)")
	fs.IntVar(&cfg.Agents, "agents", 100, "simulated agents")
	fs.IntVar(&cfg.ResultsPerScan, "results-per-scan", loadgen.DefaultResultsPerScan, "results each assignment is answered with")
	fs.IntVar(&cfg.BatchSize, "batch-size", loadgen.DefaultBatchSize, "results per batch")
	fs.DurationVar(&cfg.Duration, "duration", 0, "hard limit of the whole run (required)")
	fs.DurationVar(&cfg.Hold, "hold", 0, "keep connections this long after every scan is acknowledged; 0: until --duration")
	fs.IntVar(&cfg.EnrollParallel, "enroll-parallel", loadgen.DefaultEnrollParallel, "concurrent enrolments and connection set-ups")
	fs.IntVar(&cfg.ReportParallel, "report-parallel", loadgen.DefaultReportParallel, "agents streaming results at once")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", loadgen.DefaultHeartbeat, "heartbeat interval of each agent")
	fs.DurationVar(&cfg.Every, "progress", 0, "print progress to stderr at this interval; 0: never")
	fs.StringVar(&cfg.Hostname, "hostname-prefix", "", "simulated host names are PREFIX-<n>; default lg-<random>")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil-loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Phases go to stderr, one line each, so that a driver can act on them
	// (bench_test samples the server's memory at "connected").
	cfg.OnPhase = func(p loadgen.Phase, pr loadgen.Progress) {
		fmt.Fprintf(stderr, "vigil-loadgen: phase=%s elapsed=%.1fs enrolled=%d connected=%d scans=%d results=%d\n",
			p, pr.Elapsed.Seconds(), pr.Enrolled, pr.Connected, pr.Scans, pr.ResultsAckd)
	}
	cfg.OnProgress = func(pr loadgen.Progress) {
		fmt.Fprintf(stderr, "vigil-loadgen: progress elapsed=%.0fs enrolled=%d connected=%d heartbeats=%d (failed %d) scans=%d results=%d\n",
			pr.Elapsed.Seconds(), pr.Enrolled, pr.Connected, pr.Heartbeats, pr.HBFailed, pr.Scans, pr.ResultsAckd)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "vigil-loadgen:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "vigil-loadgen:", err)
			return 1
		}
	} else {
		rep.Print(stdout)
	}
	if rep.Connected < int64(cfg.Agents) || !rep.AllScansDone {
		return 1
	}
	return 0
}
