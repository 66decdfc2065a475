package app

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"

	"github.com/vigilfleet/vigil/server/internal/config"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/metrics"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// TestThresholdsFromConfig keeps the configured defaults and governance's
// defaults one set of numbers.
func TestThresholdsFromConfig(t *testing.T) {
	th, err := thresholds(config.Default().Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if want := governance.DefaultThresholds(); !reflect.DeepEqual(th, want) {
		t.Errorf("thresholds from default config = %+v, want %+v", th, want)
	}
	a := config.Default().Alerts
	a.FailingSeverities = []string{"urgent"}
	if _, err := thresholds(a); err == nil {
		t.Error("an unknown failing severity was accepted")
	}
}

// TestBuildGovernance wires the governance parts over a real store: the
// export key is created where configured, posture applies exceptions and
// evaluations feed the alerts gauge.
func TestBuildGovernance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.RulesDir = "../../../rules"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	met := metrics.New()
	st := met.WrapStore(raw)
	box, err := secrets.LoadOrCreateKey(filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := posture.LoadIndex(cfg.RulesDir)
	if err != nil {
		t.Fatal(err)
	}
	post := posture.NewService(st, idx, nil)
	notifier, gov, exporter, err := buildGovernance(cfg, st, box, post, met, "vigil-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if notifier == nil || gov == nil || exporter == nil {
		t.Fatalf("built %v %v %v", notifier, gov, exporter)
	}
	fi, err := os.Stat(filepath.Join(dir, "export-signing.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export signing key: %v %v, want a 0600 file", fi, err)
	}
	// A poor host raises one band_drop alert: the gauge says so.
	h, err := st.UpsertHost(ctx, store.Host{Name: "web1", Address: "127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetHostPosture(ctx, h.ID, h.NextScanAt, 30, "poor"); err != nil {
		t.Fatal(err)
	}
	if _, err := gov.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(met.Alerts.WithLabelValues("active")); got != 1 {
		t.Errorf("alerts{state=active} = %v, want 1", got)
	}
	// The posture service asks governance about exceptions: an approved
	// one counts the failure it covers as accepted.
	ruleID := idx.Rules()[0].ID
	at := h.NextScanAt
	sc, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: "manual", BundleVersion: "1", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	res := []result.Result{{RuleID: ruleID, Status: result.Fail, Severity: rule.Medium, Time: at}}
	if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: res}); err != nil {
		t.Fatal(err)
	}
	ex, err := gov.RequestException(ctx, "alice", governance.ExceptionRequest{RuleID: ruleID, Justification: "accepted for the test run"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gov.DecideException(ctx, "bob", ex.ID, store.ExceptionApproved, ""); err != nil {
		t.Fatal(err)
	}
	fp, err := post.Fleet(ctx, posture.FleetQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if fp.Counts.Accepted != 1 || fp.Score != 0 || fp.ScoreWithExceptions != 100 {
		t.Errorf("fleet counts %+v score %v / %v, want the failure accepted", fp.Counts, fp.Score, fp.ScoreWithExceptions)
	}
}
