// Package inventory collects a host's context (OS, kernel, packages,
// services, accounts, listening ports, interfaces) through an engine
// target in one batch of requests, so over SSH it costs one round trip.
// Every probe has a fallback for minimal hosts (no systemd, no iproute2).
package inventory

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/target"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

const timeout = 60 * time.Second

// The probes. Each prints a marker line naming its source so the parser
// knows which format follows.
const (
	scriptKernel   = `uname -r`
	scriptPackages = `if command -v dpkg-query >/dev/null 2>&1; then echo '#dpkg'; dpkg-query -W -f='${Status}\t${Package}\t${Version}\t${Architecture}\n' 2>/dev/null; fi
if command -v rpm >/dev/null 2>&1; then echo '#rpm'; rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n' 2>/dev/null; fi
true`
	scriptServices = `if command -v systemctl >/dev/null 2>&1; then
echo '#files'; systemctl list-unit-files --type=service --no-legend --no-pager 2>/dev/null
echo '#units'; systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null
fi
true`
	scriptUsers  = `getent passwd 2>/dev/null || cat /etc/passwd`
	scriptGroups = `getent group 2>/dev/null || cat /etc/group`
	scriptPorts  = `if command -v ss >/dev/null 2>&1; then echo '#ss'; ss -H -tulpn 2>/dev/null; else
for f in tcp tcp6 udp udp6; do echo "#proc $f"; cat /proc/net/$f 2>/dev/null; done
echo '#sockets'
for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null) || continue
for fd in $p/fd/*; do l=$(readlink $fd 2>/dev/null) || continue
case $l in socket:*) echo "$l $c";; esac; done; done
fi
true`
	scriptInterfaces = `if command -v ip >/dev/null 2>&1; then echo '#ip'; ip -o addr 2>/dev/null; fi
echo '#sys'
for d in /sys/class/net/*; do [ -e "$d" ] && echo "${d##*/} $(cat $d/address 2>/dev/null)"; done
true`
)

var requests = []target.Request{
	{Op: target.OpRead, Path: "/etc/os-release"},
	{Op: target.OpExec, Script: scriptKernel, Timeout: timeout},
	{Op: target.OpExec, Script: scriptPackages, Timeout: timeout},
	{Op: target.OpExec, Script: scriptServices, Timeout: timeout},
	{Op: target.OpExec, Script: scriptUsers, Timeout: timeout},
	{Op: target.OpExec, Script: scriptGroups, Timeout: timeout},
	{Op: target.OpExec, Script: scriptPorts, Timeout: timeout},
	{Op: target.OpExec, Script: scriptInterfaces, Timeout: timeout},
}

// Collect gathers the inventory of t's host in one batch. A probe that
// fails leaves its part empty; only a failed batch is an error.
func Collect(ctx context.Context, t target.Target) (*agentpb.HostInventory, error) {
	resps, err := t.Gather(ctx, requests)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", t.Name(), err)
	}
	out := func(i int) string {
		if i >= len(resps) || resps[i].Err != nil {
			return ""
		}
		return string(resps[i].Stdout)
	}
	inv := &agentpb.HostInventory{}
	if len(resps) > 0 && resps[0].Err == nil && resps[0].Exists {
		if p, err := engine.ParseOSRelease(resps[0].Data); err == nil {
			inv.Os = osName(resps[0].Data, p)
		}
	}
	inv.Kernel = strings.TrimSpace(out(1))
	inv.Packages = parsePackages(out(2))
	inv.Services = parseServices(out(3))
	inv.Users = parseAccounts(out(4), true)
	inv.Groups = parseAccounts(out(5), false)
	inv.Ports = parsePorts(out(6))
	inv.Interfaces = parseInterfaces(out(7))
	return inv, nil
}

// osName prefers PRETTY_NAME, else "id version".
func osName(data []byte, p engine.Platform) string {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if v = strings.Trim(v, `"'`); v != "" {
				return v
			}
		}
	}
	return p.String()
}

// sections splits marker-delimited output ("#name args") into its parts.
func sections(s string) map[string][]string {
	m := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			cur = strings.TrimPrefix(line, "#")
			if _, ok := m[cur]; !ok {
				m[cur] = nil
			}
			continue
		}
		if strings.TrimSpace(line) != "" {
			m[cur] = append(m[cur], line)
		}
	}
	return m
}

