package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vigilfleet/vigil/engine/output"
)

const checkUsage = `Usage: vigil check [flags]

Scans hosts against the rule corpus and reports a verdict per rule and host:
the local host by default, SSH hosts with --host or --inventory, or a
mounted root filesystem with --root.

An unreachable host, a rejected credential or a changed host key is that
host's error; the other hosts are still scanned. Passwords are read only
from the environment variables named by --password-env and
--sudo-password-env (or an inventory's password_env), never from flags.
Connection settings come from a host's inventory entry, else the command
line, else the inventory's defaults.

Inventory (--inventory FILE), strict YAML:
  defaults: {user, port, key, password_env, sudo, sudo_password_env, known_hosts}
  hosts:
    - {name, address, port, user, key, password_env, sudo, sudo_password_env, groups: [..]}

Exit status: 0 every evaluated rule passed (skipped rules do not count),
1 a rule failed or errored or a host could not be scanned, 2 a usage,
configuration or rule error, or the output could not be written.
`

// checkFlags are `vigil check`'s flags.
type checkFlags struct {
	targets targetFlags
	rules   ruleFlags
	filters filterFlags
	format  string
	output  string
}

// newCheckFlagSet returns check's flag set, parsing into cf.
func newCheckFlagSet(cf *checkFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cf.register(fs)
	return fs
}

func (c *checkFlags) register(fs *flag.FlagSet) {
	c.targets.register(fs)
	c.rules.register(fs)
	c.filters.register(fs)
	fs.StringVar(&c.format, "format", "table", "output `format`: "+strings.Join(output.Formats, ", "))
	fs.StringVar(&c.output, "output", "", "write the report to `file` (replaced atomically) instead of stdout")
}

// runCheck implements `vigil check`.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer, env environment) int {
	var cf checkFlags
	fs := newCheckFlagSet(&cf)
	if done, code := parseFlags(fs, args, checkUsage, stdout, stderr, targetGroup, ruleGroup, outputGroup); done {
		return code
	}
	cf.targets.set = visited(fs)
	jobs, plan, err := cf.prepare(env, fs.Args())
	if err != nil {
		printLoadErrors(stderr, fmt.Errorf("vigil check: %w", err))
		return exitUsage
	}
	dest, err := openDestination(cf.output, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "vigil check: %v\n", err)
		return exitUsage
	}
	defer dest.abort()
	reports := scanAll(ctx, jobs, plan, newProgress(stderr, len(jobs)))
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "vigil check: interrupted; hosts not scanned are reported as errors")
	}
	err = output.Write(dest.w, cf.format, reports, dest.options(env.getenv))
	if err == nil {
		err = dest.commit()
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil check: %v\n", err)
		return exitUsage
	}
	return exitCodeFor(reports)
}

// prepare validates the flags, loads rules and configuration and plans the
// hosts. Every error it returns is a usage or corpus error (exit 2).
func (c *checkFlags) prepare(env environment, extra []string) ([]job, scanPlan, error) {
	var plan scanPlan
	if len(extra) > 0 {
		return nil, plan, fmt.Errorf("unexpected arguments: %s (flags go before them? see vigil check -h)", strings.Join(extra, " "))
	}
	if !slices.Contains(output.Formats, c.format) {
		return nil, plan, fmt.Errorf("--format %q is not one of %s", c.format, strings.Join(output.Formats, ", "))
	}
	filter, err := c.filters.filter()
	if err != nil {
		return nil, plan, err
	}
	jobs, err := c.targets.plan(env)
	if err != nil {
		return nil, plan, err
	}
	dir, err := findRulesDir(c.rules.rulesDir)
	if err != nil {
		return nil, plan, err
	}
	rules, err := loadCorpus(dir)
	if err != nil {
		return nil, plan, err
	}
	if !slices.ContainsFunc(rules, filter.Match) {
		return nil, plan, fmt.Errorf("no rule in %s matches the filters", dir)
	}
	cfg, err := c.rules.loadConfig(dir)
	if err != nil {
		return nil, plan, err
	}
	return jobs, scanPlan{rules: rules, filter: filter, cfg: cfg, workers: c.targets.workers}, nil
}

// visited returns the names of the flags given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
