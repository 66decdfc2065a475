package importer

import (
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// FactsFromInventory converts an agent's HostInventory (sent with a live
// scan's end or carried in a results archive) into the store's inventory,
// collected at `at`. A nil inventory gives empty facts.
func FactsFromInventory(inv *agentpb.HostInventory, at time.Time) store.HostFacts {
	f := store.HostFacts{OS: inv.GetOs(), Kernel: inv.GetKernel(), CollectedAt: at}
	for _, p := range inv.GetPackages() {
		f.Packages = append(f.Packages, store.Package{Name: p.GetName(), Version: p.GetVersion(), Arch: p.GetArch()})
	}
	for _, s := range inv.GetServices() {
		f.Services = append(f.Services, store.Service{Name: s.GetName(), Enabled: s.GetEnabled(), Active: s.GetActive()})
	}
	account := func(a *agentpb.Account) store.Account {
		return store.Account{Name: a.GetName(), ID: a.GetId(), Home: a.GetHome(), Shell: a.GetShell(), Members: a.GetMembers()}
	}
	for _, a := range inv.GetUsers() {
		f.Users = append(f.Users, account(a))
	}
	for _, a := range inv.GetGroups() {
		f.Groups = append(f.Groups, account(a))
	}
	for _, p := range inv.GetPorts() {
		f.Ports = append(f.Ports, store.Port{Protocol: p.GetProtocol(), Address: p.GetAddress(), Port: int(p.GetPort()), Process: p.GetProcess()})
	}
	for _, i := range inv.GetInterfaces() {
		f.Interfaces = append(f.Interfaces, store.Interface{Name: i.GetName(), MAC: i.GetMac(), Addresses: i.GetAddresses()})
	}
	return f
}

// ResultFromProto converts one result as an agent sends it into the
// engine's result, refusing an unknown status or severity or a missing
// rule id (the store would refuse the whole batch later, with less
// detail). host names the host the result is about.
func ResultFromProto(p *agentpb.Result, host string) (result.Result, error) {
	r := result.Result{
		Host: host, RuleID: p.GetRuleId(), Title: p.GetTitle(), Severity: rule.Severity(p.GetSeverity()),
		Category: p.GetCategory(), Status: result.Status(p.GetStatus()), Reason: p.GetReason(), Detail: p.GetDetail(),
		Implementation: p.GetImplementation(), Duration: p.GetDurationMs(),
		References: []rule.Ref{}, Evidence: []result.Evidence{},
	}
	if r.RuleID == "" {
		return result.Result{}, fmt.Errorf("result without a rule id")
	}
	switch r.Status {
	case result.Pass, result.Fail, result.Skipped, result.Error:
	default:
		return result.Result{}, fmt.Errorf("rule %s: unknown status %q", r.RuleID, r.Status)
	}
	if r.Severity != "" && r.Severity.Rank() == 0 {
		return result.Result{}, fmt.Errorf("rule %s: unknown severity %q", r.RuleID, r.Severity)
	}
	if p.GetTime() != nil {
		r.Time = p.GetTime().AsTime().UTC()
	}
	for _, ref := range p.GetReferences() {
		r.References = append(r.References, rule.Ref{Framework: ref.GetFramework(), Control: ref.GetControl()})
	}
	for _, e := range p.GetEvidence() {
		ev := result.Evidence{
			Method: e.GetMethod(), Probe: e.GetProbe(), Stdout: e.GetStdout(), Stderr: e.GetStderr(),
			Truncated: e.GetTruncated(), Expected: e.GetExpected(), Actual: e.GetActual(), Duration: e.GetDurationMs(),
		}
		if e.GetHasExitCode() {
			code := int(e.GetExitCode())
			ev.ExitCode = &code
		}
		if e.GetTime() != nil {
			ev.Time = e.GetTime().AsTime().UTC()
		}
		r.Evidence = append(r.Evidence, ev)
	}
	return r, nil
}