func parsePackages(s string) []*agentpb.Package {
	sec := sections(s)
	seen := map[string]bool{}
	var out []*agentpb.Package
	for _, line := range sec["dpkg"] {
		f := strings.Split(line, "\t")
		if len(f) != 4 || !strings.HasSuffix(f[0], " installed") {
			continue
		}
		out = append(out, &agentpb.Package{Name: f[1], Version: f[2], Arch: f[3]})
		seen[f[1]+"\x00"+f[3]] = true
	}
	for _, line := range sec["rpm"] {
		f := strings.Split(line, "\t")
		if len(f) != 3 || seen[f[0]+"\x00"+f[2]] {
			continue
		}
		out = append(out, &agentpb.Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func parseServices(s string) []*agentpb.Service {
	sec := sections(s)
	byName := map[string]*agentpb.Service{}
	for _, line := range sec["files"] {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(f[0], ".service") {
			continue
		}
		byName[f[0]] = &agentpb.Service{Name: f[0], Enabled: f[1] == "enabled" || f[1] == "enabled-runtime"}
	}
	for _, line := range sec["units"] {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], ".service") {
			continue
		}
		svc := byName[f[0]]
		if svc == nil {
			svc = &agentpb.Service{Name: f[0]}
			byName[f[0]] = svc
		}
		svc.Active = f[2] == "active"
	}
	out := make([]*agentpb.Service, 0, len(byName))
	for _, v := range byName {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// parseAccounts reads passwd (name:x:uid:gid:gecos:home:shell) or group
// (name:x:gid:members) lines.
func parseAccounts(s string, users bool) []*agentpb.Account {
	var out []*agentpb.Account
	for _, line := range strings.Split(s, "\n") {
		f := strings.Split(line, ":")
		if users && len(f) >= 7 {
			id, _ := strconv.ParseInt(f[2], 10, 64)
			out = append(out, &agentpb.Account{Name: f[0], Id: id, Home: f[5], Shell: f[6]})
		} else if !users && len(f) >= 4 {
			id, _ := strconv.ParseInt(f[2], 10, 64)
			a := &agentpb.Account{Name: f[0], Id: id}
			if f[3] != "" {
				a.Members = strings.Split(f[3], ",")
			}
			out = append(out, a)
		}
	}
	return out
}

func parsePorts(s string) []*agentpb.Port {
	sec := sections(s)
	var out []*agentpb.Port
	if lines, ok := sec["ss"]; ok {
		for _, line := range lines {
			if p := parseSSLine(line); p != nil {
				out = append(out, p)
			}
		}
		return dedupPorts(out)
	}
	procs := map[string]string{} // socket inode -> command
	for _, line := range sec["sockets"] {
		sock, comm, ok := strings.Cut(line, " ")
		if ino, ok2 := strings.CutPrefix(sock, "socket:["); ok && ok2 {
			procs[strings.TrimSuffix(ino, "]")] = comm
		}
	}
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		for _, line := range sec["proc "+proto] {
			if p := parseProcNetLine(proto, line, procs); p != nil {
				out = append(out, p)
			}
		}
	}
	return dedupPorts(out)
}

// parseSSLine reads `ss -H -tulpn`:
// tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))
func parseSSLine(line string) *agentpb.Port {
	f := strings.Fields(line)
	if len(f) < 5 {
		return nil
	}
	proto := f[0]
	if proto != "tcp" && proto != "udp" {
		return nil
	}
	if proto == "tcp" && f[1] != "LISTEN" {
		return nil
	}
	host, port, err := net.SplitHostPort(f[4])
	if err != nil {
		return nil
	}
	host = strings.Trim(host, "[]")
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		proto += "6"
	} else if host == "*" {
		host = "0.0.0.0"
	}
	n, _ := strconv.Atoi(port)
	p := &agentpb.Port{Protocol: proto, Address: host, Port: int32(n)}
	if len(f) >= 7 {
		if _, rest, ok := strings.Cut(f[6], `(("`); ok {
			p.Process, _, _ = strings.Cut(rest, `"`)
		}
	}
	return p
}

// parseProcNetLine reads one /proc/net/{tcp,udp}[6] row, keeping listening
// TCP sockets (state 0A) and bound UDP sockets (state 07).
func parseProcNetLine(proto, line string, procs map[string]string) *agentpb.Port {
	f := strings.Fields(line)
	if len(f) < 10 || f[0] == "sl" {
		return nil
	}
	if (strings.HasPrefix(proto, "tcp") && f[3] != "0A") || (strings.HasPrefix(proto, "udp") && f[3] != "07") {
		return nil
	}
	addrHex, portHex, ok := strings.Cut(f[1], ":")
	if !ok {
		return nil
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return nil
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return &agentpb.Port{Protocol: proto, Address: ip.String(), Port: int32(port), Process: procs[f[9]]}
}

func dedupPorts(in []*agentpb.Port) []*agentpb.Port {
	seen := map[string]bool{}
	var out []*agentpb.Port
	for _, p := range in {
		k := fmt.Sprintf("%s %s %d", p.Protocol, p.Address, p.Port)
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol+out[i].Address < out[j].Protocol+out[j].Address
	})
	return out
}

// parseInterfaces merges `ip -o addr` (addresses) with /sys/class/net
// (names and MACs).
func parseInterfaces(s string) []*agentpb.Interface {
	sec := sections(s)
	byName := map[string]*agentpb.Interface{}
	get := func(name string) *agentpb.Interface {
		if i := byName[name]; i != nil {
			return i
		}
		i := &agentpb.Interface{Name: name}
		byName[name] = i
		return i
	}
	for _, line := range sec["sys"] {
		f := strings.Fields(line)
		if len(f) >= 1 {
			i := get(f[0])
			if len(f) >= 2 {
				i.Mac = f[1]
			}
		}
	}
	// 2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\ ...
	for _, line := range sec["ip"] {
		f := strings.Fields(line)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		i := get(strings.TrimSuffix(f[1], ":"))
		i.Addresses = append(i.Addresses, f[3])
	}
	out := make([]*agentpb.Interface, 0, len(byName))
	for _, v := range byName {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
