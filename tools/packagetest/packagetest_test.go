package packagetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/engine/testtarget"
)

// Two versions in the shape `make package` derives from git (commits
// since the start, then the short hash): v2 must sort above v1 for dpkg and
// rpm although its hash sorts lower, which is what makes upgrades work.
const (
	v1 = "0.0.0~git9.fa11ed0"
	v2 = "0.0.0~git10.0dd5eed"
)

// cmdTimeout bounds one external command; buildTimeout one `make package`.
const (
	cmdTimeout   = 3 * time.Minute
	buildTimeout = 15 * time.Minute
)

// fixture is what the subtests share: the repository, the signing key and
// the two built package sets.
type fixture struct {
	repo   string
	tmp    string
	gnupg  string // GNUPGHOME holding the throw-away key
	keyID  string // long key id, upper-case hex
	secKey string // armored secret key file given to make as SIGNING_KEY
	pubKey string // armored public key file
	dist1  string // v1, amd64 and arm64, signed
	dist2  string // v2, amd64, unsigned
}

func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every package and installs debs in a chroot; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, mounts); .ci/run runs `make test` as root")
	}
	for _, tool := range []string{"make", "dpkg-deb", "rpm", "gpg", "debsig-verify", "unshare", "chroot"} {
		if _, err := lookPath(tool); err != nil {
			t.Skipf("%s not found: apt-get install rpm gnupg debsig-verify (.ci/run installs them)", tool)
		}
	}
	root := testtarget.Require(t)

	f := &fixture{tmp: t.TempDir()}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	f.makeKey(t)

	t.Run("RejectsInvalidVersion", f.testRejectsInvalidVersion)
	t.Run("VersionsSort", f.testVersionsSort)

	f.dist1 = filepath.Join(f.tmp, "dist1")
	f.dist2 = filepath.Join(f.tmp, "dist2")
	f.build(t, f.dist1, v1, "amd64 arm64", f.secKey, f.bundleKey(t))
	f.build(t, f.dist2, v2, "amd64", "", "")

	t.Run("Names", f.testNames)
	t.Run("DebContents", f.testDebContents)
	t.Run("RPMContents", f.testRPMContents)
	t.Run("Binaries", f.testBinaries)
	t.Run("RPMSignature", f.testRPMSignature)
	t.Run("DebSignature", f.testDebSignature)
	t.Run("InstallUpgradeRemove", func(t *testing.T) { f.testInstallUpgradeRemove(t, root) })
	t.Run("RPMInstallUpgradeErase", func(t *testing.T) { f.testRPMInstallUpgradeErase(t, root) })
}

// makeKey generates a throw-away RSA signing key in a private GNUPGHOME and
// exports it; nothing of it is committed or outlives the test.
func (f *fixture) makeKey(t *testing.T) {
	t.Helper()
	f.gnupg = filepath.Join(f.tmp, "gnupg")
	if err := os.Mkdir(f.gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	f.gpg(t, "--passphrase", "", "--quick-gen-key", "Vigil Test Packages <packages@vigil.invalid>", "rsa3072", "sign", "1d")
	out := f.gpg(t, "--with-colons", "--list-secret-keys")
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Split(line, ":"); fields[0] == "sec" && len(fields) > 4 {
			f.keyID = strings.ToUpper(fields[4])
			break
		}
	}
	if len(f.keyID) != 16 {
		t.Fatalf("no key id in gpg output:\n%s", out)
	}
	f.secKey = filepath.Join(f.tmp, "signing.asc")
	f.pubKey = filepath.Join(f.tmp, "signing.pub.asc")
	writeFile(t, f.secKey, f.gpg(t, "--passphrase", "", "--armor", "--export-secret-keys", f.keyID), 0o600)
	writeFile(t, f.pubKey, f.gpg(t, "--armor", "--export", f.keyID), 0o644)
}

// bundleKey writes a throw-away Ed25519 public key (PKIX PEM) for
// BUNDLE_PUBKEY, which vigil-rules must then carry.
func (f *fixture) bundleKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.tmp, "bundle.pub")
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), 0o600)
	return path
}

