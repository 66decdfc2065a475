package posture

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// driver opens a fresh, empty store of one kind.
type driver struct {
	name string
	open func(t testing.TB) store.Store
}

func drivers() []driver {
	return []driver{
		{"sqlite", func(t testing.TB) store.Store {
			t.Helper()
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t testing.TB) store.Store {
			t.Helper()
			url := pgtest.DB(t)
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
}

// forEachStore runs fn against a fresh store of every driver.
func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	for _, d := range drivers() {
		t.Run(d.name, func(t *testing.T) { fn(t, d.open(t)) })
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// obs is one rule's verdict in a test scan.
type obs struct {
	rule   string
	status result.Status
	sev    rule.Severity
}

// runScan records a finished scan of host at `at` reporting obs, each
// result stamped at `at`, and returns the scan.
func runScan(t testing.TB, st store.Store, hostID int64, at time.Time, rs ...obs) store.Scan {
	t.Helper()
	ctx := context.Background()
	sc, err := st.CreateScan(ctx, store.Scan{HostID: hostID, Trigger: "scheduled", BundleVersion: "1.0.0", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	results := make([]result.Result, len(rs))
	for i, o := range rs {
		sev := o.sev
		if sev == "" {
			sev = rule.Medium
		}
		results[i] = result.Result{
			RuleID: o.rule, Status: o.status, Severity: sev, Reason: "reason " + string(o.status), Time: at,
			Evidence: []result.Evidence{{Method: "file_content", Probe: "/etc/" + o.rule,
				Expected: "x", Actual: string(o.status), Time: at}},
		}
	}
	if _, err := st.Ingest(ctx, store.Batch{ScanID: sc.ID, Seq: 1, Results: results}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishScan(ctx, sc.ID, store.ScanCompleted, at.Add(time.Minute), result.Summarize(results)); err != nil {
		t.Fatal(err)
	}
	return sc
}

func upsertHost(t testing.TB, st store.Store, name string, groups ...string) store.Host {
	t.Helper()
	h, err := st.UpsertHost(context.Background(), store.Host{Name: name, Address: "127.0.0.2", OS: "debian 12", Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
