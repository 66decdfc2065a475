// Package pki is Vigil's small certificate authority: the server's CA signs
// short-lived agent client certificates and the gRPC server certificate,
// and agents pin the CA by the SHA-256 of its public key when they enrol.
// The server, never the CSR, decides what identity a certificate carries.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotAgentCert is returned (wrapped) for a certificate that carries no
// Vigil agent identity.
var ErrNotAgentCert = errors.New("not a Vigil agent certificate")

// clockSkew backdates every certificate so a peer whose clock runs a few
// minutes behind still accepts it.
const clockSkew = 5 * time.Minute

// caLifetime is how long a CA made by LoadOrCreateCA lasts.
const caLifetime = 10 * 365 * 24 * time.Hour

// CA signs certificates. Safe for concurrent use.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadOrCreateCA loads dir/ca.crt and dir/ca.key, creating them (ECDSA
// P-256, 10 years, key file 0600) on first use.
func LoadOrCreateCA(dir string, now time.Time) (*CA, error) {
	return loadOrCreateCA(dir, now)
}

// LoadCA loads an operator-provided CA certificate and key (PEM).
func LoadCA(certFile, keyFile string) (*CA, error) {
	return loadCAFiles(certFile, keyFile)
}

// Pin is the CA's pin: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo.
func (ca *CA) Pin() string { return PinOf(ca.Cert) }

// PinOf computes the pin of any certificate's public key.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// BundlePEM is the CA certificate(s) agents must trust, PEM-encoded.
func (ca *CA) BundlePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool returns a pool holding the CA, for verifying client certificates.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueClient signs a client certificate for an agent's CSR. The CSR's
// signature is checked, its subject and extensions ignored: the
// certificate carries CN=name and the URI SAN vigil://agent/<id>, the
// ClientAuth extended key usage only, and lasts ttl from now.
func (ca *CA) IssueClient(csrDER []byte, id int64, name string, ttl time.Duration, now time.Time) (certPEM []byte, cert *x509.Certificate, err error) {
	if id <= 0 || name == "" {
		return nil, nil, fmt.Errorf("issue client certificate: agent id %d and name %q must be set", id, name)
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("issue client certificate for agent %d: ttl %s is not positive", id, ttl)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for agent %d: parse CSR: %w", id, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for agent %d: CSR signature: %w", id, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for agent %d: %w", id, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		URIs:        []*url.URL{agentURI(id)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, der, err := ca.sign(tmpl, csr.PublicKey, ttl, now)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for agent %d: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// IssueServer returns a TLS certificate (with chain) for the gRPC listener,
// valid for names (DNS names or IPs), with the ServerAuth usage.
func (ca *CA) IssueServer(names []string, ttl time.Duration, now time.Time) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("issue server certificate: no names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	cert, der, err := ca.sign(tmpl, key.Public(), ttl, now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate for %s: %w", strings.Join(names, ","), err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// sign completes tmpl (serial, validity) and signs it with the CA. The
// validity never outlasts the CA, so a chain never fails on that alone.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration, now time.Time) (*x509.Certificate, []byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse signed certificate: %w", err)
	}
	return cert, der, nil
}

// agentURI is the URI SAN naming agent id.
func agentURI(id int64) *url.URL {
	return &url.URL{Scheme: "vigil", Host: "agent", Path: "/" + strconv.FormatInt(id, 10)}
}

// AgentIdentity reads the agent id and name from a certificate IssueClient
// made; anything else is ErrNotAgentCert.
func AgentIdentity(cert *x509.Certificate) (id int64, name string, err error) {
	if cert == nil {
		return 0, "", fmt.Errorf("no certificate: %w", ErrNotAgentCert)
	}
	if !hasOnlyClientAuth(cert) {
		return 0, "", fmt.Errorf("certificate %s lacks the ClientAuth usage: %w", cert.SerialNumber, ErrNotAgentCert)
	}
	found := false
	for _, u := range cert.URIs {
		if u.Scheme != "vigil" || u.Host != "agent" {
			continue
		}
		if found {
			return 0, "", fmt.Errorf("certificate %s names two agents: %w", cert.SerialNumber, ErrNotAgentCert)
		}
		n, perr := strconv.ParseInt(strings.TrimPrefix(u.Path, "/"), 10, 64)
		if perr != nil || n <= 0 || u.Path != "/"+strconv.FormatInt(n, 10) || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return 0, "", fmt.Errorf("certificate %s has a malformed agent URI %q: %w", cert.SerialNumber, u, ErrNotAgentCert)
		}
		id, found = n, true
	}
	if !found {
		return 0, "", fmt.Errorf("certificate %s has no vigil://agent/ URI: %w", cert.SerialNumber, ErrNotAgentCert)
	}
	if cert.Subject.CommonName == "" {
		return 0, "", fmt.Errorf("certificate %s has no common name: %w", cert.SerialNumber, ErrNotAgentCert)
	}
	return id, cert.Subject.CommonName, nil
}