// gpg runs gpg in batch mode on the test's key store.
func (f *fixture) gpg(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--homedir", f.gnupg, "--batch", "--pinentry-mode", "loopback"}, args...)
	return run(t, "", nil, "gpg", full...)
}

// build runs `make package` into dist.
func (f *fixture) build(t *testing.T, dist, version, arches, key, bundleKey string) {
	t.Helper()
	args := []string{"-C", f.repo, "--no-print-directory", "package",
		"DIST=" + dist, "VERSION=" + version, "PKG_ARCHES=" + arches}
	if key != "" {
		args = append(args, "SIGNING_KEY="+key)
	}
	if bundleKey != "" {
		args = append(args, "BUNDLE_PUBKEY="+bundleKey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Env = append(os.Environ(), "NFPM_PASSPHRASE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (f *fixture) testRejectsInvalidVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// A hyphen is the deb revision separator and invalid in an rpm version.
	cmd := exec.CommandContext(ctx, "make", "-C", f.repo, "--no-print-directory", "package",
		"DIST="+filepath.Join(f.tmp, "never"), "VERSION=1.0-rc1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a valid deb and rpm version") {
		t.Fatalf("make package VERSION=1.0-rc1: err=%v, want a refusal; output:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(f.tmp, "never")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused build created its dist directory (stat: %v)", err)
	}
}

func (f *fixture) testVersionsSort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	for _, c := range []struct{ lower, higher string }{
		{v1, v2},
		{"0.0.0~git99.fff", "0.1.0+git0.aaa"}, // before the first tag < first tag
		{"0.1.0+git9.fff", "0.1.0+git10.aaa"},
		{"0.1.0+git10.aaa", "0.2.0+git0.bbb"},
	} {
		if err := exec.CommandContext(ctx, "dpkg", "--compare-versions", c.lower, "lt", c.higher).Run(); err != nil {
			t.Errorf("dpkg: %s is not below %s", c.lower, c.higher)
		}
		expr := fmt.Sprintf(`%%{lua: print(rpm.vercmp("%s", "%s"))}`, c.lower, c.higher)
		if out := strings.TrimSpace(run(t, "", nil, "rpm", "--eval", expr)); out != "-1" {
			t.Errorf("rpm: vercmp(%s, %s) = %s, want -1", c.lower, c.higher, out)
		}
	}
}

// names are nfpm's default file names for one version.
func names(version string, arches ...string) []string {
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}
	var n []string
	for _, a := range arches {
		for _, p := range []string{"vigil-agent", "vigil-server"} {
			n = append(n, fmt.Sprintf("%s_%s_%s.deb", p, version, a), fmt.Sprintf("%s-%s-1.%s.rpm", p, version, rpmArch[a]))
		}
	}
	return append(n, fmt.Sprintf("vigil-rules_%s_all.deb", version), fmt.Sprintf("vigil-rules-%s-1.noarch.rpm", version))
}

func (f *fixture) testNames(t *testing.T) {
	for _, c := range []struct {
		dist string
		want []string
	}{{f.dist1, names(v1, "amd64", "arm64")}, {f.dist2, names(v2, "amd64")}} {
		entries, err := os.ReadDir(c.dist)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes", e.Name(), info.Size())
		}
		if !slices.Equal(sorted(got), sorted(c.want)) {
			t.Errorf("%s holds\n  %v\nwant\n  %v", c.dist, sorted(got), sorted(c.want))
		}
	}
}

// wantFile is one packaged path with its tar listing's mode and owner.
type wantFile struct{ path, mode, owner string }

