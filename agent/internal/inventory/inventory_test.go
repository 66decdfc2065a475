package inventory

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

func TestCollectSSHTarget(t *testing.T) {
	h := testtarget.Start(t, testtarget.Options{Hostname: "inv-target"})
	s, err := engine.NewSSHSession(t.Context(), engine.SSHOptions{Host: h.IP(), Port: h.Port(), User: testtarget.RootUser,
		KeyFiles: []string{h.RootKeyFile()}, KnownHostsFile: h.KnownHostsFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inv, err := Collect(t.Context(), s.Target)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inv.GetOs(), "Debian GNU/Linux 12") {
		t.Errorf("os = %q", inv.GetOs())
	}
	if inv.GetKernel() == "" {
		t.Error("no kernel")
	}
	var ssh *agentpb.Package
	for _, p := range inv.GetPackages() {
		if p.GetName() == "openssh-server" {
			ssh = p
		}
	}
	if ssh == nil || !strings.Contains(ssh.GetVersion(), "9.2") || ssh.GetArch() == "" {
		t.Errorf("openssh-server package = %v (of %d packages)", ssh, len(inv.GetPackages()))
	}
	if !hasAccount(inv.GetUsers(), testtarget.User) || !hasAccount(inv.GetUsers(), "root") {
		t.Errorf("users lack root or %s: %v", testtarget.User, inv.GetUsers())
	}
	if !hasAccount(inv.GetGroups(), "root") {
		t.Errorf("groups lack root")
	}
	var sshd *agentpb.Port
	for _, p := range inv.GetPorts() {
		if p.GetPort() == int32(h.Port()) && p.GetAddress() == h.IP() && p.GetProtocol() == "tcp" {
			sshd = p
		}
	}
	if sshd == nil {
		t.Fatalf("no listener on %s:%d in %v", h.IP(), h.Port(), inv.GetPorts())
	}
	if sshd.GetProcess() != "sshd" {
		t.Errorf("listener process = %q, want sshd", sshd.GetProcess())
	}
	var lo *agentpb.Interface
	for _, i := range inv.GetInterfaces() {
		if i.GetName() == "lo" {
			lo = i
		}
	}
	if lo == nil || lo.GetMac() == "" {
		t.Errorf("interfaces lack lo with its MAC: %v", inv.GetInterfaces())
	}
}

func hasAccount(list []*agentpb.Account, name string) bool {
	for _, a := range list {
		if a.GetName() == name {
			return true
		}
	}
	return false
}

func TestCollectLocal(t *testing.T) {
	s := engine.NewLocalSession()
	defer s.Close()
	inv, err := Collect(t.Context(), s.Target)
	if err != nil {
		t.Fatal(err)
	}
	if inv.GetOs() == "" || inv.GetKernel() == "" || len(inv.GetUsers()) == 0 || len(inv.GetInterfaces()) == 0 {
		t.Errorf("local inventory incomplete: os %q kernel %q users %d interfaces %d",
			inv.GetOs(), inv.GetKernel(), len(inv.GetUsers()), len(inv.GetInterfaces()))
	}
}

func TestParsers(t *testing.T) {
	ss := "#ss\n" +
		`tcp   LISTEN 0      128        127.0.0.2:2222      0.0.0.0:*    users:(("sshd",pid=12,fd=3))` + "\n" +
		`tcp   LISTEN 0      4096           [::]:80            [::]:*    users:(("nginx",pid=9,fd=6))` + "\n" +
		`udp   UNCONN 0      0                 *:68              *:*` + "\n"
	ports := parsePorts(ss)
	want := []string{"udp 0.0.0.0 68 ", "tcp6 :: 80 nginx", "tcp 127.0.0.2 2222 sshd"}
	if len(ports) != len(want) {
		t.Fatalf("ports = %v", ports)
	}
	for i, p := range ports {
		got := strings.Join([]string{p.GetProtocol(), p.GetAddress(), itoa(p.GetPort()), p.GetProcess()}, " ")
		if got != want[i] {
			t.Errorf("port %d = %q, want %q", i, got, want[i])
		}
	}
	proc := "#proc tcp\n  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0200007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0200007F:08AE 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4243 1\n" +
		"#sockets\nsocket:[4242] sshd\n"
	pp := parsePorts(proc)
	if len(pp) != 1 || pp[0].GetAddress() != "127.0.0.2" || pp[0].GetPort() != 2222 || pp[0].GetProcess() != "sshd" {
		t.Errorf("proc ports = %v", pp)
	}
	svc := parseServices("#files\nssh.service enabled enabled\ncron.service disabled enabled\n#units\nssh.service loaded active running OpenBSD Secure Shell server\n")
	if len(svc) != 2 || svc[0].GetName() != "cron.service" || svc[0].GetEnabled() || !svc[1].GetEnabled() || !svc[1].GetActive() {
		t.Errorf("services = %v", svc)
	}
	pk := parsePackages("#dpkg\ninstall ok installed\tbash\t5.2.15-2+b2\tamd64\ndeinstall ok config-files\told\t1\tamd64\n#rpm\nbash\t5.2-1\tx86_64\n")
	if len(pk) != 2 || pk[0].GetName() != "bash" || pk[0].GetVersion() != "5.2.15-2+b2" {
		t.Errorf("packages = %v", pk)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// FuzzParsers feeds host output (which a compromised target controls) to
// every parser: none may panic.
func FuzzParsers(f *testing.F) {
	f.Add("#ss\ntcp LISTEN 0 128 127.0.0.2:2222 0.0.0.0:* users:((\"sshd\",pid=1,fd=3))\n")
	f.Add("#proc tcp\n 0: 0200007F:08AE 00000000:0000 0A 0:0 0:0 0 0 0 4242\n#sockets\nsocket:[4242] sshd\n")
	f.Add("#dpkg\ninstall ok installed\tbash\t5.2\tamd64\n#rpm\nbash\t5\tx86_64\n")
	f.Add("#files\na.service enabled x\n#units\na.service loaded active running\n")
	f.Add("#ip\n1: lo    inet 127.0.0.1/8 scope host lo\n#sys\nlo 00:00:00:00:00:00\n")
	f.Add("root:x:0:0:root:/root:/bin/bash\nadm:x:4:syslog,vigil\n")
	f.Fuzz(func(t *testing.T, s string) {
		parsePorts(s)
		parsePackages(s)
		parseServices(s)
		parseInterfaces(s)
		parseAccounts(s, true)
		parseAccounts(s, false)
	})
}
