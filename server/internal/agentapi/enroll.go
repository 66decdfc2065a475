package agentapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// TokenPrefix starts every join token, so that one pasted in the wrong
// place is recognisable.
const TokenPrefix = "vjt_"

// maxAgentNameTries bounds the suffixes tried to make an agent name unique.
const maxAgentNameTries = 100

// hostnameRE is what an enrolling agent may call its host.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// HashJoinToken is the stored form of a join token: hex SHA-256.
func HashJoinToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Join token bounds: how long a token may live and how many enrolments
// one token may allow.
const (
	MaxJoinTokenTTL  = 365 * 24 * time.Hour
	MaxJoinTokenUses = 100000
)

// MintJoinToken makes a join token ("vjt_" + base64url of 32 random bytes)
// and stores its hash with ttl, uses and labels; it returns the token
// (shown once) and its record. The caller audits.
func MintJoinToken(ctx context.Context, st store.Store, ttl time.Duration, uses int, labels map[string]string,
	createdBy string, now time.Time) (string, store.JoinToken, error) {
	if ttl <= 0 || ttl > MaxJoinTokenTTL {
		return "", store.JoinToken{}, fmt.Errorf("join token ttl %s: must be positive and at most %s", ttl, MaxJoinTokenTTL)
	}
	if uses <= 0 || uses > MaxJoinTokenUses {
		return "", store.JoinToken{}, fmt.Errorf("join token uses %d: must be 1 to %d", uses, MaxJoinTokenUses)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", store.JoinToken{}, fmt.Errorf("join token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	t, err := st.CreateJoinToken(ctx, store.JoinToken{Hash: HashJoinToken(token), Uses: uses, Labels: labels,
		CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)})
	if err != nil {
		return "", store.JoinToken{}, err
	}
	return token, t, nil
}

// JoinTokenAudit is the audit detail of a join token's creation (never the
// token itself).
func JoinTokenAudit(t store.JoinToken) map[string]any {
	return map[string]any{"token_id": t.ID, "uses": t.Uses, "expires_at": t.ExpiresAt, "labels": t.Labels}
}

// NewJoinToken is MintJoinToken followed by its audit entry, as actor from
// source (the CLI's path; the REST API audits through its own helper).
func NewJoinToken(ctx context.Context, st store.Store, ttl time.Duration, uses int, labels map[string]string,
	actor, source string, now time.Time) (string, store.JoinToken, error) {
	token, t, err := MintJoinToken(ctx, st, ttl, uses, labels, actor, now)
	if err != nil {
		return "", store.JoinToken{}, err
	}
	err = appendAudit(ctx, st, store.AuditEntry{At: now, Actor: actor, Action: "enrollment_token.create",
		Target: fmt.Sprintf("join_token/%d", t.ID), Source: source}, JoinTokenAudit(t))
	if err != nil {
		return "", store.JoinToken{}, err
	}
	return token, t, nil
}

// RevokeAgent revokes an agent (its next call is refused) and audits it
// as actor from source.
func RevokeAgent(ctx context.Context, st store.Store, agentID int64, actor, source string, now time.Time) (store.Agent, error) {
	if err := st.RevokeAgent(ctx, agentID, now); err != nil {
		return store.Agent{}, err
	}
	a, err := st.Agent(ctx, agentID)
	if err != nil {
		return store.Agent{}, err
	}
	err = appendAudit(ctx, st, store.AuditEntry{At: now, Actor: actor, Action: "agent.revoke",
		Target: fmt.Sprintf("agent/%d", agentID), Source: source},
		map[string]any{"name": a.Name, "cert_serial": a.CertSerial})
	return a, err
}

func appendAudit(ctx context.Context, st store.Store, e store.AuditEntry, detail map[string]any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	e.Detail = string(b)
	if _, err := st.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// parseCSR checks a CSR before anything is spent on it.
func parseCSR(der []byte) error {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "csr_der is not a PKCS#10 request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return status.Errorf(codes.InvalidArgument, "csr_der signature: %v", err)
	}
	return nil
}