var (
	agentFiles = []wantFile{
		{"/usr/bin/vigil-agent", "-rwxr-xr-x", "root/root"},
		{"/usr/bin/vigil", "-rwxr-xr-x", "root/root"},
		{"/usr/lib/systemd/system/vigil-agent.service", "-rw-r--r--", "root/root"},
		{"/etc/vigil/agent.yaml", "-rw-------", "root/root"},
		{"/usr/share/man/man8/vigil-agent.8", "-rw-r--r--", "root/root"},
		{"/usr/share/man/man1/vigil.1", "-rw-r--r--", "root/root"},
	}
	serverFiles = []wantFile{
		{"/usr/bin/vigil-server", "-rwxr-xr-x", "root/root"},
		{"/usr/lib/systemd/system/vigil-server.service", "-rw-r--r--", "root/root"},
		{"/etc/vigil/server.yaml", "-rw-r-----", "root/vigil-server"},
		{"/usr/share/man/man8/vigil-server.8", "-rw-r--r--", "root/root"},
	}
	rulesFiles = []wantFile{
		{"/usr/share/vigil/rules/defaults.yml", "-rw-r--r--", "root/root"},
		{"/usr/share/vigil/rules", "drwxr-xr-x", "root/root"},
		{"/usr/share/vigil/keys", "drwxr-xr-x", "root/root"},
		{"/usr/share/vigil/keys/vigil-bundle.pub", "-rw-r--r--", "root/root"},
		{"/usr/share/doc/vigil-rules/README.trust", "-rw-r--r--", "root/root"},
	}
)

func (f *fixture) testDebContents(t *testing.T) {
	cases := []struct {
		file      string
		files     []wantFile
		fields    map[string]string
		conffiles []string
		scripts   []string
	}{
		{"vigil-agent_" + v1 + "_arm64.deb", agentFiles,
			map[string]string{"Package": "vigil-agent", "Version": v1, "Architecture": "arm64"},
			[]string{"/etc/vigil/agent.yaml"}, []string{"postinst", "prerm", "postrm"}},
		{"vigil-agent_" + v1 + "_amd64.deb", agentFiles,
			map[string]string{"Package": "vigil-agent", "Version": v1, "Architecture": "amd64"},
			[]string{"/etc/vigil/agent.yaml"}, []string{"postinst", "prerm", "postrm"}},
		{"vigil-server_" + v1 + "_amd64.deb", serverFiles,
			map[string]string{"Package": "vigil-server", "Version": v1, "Architecture": "amd64", "Depends": "vigil-rules"},
			[]string{"/etc/vigil/server.yaml"}, []string{"preinst", "postinst", "prerm", "postrm"}},
		{"vigil-rules_" + v1 + "_all.deb", rulesFiles,
			map[string]string{"Package": "vigil-rules", "Version": v1, "Architecture": "all"}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			deb := filepath.Join(f.dist1, c.file)
			info := run(t, "", nil, "dpkg-deb", "-I", deb)
			for k, v := range c.fields {
				if !regexp.MustCompile(`(?m)^ ` + regexp.QuoteMeta(k+": "+v) + `$`).MatchString(info) {
					t.Errorf("control lacks %q: %q:\n%s", k, v, info)
				}
			}
			list := run(t, "", nil, "dpkg-deb", "-c", deb)
			for _, w := range c.files {
				re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w.mode) + ` ` + regexp.QuoteMeta(w.owner) +
					` .* \.` + regexp.QuoteMeta(w.path) + `/?$`)
				if !re.MatchString(list) {
					t.Errorf("no %s %s %s in:\n%s", w.mode, w.owner, w.path, list)
				}
			}
			if strings.Contains(list, "/rules/tests/") {
				t.Errorf("the rules' proof tests are packaged")
			}
			conf := ""
			if c.conffiles != nil {
				conf = run(t, "", nil, "dpkg-deb", "-I", deb, "conffiles")
			}
			if strings.TrimSpace(conf) != strings.Join(c.conffiles, "\n") {
				t.Errorf("conffiles = %q, want %q", conf, c.conffiles)
			}
			for _, s := range c.scripts {
				body := run(t, "", nil, "dpkg-deb", "-I", deb, s)
				if !strings.HasPrefix(body, "#!/bin/sh\n") {
					t.Errorf("%s: not a POSIX sh script:\n%s", s, body)
				}
				if strings.Contains(body, "systemctl daemon-reload") && !strings.Contains(body, "[ -d /run/systemd/system ]") {
					t.Errorf("%s: calls systemctl without checking that systemd runs:\n%s", s, body)
				}
			}
		})
	}
}

