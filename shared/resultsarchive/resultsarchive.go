// Package resultsarchive is the file an air-gapped agent writes instead of
// streaming results: a tar of the ResultsArchive protobuf (results.pb), the
// agent's signature over it (results.sig) and the agent's certificate chain
// (agent.crt), so the server can check on import who produced the results
// and that nothing changed on the way.
package resultsarchive

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vigilfleet/vigil/shared/agentpb"
)

// The refusals Read and VerifyChain return (wrapped with detail), so callers
// can tell a damaged file from a forged or foreign one.
var (
	ErrMalformed = errors.New("malformed results archive")
	ErrSignature = errors.New("results archive signature does not verify with its certificate")
	ErrChain     = errors.New("results archive certificate is not trusted")
)

// Member names and their size limits.
const (
	resultsName = "results.pb"
	sigName     = "results.sig"
	certName    = "agent.crt"

	MaxResultsSize = 256 << 20 // results.pb
	MaxCertSize    = 64 << 10  // agent.crt
	MaxSigSize     = 1 << 10   // results.sig (ECDSA P-521 and RSA-4096 fit)
)

// Archive is a results archive whose signature verified against its own
// certificate. Whether that certificate is trusted is VerifyChain's job.
type Archive struct {
	Archive *agentpb.ResultsArchive
	Cert    *x509.Certificate // the agent's (leaf) certificate
	Digest  string            // "sha256:" and the hex SHA-256 of the whole file

	chain []*x509.Certificate // certificates after the leaf in agent.crt
}

// Write writes a as an archive signed with key, whose certificate (leaf
// first, then any chain) certPEM holds. The leaf must hold key's public key.
func Write(w io.Writer, a *agentpb.ResultsArchive, key crypto.Signer, certPEM []byte) error {
	if a == nil || key == nil {
		return errors.New("write results archive: archive and key are required")
	}
	certs, err := parseChain(certPEM)
	if err != nil {
		return fmt.Errorf("write results archive: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return errors.New("write results archive: the key does not match the certificate")
	}
	pb, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	if err != nil {
		return fmt.Errorf("write results archive: encode: %w", err)
	}
	if len(pb) > MaxResultsSize {
		return fmt.Errorf("write results archive: results are %d bytes, over the %d byte limit", len(pb), MaxResultsSize)
	}
	digest := sha256.Sum256(pb)
	sig, err := signDigest(key, digest[:])
	if err != nil {
		return fmt.Errorf("write results archive: sign: %w", err)
	}
	tw := tar.NewWriter(w)
	for _, m := range []struct {
		name string
		data []byte
	}{{resultsName, pb}, {sigName, sig}, {certName, certPEM}} {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write results archive: %s: %w", m.name, err)
		}
		if _, err := tw.Write(m.data); err != nil {
			return fmt.Errorf("write results archive: %s: %w", m.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write results archive: %w", err)
	}
	return nil
}

// Read parses an archive file and checks its signature against the
// certificate it carries.
func Read(data []byte) (*Archive, error) {
	digest := sum(data)
	fail := func(err error) (*Archive, error) {
		return nil, fmt.Errorf("results archive %s: %w", digest[:len("sha256:")+12], err)
	}
	members, err := readMembers(data)
	if err != nil {
		return fail(err)
	}
	certs, err := parseChain(members[certName])
	if err != nil {
		return fail(fmt.Errorf("%s: %v: %w", certName, err, ErrMalformed))
	}
	pb := members[resultsName]
	d := sha256.Sum256(pb)
	if err := verifyDigest(certs[0].PublicKey, d[:], members[sigName]); err != nil {
		return fail(fmt.Errorf("certificate %s (%s): %v: %w", certs[0].SerialNumber, certs[0].Subject.CommonName, err, ErrSignature))
	}
	var a agentpb.ResultsArchive
	if err := proto.Unmarshal(pb, &a); err != nil {
		return fail(fmt.Errorf("%s: %v: %w", resultsName, err, ErrMalformed))
	}
	return &Archive{Archive: &a, Cert: certs[0], Digest: digest, chain: certs[1:]}, nil
}

// VerifyChain checks that the certificate chains to roots with the
// ClientAuth usage and was valid when the archive says it was created.
// Revocation is the caller's to check.
func (a *Archive) VerifyChain(roots *x509.CertPool) error {
	created := a.Archive.GetCreated()
	if created == nil {
		return fmt.Errorf("results archive %s has no creation time: %w", a.Digest, ErrChain)
	}
	inter := x509.NewCertPool()
	for _, c := range a.chain {
		inter.AddCert(c)
	}
	_, err := a.Cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   created.AsTime(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("results archive %s: certificate %s (%s) at %s: %v: %w", a.Digest, a.Cert.SerialNumber, a.Cert.Subject.CommonName, created.AsTime().UTC().Format(time.RFC3339), err, ErrChain)
	}
	return nil
}

// readMembers reads the three members, refusing anything else, duplicates,
// non-regular entries and oversized members.
func readMembers(data []byte) (map[string][]byte, error) {
	limits := map[string]int64{resultsName: MaxResultsSize, sigName: MaxSigSize, certName: MaxCertSize}
	members := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %v: %w", err, ErrMalformed)
		}
		limit, known := limits[hdr.Name]
		switch {
		case !known:
			return nil, fmt.Errorf("unknown member %q: %w", hdr.Name, ErrMalformed)
		case hdr.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("member %s is not a regular file: %w", hdr.Name, ErrMalformed)
		case members[hdr.Name] != nil:
			return nil, fmt.Errorf("member %s appears twice: %w", hdr.Name, ErrMalformed)
		case hdr.Size < 0 || hdr.Size > limit:
			return nil, fmt.Errorf("member %s is %d bytes, over the %d byte limit: %w", hdr.Name, hdr.Size, limit, ErrMalformed)
		}
		body := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, body); err != nil {
			return nil, fmt.Errorf("member %s: %v: %w", hdr.Name, err, ErrMalformed)
		}
		members[hdr.Name] = body
	}
	for _, n := range []string{resultsName, sigName, certName} {
		if members[n] == nil {
			return nil, fmt.Errorf("member %s is missing: %w", n, ErrMalformed)
		}
	}
	return members, nil
}

// parseChain reads the PEM certificates of agent.crt, leaf first.
func parseChain(certPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return certs, nil
}

// signDigest signs a SHA-256 digest as the key type dictates: ECDSA ASN.1,
// RSA PKCS #1 v1.5, or Ed25519 over the digest bytes.
func signDigest(key crypto.Signer, digest []byte) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		return key.Sign(rand.Reader, digest, crypto.Hash(0))
	}
	return key.Sign(rand.Reader, digest, crypto.SHA256)
}

// verifyDigest checks sig over a SHA-256 digest with pub.
func verifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature mismatch")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(k, digest, sig) {
			return errors.New("Ed25519 signature mismatch")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// sum is "sha256:" and the hex SHA-256 of data.
func sum(data []byte) string {
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}
