package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLayering(t *testing.T) {
	rules := t.TempDir()
	c := Default()
	if err := c.LoadFile(writeFile(t, "data_dir: /srv/vigil\nhttp_addr: 127.0.0.1:9443\nrules_dir: "+rules+"\nscheduler:\n  intervals:\n    good: 36h\nresults_retention: 30d\n")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VIGIL_SERVER_HTTP_ADDR": "127.0.0.1:10443", "VIGIL_SERVER_LOG_LEVEL": "debug"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFlag("data-dir", "/flag/dir"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/flag/dir" || c.HTTPAddr != "127.0.0.1:10443" || c.Log.Level != "debug" {
		t.Errorf("layering wrong: %+v", c)
	}
	if c.Scheduler.Intervals.Good.D() != 36*time.Hour || c.Scheduler.Intervals.Critical.D() != 4*time.Hour {
		t.Errorf("intervals: %+v", c.Scheduler.Intervals)
	}
	if c.ResultsRetention.D() != 30*24*time.Hour || c.ResultsRetention.String() != "30d" {
		t.Errorf("retention %v", c.ResultsRetention)
	}
}

func TestUnknownKeyNamesFileAndLine(t *testing.T) {
	c := Default()
	p := writeFile(t, "data_dir: /x\nhttp_adr: 1\n")
	err := c.LoadFile(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "http_adr") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateNamesFields(t *testing.T) {
	c := Default()
	c.RulesDir = t.TempDir()
	c.HTTPAddr = "nohostport"
	c.DatabaseURL = "mysql://x"
	c.Scheduler.Intervals.Excellent = Duration(72 * time.Hour)
	c.Scheduler.Workers = 0
	c.Log.Format = "xml"
	c.TLSCert = "/a.crt"
	err := c.Validate()
	if err == nil {
		t.Fatal("expected errors")
	}
	for _, f := range []string{"http_addr", "database_url", "scheduler.intervals.excellent", "scheduler.workers", "log.format", "tls_cert"} {
		if !strings.Contains(err.Error(), f+":") {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	if strings.Contains(err.Error(), "grpc_addr") {
		t.Errorf("valid grpc_addr reported: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "12h": 12 * time.Hour, "1h30m": 90 * time.Minute} {
		d, err := ParseDuration(in)
		if err != nil || d.D() != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, in := range []string{"", "x", "-3d", "3.5d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestMasked(t *testing.T) {
	c := Default()
	c.DatabaseURL = "postgres://vigil:s3cr3t@db.example:5432/vigil?sslmode=verify-full"
	m := c.Masked()
	if strings.Contains(m.DatabaseURL, "s3cr3t") || !strings.Contains(m.DatabaseURL, "vigil:****@db.example") {
		t.Errorf("masked %q", m.DatabaseURL)
	}
	if c.DatabaseURL == m.DatabaseURL {
		t.Error("original changed or mask not applied")
	}
}

func TestCAAndBundleKeySettings(t *testing.T) {
	c := Default()
	c.CACert = "/etc/vigil/ca.crt"
	c.BundleTrustedKeys = []string{filepath.Join(t.TempDir(), "missing.pub")}
	c.AgentCertTTL = Duration(time.Minute)
	err := c.Validate()
	for _, f := range []string{"ca_cert:", "bundle_trusted_keys[0]:", "agent_cert_ttl:"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	if Default().AgentCertTTL.D() != 24*time.Hour {
		t.Error("default agent certificate lifetime is not 24h")
	}
}
