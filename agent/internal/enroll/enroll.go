// Package enroll joins an agent to a server: it makes the agent's key on
// this host, sends a CSR with a one-time join token, and verifies the
// server against the CA pin the operator copied from `vigil-server token
// create`, so a man in the middle cannot hand the agent a false CA.
package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
	"github.com/vigilfleet/vigil/shared/version"
)

// ErrPinMismatch is returned (wrapped) when the server's CA does not match
// the pin; nothing is stored.
var ErrPinMismatch = errors.New("server certificate does not chain to the pinned CA")

// Options say where and how to enrol.
type Options struct {
	Server   string // host:port of the gRPC listener
	Token    string
	CAPin    string // sha256:<hex>
	StateDir string
	Hostname string // default os.Hostname
	OS       string
	Timeout  time.Duration // default 30 s
}

// Enroll performs the enrolment and stores the state files; it refuses to
// overwrite an existing enrolment.
func Enroll(ctx context.Context, o Options) (state.Identity, error) {
	var id state.Identity
	if o.Server == "" || o.Token == "" || o.CAPin == "" {
		return id, errors.New("enroll: --server, --token and --ca-pin are required")
	}
	if !strings.HasPrefix(o.CAPin, "sha256:") {
		return id, fmt.Errorf("enroll: CA pin %q: must start with sha256:", o.CAPin)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return id, fmt.Errorf("enroll: hostname: %w", err)
		}
		o.Hostname = h
	}
	if (&state.Dir{Path: o.StateDir}).Enrolled() {
		return id, fmt.Errorf("enroll: %s already holds an enrolment; remove it to enrol again", o.StateDir)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	tlsCfg, err := PinnedTLS(o.Server, o.CAPin)
	if err != nil {
		return id, err
	}
	// A plain handshake first, so a pin mismatch is reported as such rather
	// than as gRPC's generic "connection error".
	if err := handshake(ctx, o.Server, tlsCfg); err != nil {
		return id, err
	}
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return id, fmt.Errorf("enroll: new key: %w", err)
	}
	csr, err := pki.NewCSR(key, o.Hostname)
	if err != nil {
		return id, fmt.Errorf("enroll: CSR: %w", err)
	}
	conn, err := grpc.NewClient(o.Server, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return id, fmt.Errorf("enroll: connect %s: %w", o.Server, err)
	}
	defer conn.Close()
	resp, err := agentpb.NewAgentServiceClient(conn).Enroll(ctx, &agentpb.EnrollRequest{
		Token: o.Token, CsrDer: csr, Hostname: o.Hostname, Os: o.OS, AgentVersion: version.String(),
	})
	if err != nil {
		return id, fmt.Errorf("enroll with %s: %s", o.Server, status.Convert(err).Message())
	}
	if _, err := state.ParseCertPEM(resp.GetCertificatePem()); err != nil {
		return id, fmt.Errorf("enroll: server sent a bad certificate: %w", err)
	}
	if len(resp.GetCaBundlePem()) == 0 {
		return id, errors.New("enroll: server sent no CA bundle")
	}
	dir, err := state.Open(o.StateDir)
	if err != nil {
		return id, err
	}
	id = state.Identity{Server: o.Server, AgentID: resp.GetAgentId(), AgentName: resp.GetAgentName(),
		Hostname: o.Hostname, CAPin: o.CAPin, EnrolledAt: time.Now().UTC()}
	if err := dir.SaveEnrolment(keyPEM, resp.GetCertificatePem(), resp.GetCaBundlePem(), id); err != nil {
		return id, err
	}
	return id, nil
}

// PinnedTLS is the TLS 1.3 client configuration for an agent that holds no
// CA bundle yet: the chain is checked against the pin instead of roots.
func PinnedTLS(server, pin string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", server, err)
	}
	verify := pki.VerifyPinned(pin, host)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         host,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate against the pin
		VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
			if err := verify(raw, chains); err != nil {
				return fmt.Errorf("%w (pin %s): %w", ErrPinMismatch, pin, err)
			}
			return nil
		},
	}, nil
}

func handshake(ctx context.Context, server string, cfg *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return fmt.Errorf("enroll: %s: %w", server, err)
	}
	return c.Close()
}