func (f *fixture) testRPMContents(t *testing.T) {
	cases := []struct {
		file    string
		files   []wantFile
		arch    string
		config  []string
		scripts []string
		req     string
	}{
		{"vigil-agent-" + v1 + "-1.aarch64.rpm", agentFiles, "aarch64", []string{"/etc/vigil/agent.yaml"},
			[]string{"postinstall", "preuninstall", "postuninstall"}, ""},
		{"vigil-agent-" + v1 + "-1.x86_64.rpm", agentFiles, "x86_64", []string{"/etc/vigil/agent.yaml"},
			[]string{"postinstall", "preuninstall", "postuninstall"}, ""},
		{"vigil-server-" + v1 + "-1.x86_64.rpm", serverFiles, "x86_64", []string{"/etc/vigil/server.yaml"},
			[]string{"preinstall", "postinstall", "preuninstall", "postuninstall"}, "vigil-rules"},
		{"vigil-rules-" + v1 + "-1.noarch.rpm", rulesFiles, "noarch", nil, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			rpm := filepath.Join(f.dist1, c.file)
			info := run(t, "", nil, "rpm", "--nosignature", "-qip", rpm)
			for _, want := range []string{"Version     : " + v1, "Architecture: " + c.arch, "Signature   : RSA"} {
				if !strings.Contains(info, want) {
					t.Errorf("rpm -qip lacks %q:\n%s", want, info)
				}
			}
			// Mode, owner, group and flags per file: "cn" = config(noreplace).
			list := run(t, "", nil, "rpm", "--nosignature", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]`, rpm)
			for _, w := range c.files {
				flags := `\S*`
				if slices.Contains(c.config, w.path) {
					flags = "cn"
				}
				re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w.mode) + ` ` + regexp.QuoteMeta(w.owner) + ` ` + flags + ` ` + regexp.QuoteMeta(w.path) + `$`)
				if !re.MatchString(list) {
					t.Errorf("no %s %s %s %s in:\n%s", w.mode, w.owner, flags, w.path, list)
				}
			}
			if got := run(t, "", nil, "rpm", "--nosignature", "-qlp", rpm); strings.Contains(got, "/rules/tests/") {
				t.Errorf("the rules' proof tests are packaged")
			}
			if got := strings.Fields(run(t, "", nil, "rpm", "--nosignature", "-qcp", rpm)); fmt.Sprint(got) != fmt.Sprint(c.config) && !(len(got) == 0 && c.config == nil) {
				t.Errorf("config files = %v, want %v", got, c.config)
			}
			scripts := run(t, "", nil, "rpm", "--nosignature", "-qp", "--scripts", rpm)
			for _, s := range c.scripts {
				if !strings.Contains(scripts, s+" scriptlet (using /bin/sh):\n#!/bin/sh\n") {
					t.Errorf("no %s scriptlet:\n%s", s, scripts)
				}
			}
			if c.scripts == nil && strings.TrimSpace(scripts) != "" {
				t.Errorf("unexpected scriptlets:\n%s", scripts)
			}
			if c.req != "" && !regexp.MustCompile(`(?m)^`+c.req+`$`).MatchString(run(t, "", nil, "rpm", "--nosignature", "-qpR", rpm)) {
				t.Errorf("does not require %s", c.req)
			}
		})
	}
}

// testBinaries checks that each deb carries static binaries of its own
// architecture (a cross-build mistake would install and fail at exec).
func (f *fixture) testBinaries(t *testing.T) {
	for _, c := range []struct {
		deb     string
		machine elf.Machine
	}{{"vigil-agent_" + v1 + "_amd64.deb", elf.EM_X86_64}, {"vigil-agent_" + v1 + "_arm64.deb", elf.EM_AARCH64},
		{"vigil-server_" + v1 + "_amd64.deb", elf.EM_X86_64}, {"vigil-server_" + v1 + "_arm64.deb", elf.EM_AARCH64}} {
		dir := filepath.Join(f.tmp, "x-"+c.deb)
		run(t, "", nil, "dpkg-deb", "-x", filepath.Join(f.dist1, c.deb), dir)
		bins, err := filepath.Glob(filepath.Join(dir, "usr/bin/*"))
		if err != nil || len(bins) == 0 {
			t.Fatalf("%s: no binaries (%v)", c.deb, err)
		}
		for _, b := range bins {
			ef, err := elf.Open(b)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if ef.Machine != c.machine {
				t.Errorf("%s %s: machine %v, want %v", c.deb, filepath.Base(b), ef.Machine, c.machine)
			}
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s %s: dynamically linked (PT_INTERP)", c.deb, filepath.Base(b))
				}
			}
			ef.Close()
		}
	}
}

func (f *fixture) testRPMSignature(t *testing.T) {
	db := filepath.Join(f.tmp, "rpmdb")
	run(t, "", nil, "rpm", "--dbpath", db, "--initdb")
	run(t, "", nil, "rpm", "--dbpath", db, "--import", f.pubKey)
	for _, name := range names(v1, "amd64", "arm64") {
		if !strings.HasSuffix(name, ".rpm") {
			continue
		}
		pkg := filepath.Join(f.dist1, name)
		out, err := try("", nil, "rpm", "--dbpath", db, "-K", pkg)
		if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "digests signatures OK") {
			t.Errorf("rpm -K %s: %v\n%s", name, err, out)
		}
	}
	// One flipped byte in the payload: the digests and the signature fail.
	bad := tampered(t, filepath.Join(f.dist1, "vigil-agent-"+v1+"-1.x86_64.rpm"), filepath.Join(f.tmp, "bad.rpm"))
	if out, err := try("", nil, "rpm", "--dbpath", db, "-K", bad); err == nil || !strings.Contains(out, "NOT OK") {
		t.Errorf("rpm -K accepted a tampered package: %v\n%s", err, out)
	}
	// Without SIGNING_KEY the package carries no signature at all.
	out, _ := try("", nil, "rpm", "--dbpath", db, "-K", filepath.Join(f.dist2, "vigil-agent-"+v2+"-1.x86_64.rpm"))
	if strings.Contains(out, "signatures") {
		t.Errorf("unsigned build reports a signature: %s", out)
	}
}

// testDebSignature checks the debsigs "origin" signature (_gpgorigin member)
// with debsig-verify, using a policy and keyring in temporary directories so
// the machine's /etc/debsig and /usr/share/debsig stay untouched.
func (f *fixture) testDebSignature(t *testing.T) {
	pol := filepath.Join(f.tmp, "debsig", "policies")
	keys := filepath.Join(f.tmp, "debsig", "keyrings")
	for _, d := range []string{filepath.Join(pol, f.keyID), filepath.Join(keys, f.keyID)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(keys, f.keyID, "vigil.gpg"), f.gpg(t, "--export", f.keyID), 0o644)
	policy := `<?xml version="1.0"?>
<!DOCTYPE Policy SYSTEM "https://www.debian.org/debsig/1.0/policy.dtd">
<Policy xmlns="https://www.debian.org/debsig/1.0/">
  <Origin Name="Vigil" id="` + f.keyID + `" Description="Vigil test packages"/>
  <Selection>
    <Required Type="origin" File="vigil.gpg" id="` + f.keyID + `"/>
  </Selection>
  <Verification MinOptional="0">
    <Required Type="origin" File="vigil.gpg" id="` + f.keyID + `"/>
  </Verification>
</Policy>
`
	writeFile(t, filepath.Join(pol, f.keyID, "vigil.pol"), policy, 0o644)
	verify := func(deb string) (string, error) {
		return try("", nil, "debsig-verify", "--policies-dir", pol, "--keyrings-dir", keys, deb)
	}
	for _, name := range names(v1, "amd64", "arm64") {
		if !strings.HasSuffix(name, ".deb") {
			continue
		}
		pkg := filepath.Join(f.dist1, name)
		if members := arMembers(t, pkg); !slices.Equal(members, []string{"debian-binary", "control.tar.gz", "data.tar.gz", "_gpgorigin"}) {
			t.Errorf("%s: ar members %q, want the signature last", name, members)
		}
		if out, err := verify(pkg); err != nil || !strings.Contains(out, "Verified package from 'Vigil test packages'") {
			t.Errorf("debsig-verify %s: %v\n%s", name, err, out)
		}
	}
	bad := tampered(t, filepath.Join(f.dist1, "vigil-agent_"+v1+"_amd64.deb"), filepath.Join(f.tmp, "bad.deb"))
	if out, err := verify(bad); err == nil {
		t.Errorf("debsig-verify accepted a tampered package:\n%s", out)
	}
	if out, err := verify(filepath.Join(f.dist2, "vigil-agent_"+v2+"_amd64.deb")); err == nil {
		t.Errorf("debsig-verify accepted an unsigned package:\n%s", out)
	}
}

// arMembers lists the members of a deb (an ar archive: an 8-byte magic,
// then per member a 60-byte header with the name in bytes 0-15 and the
// decimal size in bytes 48-57, the data, and a pad byte to an even offset).
func arMembers(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("%s: not an ar archive", path)
	}
	var names []string
	for off := 8; off+60 <= len(b) && len(names) < 16; {
		h := b[off : off+60]
		var size int
		if _, err := fmt.Sscan(strings.TrimSpace(string(h[48:58])), &size); err != nil {
			t.Fatalf("%s: member header at %d: %v", path, off, err)
		}
		names = append(names, strings.TrimRight(strings.TrimSpace(string(h[0:16])), "/"))
		off += 60 + size + size%2
	}
	return names
}

// tampered copies src to dst with one byte flipped in the middle of the
// file, inside the payload of either format.
func tampered(t *testing.T, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	writeFile(t, dst, string(b), 0o644)
	return dst
}

// chroot runs a shell script inside root in a private mount namespace with
// /proc mounted: the mount disappears with the namespace, so nothing is
// left mounted even if the test dies.
func chroot(t *testing.T, root, script string) string {
	t.Helper()
	out, err := tryChroot(root, script)
	if err != nil {
		t.Fatalf("in chroot: %s: %v\n%s", script, err, out)
	}
	return out
}

func tryChroot(root, script string) (string, error) {
	return try("", []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"},
		"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -ec "$1"`, root, script)
}

// copyRoot copies the cached test root for one subtest: never the cache
// itself, package managers write all over it.
func (f *fixture) copyRoot(t *testing.T, cache, name string) string {
	t.Helper()
	root := filepath.Join(f.tmp, name)
	run(t, "", nil, "cp", "-a", cache, root)
	t.Cleanup(func() {
		// Refuse to delete through a leftover mount (there should be none:
		// /proc was mounted in a namespace that is gone).
		if mounts, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(mounts, []byte(" "+root+"/")) {
			t.Errorf("mount left under %s; not removing it", root)
			return
		}
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("remove test root: %v", err)
		}
	})
	return root
}

