package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/pki"
)

// LoadOrCreateCA loads the operator's agent CA (ca_cert, ca_key) when
// configured, else the one in <data>/ca (ca.crt, ca.key), creating it on
// first use.
func LoadOrCreateCA(cfg config.Config, now time.Time) (*pki.CA, error) {
	if cfg.CACert != "" {
		ca, err := pki.LoadCA(cfg.CACert, cfg.CAKey)
		if err != nil {
			return nil, fmt.Errorf("ca_cert %s / ca_key %s: %w", cfg.CACert, cfg.CAKey, err)
		}
		return ca, nil
	}
	dir := filepath.Join(cfg.DataDir, "ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca dir %s: %w", dir, err)
	}
	ca, err := pki.LoadOrCreateCA(dir, now)
	if err != nil {
		return nil, fmt.Errorf("agent CA in %s: %w", dir, err)
	}
	return ca, nil
}

// grpcNames are the names the agent gRPC certificate is valid for: the
// loopback names, this machine's hostname and the listen host if named.
func grpcNames(addr string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		names = append(names, hn)
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !net.ParseIP(host).IsUnspecified() {
		names = append(names, host)
	}
	return names
}

// JoinToken is a join token as `vigil-server token create` prints it.
type JoinToken struct {
	Token     string            `json:"token"`
	CAPin     string            `json:"ca_pin"`
	ExpiresAt time.Time         `json:"expires_at"`
	Uses      int               `json:"uses"`
	Labels    map[string]string `json:"labels"`
	// Enroll is the command to run on the agent's host.
	Enroll string `json:"enroll_command"`
}

// CreateJoinToken makes a join token from the command line (audited with
// actor "cli"), with the CA pin agents check the server against.
func CreateJoinToken(ctx context.Context, cfg config.Config, st store.Store, ttl time.Duration, uses int,
	labels map[string]string, now time.Time) (JoinToken, error) {
	ca, err := LoadOrCreateCA(cfg, now)
	if err != nil {
		return JoinToken{}, err
	}
	token, t, err := agentapi.NewJoinToken(ctx, st, ttl, uses, labels, "cli", "local", now)
	if err != nil {
		return JoinToken{}, fmt.Errorf("token create: %w", err)
	}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	return JoinToken{Token: token, CAPin: ca.Pin(), ExpiresAt: t.ExpiresAt, Uses: t.Uses, Labels: t.Labels,
		Enroll: fmt.Sprintf("vigil-agent enroll --server %s --token %s --ca-pin %s --state-dir /var/lib/vigil-agent",
			enrollAddr(cfg.GRPCAddr), token, ca.Pin())}, nil
}

// enrollAddr is the address agents should dial: the gRPC listen address,
// with this machine's hostname when it listens on every interface.
func enrollAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		if hn, err := os.Hostname(); err == nil && hn != "" {
			host = hn
		}
	}
	return net.JoinHostPort(host, port)
}

// RevokeAgent revokes an agent from the command line (audited with actor
// "cli"); its next call is refused.
func RevokeAgent(ctx context.Context, st store.Store, id int64, now time.Time) (store.Agent, error) {
	a, err := agentapi.RevokeAgent(ctx, st, id, "cli", "local", now)
	if err != nil {
		return store.Agent{}, fmt.Errorf("agent revoke %d: %w", id, err)
	}
	return a, nil
}
