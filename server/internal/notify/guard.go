package notify

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// metadataAddrs are the cloud instance-metadata endpoints: AWS, GCP, Azure,
// OpenStack (169.254.169.254), AWS over IPv6 (fd00:ec2::254) and Alibaba
// (100.100.100.200). A notification URL pointing there would hand an
// operator-supplied request the machine's cloud credentials.
var metadataAddrs = [...]netip.Addr{
	netip.AddrFrom4([4]byte{169, 254, 169, 254}),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.AddrFrom4([4]byte{100, 100, 100, 200}),
}

// GuardError is an outbound connection the guard refused. It names the
// address and says how an administrator may allow it.
type GuardError struct {
	Addr   netip.Addr
	Reason string
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("outbound connection to %s refused: %s address; add a network containing it to notifications.allow_networks to allow it", e.Addr, e.Reason)
}

// CheckAddr reports why outbound delivery must not reach addr (nil: it
// may). Loopback and private networks are allowed, since receivers are
// often on premises; link-local, cloud metadata, unspecified and multicast
// addresses are refused unless a prefix in allow contains them.
func CheckAddr(addr netip.Addr, allow []netip.Prefix) error {
	addr = addr.Unmap().WithZone("")
	for _, p := range allow {
		if p.Contains(addr) {
			return nil
		}
	}
	reason := ""
	switch {
	case isMetadata(addr):
		reason = "cloud metadata"
	case addr.IsLinkLocalUnicast():
		reason = "link-local"
	case addr.IsUnspecified():
		reason = "unspecified"
	case addr.IsMulticast():
		reason = "multicast"
	}
	if reason == "" {
		return nil
	}
	return &GuardError{Addr: addr, Reason: reason}
}

func isMetadata(addr netip.Addr) bool {
	for _, m := range metadataAddrs {
		if addr == m {
			return true
		}
	}
	return false
}

// DialControl returns a net.Dialer Control function that applies CheckAddr
// to the address actually being connected to, after name resolution: a host
// name that resolves to a refused address is refused too, and the refusal
// happens before connect(2), so not a packet is sent.
func DialControl(allow []netip.Prefix) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("outbound connection to %q refused: not an IP address and port", address)
		}
		return CheckAddr(ap.Addr(), allow)
	}
}

// dialer returns the dialer every outbound delivery connection uses.
func dialer(allow []netip.Prefix, timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Control:   DialControl(allow),
	}
}
