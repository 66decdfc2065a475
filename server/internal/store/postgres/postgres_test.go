package postgres

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfleet/vigil/server/internal/pgtest"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t testing.TB) store.Store {
	t.Helper()
	url := pgtest.DB(t)
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func BenchmarkIngest500(b *testing.B) { storetest.Bench(b, open) }

// Replicas starting together serialise on the advisory lock: each
// migration is applied once and every replica opens.
func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	url := pgtest.DB(t)
	storetest.OpenConcurrently(t, 4, func() (io.Closer, error) { return Open(context.Background(), url) })
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows, want %d (one per embedded migration)", n, len(files))
	}
}

// Altering a stored audit entry behind the store's back must be caught by
// VerifyAudit, naming the altered entry.
func TestAuditTamperDetected(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AuditTamper(t, s, func(id int64) error {
		_, err := s.pool.Exec(ctx, `UPDATE audit_log SET actor = 'x' WHERE id = $1`, id)
		return err
	})
}

// Two stores on one database stand for two replicas: their concurrent
// appends must still form one chain, which only a lock held in the
// database (not in the process) can give.
func TestAuditChainAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	var replicas []*Store
	for range 2 {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		replicas = append(replicas, s)
	}
	const perReplica = 25
	errs := make(chan error, 2*perReplica)
	var wg sync.WaitGroup
	for _, s := range replicas {
		for i := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "system", Action: "replica.test", Target: fmt.Sprint(i)})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, err := replicas[1].Audit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2*perReplica {
		t.Fatalf("%d entries, want %d", len(entries), 2*perReplica)
	}
	if err := store.VerifyAudit(entries); err != nil {
		t.Fatal(err)
	}
}

// Two stores on one database stand for two replicas racing for the same
// due hosts: FOR UPDATE SKIP LOCKED must hand every host to exactly one
// of them, whatever the interleaving of their small claims.
func TestClaimDueAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	var replicas []*Store
	for range 2 {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		replicas = append(replicas, s)
	}
	const hosts = 40
	now := time.Now() // UpsertHost makes a new host due at the wall clock's now
	want := map[int64]bool{}
	for i := range hosts {
		h, err := replicas[0].UpsertHost(ctx, store.Host{Name: fmt.Sprintf("due-%02d", i), Address: "127.0.0.2"})
		if err != nil {
			t.Fatal(err)
		}
		want[h.ID] = true // a new host is due at once
	}
	type claimed struct {
		owner string
		ids   []int64
		err   error
	}
	out := make(chan claimed, 2*4)
	var wg sync.WaitGroup
	for r, s := range replicas {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := claimed{owner: fmt.Sprintf("replica-%d/worker-%d", r, w)}
				// Bounded: 40 hosts in claims of 3 end well before 40 rounds.
				for range hosts {
					cl, err := s.ClaimDue(ctx, store.ClaimRequest{Owner: c.owner, Now: now.Add(time.Hour),
						Limit: 3, Lease: 10 * time.Minute})
					if err != nil {
						c.err = err
						break
					}
					if len(cl) == 0 {
						break
					}
					for _, x := range cl {
						c.ids = append(c.ids, x.HostID)
					}
				}
				out <- c
			}()
		}
	}
	wg.Wait()
	close(out)
	owners := map[int64]string{}
	perReplica := map[string]int{}
	for c := range out {
		if c.err != nil {
			t.Fatalf("%s: %v", c.owner, c.err)
		}
		for _, id := range c.ids {
			if prev, dup := owners[id]; dup {
				t.Errorf("host %d claimed by %s and by %s", id, prev, c.owner)
			}
			owners[id] = c.owner
			perReplica[c.owner[:len("replica-0")]]++
		}
	}
	if len(owners) != len(want) {
		t.Errorf("%d hosts claimed, want each of the %d due hosts once", len(owners), len(want))
	}
	for id := range want {
		if _, ok := owners[id]; !ok {
			t.Errorf("host %d never claimed", id)
		}
	}
	// Every lease in the database names the owner that got the claim.
	rows, err := replicas[1].pool.Query(ctx, `SELECT id, lease_owner FROM hosts WHERE lease_owner IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var owner string
	n := 0
	if _, err := pgx.ForEachRow(rows, []any{&id, &owner}, func() error {
		n++
		if owners[id] != owner {
			t.Errorf("host %d leased to %q in the database, claimed by %q", id, owner, owners[id])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != hosts {
		t.Errorf("%d leases in the database, want %d", n, hosts)
	}
	t.Logf("claims per replica: %v", perReplica)
}
