package resultsarchive

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
)

// agent is an enrolled agent: its CA, key and certificate.
type agent struct {
	ca      *pki.CA
	key     crypto.Signer
	certPEM []byte
}

func newAgent(t testing.TB, issued time.Time) agent {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), issued.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClient(csr, 9, "web-1", 24*time.Hour, issued)
	if err != nil {
		t.Fatal(err)
	}
	return agent{ca: ca, key: key, certPEM: certPEM}
}

func sample(created time.Time) *agentpb.ResultsArchive {
	return &agentpb.ResultsArchive{
		AgentId:       9,
		AgentName:     "web-1",
		Hostname:      "web-1",
		BundleDigest:  "sha256:abc",
		BundleVersion: "2026.11.29.1",
		Created:       timestamppb.New(created),
		ArchiveId:     "a1",
	}
}

func write(t testing.TB, a *agentpb.ResultsArchive, key crypto.Signer, certPEM []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, a, key, certPEM); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTar builds a tar of name/content pairs.
func rawTar(pairs ...[]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		tw.WriteHeader(&tar.Header{Name: string(pairs[i]), Mode: 0o644, Size: int64(len(pairs[i+1])), Typeflag: tar.TypeReg})
		tw.Write(pairs[i+1])
	}
	tw.Close()
	return buf.Bytes()
}

// members returns the members of an archive written by Write.
func members(t testing.TB, data []byte) (pb, sig, cert []byte) {
	t.Helper()
	m, err := readMembers(data)
	if err != nil {
		t.Fatal(err)
	}
	return m[resultsName], m[sigName], m[certName]
}

func TestRoundTrip(t *testing.T) {
	now := time.Now()
	ag := newAgent(t, now)
	in := sample(now.Add(time.Hour))
	data := write(t, in, ag.key, ag.certPEM)
	got, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Archive, in) {
		t.Errorf("archive = %v, want %v", got.Archive, in)
	}
	if id, name, err := pki.AgentIdentity(got.Cert); err != nil || id != 9 || name != "web-1" {
		t.Errorf("identity %d %q %v", id, name, err)
	}
	s := sha256.Sum256(data)
	if got.Digest != "sha256:"+hexs(s[:]) {
		t.Errorf("digest %s", got.Digest)
	}
	if err := got.VerifyChain(ag.ca.Pool()); err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	// The signature covers the SHA-256 of results.pb, with the agent's key.
	pb, sig, _ := members(t, data)
	d := sha256.Sum256(pb)
	if err := verifyDigest(ag.key.Public(), d[:], sig); err != nil {
		t.Fatal(err)
	}
}

func TestEd25519Key(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	csr, _ := pki.NewCSR(key, "h")
	certPEM, _, err := ca.IssueClient(csr, 1, "h", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(write(t, sample(time.Now()), key, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := got.VerifyChain(ca.Pool()); err != nil {
		t.Fatal(err)
	}
}

func TestReadRefusals(t *testing.T) {
	now := time.Now()
	ag := newAgent(t, now)
	other := newAgent(t, now)
	good := write(t, sample(now), ag.key, ag.certPEM)
	pb, sig, cert := members(t, good)

	tamperedPB := bytes.Clone(pb)
	tamperedPB[bytes.Index(tamperedPB, []byte("web-1"))] ^= 1
	// Signed by another agent's key but carrying this agent's certificate.
	wrongKey := write(t, sample(now), other.key, other.certPEM)
	_, otherSig, _ := members(t, wrongKey)

	cases := []struct {
		name    string
		data    []byte
		want    error
		mention string
	}{
		{"tampered results.pb", rawTar([]byte(resultsName), tamperedPB, []byte(sigName), sig, []byte(certName), cert), ErrSignature, "web-1"},
		{"wrong key", rawTar([]byte(resultsName), pb, []byte(sigName), otherSig, []byte(certName), cert), ErrSignature, ""},
		{"missing signature", rawTar([]byte(resultsName), pb, []byte(certName), cert), ErrMalformed, sigName},
		{"duplicate member", rawTar([]byte(resultsName), pb, []byte(resultsName), pb, []byte(sigName), sig, []byte(certName), cert), ErrMalformed, "twice"},
		{"unknown member", rawTar([]byte(resultsName), pb, []byte(sigName), sig, []byte(certName), cert, []byte("../x"), []byte("x")), ErrMalformed, "unknown member"},
		{"oversized cert", rawTar([]byte(resultsName), pb, []byte(sigName), sig, []byte(certName), make([]byte, MaxCertSize+1)), ErrMalformed, "limit"},
		{"garbage cert", rawTar([]byte(resultsName), pb, []byte(sigName), sig, []byte(certName), []byte("nope")), ErrMalformed, certName},
		{"not a tar", []byte("hello"), ErrMalformed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(c.data)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.mention)
			}
		})
	}
	// Write refuses a key that does not match the certificate.
	if err := Write(&bytes.Buffer{}, sample(now), other.key, ag.certPEM); err == nil {
		t.Error("Write with a mismatched key succeeded")
	}
}

func TestVerifyChain(t *testing.T) {
	issued := time.Now()
	ag := newAgent(t, issued)
	foreign := newAgent(t, issued)

	a, err := Read(write(t, sample(issued.Add(time.Hour)), ag.key, ag.certPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.VerifyChain(foreign.ca.Pool()); !errors.Is(err, ErrChain) {
		t.Fatalf("foreign CA: %v", err)
	}
	expired, err := Read(write(t, sample(issued.Add(25*time.Hour)), ag.key, ag.certPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := expired.VerifyChain(ag.ca.Pool()); !errors.Is(err, ErrChain) {
		t.Fatalf("created after the certificate expired: %v", err)
	}
	noTime := sample(issued)
	noTime.Created = nil
	nt, err := Read(write(t, noTime, ag.key, ag.certPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := nt.VerifyChain(ag.ca.Pool()); !errors.Is(err, ErrChain) {
		t.Fatalf("no created time: %v", err)
	}
	// A server certificate of the right CA lacks ClientAuth.
	srv, err := ag.ca.IssueServer([]string{"web-1"}, 24*time.Hour, issued)
	if err != nil {
		t.Fatal(err)
	}
	srvPEM := pemCert(srv.Leaf.Raw)
	sa, err := Read(write(t, sample(issued.Add(time.Hour)), srv.PrivateKey.(crypto.Signer), srvPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.VerifyChain(ag.ca.Pool()); !errors.Is(err, ErrChain) {
		t.Fatalf("ServerAuth certificate accepted: %v", err)
	}
}
