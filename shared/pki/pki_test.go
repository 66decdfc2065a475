package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA constraints: IsCA=%v MaxPathLen=%d zero=%v usage=%v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	if !strings.HasPrefix(c.Subject.CommonName, "Vigil CA ") {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if got := c.NotAfter.Sub(testNow); got < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %s, want 10 years", got)
	}
	if _, ok := ca.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("CA key is %T, want ECDSA", ca.Key)
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateCA(dir, testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) || again.Pin() != ca.Pin() {
		t.Error("reload made a different CA")
	}
	if !strings.HasPrefix(ca.Pin(), "sha256:") || len(ca.Pin()) != len("sha256:")+64 {
		t.Errorf("pin %q", ca.Pin())
	}
	loaded, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil || loaded.Pin() != ca.Pin() {
		t.Fatalf("LoadCA: %v", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoadOrCreateCAConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	pins := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ca, err := LoadOrCreateCA(dir, testNow)
			errs[i] = err
			if err == nil {
				pins[i] = ca.Pin()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if pins[i] != pins[0] {
			t.Fatalf("creator %d got CA %s, creator 0 got %s", i, pins[i], pins[0])
		}
	}
}

func TestLoadCAMismatchedKey(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := LoadOrCreateCA(a, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(b, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(filepath.Join(a, "ca.crt"), filepath.Join(b, "ca.key")); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestIssueClient(t *testing.T) {
	ca := newTestCA(t)
	key, keyPEM, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyPEM(keyPEM); err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM, cert, err := ca.IssueClient(csr, 42, "web-1", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(certPEM) == 0 {
		t.Fatal("no PEM")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verified for ServerAuth")
	}
	id, name, err := AgentIdentity(cert)
	if err != nil || id != 42 || name != "web-1" {
		t.Fatalf("identity = %d %q %v", id, name, err)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v", cert.KeyUsage)
	}
	if cert.NotBefore.After(now.Add(-4 * time.Minute)) {
		t.Errorf("NotBefore %v not backdated", cert.NotBefore)
	}
	if cert.NotAfter.After(now.Add(24*time.Hour)) || cert.NotAfter.Before(now.Add(24*time.Hour-time.Second)) {
		t.Errorf("NotAfter %v, want now+24h", cert.NotAfter)
	}
	if cert.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %s looks not random", cert.SerialNumber)
	}
}

// A CSR asking for another identity, server usage and a CA bit still gets
// exactly what the server decides.
func TestIssueClientIgnoresForgedCSR(t *testing.T) {
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	evil, _ := url.Parse("vigil://agent/1")
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "admin", Organization: []string{"root"}},
		DNSNames: []string{"vigil-server"},
		URIs:     []*url.URL{evil},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := ca.IssueClient(csr, 7, "db-7", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, name, err := AgentIdentity(cert)
	if err != nil || id != 7 || name != "db-7" {
		t.Fatalf("identity = %d %q %v, want 7 db-7", id, name, err)
	}
	if len(cert.DNSNames) != 0 || len(cert.URIs) != 1 || len(cert.Subject.Organization) != 0 || cert.IsCA {
		t.Errorf("CSR content leaked: DNS %v URIs %v O %v CA %v", cert.DNSNames, cert.URIs, cert.Subject.Organization, cert.IsCA)
	}
}

func TestIssueClientRefusals(t *testing.T) {
	ca := newTestCA(t)
	key, _, _ := NewKey()
	good, _ := NewCSR(key, "h")
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 0xff // inside the signature
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakCSR, err := NewCSR(weak, "h")
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224CSR, _ := NewCSR(p224, "h")
	for name, csr := range map[string][]byte{"bad signature": bad, "rsa 1024": weakCSR, "p224": p224CSR, "garbage": []byte("x")} {
		if _, _, err := ca.IssueClient(csr, 1, "h", time.Hour, time.Now()); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	if _, _, err := ca.IssueClient(good, 0, "h", time.Hour, time.Now()); err == nil {
		t.Error("id 0: issued")
	}
}

func TestAgentIdentityRefusesServerCert(t *testing.T) {
	ca := newTestCA(t)
	tc, err := ca.IssueServer([]string{"localhost"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AgentIdentity(tc.Leaf); !errors.Is(err, ErrNotAgentCert) {
		t.Fatalf("server cert: %v", err)
	}
	other := newTestCA(t)
	if _, _, err := AgentIdentity(other.Cert); !errors.Is(err, ErrNotAgentCert) {
		t.Fatalf("CA cert: %v", err)
	}
}

func TestVerifyPinned(t *testing.T) {
	ca := newTestCA(t)
	tc, err := ca.IssueServer([]string{"vigil.example", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 2 {
		t.Fatalf("chain of %d", len(tc.Certificate))
	}
	if err := VerifyPinned(ca.Pin(), "vigil.example")(tc.Certificate, nil); err != nil {
		t.Errorf("right pin: %v", err)
	}
	if err := VerifyPinned(ca.Pin(), "127.0.0.1:8444")(tc.Certificate, nil); err != nil {
		t.Errorf("IP with port: %v", err)
	}
	other := newTestCA(t)
	if err := VerifyPinned(other.Pin(), "vigil.example")(tc.Certificate, nil); err == nil {
		t.Error("another CA's pin accepted")
	}
	if err := VerifyPinned(ca.Pin(), "other.example")(tc.Certificate, nil); err == nil {
		t.Error("wrong server name accepted")
	}
	// A server cert from another CA, presented with the pinned CA appended.
	foreign, _ := other.IssueServer([]string{"vigil.example"}, time.Hour, time.Now())
	mixed := [][]byte{foreign.Certificate[0], ca.Cert.Raw}
	if err := VerifyPinned(ca.Pin(), "vigil.example")(mixed, nil); err == nil {
		t.Error("foreign leaf with pinned CA appended accepted")
	}
	// A client certificate is not a server certificate.
	key, _, _ := NewKey()
	csr, _ := NewCSR(key, "vigil.example")
	_, client, _ := ca.IssueClient(csr, 1, "vigil.example", time.Hour, time.Now())
	if err := VerifyPinned(ca.Pin(), "vigil.example")([][]byte{client.Raw, ca.Cert.Raw}, nil); err == nil {
		t.Error("ClientAuth-only certificate accepted as a server")
	}
	if err := VerifyPinned(ca.Pin(), "vigil.example")(nil, nil); err == nil {
		t.Error("empty chain accepted")
	}
}

// TestTLSHandshake runs a real TLS 1.3 handshake: pinned agent to server,
// then mutual TLS with the issued client certificate.
func TestTLSHandshake(t *testing.T) {
	ca := newTestCA(t)
	srv, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := NewKey()
	csr, _ := NewCSR(key, "a")
	certPEM, _, err := ca.IssueClient(csr, 3, "a", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clientCert := tls.Certificate{PrivateKey: key}
	for rest := certPEM; ; {
		var der []byte
		der, rest = decodeCert(rest)
		if der == nil {
			break
		}
		clientCert.Certificate = append(clientCert.Certificate, der)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{srv},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- err
			return
		}
		id, _, err := AgentIdentity(tc.ConnectionState().PeerCertificates[0])
		if err == nil && id != 3 {
			err = errors.New("wrong id")
		}
		got <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // replaced by the pin check below
		VerifyPeerCertificate: VerifyPinned(ca.Pin(), ln.Addr().String()),
		Certificates:          []tls.Certificate{clientCert},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := <-got; err != nil {
		t.Fatalf("server side: %v", err)
	}
}
