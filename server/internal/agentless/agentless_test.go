package agentless

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/sshtarget"
	"github.com/vigilfleet/vigil/engine/testtarget"
	"github.com/vigilfleet/vigil/server/internal/secrets"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/server/internal/store/sqlite"
)

// unreachableIP is a loopback address outside testtarget's 2..250 range,
// so no test target ever listens there.
const unreachableIP = "127.0.0.252"

// rule writes one small rule file.
func ruleYAML(id, severity, check string) string {
	var b strings.Builder
	b.WriteString("id: " + id + "\ntitle: Test rule " + id + "\ndescription: A rule of the agentless tests.\n")
	b.WriteString("rationale: Testing.\nseverity: " + severity + "\ncategory: system\nimplementations:\n  - check:\n")
	for _, l := range strings.Split(strings.TrimSpace(check), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// writeRules writes a corpus of three rules: one critical rule on a marker
// file the test controls, one that passes and one that fails.
func writeRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rules := map[string]string{
		"marker-good.yml":  ruleYAML("marker-good", "critical", "method: file_content_match\npath: /etc/vigil-test/marker\npattern: '^state=good$'"),
		"shadow-there.yml": ruleYAML("shadow-there", "high", "method: file_exists\npath: /etc/shadow"),
		"absent-file.yml":  ruleYAML("absent-file", "low", "method: file_exists\npath: /etc/vigil-test/absent"),
	}
	for name, body := range rules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type fixture struct {
	st      *sqlite.Store
	box     *secrets.Box
	scanner *Scanner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := New(Config{Store: st, Box: box, RulesDir: writeRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Rules() != 3 {
		t.Fatalf("scanner loaded %d rules, want 3", sc.Rules())
	}
	return &fixture{st: st, box: box, scanner: sc}
}

// addHost creates a host and, unless cred is nil, stores its credential.
func (f *fixture) addHost(t *testing.T, name, addr string, cred *Credential) store.Host {
	t.Helper()
	ctx := context.Background()
	h, err := f.st.UpsertHost(ctx, store.Host{Name: name, Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		sealed, err := SealCredential(f.box, h.ID, *cred)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.SetCredential(ctx, h.ID, sealed); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rootCredential logs in to a target as root with its key.
func rootCredential(t *testing.T, tg *testtarget.Host) Credential {
	return Credential{
		User: testtarget.RootUser, Port: tg.Port(),
		PrivateKey: readFile(t, tg.RootKeyFile()), KnownHosts: readFile(t, tg.KnownHostsFile()),
	}
}

// otherKeyPEM is a fresh private key in OpenSSH PEM form, plus its signer.
func otherKeyPEM(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(blk)), signer
}

func markerFiles(state string) testtarget.Options {
	return testtarget.Options{Files: map[string]testtarget.File{
		"/etc/vigil-test/marker": {Data: []byte("state=" + state + "\n")},
	}}
}

func scanCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestScanOverSSH(t *testing.T) {
	tgs := testtarget.StartAll(t, markerFiles("good"), markerFiles("bad"))
	f := newFixture(t)
	for i, want := range []result.Status{result.Pass, result.Fail} {
		tg := tgs[i]
		cred := rootCredential(t, tg)
		h := f.addHost(t, "host-"+string(want), tg.IP(), &cred)
		rep, err := f.scanner.Scan(scanCtx(t), h)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		got := map[string]result.Status{}
		for _, r := range rep.Results {
			got[r.RuleID] = r.Status
		}
		if got["marker-good"] != want || got["shadow-there"] != result.Pass || got["absent-file"] != result.Fail {
			t.Fatalf("%s: results %v; want marker-good %s, shadow-there pass, absent-file fail", h.Name, got, want)
		}
		if rep.Host != h.Name || rep.Summary.Total != 3 {
			t.Fatalf("%s: report host %q total %d", h.Name, rep.Host, rep.Summary.Total)
		}
	}
}

func TestScanWithSudoAndPassword(t *testing.T) {
	tg := testtarget.Start(t, markerFiles("good"))
	f := newFixture(t)
	cred := Credential{
		User: testtarget.PasswordUser, Port: tg.Port(), Password: testtarget.Password,
		KnownHosts: readFile(t, tg.KnownHostsFile()), Sudo: true,
	}
	h := f.addHost(t, "pw-host", tg.IP(), &cred)
	rep, err := f.scanner.Scan(scanCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Pass != 2 || rep.Summary.Fail != 1 {
		t.Fatalf("summary %+v; want 2 pass, 1 fail", rep.Summary)
	}
}

func TestScanErrors(t *testing.T) {
	tg := testtarget.Start(t, markerFiles("good"))
	f := newFixture(t)

	wrongKeyPEM, _ := otherKeyPEM(t)
	_, impostor := otherKeyPEM(t)
	wrongHosts := knownhosts.Line([]string{knownhosts.Normalize(tg.Addr())}, impostor.PublicKey()) + "\n"

	good := rootCredential(t, tg)
	unreachable := good
	badKey := good
	badKey.PrivateKey = wrongKeyPEM
	mismatch := good
	mismatch.KnownHosts = wrongHosts

	cases := []struct {
		name   string
		addr   string
		cred   *Credential
		want   error
		reason string
	}{
		{"unreachable", unreachableIP, &unreachable, sshtarget.ErrUnreachable, "host unreachable"},
		{"host key mismatch", tg.IP(), &mismatch, sshtarget.ErrHostKeyMismatch, "host key mismatch"}, // names "the stored known_hosts"
		{"auth refused", tg.IP(), &badKey, sshtarget.ErrAuth, "authentication failed"},
		{"no credential", tg.IP(), nil, ErrNoCredential, "no SSH credential stored"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := f.addHost(t, "err-"+strings.ReplaceAll(c.name, " ", "-"), c.addr, c.cred)
			rep, err := f.scanner.Scan(scanCtx(t), h)
			if !errors.Is(err, c.want) {
				t.Fatalf("Scan = %v, %v; want %v", rep, err, c.want)
			}
			if !strings.Contains(err.Error(), h.Name) || strings.Contains(err.Error(), os.TempDir()) {
				t.Fatalf("error %q does not name host %s", err, h.Name)
			}
			if errors.Is(err, sshtarget.ErrHostKeyMismatch) && !strings.Contains(err.Error(), "the stored known_hosts, line 1") {
				t.Fatalf("mismatch error %q does not point at the stored known_hosts", err)
			}
			if got := Reason(err); got != c.reason {
				t.Fatalf("Reason = %q, want %q", got, c.reason)
			}
		})
	}
}

func TestCredentialEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	keyPEM, signer := otherKeyPEM(t)
	hosts := knownhosts.Line([]string{"[127.0.0.9]:2222"}, signer.PublicKey()) + "\n"
	cred := Credential{User: "root", PrivateKey: keyPEM, Password: "s3cret-pass-phrase", KnownHosts: hosts}
	h := f.addHost(t, "at-rest", "127.0.0.9", &cred)
	other := f.addHost(t, "other", "127.0.0.10", nil)

	sealed, err := f.st.Credential(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(keyPEM, "\n")[1] // a line of the base64 key text
	for _, secret := range []string{keyBody, "PRIVATE KEY", cred.Password, `"private_key"`} {
		if bytes.Contains(sealed, []byte(secret)) {
			t.Fatalf("stored credential contains %q in clear", secret)
		}
	}
	got, err := OpenCredential(f.box, h.ID, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got != cred {
		t.Fatalf("opened %+v, want %+v", got, cred)
	}
	// A credential copied to another host's row does not open there.
	if err := f.st.SetCredential(ctx, other.ID, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := f.scanner.Scan(ctx, other); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("scanning with another host's credential = %v; want ErrInvalidCredential", err)
	}
	// Another key opens nothing.
	otherBox, err := secrets.NewBox(bytes.Repeat([]byte{1}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCredential(otherBox, h.ID, sealed); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("OpenCredential with another key = %v; want ErrInvalidCredential", err)
	}
}

func TestCredentialValidate(t *testing.T) {
	keyPEM, signer := otherKeyPEM(t)
	hosts := knownhosts.Line([]string{"[127.0.0.9]:2222"}, signer.PublicKey()) + "\n"
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	encBlk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "enc", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(pem.EncodeToMemory(encBlk))
	ok := Credential{User: "root", PrivateKey: keyPEM, KnownHosts: hosts}

	cases := []struct {
		name string
		edit func(c *Credential)
		want string // "" means valid
	}{
		{"key", func(c *Credential) {}, ""},
		{"password only", func(c *Credential) { c.PrivateKey, c.Password = "", "pw" }, ""},
		{"comments in known_hosts", func(c *Credential) { c.KnownHosts = "# a comment\n\n" + hosts }, ""},
		{"no user", func(c *Credential) { c.User = "" }, "user is required"},
		{"bad port", func(c *Credential) { c.Port = 70000 }, "port 70000"},
		{"no secret", func(c *Credential) { c.PrivateKey = "" }, "private key or a password"},
		{"garbage key", func(c *Credential) { c.PrivateKey = "not a key" }, "private key"},
		{"encrypted key", func(c *Credential) { c.PrivateKey = encrypted }, "encrypted"},
		{"no known_hosts", func(c *Credential) { c.KnownHosts = "" }, "known_hosts is required"},
		{"only comments", func(c *Credential) { c.KnownHosts = "# nothing\n" }, "known_hosts is required"},
		{"malformed known_hosts", func(c *Credential) { c.KnownHosts = "127.0.0.9 ssh-ed25519 !!!\n" }, "known_hosts entry 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred := ok
			c.edit(&cred)
			err := cred.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate = %v; want ErrInvalidCredential mentioning %q", err, c.want)
			}
		})
	}
}

func TestNewRefusesBadCorpus(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("id: bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	box, _ := secrets.NewBox(make([]byte, secrets.KeySize))
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(Config{Store: st, Box: box, RulesDir: dir}); err == nil || !strings.Contains(err.Error(), "bad.yml") {
		t.Fatalf("New with a broken rule = %v; want an error naming bad.yml", err)
	}
}

func TestAADMatchesSealCredential(t *testing.T) {
	box, err := secrets.NewBox(bytes.Repeat([]byte{3}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, signer := otherKeyPEM(t)
	cred := Credential{User: "root", PrivateKey: keyPEM,
		KnownHosts: knownhosts.Line([]string{"127.0.0.9"}, signer.PublicKey()) + "\n"}
	plain, err := json.Marshal(cred)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal(plain, AAD(42)) // as the API seals through its Sealer
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenCredential(box, 42, sealed); err != nil || got != cred {
		t.Fatalf("OpenCredential = %+v, %v; want the sealed credential", got, err)
	}
	if _, err := OpenCredential(box, 43, sealed); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("OpenCredential for another host = %v; want ErrInvalidCredential", err)
	}
}
