package schedule

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/server/internal/agentless"
	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/postgres"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// unreachableIP is a loopback address outside testtarget's 2..250 range,
// so no test target ever listens there.
const unreachableIP = "127.0.0.252"

// markerPath and marker2Path are the files the two critical rules read;
// tests flip them between good and bad.
const (
	markerPath  = "/etc/vigil-test/marker"
	marker2Path = "/etc/vigil-test/marker2"
)

func ruleYAML(id, severity, check string) string {
	var b strings.Builder
	b.WriteString("id: " + id + "\ntitle: Test rule " + id + "\ndescription: A rule of the scheduler tests.\n")
	b.WriteString("rationale: Testing.\nseverity: " + severity + "\ncategory: system\nimplementations:\n  - check:\n")
	for _, l := range strings.Split(strings.TrimSpace(check), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// writeRules writes five rules: two critical ones on the marker files, two
// that pass on any Debian target and one that always fails. Good markers
// score 80 (band good); a bad one makes the band critical.
func writeRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rules := map[string]string{
		"marker-good.yml":  ruleYAML("marker-good", "critical", "method: file_content_match\npath: "+markerPath+"\npattern: '^state=good$'"),
		"marker2-good.yml": ruleYAML("marker2-good", "critical", "method: file_content_match\npath: "+marker2Path+"\npattern: '^state=good$'"),
		"shadow-there.yml": ruleYAML("shadow-there", "high", "method: file_exists\npath: /etc/shadow"),
		"passwd-there.yml": ruleYAML("passwd-there", "medium", "method: file_exists\npath: /etc/passwd"),
		"absent-file.yml":  ruleYAML("absent-file", "low", "method: file_exists\npath: /etc/vigil-test/absent"),
	}
	for name, body := range rules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// marker starts a target whose first marker is in state and whose second is good.
func marker(state string) testtarget.Options {
	return testtarget.Options{Files: map[string]testtarget.File{
		markerPath:  {Data: []byte("state=" + state + "\n")},
		marker2Path: {Data: []byte("state=good\n")},
	}}
}

// env is one server's parts over one store: the real scanner and posture.
type env struct {
	st      store.Store
	box     *secrets.Box
	rules   string
	scanner *agentless.Scanner
	posture *posture.Service
}

func newEnv(t *testing.T, st store.Store, box *secrets.Box, rules string) *env {
	t.Helper()
	sc, err := agentless.New(agentless.Config{Store: st, Box: box, RulesDir: rules})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := posture.LoadIndex(rules)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, box: box, rules: rules, scanner: sc, posture: posture.NewService(st, idx, time.Now)}
}

func newSQLiteEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, st, box, writeRules(t))
}

