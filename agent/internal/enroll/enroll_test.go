package enroll

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/servertest"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/shared/pki"
)

func TestEnrollStoresState(t *testing.T) {
	srv := servertest.Start(t)
	dir := filepath.Join(t.TempDir(), "state")
	id, err := Enroll(t.Context(), Options{Server: srv.Addr, Token: srv.Token, CAPin: srv.CA.Pin(), StateDir: dir, Hostname: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if id.AgentID != 1 || id.AgentName != "web-1" || id.Server != srv.Addr || id.CAPin != srv.CA.Pin() {
		t.Errorf("identity = %+v", id)
	}
	info, err := os.Stat(filepath.Join(dir, state.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	d := &state.Dir{Path: dir}
	got, err := d.Identity()
	if err != nil || got != id {
		t.Errorf("stored identity %+v, %v", got, err)
	}
	cert, err := d.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if aid, name, err := pki.AgentIdentity(cert); err != nil || aid != 1 || name != "web-1" {
		t.Errorf("certificate identity %d %q %v", aid, name, err)
	}
	if _, err := d.TLSCertificate(); err != nil {
		t.Errorf("key and certificate do not pair: %v", err)
	}
	pool, err := d.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509VerifyOptions(pool)); err != nil {
		t.Errorf("certificate does not chain to the stored CA: %v", err)
	}
	// A second enrolment into the same state is refused.
	_, err = Enroll(t.Context(), Options{Server: srv.Addr, Token: srv.Token, CAPin: srv.CA.Pin(), StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "already holds an enrolment") {
		t.Errorf("re-enrol: %v", err)
	}
}

func TestEnrollRefusesWrongPin(t *testing.T) {
	srv := servertest.Start(t)
	other, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	_, err = Enroll(t.Context(), Options{Server: srv.Addr, Token: srv.Token, CAPin: other.Pin(), StateDir: dir, Hostname: "h"})
	t.Log(err)
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("err = %v, want ErrPinMismatch", err)
	}
	if !strings.Contains(err.Error(), other.Pin()) || !strings.Contains(err.Error(), srv.Addr) {
		t.Errorf("error should name the pin and server: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir created after a refused pin: %v", err)
	}
}

func TestEnrollBadToken(t *testing.T) {
	srv := servertest.Start(t)
	dir := filepath.Join(t.TempDir(), "state")
	_, err := Enroll(t.Context(), Options{Server: srv.Addr, Token: "vjt_wrong", CAPin: srv.CA.Pin(), StateDir: dir, Hostname: "h"})
	if err == nil || !strings.Contains(err.Error(), "join token is not valid") {
		t.Fatalf("err = %v", err)
	}
	if (&state.Dir{Path: dir}).Enrolled() {
		t.Error("identity stored after a refused token")
	}
	if _, err := Enroll(t.Context(), Options{Server: srv.Addr, Token: "t", CAPin: "md5:x", StateDir: dir}); err == nil {
		t.Error("malformed pin accepted")
	}
}

func x509VerifyOptions(pool *x509.CertPool) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