// hasOnlyClientAuth reports whether cert's only extended key usage is
// ClientAuth, as IssueClient makes them.
func hasOnlyClientAuth(cert *x509.Certificate) bool {
	return len(cert.ExtKeyUsage) == 1 && cert.ExtKeyUsage[0] == x509.ExtKeyUsageClientAuth && len(cert.UnknownExtKeyUsage) == 0
}

// NewKey makes an agent's private key (ECDSA P-256) and returns it with its
// PKCS#8 PEM encoding for a 0600 file.
func NewKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM reads a PKCS#8 (or SEC 1) PEM private key.
func ParseKeyPEM(pemBytes []byte) (crypto.Signer, error) {
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("parse private key: no PRIVATE KEY PEM block")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("parse PKCS#8 private key: %T cannot sign", k)
			}
			return s, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse SEC 1 private key: %w", err)
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#1 private key: %w", err)
			}
			return k, nil
		}
	}
}

// NewCSR makes a CSR (DER) for key; the server ignores its subject.
func NewCSR(key crypto.Signer, hostname string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: hostname},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR for %s: %w", hostname, err)
	}
	return der, nil
}

// VerifyPinned returns a tls.Config.VerifyPeerCertificate function that
// accepts the server only if its chain verifies to a CA certificate whose
// pin equals pin, for an agent that does not yet hold the CA bundle.
func VerifyPinned(pin, serverName string) func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	want := []byte(strings.ToLower(strings.TrimSpace(pin)))
	if host, _, err := net.SplitHostPort(serverName); err == nil {
		serverName = host
	}
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("verify server: no certificate presented")
		}
		certs := make([]*x509.Certificate, 0, len(rawCerts))
		for i, raw := range rawCerts {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("verify server: certificate %d: %w", i, err)
			}
			certs = append(certs, c)
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		pinned := false
		for _, c := range certs[1:] {
			if c.IsCA && subtle.ConstantTimeCompare([]byte(PinOf(c)), want) == 1 {
				roots.AddCert(c)
				pinned = true
			} else {
				inter.AddCert(c)
			}
		}
		if !pinned {
			return fmt.Errorf("verify server %s: no CA certificate in its chain matches the pin %s", serverName, pin)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{
			DNSName:       serverName,
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("verify server %s against the pinned CA: %w", serverName, err)
		}
		return nil
	}
}

// checkPublicKey refuses keys too weak (or too odd) for an agent.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not accepted", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is shorter than 2048", k.N.BitLen())
		}
		return nil
	}
	return fmt.Errorf("public key type %T is not accepted (ECDSA, Ed25519 or RSA >= 2048)", pub)
}

// newSerial is a random 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		n.SetInt64(1) // a zero serial is invalid; 2^-128 odds
	}
	return n, nil
}
