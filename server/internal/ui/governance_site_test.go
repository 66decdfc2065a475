package ui

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/export"
	"github.com/vigilfleet/vigil/server/internal/governance"
	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// govSite is a site whose API and UI carry the governance services, built
// as vigil-server builds them: notifier, governance service (the
// notifier as its sink, waivers for posture) and a signing exporter, over
// the same real SQLite store.
type govSite struct {
	*site
	gov  *governance.Service
	ntf  *notify.Notifier
	post *posture.Service
}

// newGovSite starts a govSite.
func newGovSite(t *testing.T) *govSite {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	idx, err := loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	post := posture.NewService(st, idx, time.Now)
	ntf, err := notify.New(notify.Options{Store: st, Box: box, RetryMax: 1, RetryWaitMin: 10 * time.Millisecond,
		RetryWaitMax: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gov, err := governance.New(governance.Config{Store: st, Posture: post, Sink: ntf})
	if err != nil {
		t.Fatal(err)
	}
	post.SetWaivers(gov)
	signer, err := export.LoadOrCreateSigner(filepath.Join(dir, "export-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	exp := export.New(export.Deps{Store: st, Posture: post, Signer: signer, ServerName: "ui-test"})
	pin := "sha256:" + strings.Repeat("ab", 32)
	a := api.New(api.Deps{Store: st, Posture: post, Sealer: box, CAPin: pin, AgentHeartbeat: 30 * time.Second, LoginLimit: 50,
		Governance: gov, Notifier: ntf, Exporter: exp})
	u, err := New(Deps{API: a, Store: st, Posture: post, CAPin: pin, GRPCAddr: "127.0.0.1:8444", Notifier: ntf})
	if err != nil {
		t.Fatal(err)
	}
	a.MountUI(u.Mount, u.NotFound)
	ts := httptest.NewTLSServer(a.Handler())
	t.Cleanup(ts.Close)
	return &govSite{site: &site{t: t, st: st, url: ts.URL, ts: ts}, gov: gov, ntf: ntf, post: post}
}

// fieldErrorRE finds the message shown next to a field: the element with
// id err-<field>.
func fieldError(body, id string) string {
	m := regexp.MustCompile(`<span class="field-error" id="err-` + regexp.QuoteMeta(id) + `">([^<]*)</span>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}