func (e *env) scheduler(t *testing.T, owner string, scanner Scanner) *Scheduler {
	t.Helper()
	if scanner == nil {
		scanner = e.scanner
	}
	s, err := New(Config{
		Store: e.st, Posture: e.posture, Scanner: scanner, Owner: owner,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// credential logs in to tg as root with its key and known_hosts.
func credential(t *testing.T, tg *testtarget.Host) agentless.Credential {
	t.Helper()
	key, err := os.ReadFile(tg.RootKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	kh, err := os.ReadFile(tg.KnownHostsFile())
	if err != nil {
		t.Fatal(err)
	}
	return agentless.Credential{User: testtarget.RootUser, Port: tg.Port(), PrivateKey: string(key), KnownHosts: string(kh)}
}

// addHost creates an agentless host at addr and stores cred (unless nil).
func (e *env) addHost(t *testing.T, name, addr string, cred *agentless.Credential) store.Host {
	t.Helper()
	ctx := context.Background()
	h, err := e.st.UpsertHost(ctx, store.Host{Name: name, Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		sealed, err := agentless.SealCredential(e.box, h.ID, *cred)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetCredential(ctx, h.ID, sealed); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (e *env) host(t *testing.T, id int64) store.Host {
	t.Helper()
	h, err := e.st.Host(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// scans returns a host's scans, oldest first.
func (e *env) scans(t *testing.T, hostID int64) []store.Scan {
	t.Helper()
	ss, err := e.st.Scans(context.Background(), store.ScanFilter{HostID: hostID})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(ss)-1; i < j; i, j = i+1, j-1 {
		ss[i], ss[j] = ss[j], ss[i]
	}
	return ss
}

func triggers(ss []store.Scan) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Trigger
	}
	return out
}

func runOnce(t *testing.T, s *Scheduler, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if n != want {
		t.Fatalf("RunOnce claimed %d hosts, want %d", n, want)
	}
}

// between fails unless lo <= got <= hi.
func between(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Fatalf("%s = %v, want within [%v, %v]", what, got, lo, hi)
	}
}

func TestFirstScanThenIntervalOfBand(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "web1", tg.IP(), &cred)
	s := e.scheduler(t, "replica-a", nil)

	before := time.Now()
	runOnce(t, s, 1) // a never-scanned host is due at once
	after := time.Now()

	ss := e.scans(t, h.ID)
	if len(ss) != 1 || ss[0].Trigger != "first" || ss[0].Status != store.ScanCompleted {
		t.Fatalf("scans %+v; want one completed scan triggered by first", ss)
	}
	if c := ss[0].Counts; c.Pass != 4 || c.Fail != 1 || c.Total != 5 {
		t.Fatalf("scan counts %+v; want 4 pass, 1 fail", c)
	}
	res, err := e.st.ScanResults(context.Background(), ss[0].ID)
	if err != nil || len(res) != 5 {
		t.Fatalf("scan results: %d, %v; want 5", len(res), err)
	}
	got := e.host(t, h.ID)
	if got.Band != string(posture.BandGood) || got.Score != 80 {
		t.Fatalf("host band %q score %v; want good, 80", got.Band, got.Score)
	}
	between(t, "LastScanAt", got.LastScanAt, before.Truncate(time.Microsecond), after)
	iv := DefaultIntervals()
	between(t, "NextScanAt", got.NextScanAt,
		before.Add(iv.Good-time.Duration(float64(iv.Good)*iv.Jitter)).Truncate(time.Microsecond), after.Add(iv.Good))

	runOnce(t, s, 0) // not due again before its interval
}

func TestCriticalFailureTriggersOneConfirmingRescan(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "db1", tg.IP(), &cred)
	s := e.scheduler(t, "replica-a", nil)
	ctx := context.Background()

	runOnce(t, s, 1)
	if got := e.host(t, h.ID).Band; got != string(posture.BandGood) {
		t.Fatalf("band after first scan %q, want good", got)
	}

	// The critical rule starts failing; an operator asks for a scan.
	if _, _, err := tg.Exec(ctx, "echo state=bad > "+markerPath); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RequestScan(ctx, h.ID, "manual", time.Now()); err != nil {
		t.Fatal(err)
	}
	runOnce(t, s, 1) // manual: sees the new critical failure, asks for a re-scan
	// Before the re-scan runs, the second critical rule starts failing too.
	// The re-scan sees that as new, yet must not ask for another re-scan:
	// only a re-scan's absence of a follow-up keeps flapping hosts bounded.
	if _, _, err := tg.Exec(ctx, "echo state=bad > "+marker2Path); err != nil {
		t.Fatal(err)
	}
	runOnce(t, s, 1) // the confirming re-scan, at once
	before := time.Now()
	for range 3 {
		runOnce(t, s, 0) // and no more
	}

	ss := e.scans(t, h.ID)
	if got := strings.Join(triggers(ss), ","); got != "first,manual,rescan" {
		t.Fatalf("scan triggers %s; want first,manual,rescan", got)
	}
	for i, want := range []int{1, 2, 3} {
		if sc := ss[i]; sc.Status != store.ScanCompleted || sc.Counts.Fail != want {
			t.Fatalf("scan %d (%s): status %s counts %+v; want completed with %d failures", sc.ID, sc.Trigger, sc.Status, sc.Counts, want)
		}
	}
	got := e.host(t, h.ID)
	if got.Band != string(posture.BandCritical) {
		t.Fatalf("band %q, want critical", got.Band)
	}
	iv := DefaultIntervals()
	between(t, "NextScanAt", got.NextScanAt,
		got.LastScanAt.Add(iv.Critical-time.Duration(float64(iv.Critical)*iv.Jitter)), before.Add(iv.Critical))
}

func TestRescanNeverAsksForAnother(t *testing.T) {
	// A host that fails its critical rule from the first scan on gets one
	// confirming re-scan, which does not ask for another even though, to
	// posture, the rule is failing.
	tg := testtarget.Start(t, marker("bad"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "new-and-bad", tg.IP(), &cred)
	s := e.scheduler(t, "replica-a", nil)

	runOnce(t, s, 1)
	runOnce(t, s, 1)
	runOnce(t, s, 0)
	if got := strings.Join(triggers(e.scans(t, h.ID)), ","); got != "first,rescan" {
		t.Fatalf("scan triggers %s; want first,rescan", got)
	}
}

func TestFailedHostsDoNotStopOthers(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	good := credential(t, tg)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	mismatch := good
	mismatch.KnownHosts = knownhosts.Line([]string{knownhosts.Normalize(tg.Addr())}, impostor.PublicKey()) + "\n"

	ok := e.addHost(t, "reachable", tg.IP(), &good)
	down := e.addHost(t, "unreachable", unreachableIP, &good)
	mitm := e.addHost(t, "wrong-key", tg.IP(), &mismatch)
	nocred := e.addHost(t, "no-credential", tg.IP(), nil)
	s := e.scheduler(t, "replica-a", nil)

	before := time.Now()
	runOnce(t, s, 4)
	after := time.Now()

	if ss := e.scans(t, ok.ID); len(ss) != 1 || ss[0].Status != store.ScanCompleted {
		t.Fatalf("reachable host scans %+v; want one completed", ss)
	}
	for _, c := range []struct {
		h    store.Host
		want string
	}{
		{down, "host unreachable"},
		{mitm, "host key mismatch"},
		{nocred, "no SSH credential stored"},
	} {
		ss := e.scans(t, c.h.ID)
		if len(ss) != 1 || ss[0].Status != store.ScanFailed {
			t.Fatalf("%s: scans %+v; want one failed scan", c.h.Name, ss)
		}
		if !strings.Contains(ss[0].Message, c.want) || !strings.Contains(ss[0].Message, c.h.Name) {
			t.Fatalf("%s: message %q; want it to name the host and say %q", c.h.Name, ss[0].Message, c.want)
		}
		if ss[0].FinishedAt.IsZero() {
			t.Fatalf("%s: failed scan has no end time", c.h.Name)
		}
		got := e.host(t, c.h.ID)
		between(t, c.h.Name+" retry NextScanAt", got.NextScanAt,
			before.Add(DefaultRetryAfter).Truncate(time.Microsecond), after.Add(DefaultRetryAfter))
		if got.Band != "" || !got.LastScanAt.IsZero() {
			t.Fatalf("%s: a failed scan set band %q / last scan %v", c.h.Name, got.Band, got.LastScanAt)
		}
	}
	runOnce(t, s, 0) // failures wait for RetryAfter, they do not spin
}

// cancellingScanner stands in for a server shutting down mid-scan: it
// cancels the scheduler's context, then runs the real scan with it.
type cancellingScanner struct {
	real   Scanner
	cancel context.CancelFunc
}

func (c cancellingScanner) Scan(ctx context.Context, h store.Host) (*engine.Report, error) {
	c.cancel()
	return c.real.Scan(ctx, h)
}

func TestShutdownReleasesLease(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "web1", tg.IP(), &cred)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopping := e.scheduler(t, "replica-a", cancellingScanner{real: e.scanner, cancel: cancel})
	n, err := stopping.RunOnce(ctx)
	if n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 1 host and no store error", n, err)
	}
	ss := e.scans(t, h.ID)
	if len(ss) != 1 || ss[0].Status != store.ScanFailed || !strings.Contains(ss[0].Message, "interrupted") {
		t.Fatalf("scans %+v; want one failed scan saying it was interrupted", ss)
	}
	if got := e.host(t, h.ID); got.NextScanAt.After(time.Now()) {
		t.Fatalf("interrupted host due at %v; want due at once for another replica", got.NextScanAt)
	}
	// Another replica takes it over immediately, for the same reason.
	runOnce(t, e.scheduler(t, "replica-b", nil), 1)
	ss = e.scans(t, h.ID)
	if len(ss) != 2 || ss[1].Status != store.ScanCompleted || ss[1].Trigger != "first" {
		t.Fatalf("scans %+v; want the retry completed with trigger first", ss)
	}
}

func TestRunScansAndWakes(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "web1", tg.IP(), &cred)
	s, err := New(Config{
		Store: e.st, Posture: e.posture, Scanner: e.scanner, Owner: "replica-a",
		Poll:   time.Hour, // only the first pass and Wake can make it scan within the test
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil after cancel", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("Run did not return within a minute of cancel")
		}
	}()

	waitScans := func(n int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			ss := e.scans(t, h.ID)
			if len(ss) == n && ss[n-1].Status == store.ScanCompleted {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("host has scans %+v; want %d, the last completed", e.scans(t, h.ID), n)
	}
	waitScans(1)
	if err := e.st.RequestScan(context.Background(), h.ID, "manual", time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Wake()
	s.Wake() // never blocks, even with a wake pending
	waitScans(2)
	if got := e.scans(t, h.ID)[1].Trigger; got != "manual" {
		t.Fatalf("second scan trigger %q, want manual", got)
	}
}

func TestNewValidates(t *testing.T) {
	e := newSQLiteEnv(t)
	bad := DefaultIntervals()
	bad.Good = 0
	if _, err := New(Config{Store: e.st, Posture: e.posture, Scanner: e.scanner, Intervals: bad}); err == nil ||
		!strings.Contains(err.Error(), "Good") {
		t.Fatalf("New with a zero Good interval = %v; want an error naming Good", err)
	}
	if _, err := New(Config{Store: e.st, Posture: e.posture}); err == nil {
		t.Fatal("New without a Scanner succeeded")
	}
	s, err := New(Config{Store: e.st, Posture: e.posture, Scanner: e.scanner})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Owner == "" || s.cfg.Workers != DefaultWorkers || s.cfg.BatchSize != DefaultBatchSize ||
		s.cfg.Lease != DefaultLease || s.cfg.RetryAfter != DefaultRetryAfter || s.cfg.Poll != DefaultPoll {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
}

func TestIngestInBatches(t *testing.T) {
	tg := testtarget.Start(t, marker("good"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "web1", tg.IP(), &cred)
	s, err := New(Config{Store: e.st, Posture: e.posture, Scanner: e.scanner, Owner: "a", BatchSize: 3,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, s, 1)
	ss := e.scans(t, h.ID)
	if len(ss) != 1 {
		t.Fatalf("scans %+v", ss)
	}
	// Batches were 1 (3 results) and 2 (2 results): replaying either changes nothing.
	for seq, n := range map[int64]int{1: 3, 2: 2} {
		replay := make([]result.Result, n)
		for i := range replay {
			replay[i] = result.Result{RuleID: "replayed", Status: result.Fail}
		}
		st, err := e.st.Ingest(context.Background(), store.Batch{ScanID: ss[0].ID, Seq: seq, Results: replay})
		if err != nil || !st.Replayed {
			t.Fatalf("replaying batch %d: %+v, %v; want Replayed", seq, st, err)
		}
	}
	res, err := e.st.ScanResults(context.Background(), ss[0].ID)
	if err != nil || len(res) != 5 {
		t.Fatalf("results %d, %v; want 5", len(res), err)
	}
}

func TestTwoReplicasOnPostgres(t *testing.T) {
	tgs := testtarget.StartAll(t, marker("good"), marker("good"))
	url := pgtest.DB(t)
	ctx := context.Background()
	open := func() store.Store {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	box, err := secrets.NewBox([]byte(strings.Repeat("k", secrets.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	rules := writeRules(t)
	a, b := newEnv(t, open(), box, rules), newEnv(t, open(), box, rules)

	const hosts = 20
	ids := make([]int64, hosts)
	for i := range hosts {
		tg := tgs[i%len(tgs)]
		cred := credential(t, tg)
		ids[i] = a.addHost(t, fmt.Sprintf("host-%02d", i), tg.IP(), &cred).ID
	}
	replicas := []*Scheduler{a.scheduler(t, "replica-a", nil), b.scheduler(t, "replica-b", nil)}

	claimed := make([]int, len(replicas))
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatalf("hosts still due after %d rounds (claimed %v)", round, claimed)
		}
		counts := make([]int, len(replicas))
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		for i, s := range replicas {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				counts[i], errs[i] = s.RunOnce(rctx)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for i, n := range counts {
			claimed[i] += n
		}
		if counts[0]+counts[1] == 0 {
			break
		}
	}
	if claimed[0]+claimed[1] != hosts {
		t.Fatalf("replicas claimed %v hosts in all; want %d together", claimed, hosts)
	}
	for _, id := range ids {
		ss := a.scans(t, id)
		if len(ss) != 1 || ss[0].Status != store.ScanCompleted {
			t.Fatalf("host %d scans %+v; want exactly one completed scan", id, ss)
		}
		if got := a.host(t, id); got.Band != string(posture.BandGood) {
			t.Fatalf("host %d band %q, want good", id, got.Band)
		}
	}
	t.Logf("claims per replica: %v", claimed)
}

// brokenPosture stands in for a posture service whose store writes fail.
type brokenPosture struct{}

func (brokenPosture) RecordScan(ctx context.Context, hostID, scanID int64) (posture.Outcome, error) {
	return posture.Outcome{}, errors.New("posture: snapshots table unavailable")
}

func TestPostureFailureSchedulesByReport(t *testing.T) {
	tg := testtarget.Start(t, marker("bad"))
	e := newSQLiteEnv(t)
	cred := credential(t, tg)
	h := e.addHost(t, "web1", tg.IP(), &cred)
	s, err := New(Config{Store: e.st, Posture: brokenPosture{}, Scanner: e.scanner, Owner: "a",
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	runOnce(t, s, 1)
	after := time.Now()
	if ss := e.scans(t, h.ID); len(ss) != 1 || ss[0].Status != store.ScanCompleted {
		t.Fatalf("scans %+v; want the scan completed despite posture failing", ss)
	}
	got := e.host(t, h.ID)
	if got.Band != string(posture.BandCritical) || got.Score != 60 {
		t.Fatalf("band %q score %v; want critical, 60 from the report itself", got.Band, got.Score)
	}
	iv := DefaultIntervals()
	between(t, "NextScanAt", got.NextScanAt,
		before.Add(iv.Critical-time.Duration(float64(iv.Critical)*iv.Jitter)).Truncate(time.Microsecond), after.Add(iv.Critical))
}