func (f *fixture) testInstallUpgradeRemove(t *testing.T, cache string) {
	root := f.copyRoot(t, cache, "root-deb")
	copyIn := func(dist, name string) string {
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "tmp", name), string(b), 0o644)
		return "/tmp/" + name
	}
	set1 := []string{copyIn(f.dist1, "vigil-rules_"+v1+"_all.deb"), copyIn(f.dist1, "vigil-server_"+v1+"_amd64.deb"),
		copyIn(f.dist1, "vigil-agent_"+v1+"_amd64.deb")}
	set2 := []string{copyIn(f.dist2, "vigil-rules_"+v2+"_all.deb"), copyIn(f.dist2, "vigil-server_"+v2+"_amd64.deb"),
		copyIn(f.dist2, "vigil-agent_"+v2+"_amd64.deb")}

	// Install. No systemd runs in the chroot: the scripts must not need it.
	chroot(t, root, "dpkg -i "+strings.Join(set1, " "))
	for _, p := range []string{"vigil-agent", "vigil-server", "vigil-rules"} {
		if got := chroot(t, root, "dpkg-query -W -f '${Status} ${Version}' "+p); got != "install ok installed "+v1 {
			t.Errorf("%s after install: %q", p, got)
		}
	}
	f.checkVersions(t, root, v1)
	if got := chroot(t, root, "getent passwd vigil-server | cut -d: -f6,7"); got != "/var/lib/vigil-server:/usr/sbin/nologin\n" {
		t.Errorf("vigil-server user: %q", got)
	}
	checkStat(t, root, "after install")
	checkExposure(t, root)
	// The shipped configurations are valid as they are. The agent's server
	// comes from enrolment, given here by environment.
	chroot(t, root, "vigil-server check-config --config /etc/vigil/server.yaml >/dev/null")
	chroot(t, root, "VIGIL_AGENT_SERVER=127.0.0.1:8444 vigil-agent check-config --config /etc/vigil/agent.yaml >/dev/null")
	// The server's user can read its configuration and write its data.
	chroot(t, root, "setpriv --reuid vigil-server --regid vigil-server --init-groups sh -c 'cat /etc/vigil/server.yaml >/dev/null && touch /var/lib/vigil-server/probe'")

	// An operator edits both configurations and the server has state.
	chroot(t, root, "echo 'log_level: debug' >> /etc/vigil/agent.yaml && echo '# site edit' >> /etc/vigil/server.yaml && echo data > /var/lib/vigil-server/state")

	// Upgrade to v2: edits, state, owners survive; no prompt (same shipped
	// conffiles), so dpkg runs unattended.
	chroot(t, root, "dpkg -i "+strings.Join(set2, " "))
	f.checkVersions(t, root, v2)
	if got := chroot(t, root, "tail -n1 /etc/vigil/agent.yaml; tail -n1 /etc/vigil/server.yaml; cat /var/lib/vigil-server/state"); got != "log_level: debug\n# site edit\ndata\n" {
		t.Errorf("after upgrade, edits or state lost: %q", got)
	}
	checkStat(t, root, "after upgrade")
	if out, err := tryChroot(root, "ls /etc/vigil/*.dpkg-* 2>/dev/null"); err == nil {
		t.Errorf("upgrade left dpkg conffile copies: %s", out)
	}

	// Remove: programs go, configuration and state stay.
	chroot(t, root, "dpkg -r vigil-agent vigil-server")
	gone(t, root, "/usr/bin/vigil-agent", "/usr/bin/vigil", "/usr/bin/vigil-server",
		"/usr/lib/systemd/system/vigil-agent.service", "/usr/lib/systemd/system/vigil-server.service")
	present(t, root, "/etc/vigil/agent.yaml", "/etc/vigil/server.yaml", "/var/lib/vigil-server/state", "/var/lib/vigil-agent")
	if got := chroot(t, root, "dpkg-query -W -f '${Status}' vigil-agent"); got != "deinstall ok config-files" {
		t.Errorf("vigil-agent after remove: %q", got)
	}

	// Purge: configuration and state go too; then the corpus.
	chroot(t, root, "dpkg -P vigil-agent vigil-server vigil-rules")
	gone(t, root, "/etc/vigil", "/var/lib/vigil-server", "/var/log/vigil-server", "/var/lib/vigil-agent", "/usr/share/vigil")
	if out, err := tryChroot(root, "dpkg-query -W vigil-agent vigil-server vigil-rules"); err == nil {
		t.Errorf("packages still known after purge: %s", out)
	}
}