// Enroll implements agentpb.AgentServiceServer.
func (s *Service) Enroll(ctx context.Context, req *agentpb.EnrollRequest) (*agentpb.EnrollResponse, error) {
	hostname := strings.TrimSuffix(strings.TrimSpace(req.GetHostname()), ".")
	switch {
	case !strings.HasPrefix(req.GetToken(), TokenPrefix) || len(req.GetToken()) > 128:
		return nil, status.Error(codes.Unauthenticated, "join token refused: not a Vigil join token (vjt_...)")
	case !hostnameRE.MatchString(hostname):
		return nil, status.Errorf(codes.InvalidArgument, "hostname %q is not a valid host name", req.GetHostname())
	}
	if err := parseCSR(req.GetCsrDer()); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	hash := HashJoinToken(req.GetToken())
	tok, err := s.cfg.Store.UseJoinToken(ctx, hash, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.log.Warn("enrolment refused: unknown join token", "hostname", hostname, "peer", peerAddr(ctx))
		return nil, status.Error(codes.Unauthenticated, "join token refused: unknown token")
	case errors.Is(err, store.ErrTokenSpent):
		s.log.Warn("enrolment refused: join token spent", "hostname", hostname, "peer", peerAddr(ctx))
		return nil, status.Error(codes.PermissionDenied, "join token refused: expired, revoked or used up")
	case err != nil:
		return nil, err
	}
	// The hash was found by an index lookup; compare once more in constant
	// time so that the decision never rests on a timing-dependent path.
	if subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(hash)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "join token refused")
	}
	agent, err := s.createAgent(ctx, hostname, req, tok, now)
	if err != nil {
		return nil, err
	}
	certPEM, cert, err := s.cfg.CA.IssueClient(req.GetCsrDer(), agent.ID, agent.Name, s.cfg.CertTTL, now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "certificate request refused: %v", err)
	}
	serial := cert.SerialNumber.Text(16)
	if err := s.cfg.Store.RecordCertificate(ctx, agent.ID, serial, cert.NotBefore, cert.NotAfter); err != nil {
		return nil, err
	}
	host, err := s.adoptHost(ctx, hostname, req.GetOs(), agent.ID, tok.Labels)
	if err != nil {
		return nil, err
	}
	err = appendAudit(ctx, s.cfg.Store, store.AuditEntry{At: now, Actor: fmt.Sprintf("join_token/%d", tok.ID),
		Action: "agent.enroll", Target: fmt.Sprintf("agent/%d", agent.ID), Source: peerAddr(ctx)},
		map[string]any{"name": agent.Name, "hostname": hostname, "host_id": host.ID, "cert_serial": serial,
			"not_after": cert.NotAfter, "version": req.GetAgentVersion()})
	if err != nil {
		return nil, err
	}
	s.log.Info("agent enrolled", "agent_id", agent.ID, "name", agent.Name, "host_id", host.ID, "token_id", tok.ID)
	// Its host is due at once; a stream it already has open claims now,
	// and the one it opens next is picked up by the dispatcher's pass.
	s.WakeAgent(agent.ID)
	return &agentpb.EnrollResponse{AgentId: agent.ID, AgentName: agent.Name, CertificatePem: certPEM,
		CaBundlePem: s.cfg.CA.BundlePEM(), NotAfter: timestamppb.New(cert.NotAfter)}, nil
}

// createAgent creates the agent under the hostname, or hostname-2, -3...
// when taken: enrolment never takes over another agent's identity.
func (s *Service) createAgent(ctx context.Context, hostname string, req *agentpb.EnrollRequest, tok store.JoinToken, now time.Time) (store.Agent, error) {
	for i := 1; i <= maxAgentNameTries; i++ {
		name := hostname
		if i > 1 {
			name = fmt.Sprintf("%s-%d", hostname, i)
		}
		a, err := s.cfg.Store.CreateAgent(ctx, store.Agent{Name: name, Hostname: hostname, Status: store.AgentActive,
			Version: req.GetAgentVersion(), OS: req.GetOs(), Labels: tok.Labels, EnrolledAt: now})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return a, err
	}
	return store.Agent{}, status.Errorf(codes.AlreadyExists, "agent names %s to %s-%d are all taken", hostname, hostname, maxAgentNameTries)
}

// adoptHost makes the agent the owner of the host with that name, creating
// it (due at once) if needed and keeping an existing host's address,
// labels and groups.
func (s *Service) adoptHost(ctx context.Context, name, os string, agentID int64, labels map[string]string) (store.Host, error) {
	h, err := s.cfg.Store.HostByName(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h = store.Host{Name: name, Labels: labels}
	case err != nil:
		return store.Host{}, err
	}
	if h.AgentID != 0 && h.AgentID != agentID {
		s.log.Warn("host moves to another agent", "host", name, "from_agent", h.AgentID, "to_agent", agentID)
	}
	h.AgentID = agentID
	if os != "" {
		h.OS = os
	}
	return s.cfg.Store.UpsertHost(ctx, h)
}

// Renew implements agentpb.AgentServiceServer: a fresh certificate for the
// caller's new key, with the identity the server gave it at enrolment.
func (s *Service) Renew(ctx context.Context, req *agentpb.RenewRequest) (*agentpb.RenewResponse, error) {
	caller, ok := callerOf(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no agent identity")
	}
	if err := parseCSR(req.GetCsrDer()); err != nil {
		return nil, err
	}
	a, err := s.cfg.Store.Agent(ctx, caller.ID)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	certPEM, cert, err := s.cfg.CA.IssueClient(req.GetCsrDer(), a.ID, a.Name, s.cfg.CertTTL, now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "certificate request refused: %v", err)
	}
	serial := cert.SerialNumber.Text(16)
	if err := s.cfg.Store.RecordCertificate(ctx, a.ID, serial, cert.NotBefore, cert.NotAfter); err != nil {
		return nil, err
	}
	s.log.Info("agent certificate renewed", "agent_id", a.ID, "name", a.Name, "serial", serial, "previous", caller.Serial,
		"not_after", cert.NotAfter)
	return &agentpb.RenewResponse{CertificatePem: certPEM, CaBundlePem: s.cfg.CA.BundlePEM(),
		NotAfter: timestamppb.New(cert.NotAfter)}, nil
}
