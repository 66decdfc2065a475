package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Names of the CA files under LoadOrCreateCA's directory.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
)

// caWait bounds how long a process that lost the race to create the CA
// waits for the winner to finish writing it.
const (
	caWait     = 10 * time.Second
	caWaitStep = 20 * time.Millisecond
)

// loadOrCreateCA implements LoadOrCreateCA. Creation is race-free across
// processes: each file is written to a temporary name and hard-linked into
// place, and link fails if the name exists. The key is linked first, so
// whoever links ca.key wins; a loser waits for ca.crt, which appears last,
// then loads what the winner made.
func loadOrCreateCA(dir string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return loadCAFiles(certPath, keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA directory %s: %w", dir, err)
	}
	certPEM, keyPEM, err := newCAPEM(now)
	if err != nil {
		return nil, err
	}
	switch err := linkNew(keyPath, keyPEM, 0o600); {
	case errors.Is(err, fs.ErrExist):
		return waitForCA(certPath, keyPath)
	case err != nil:
		return nil, err
	}
	if err := linkNew(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return loadCAFiles(certPath, keyPath)
}

// waitForCA waits (bounded) for another process to finish creating the CA.
func waitForCA(certPath, keyPath string) (*CA, error) {
	for waited := time.Duration(0); waited < caWait; waited += caWaitStep {
		if _, err := os.Stat(certPath); err == nil {
			return loadCAFiles(certPath, keyPath)
		}
		time.Sleep(caWaitStep)
	}
	return nil, fmt.Errorf("CA: %s exists but %s did not appear within %s (a crashed creation? remove %s to start over)", keyPath, certPath, caWait, keyPath)
}

// newCAPEM makes a CA key and self-signed certificate, PEM-encoded.
func newCAPEM(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("CA: %w", err)
	}
	short := make([]byte, 4)
	if _, err := rand.Read(short); err != nil {
		return nil, nil, fmt.Errorf("CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Vigil CA " + hex.EncodeToString(short)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: self-sign: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// loadCAFiles reads a CA certificate and its key and checks they belong
// together and that the certificate may sign certificates.
func loadCAFiles(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	block, rest := pem.Decode(certPEM)
	for block != nil && block.Type != "CERTIFICATE" {
		block, rest = pem.Decode(rest)
	}
	if block == nil {
		return nil, fmt.Errorf("CA certificate %s: no CERTIFICATE PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certFile, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("CA certificate %s is not a CA certificate allowed to sign certificates", certFile)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyFile, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not match the certificate %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// linkNew writes data to a temporary file next to path (fsynced, with
// mode) and hard-links it to path; it fails with fs.ErrExist if path exists,
// so of two processes creating the same file exactly one succeeds and no
// reader ever sees it half written.
func linkNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// syncDir makes the directory entries created in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