// testRPMInstallUpgradeErase runs the rpm scriptlets for real: rpm
// --root installs into a copy of the Debian root (rpm chroots into it for
// the scriptlets, which find getent, useradd and install there), upgrades
// (scriptlets see $1 = 2, then 1 for the old version's %preun/%postun) and
// erases.
func (f *fixture) testRPMInstallUpgradeErase(t *testing.T, cache string) {
	root := f.copyRoot(t, cache, "root-rpm")
	rpm := func(args ...string) {
		t.Helper()
		full := append([]string{"--root", root, "--nodeps", "--nosignature"}, args...)
		run(t, "", nil, "rpm", full...)
	}
	pkgs := func(dist, v, arch string) []string {
		return []string{filepath.Join(dist, "vigil-rules-"+v+"-1.noarch.rpm"),
			filepath.Join(dist, "vigil-server-"+v+"-1."+arch+".rpm"), filepath.Join(dist, "vigil-agent-"+v+"-1."+arch+".rpm")}
	}
	rpm(append([]string{"-i"}, pkgs(f.dist1, v1, "x86_64")...)...)
	f.checkVersions(t, root, v1)
	checkStat(t, root, "after rpm install")
	chroot(t, root, "echo 'log_level: debug' >> /etc/vigil/agent.yaml && echo data > /var/lib/vigil-server/state")

	rpm(append([]string{"-U"}, pkgs(f.dist2, v2, "x86_64")...)...)
	f.checkVersions(t, root, v2)
	checkStat(t, root, "after rpm upgrade")
	if got := chroot(t, root, "tail -n1 /etc/vigil/agent.yaml; cat /var/lib/vigil-server/state; ls /etc/vigil"); got != "log_level: debug\ndata\nagent.yaml\nserver.yaml\n" {
		t.Errorf("after rpm upgrade, edits or state lost, or .rpmnew left: %q", got)
	}

	// Erase: rpm has no purge. The edited config is kept as .rpmsave, the
	// unedited one goes, state stays for the operator to delete.
	rpm("-e", "vigil-agent", "vigil-server", "vigil-rules")
	gone(t, root, "/usr/bin/vigil-agent", "/usr/bin/vigil-server", "/usr/share/vigil/rules", "/etc/vigil/server.yaml",
		"/usr/lib/systemd/system/vigil-server.service")
	present(t, root, "/etc/vigil/agent.yaml.rpmsave", "/var/lib/vigil-server/state", "/var/lib/vigil-agent")
}

