package config

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/governance"
	"gopkg.in/yaml.v3"
)

// TestGovernanceDefaultsMatch keeps the documented alert defaults here
// and governance's fallbacks for zero thresholds the same numbers.
func TestGovernanceDefaultsMatch(t *testing.T) {
	a := Default().Alerts
	g := governance.DefaultThresholds()
	var sevs []string
	for _, s := range g.FailingSeverities {
		sevs = append(sevs, string(s))
	}
	if !slices.Equal(a.FailingSeverities, sevs) || a.ScoreDrop != g.ScoreDrop || a.ScoreDropWindow.D() != g.ScoreDropWindow ||
		a.BandFloor != string(g.BandFloor) || a.MassDriftHosts != g.MassDriftHosts || a.MassDriftWindow.D() != g.MassDriftWindow ||
		a.OverdueAfter.D() != g.OverdueAfter || a.AgentOfflineAfter.D() != g.AgentOfflineAfter || a.ExpiringWithin.D() != g.ExpiringWithin ||
		a.Interval.D() != governance.DefaultInterval {
		t.Errorf("config alert defaults %+v differ from governance defaults %+v", a, g)
	}
}

func TestGovernanceSectionsLoad(t *testing.T) {
	c := Default()
	c.RulesDir = t.TempDir()
	p := writeFile(t, `data_dir: /srv/vigil
alerts:
  failing_severities: [critical]
  score_drop: 15.5
  score_drop_window: 2d
  band_floor: poor
  mass_drift_hosts: 3
  mass_drift_window: 30m
  overdue_after: 72h
  agent_offline_after: 5m
  expiring_within: 14d
  interval: 30s
notifications:
  allow_networks: [169.254.10.0/24, "fd00:ec2::/64"]
  base_url: https://vigil.example.com
`)
	if err := c.LoadFile(p); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a := c.Alerts
	if !slices.Equal(a.FailingSeverities, []string{"critical"}) || a.ScoreDrop != 15.5 || a.ScoreDropWindow.D() != 48*time.Hour ||
		a.BandFloor != "poor" || a.MassDriftHosts != 3 || a.MassDriftWindow.D() != 30*time.Minute || a.OverdueAfter.D() != 72*time.Hour ||
		a.AgentOfflineAfter.D() != 5*time.Minute || a.ExpiringWithin.D() != 14*24*time.Hour || a.Interval.D() != 30*time.Second {
		t.Errorf("alerts = %+v", a)
	}
	want := []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24"), netip.MustParsePrefix("fd00:ec2::/64")}
	if got := c.Notifications.AllowNets(); !slices.Equal(got, want) {
		t.Errorf("AllowNets = %v, want %v", got, want)
	}
	if c.Notifications.BaseURL != "https://vigil.example.com" {
		t.Errorf("base_url = %q", c.Notifications.BaseURL)
	}
	// The signing key defaults into the data directory, and check-config
	// prints the effective path.
	if c.Exports.SigningKey != filepath.Join("/srv/vigil", "export-signing.key") {
		t.Errorf("exports.signing_key = %q", c.Exports.SigningKey)
	}
	out, err := yaml.Marshal(c.Masked())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"signing_key: /srv/vigil/export-signing.key", "band_floor: poor", "expiring_within: 14d", "169.254.10.0/24"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("printed configuration lacks %q:\n%s", s, out)
		}
	}
}

func TestGovernanceSigningKeySet(t *testing.T) {
	c := Default()
	c.RulesDir = t.TempDir()
	if err := c.LoadFile(writeFile(t, "exports:\n  signing_key: /etc/vigil/export.key\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ExportSigningKey() != "/etc/vigil/export.key" {
		t.Errorf("signing key %q", c.ExportSigningKey())
	}
}

func TestGovernanceUnknownKeyRefused(t *testing.T) {
	c := Default()
	p := writeFile(t, "alerts:\n  score_dorp: 5\n")
	err := c.LoadFile(p)
	if err == nil || !strings.Contains(err.Error(), "score_dorp") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("unknown alerts key: %v", err)
	}
	p = writeFile(t, "notifications:\n  allow_network: [10.0.0.0/8]\n")
	if err := c.LoadFile(p); err == nil || !strings.Contains(err.Error(), "allow_network") {
		t.Fatalf("unknown notifications key: %v", err)
	}
}

func TestGovernanceValidateNamesFields(t *testing.T) {
	c := Default()
	c.RulesDir = t.TempDir()
	c.Alerts.FailingSeverities = []string{"high", "urgent"}
	c.Alerts.ScoreDrop = 0
	c.Alerts.BandFloor = "bad"
	c.Alerts.MassDriftHosts = 1
	c.Alerts.Interval = Duration(time.Second)
	c.Alerts.OverdueAfter = 0
	c.Notifications.AllowNetworks = []string{"10.0.0.0/8", "169.254.169.254"}
	c.Notifications.BaseURL = "ftp://x"
	c.Exports.MaxHosts = -1
	err := c.Validate()
	if err == nil {
		t.Fatal("expected errors")
	}
	for _, f := range []string{"alerts.failing_severities[1]:", "alerts.score_drop:", "alerts.band_floor:", "alerts.mass_drift_hosts:",
		"alerts.interval:", "alerts.overdue_after:", "notifications.allow_networks[1]:", "notifications.base_url:", "exports.max_hosts:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	for _, f := range []string{"allow_networks[0]", "failing_severities[0]", "expiring_within"} {
		if strings.Contains(err.Error(), f) {
			t.Errorf("valid %s reported: %v", f, err)
		}
	}
	c = Default()
	c.RulesDir = t.TempDir()
	c.Alerts.FailingSeverities = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "alerts.failing_severities:") {
		t.Errorf("empty failing_severities: %v", err)
	}
}
