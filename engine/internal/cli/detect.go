package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/vigilfleet/vigil/engine"
)

const detectUsage = `Usage: vigil detect [flags]

Prints what Vigil detects on each host: the platform from os-release and
every capability as true or false (after --cap and configuration
overrides). Targets are chosen as for vigil check.

Exit status: 0 every host was detected, 1 a host could not be, 2 a usage
or configuration error.
`

// detectFlags are `vigil detect`'s flags.
type detectFlags struct {
	targets   targetFlags
	configDir string
	caps      capFlag
	format    string
}

// hostDetection is one host's detection as `detect --format json` shows it.
type hostDetection struct {
	Host         string           `json:"host"`
	Platform     *engine.Platform `json:"platform,omitempty"`
	Capabilities map[string]bool  `json:"capabilities,omitempty"`
	Error        string           `json:"error,omitempty"`
}

// runDetect implements `vigil detect`.
func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer, env environment) int {
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	df := detectFlags{caps: capFlag{}}
	df.targets.register(fs)
	fs.StringVar(&df.configDir, "config", "", "configuration `dir` whose capability overrides apply (default "+systemConfigDir+" if it exists)")
	fs.Var(df.caps, "cap", "force capability `name=true|false` (repeatable)")
	fs.StringVar(&df.format, "format", "table", "output `format`: table or json")
	if done, code := parseFlags(fs, args, detectUsage, stdout, stderr, targetGroup, ruleGroup, outputGroup); done {
		return code
	}
	df.targets.set = visited(fs)
	jobs, cfg, err := df.prepare(env, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "vigil detect: %v\n", err)
		return exitUsage
	}
	found := forEachHost(ctx, jobs, df.targets.workers, newProgress(stderr, len(jobs)),
		func(ctx context.Context, j job) hostDetection { return detectHost(ctx, j, cfg) },
		func(d hostDetection) bool { return d.Error != "" },
		func(j job, err error) hostDetection {
			return hostDetection{Host: j.Name, Error: "not detected: " + err.Error()}
		})
	if err := writeDetections(stdout, df.format, found); err != nil {
		fmt.Fprintf(stderr, "vigil detect: %v\n", err)
		return exitUsage
	}
	for _, d := range found {
		if d.Error != "" {
			return exitFail
		}
	}
	return exitOK
}

func (d *detectFlags) prepare(env environment, extra []string) ([]job, *engine.Config, error) {
	if len(extra) > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments: %s", strings.Join(extra, " "))
	}
	if d.format != "table" && d.format != "json" {
		return nil, nil, fmt.Errorf("--format %q is not table or json", d.format)
	}
	jobs, err := d.targets.plan(env)
	if err != nil {
		return nil, nil, err
	}
	rf := ruleFlags{configDir: d.configDir, vars: varFlag{}, caps: d.caps}
	cfg, err := rf.loadConfig("")
	return jobs, cfg, err
}

// detectHost connects to one host and runs detection.
func detectHost(ctx context.Context, j job, cfg *engine.Config) hostDetection {
	out := hostDetection{Host: j.Name}
	s, err := j.open(ctx)
	if err != nil {
		out.Error = describe(err)
		return out
	}
	defer s.Close()
	key := j.configKey(cfg)
	s.CapOverrides = cfg.CapabilityOverrides(key, j.Groups)
	info, err := s.Detect(ctx)
	if err != nil {
		out.Error = describe(err)
		return out
	}
	out.Platform, out.Capabilities = &info.Platform, info.Capabilities
	return out
}

func writeDetections(w io.Writer, format string, found []hostDetection) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(found)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, d := range found {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, d.Host)
		if d.Error != "" {
			fmt.Fprintf(tw, "  not detected: %s\n", d.Error)
			continue
		}
		p := d.Platform
		fmt.Fprintf(tw, "  platform\t%s\n", p)
		if p.PrettyName != "" {
			fmt.Fprintf(tw, "  name\t%s\n", p.PrettyName)
		}
		if len(p.IDLike) > 0 {
			fmt.Fprintf(tw, "  like\t%s\n", strings.Join(p.IDLike, " "))
		}
		fmt.Fprintln(tw, "  capabilities:")
		names := make([]string, 0, len(d.Capabilities))
		for name := range d.Capabilities {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(tw, "    %s\t%t\n", name, d.Capabilities[name])
		}
	}
	return tw.Flush()
}