// checkExposure rates the installed units with systemd's own offline
// security analysis. The server's sandbox must stay tight; the agent's
// exposure is high by design (root, no mount namespace; see its unit) and
// only logged.
func checkExposure(t *testing.T, root string) {
	t.Helper()
	if _, err := lookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not found; unit exposure not measured")
		return
	}
	re := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, c := range []struct {
		unit string
		max  float64
	}{{"vigil-server.service", 2.0}, {"vigil-agent.service", 10}} {
		out, err := try("", nil, "systemd-analyze", "security", "--offline=yes", "--root="+root, c.unit)
		m := re.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", c.unit, err, out)
			continue
		}
		var level float64
		if _, err := fmt.Sscan(m[1], &level); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exposure %.1f (systemd-analyze security; 0 safest, 10 unsafe)", c.unit, level)
		if level > c.max {
			t.Errorf("%s: exposure %.1f above %.1f:\n%s", c.unit, level, c.max, out)
		}
	}
}

// checkStat checks the owners and modes the packages promise.
func checkStat(t *testing.T, root, when string) {
	t.Helper()
	got := chroot(t, root, "stat -c '%n %U:%G %a' /var/lib/vigil-server /var/log/vigil-server /var/lib/vigil-agent /etc/vigil/server.yaml /etc/vigil/agent.yaml")
	want := "/var/lib/vigil-server vigil-server:vigil-server 750\n/var/log/vigil-server vigil-server:vigil-server 750\n" +
		"/var/lib/vigil-agent root:root 700\n/etc/vigil/server.yaml root:vigil-server 640\n/etc/vigil/agent.yaml root:root 600\n"
	if got != want {
		t.Errorf("%s: owners and modes:\n%s\nwant:\n%s", when, got, want)
	}
}

func gone(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still present (%v)", p, err)
		}
	}
}

func present(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// checkVersions runs the installed binaries inside the root.
func (f *fixture) checkVersions(t *testing.T, root, version string) {
	t.Helper()
	for _, c := range []string{"vigil-agent --version", "vigil-server --version", "vigil version"} {
		out := chroot(t, root, c)
		if !strings.Contains(out, version) {
			t.Errorf("%s = %q, want version %s", c, out, version)
		}
	}
}

// run runs a command with a timeout and fails the test on error.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := try(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command with a timeout; stdout and stderr are returned
// together. env, when set, replaces the environment.
func try(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	path, err := lookPath(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// lookPath finds system tools also when PATH lacks the sbin directories.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
