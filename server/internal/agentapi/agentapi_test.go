package agentapi_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/server/internal/agentapi"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
)

// callTimeout bounds every call and stream of these tests.
const callTimeout = 20 * time.Second

// harness is one agent gRPC server over a real SQLite store, listening on
// loopback with real TLS.
type harness struct {
	st   store.Store
	ca   *pki.CA
	svc  *agentapi.Service
	addr string
}

const ruleTmpl = `id: ID
title: Test rule ID
description: A rule of the agentapi tests.
rationale: Testing.
severity: SEV
category: system
implementations:
  - check:
      method: file_exists
      path: /etc/passwd
`

func newHarness(t *testing.T, mods ...func(*agentapi.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rules := t.TempDir()
	for id, sev := range map[string]string{"crit-rule": "critical", "med-rule": "medium"} {
		body := strings.NewReplacer("ID", id, "SEV", sev).Replace(ruleTmpl)
		if err := os.WriteFile(filepath.Join(rules, id+".yml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := posture.LoadIndex(rules)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := agentapi.Config{Store: st, Posture: posture.NewService(st, idx, time.Now), CA: ca,
		Logger: slog.New(slog.DiscardHandler), Poll: 50 * time.Millisecond, ServerNames: []string{"127.0.0.1"}}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := agentapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return &harness{st: st, ca: ca, svc: svc, addr: ln.Addr().String()}
}

// dial connects with the given client certificates (none for enrolment),
// trusting the harness CA.
func (h *harness) dial(t *testing.T, certs ...tls.Certificate) agentpb.AgentServiceClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Cert)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "127.0.0.1", Certificates: certs}
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentpb.NewAgentServiceClient(conn)
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) token(t *testing.T, uses int, ttl time.Duration, at time.Time) string {
	t.Helper()
	tok, _, err := agentapi.NewJoinToken(context.Background(), h.st, ttl, uses, map[string]string{"site": "lab"}, "admin", "test", at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// agent is an enrolled test agent: its own key and certificate.
type agent struct {
	id   int64
	name string
	key  crypto.Signer
	cert tls.Certificate
	c    agentpb.AgentServiceClient
}

func newCSR(t *testing.T, cn string) (crypto.Signer, []byte) {
	t.Helper()
	key, _, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, cn)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

func tlsCert(t *testing.T, certPEM []byte, key crypto.Signer) tls.Certificate {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatalf("certificate is not PEM: %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: leaf}
}

func (h *harness) enrol(t *testing.T, token, hostname string) *agent {
	t.Helper()
	key, csr := newCSR(t, hostname)
	resp, err := h.dial(t).Enroll(callCtx(t), &agentpb.EnrollRequest{Token: token, CsrDer: csr, Hostname: hostname,
		Os: "Debian GNU/Linux 12", AgentVersion: "0.1.0"})
	if err != nil {
		t.Fatalf("enrol %s: %v", hostname, err)
	}
	cert := tlsCert(t, resp.GetCertificatePem(), key)
	return &agent{id: resp.GetAgentId(), name: resp.GetAgentName(), key: key, cert: cert, c: h.dial(t, cert)}
}

func wantCode(t *testing.T, what string, err error, codes ...codes.Code) {
	t.Helper()
	got := status.Code(err)
	for _, c := range codes {
		if got == c {
			return
		}
	}
	t.Errorf("%s: code %v (%v), want one of %v", what, got, err, codes)
}

func TestEnrollServerChoosesIdentity(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tok := h.token(t, 1, time.Hour, time.Now())
	key, csr := newCSR(t, "admin-impersonation") // the CSR claims another name
	resp, err := h.dial(t).Enroll(callCtx(t), &agentpb.EnrollRequest{Token: tok, CsrDer: csr, Hostname: "web1", Os: "debian 12"})
	if err != nil {
		t.Fatal(err)
	}
	cert := tlsCert(t, resp.GetCertificatePem(), key)
	id, name, err := pki.AgentIdentity(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if id != resp.GetAgentId() || name != "web1" || resp.GetAgentName() != "web1" {
		t.Errorf("certificate names agent %d %q (response %d %q), want the server's choice web1", id, name, resp.GetAgentId(), resp.GetAgentName())
	}
	if !bytes.Equal(resp.GetCaBundlePem(), h.ca.BundlePEM()) || !resp.GetNotAfter().AsTime().Equal(cert.Leaf.NotAfter) {
		t.Error("response lacks the CA bundle or the certificate's expiry")
	}
	if d := time.Until(cert.Leaf.NotAfter); d > agentapi.DefaultCertTTL || d < agentapi.DefaultCertTTL-time.Hour {
		t.Errorf("certificate lasts %v, want about %v", d, agentapi.DefaultCertTTL)
	}
	a, err := h.st.Agent(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != store.AgentActive || a.CertSerial != cert.Leaf.SerialNumber.Text(16) || a.Labels["site"] != "lab" || a.Hostname != "web1" {
		t.Errorf("stored agent %+v", a)
	}
	host, err := h.st.HostByName(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if host.AgentID != id || host.NextScanAt.After(time.Now()) {
		t.Errorf("host %+v: want owned by agent %d and due at once", host, id)
	}
	entries, err := h.st.Audit(ctx, store.AuditFilter{Action: "agent.enroll"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Target != "agent/"+strconv.FormatInt(id, 10) || !strings.Contains(entries[0].Detail, cert.Leaf.SerialNumber.Text(16)) {
		t.Errorf("enrol audit entries %+v", entries)
	}

	// The one-use token is spent.
	_, csr2 := newCSR(t, "web9")
	_, err = h.dial(t).Enroll(callCtx(t), &agentpb.EnrollRequest{Token: tok, CsrDer: csr2, Hostname: "web9"})
	wantCode(t, "reused one-use token", err, codes.PermissionDenied)

	// Another agent on a host of the same name gets a name of its own.
	second := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	if second.name != "web1-2" || second.id == id {
		t.Errorf("second web1 enrolled as %d %q, want a new agent web1-2", second.id, second.name)
	}
}

func TestEnrollRefusals(t *testing.T) {
	h := newHarness(t)
	_, csr := newCSR(t, "db1")
	expired := h.token(t, 5, time.Hour, time.Now().Add(-2*time.Hour))
	good := h.token(t, 1, time.Hour, time.Now())
	c := h.dial(t)
	cases := []struct {
		name string
		req  *agentpb.EnrollRequest
		code codes.Code
		msg  string
	}{
		{"expired token", &agentpb.EnrollRequest{Token: expired, CsrDer: csr, Hostname: "db1"}, codes.PermissionDenied, "expired"},
		{"unknown token", &agentpb.EnrollRequest{Token: "vjt_" + strings.Repeat("A", 43), CsrDer: csr, Hostname: "db1"}, codes.Unauthenticated, "unknown"},
		{"not a token", &agentpb.EnrollRequest{Token: "hunter2", CsrDer: csr, Hostname: "db1"}, codes.Unauthenticated, "join token"},
		{"bad csr", &agentpb.EnrollRequest{Token: good, CsrDer: []byte("nope"), Hostname: "db1"}, codes.InvalidArgument, "csr"},
		{"bad hostname", &agentpb.EnrollRequest{Token: good, CsrDer: csr, Hostname: "db1; rm -rf /"}, codes.InvalidArgument, "hostname"},
	}
	for _, tc := range cases {
		_, err := c.Enroll(callCtx(t), tc.req)
		wantCode(t, tc.name, err, tc.code)
		if err != nil && !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: message %q does not say %q", tc.name, status.Convert(err).Message(), tc.msg)
		}
	}
	// Refused requests spent nothing: the one-use token still enrols.
	if a := h.enrol(t, good, "db1"); a.name != "db1" {
		t.Errorf("enrolled as %q", a.name)
	}
	agents, err := h.st.Agents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 {
		t.Errorf("%d agents after refusals and one enrolment, want 1", len(agents))
	}
}

func TestCallsWithoutValidCertificateRefused(t *testing.T) {
	h := newHarness(t)
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	if _, err := a.c.Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{AgentVersion: "0.1.0"}); err != nil {
		t.Fatalf("heartbeat of an enrolled agent: %v", err)
	}

	_, err := h.dial(t).Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{})
	wantCode(t, "no client certificate", err, codes.Unauthenticated)

	otherCA, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key2, csr2 := newCSR(t, "web1")
	foreignPEM, _, err := otherCA.IssueClient(csr2, a.id, a.name, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key3, csr3 := newCSR(t, "web1")
	expiredPEM, _, err := h.ca.IssueClient(csr3, a.id, a.name, time.Hour, time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	serverOnly, err := h.ca.IssueServer([]string{"web1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, cert := range map[string]tls.Certificate{
		"certificate from another CA":  tlsCert(t, foreignPEM, key2),
		"expired certificate":          tlsCert(t, expiredPEM, key3),
		"server-auth-only certificate": serverOnly,
	} {
		_, err := h.dial(t, cert).Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{})
		if err == nil {
			t.Errorf("%s: heartbeat accepted", name)
		}
		wantCode(t, name, err, codes.Unavailable, codes.Unauthenticated)
	}
	if err := h.svc.FlushHeartbeats(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen, err := h.st.Agent(context.Background(), a.id)
	if err != nil {
		t.Fatal(err)
	}
	if seen.LastSeenAt.IsZero() {
		t.Error("the valid heartbeat was not recorded")
	}
}

func TestRevokedAgentRefusedAndStreamClosed(t *testing.T) {
	h := newHarness(t)
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	ctx := callCtx(t)
	stream, err := a.c.WatchAssignments(ctx, &agentpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Heartbeat(ctx, &agentpb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := agentapi.RevokeAgent(context.Background(), h.st, a.id, "admin", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = a.c.Heartbeat(ctx, &agentpb.HeartbeatRequest{})
	wantCode(t, "heartbeat after revocation", err, codes.PermissionDenied)
	if err != nil && !strings.Contains(err.Error(), "revoked") {
		t.Errorf("refusal %q does not say revoked", err)
	}
	// No bundle is published, so the stream carries no assignment: the
	// first thing it delivers is its end.
	_, err = stream.Recv()
	wantCode(t, "open assignment stream after revocation", err, codes.PermissionDenied)
	entries, err := h.st.Audit(context.Background(), store.AuditFilter{Action: "agent.revoke"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor != "admin" {
		t.Errorf("revoke audit entries %+v", entries)
	}
}

func (h *harness) publish(t *testing.T, data []byte) store.StoredBundle {
	t.Helper()
	b := store.StoredBundle{Digest: "sha256:" + strings.Repeat("ab", 32), Version: "2026.01.1", Created: time.Now(), Data: data}
	if err := h.st.PutBundle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

func recvAssignment(t *testing.T, s agentpb.AgentService_WatchAssignmentsClient) *agentpb.Assignment {
	t.Helper()
	asg, err := s.Recv()
	if err != nil {
		t.Fatalf("waiting for an assignment: %v", err)
	}
	return asg
}

func pbResult(id, st, sev string) *agentpb.Result {
	return &agentpb.Result{RuleId: id, Title: "Test rule " + id, Severity: sev, Category: "system", Status: st,
		Reason: "because", References: []*agentpb.Ref{{Framework: "nist_800_53", Control: "AC-2"}},
		Evidence: []*agentpb.Evidence{{Method: "file_exists", Probe: "/etc/passwd", Expected: "present", Actual: st,
			HasExitCode: true, ExitCode: 0, Time: timestamppb.Now()}},
		Time: timestamppb.Now()}
}

// report sends batches on one stream and returns their acks.
func report(t *testing.T, c agentpb.AgentServiceClient, batches ...*agentpb.ResultBatch) []*agentpb.BatchAck {
	t.Helper()
	s, err := c.ReportResults(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var acks []*agentpb.BatchAck
	for _, b := range batches {
		if err := s.Send(b); err != nil {
			t.Fatal(err)
		}
		ack, err := s.Recv()
		if err != nil {
			t.Fatalf("ack of scan %d batch %d: %v", b.GetScanId(), b.GetSeq(), err)
		}
		if ack.GetScanId() != b.GetScanId() || ack.GetSeq() != b.GetSeq() {
			t.Fatalf("ack %+v for batch %d/%d", ack, b.GetScanId(), b.GetSeq())
		}
		acks = append(acks, ack)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	return acks
}

func end(pass, fail int32) *agentpb.ScanEnd {
	return &agentpb.ScanEnd{Status: agentpb.ScanEnd_STATUS_COMPLETED, Started: timestamppb.Now(), Finished: timestamppb.Now(),
		Platform: "debian 12", Total: pass + fail, Pass: pass, Fail: fail,
		Inventory: &agentpb.HostInventory{Os: "Debian GNU/Linux 12", Kernel: "6.1.0",
			Packages: []*agentpb.Package{{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64"}},
			Ports:    []*agentpb.Port{{Protocol: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"}}}}
}

func TestAssignmentsResultsAndRescan(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	b := h.publish(t, []byte("a signed bundle"))
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	watch, err := a.c.WatchAssignments(callCtx(t), &agentpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	asg := recvAssignment(t, watch)
	host, err := h.st.HostByName(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if asg.GetHostId() != host.ID || asg.GetTarget().GetKind() != agentpb.Target_KIND_LOCAL || asg.GetTarget().GetName() != "web1" ||
		asg.GetBundleDigest() != b.Digest || asg.GetBundleVersion() != b.Version || asg.GetTrigger() != "first" {
		t.Fatalf("assignment %+v", asg)
	}
	sc, err := h.st.Scan(ctx, asg.GetScanId())
	if err != nil {
		t.Fatal(err)
	}
	if sc.HostID != host.ID || sc.Status != store.ScanRunning || sc.BundleVersion != b.Version {
		t.Fatalf("scan %+v", sc)
	}

	first := &agentpb.ResultBatch{ScanId: sc.ID, Seq: 1, Results: []*agentpb.Result{
		pbResult("crit-rule", "fail", "critical"), pbResult("med-rule", "pass", "medium")}}
	acks := report(t, a.c, first, first)
	if acks[0].GetDuplicate() || acks[0].GetError() != "" || !acks[1].GetDuplicate() || acks[1].GetError() != "" {
		t.Fatalf("acks of a batch and its replay: %+v", acks)
	}
	rs, err := h.st.ScanResults(ctx, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d results stored after a batch and its replay, want 2", len(rs))
	}
	ev, err := h.st.Evidence(ctx, rs[0].EvidenceHash)
	if err != nil || len(ev) != 1 || ev[0].ExitCode == nil || ev[0].Actual != "fail" {
		t.Errorf("evidence round trip: %+v, %v", ev, err)
	}

	// The end batch completes the scan; the critical rule that started
	// failing asks for a confirming re-scan, delivered on the open stream.
	acks = report(t, a.c, &agentpb.ResultBatch{ScanId: sc.ID, Seq: 2, End: end(1, 1)})
	if acks[0].GetError() != "" {
		t.Fatalf("end batch refused: %s", acks[0].GetError())
	}
	sc, err = h.st.Scan(ctx, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Status != store.ScanCompleted || sc.Counts.Pass != 1 || sc.Counts.Fail != 1 {
		t.Errorf("scan after its end batch: %+v", sc)
	}
	if facts, err := h.st.Facts(ctx, host.ID); err != nil || facts.Kernel != "6.1.0" || len(facts.Packages) != 1 {
		t.Errorf("inventory stored: %+v, %v", facts, err)
	}
	re := recvAssignment(t, watch)
	if re.GetTrigger() != "rescan" || re.GetHostId() != host.ID || re.GetScanId() == sc.ID {
		t.Fatalf("second assignment %+v, want a confirming re-scan of web1", re)
	}
	report(t, a.c, &agentpb.ResultBatch{ScanId: re.GetScanId(), Seq: 1, Results: []*agentpb.Result{
		pbResult("crit-rule", "fail", "critical"), pbResult("med-rule", "pass", "medium")}, End: end(1, 1)})
	host, err = h.st.HostByName(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if host.Band != string(posture.BandCritical) || !host.NextScanAt.After(time.Now()) || host.LastScanAt.IsZero() {
		t.Errorf("host after the re-scan: band %q last %v next %v; want critical and a next scan in the future",
			host.Band, host.LastScanAt, host.NextScanAt)
	}
	// A replayed end batch is a duplicate and changes nothing.
	acks = report(t, a.c, &agentpb.ResultBatch{ScanId: sc.ID, Seq: 2, End: end(1, 1)})
	if !acks[0].GetDuplicate() {
		t.Errorf("replayed end batch: %+v", acks[0])
	}
	if after, _ := h.st.HostByName(ctx, "web1"); !after.NextScanAt.Equal(host.NextScanAt) {
		t.Errorf("replayed end batch moved the next scan from %v to %v", host.NextScanAt, after.NextScanAt)
	}
}

func TestBatchForAnotherAgentsScanRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tok := h.token(t, 2, time.Hour, time.Now())
	a := h.enrol(t, tok, "web1")
	h.enrol(t, tok, "db1")
	db1, err := h.st.HostByName(ctx, "db1")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := h.st.CreateScan(ctx, store.Scan{HostID: db1.ID, Trigger: "first", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	acks := report(t, a.c, &agentpb.ResultBatch{ScanId: sc.ID, Seq: 1, Results: []*agentpb.Result{pbResult("med-rule", "fail", "medium")},
		End: end(0, 1)}, &agentpb.ResultBatch{ScanId: sc.ID + 100, Seq: 1})
	if !strings.Contains(acks[0].GetError(), "permission denied") || acks[0].GetDuplicate() {
		t.Errorf("batch for another agent's scan: ack %+v, want a permission refusal", acks[0])
	}
	if !strings.Contains(acks[1].GetError(), "not known") {
		t.Errorf("batch for an unknown scan: ack %+v", acks[1])
	}
	rs, err := h.st.ScanResults(ctx, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := h.st.Scan(ctx, sc.ID); len(rs) != 0 || got.Status != store.ScanRunning {
		t.Errorf("refused batch changed the scan: %d results, status %s", len(rs), got.Status)
	}
}

func TestHeartbeatRecordsStateAndTargets(t *testing.T) {
	// No periodic flush during the test: only FlushHeartbeats writes.
	h := newHarness(t, func(c *agentapi.Config) { c.HeartbeatFlush = time.Hour })
	ctx := context.Background()
	b := h.publish(t, []byte("bundle"))
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "jump1")
	resp, err := a.c.Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{AgentVersion: "0.2.0", Os: "debian 12.5", SpoolBatches: 4,
		SpoolBytes: 8192, BundleDigest: b.Digest, Hostname: "jump1",
		Targets: []*agentpb.TargetInfo{{Name: "ssh-a", Address: "127.0.0.5"}, {Name: "ssh-b", Address: "127.0.0.6"}},
		Events:  []*agentpb.AgentEvent{{Kind: "spool_full", Message: "spool at its cap", At: timestamppb.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetHeartbeatSeconds() != int32(agentapi.DefaultHeartbeat.Seconds()) || resp.GetRenewNow() || resp.GetServerTime() == nil {
		t.Errorf("heartbeat response %+v", resp)
	}
	if got, err := h.st.Agent(ctx, a.id); err != nil || !got.LastSeenAt.IsZero() {
		t.Fatalf("heartbeat written before the flush: %+v, %v", got, err)
	}
	if err := h.svc.FlushHeartbeats(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := h.st.Agent(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "0.2.0" || got.OS != "debian 12.5" || got.SpoolBatches != 4 || got.SpoolBytes != 8192 ||
		got.BundleDigest != b.Digest || got.LastSeenAt.IsZero() {
		t.Errorf("agent after heartbeat %+v", got)
	}
	events, err := h.st.Audit(ctx, store.AuditFilter{Action: "agent.spool_full"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Actor != "agent:"+a.name || !strings.Contains(events[0].Detail, "spool at its cap") {
		t.Errorf("spool_full event in the audit log: %+v", events)
	}
	for _, name := range []string{"ssh-a", "ssh-b"} {
		hh, err := h.st.HostByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if hh.AgentID != a.id {
			t.Errorf("target %s owned by agent %d, want %d", name, hh.AgentID, a.id)
		}
	}
	// The agent is handed its own host locally and its targets over SSH.
	watch, err := a.c.WatchAssignments(callCtx(t), &agentpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]agentpb.Target_Kind{}
	for range 3 {
		asg := recvAssignment(t, watch)
		kinds[asg.GetTarget().GetName()] = asg.GetTarget().GetKind()
	}
	want := map[string]agentpb.Target_Kind{"jump1": agentpb.Target_KIND_LOCAL, "ssh-a": agentpb.Target_KIND_SSH, "ssh-b": agentpb.Target_KIND_SSH}
	if len(kinds) != 3 || kinds["jump1"] != want["jump1"] || kinds["ssh-a"] != want["ssh-a"] || kinds["ssh-b"] != want["ssh-b"] {
		t.Errorf("assignment targets %v, want %v", kinds, want)
	}
}

func TestRenewKeepsIdentity(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	key, csr := newCSR(t, "someone-else")
	resp, err := a.c.Renew(callCtx(t), &agentpb.RenewRequest{CsrDer: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert := tlsCert(t, resp.GetCertificatePem(), key)
	id, name, err := pki.AgentIdentity(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if id != a.id || name != a.name || cert.Leaf.SerialNumber.Cmp(a.cert.Leaf.SerialNumber) == 0 {
		t.Errorf("renewed certificate names %d %q serial %s; want %d %q and a new serial", id, name, cert.Leaf.SerialNumber, a.id, a.name)
	}
	stored, err := h.st.Agent(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.CertSerial != cert.Leaf.SerialNumber.Text(16) {
		t.Errorf("agent's serial %s, want the renewed %s", stored.CertSerial, cert.Leaf.SerialNumber.Text(16))
	}
	if _, err := h.dial(t, cert).Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{}); err != nil {
		t.Errorf("heartbeat with the renewed certificate: %v", err)
	}
	_, err = a.c.Renew(callCtx(t), &agentpb.RenewRequest{CsrDer: []byte("junk")})
	wantCode(t, "renew with a bad CSR", err, codes.InvalidArgument)
}

func TestFetchBundleInChunks(t *testing.T) {
	h := newHarness(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*agentapi.ChunkSize+1000)/16)
	b := h.publish(t, data)
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	s, err := a.c.FetchBundle(callCtx(t), &agentpb.FetchBundleRequest{Digest: b.Digest})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	chunks := 0
	for {
		c, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.GetOffset() != int64(len(got)) || c.GetTotalSize() != int64(len(data)) || len(c.GetData()) > agentapi.ChunkSize {
			t.Fatalf("chunk %d: offset %d total %d size %d", chunks, c.GetOffset(), c.GetTotalSize(), len(c.GetData()))
		}
		got = append(got, c.GetData()...)
		chunks++
		if chunks > 10 {
			t.Fatal("too many chunks")
		}
	}
	if !bytes.Equal(got, data) || chunks != 3 {
		t.Errorf("fetched %d bytes in %d chunks, want %d bytes in 3", len(got), chunks, len(data))
	}
	s, err = a.c.FetchBundle(callCtx(t), &agentpb.FetchBundleRequest{Digest: "sha256:00"})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, "unknown bundle", err, codes.NotFound)
}

func TestLostAssignmentReassignedAfterLease(t *testing.T) {
	h := newHarness(t, func(c *agentapi.Config) { c.Lease = 300 * time.Millisecond })
	ctx := context.Background()
	h.publish(t, []byte("bundle"))
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	watch, err := a.c.WatchAssignments(callCtx(t), &agentpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	lost := recvAssignment(t, watch)
	// The agent never reports; once the lease runs out the host is handed
	// out again and the lost scan is closed as failed.
	again := recvAssignment(t, watch)
	if again.GetHostId() != lost.GetHostId() || again.GetScanId() == lost.GetScanId() {
		t.Fatalf("second assignment %+v after losing %+v", again, lost)
	}
	sc, err := h.st.Scan(ctx, lost.GetScanId())
	if err != nil {
		t.Fatal(err)
	}
	if sc.Status != store.ScanFailed || !strings.Contains(sc.Message, "superseded") {
		t.Errorf("lost scan %+v, want failed as superseded", sc)
	}
}

func TestCertificateExpiringOnOpenConnectionRefused(t *testing.T) {
	var skew atomic.Int64 // how far the server's clock is ahead
	h := newHarness(t, func(c *agentapi.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	a := h.enrol(t, h.token(t, 1, time.Hour, time.Now()), "web1")
	if _, err := a.c.Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	// The connection was verified at its handshake; a day later the same
	// connection's calls are refused because the certificate ran out.
	skew.Store(int64(agentapi.DefaultCertTTL + time.Hour))
	_, err := a.c.Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{})
	wantCode(t, "call with a certificate expired since the handshake", err, codes.Unauthenticated)
	if err != nil && !strings.Contains(err.Error(), "validity") {
		t.Errorf("refusal %q does not say why", err)
	}
	// Close to the end of its life, a heartbeat asks the agent to renew.
	skew.Store(int64(agentapi.DefaultCertTTL - time.Hour))
	resp, err := a.c.Heartbeat(callCtx(t), &agentpb.HeartbeatRequest{})
	if err != nil || !resp.GetRenewNow() {
		t.Errorf("heartbeat an hour before expiry: %+v, %v; want renew_now", resp, err)
	}
}
