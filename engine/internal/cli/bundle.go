package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/engine/framework"
	"github.com/vigilfleet/vigil/shared/bundle"
)

const bundleUsage = `Usage: vigil bundle <command> [arguments]

A rule bundle is a tar of a rule corpus with a manifest (version, created,
expires, per-file SHA-256) signed with Ed25519. Agents verify bundles
offline against trusted public keys.

Commands:
  keygen --out PREFIX                 make a signing key pair (PREFIX.key, PREFIX.pub)
  build --rules DIR --out FILE        bundle a rule corpus (unsigned)
  sign --key KEY --in FILE --out FILE sign a bundle (or: sign --key KEY FILE, in place)
  verify --trusted PUB[,PUB] FILE     verify a bundle and describe it

Run 'vigil bundle <command> -h' for a command's flags.
`

const keygenUsage = `Usage: vigil bundle keygen --out PREFIX

Makes an Ed25519 bundle signing key pair: PREFIX.key (private, mode 0600)
and PREFIX.pub (public, for agents' trusted_bundle_keys). It refuses to
overwrite an existing key.
`

const buildUsage = `Usage: vigil bundle build --rules DIR --out FILE [--version V] [--expires 90d]

Validates the corpus in DIR as 'vigil rules validate' does, then writes an
unsigned bundle of its rules, frameworks and defaults (not tests/ or README
files). The same corpus and flags give the same bytes.
`

const signUsage = `Usage: vigil bundle sign --key KEY --in FILE --out FILE
       vigil bundle sign --key KEY FILE

Signs a bundle with an Ed25519 private key (from 'vigil bundle keygen'),
replacing any signature. With FILE alone, the bundle is signed in place.
`

const verifyUsage = `Usage: vigil bundle verify --trusted PUB[,PUB...] [--min-version V] FILE

Verifies a bundle as an agent does: signed by a trusted key, unmodified,
not expired, not created in the future, not older than --min-version. Prints
what the bundle holds, or the refusal and exits 1.
`

// runBundle dispatches `vigil bundle <command>`.
func runBundle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return exitUsage
	}
	switch args[0] {
	case "keygen":
		return runBundleKeygen(ctx, args[1:], stdout, stderr)
	case "build":
		return runBundleBuild(ctx, args[1:], stdout, stderr)
	case "sign":
		return runBundleSign(ctx, args[1:], stdout, stderr)
	case "verify":
		return runBundleVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, bundleUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "vigil bundle: unknown command %q\n\n%s", args[0], bundleUsage)
	return exitUsage
}

// runBundleKeygen implements `vigil bundle keygen`.
func runBundleKeygen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle keygen", flag.ContinueOnError)
	out := fs.String("out", "", "`prefix` of the key files")
	if done, code := parseFlags(fs, args, keygenUsage, stdout, stderr); done {
		return code
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil bundle keygen: --out PREFIX is required and takes no arguments\n")
		return exitUsage
	}
	keyPath, pubPath := *out+".key", *out+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(stderr, "vigil bundle keygen: %s exists; refusing to overwrite a key\n", p)
			return exitFail
		}
	}
	pub, priv, err := bundle.GenerateKey()
	if err == nil {
		err = bundle.WritePrivateKey(keyPath, priv)
	}
	if err == nil {
		err = bundle.WritePublicKey(pubPath, pub)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle keygen: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "key id %s\nprivate key %s (keep it secret)\npublic key %s\n", bundle.KeyID(pub), keyPath, pubPath)
	return exitOK
}

// runBundleBuild implements `vigil bundle build`.
func runBundleBuild(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle build", flag.ContinueOnError)
	rulesDir := fs.String("rules", "", "rule corpus `dir` (default as for vigil check)")
	out := fs.String("out", "", "bundle `file` to write")
	version := fs.String("version", "", "bundle `version`, dotted numbers (default: the creation time, 2006.01.02.150405)")
	expires := fs.String("expires", "90d", "validity: a `duration` (90d, 2160h) or a date (2027-03-01)")
	if done, code := parseFlags(fs, args, buildUsage, stdout, stderr); done {
		return code
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil bundle build: --out FILE is required and takes no arguments\n")
		return exitUsage
	}
	now := time.Now().UTC().Truncate(time.Second)
	exp, err := parseExpiry(*expires, now)
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle build: --expires: %v\n", err)
		return exitUsage
	}
	dir, err := findRulesDir(*rulesDir)
	if err == nil {
		if st, serr := os.Stat(dir); serr == nil && !st.IsDir() {
			err = fmt.Errorf("rules %s is not a directory", dir)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle build: %v\n", err)
		return exitUsage
	}
	if err := validateCorpus(dir); err != nil {
		n := printLoadErrors(stderr, err)
		fmt.Fprintf(stderr, "vigil bundle build: %s in %s; not building a bundle of an invalid corpus\n", plural(n, "error"), dir)
		return exitUsage
	}
	var buf bytes.Buffer
	m, err := bundle.Build(&buf, dir, bundle.BuildOptions{Version: *version, Created: now, Expires: exp})
	if err == nil {
		err = writeFileAtomic(*out, buf.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle build: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "built %s: version %s, %s, expires %s, %s (unsigned)\n",
		*out, m.Version, plural(len(m.Files), "file"), m.Expires.Format(time.RFC3339), bundle.Digest(buf.Bytes()))
	return exitOK
}

// validateCorpus loads the rules, defaults and frameworks of dir, as
// `vigil rules validate` does.
func validateCorpus(dir string) error {
	_, err := loadCorpus(dir)
	if err == nil {
		err = engine.NewConfig().LoadCorpusDefaults(dir)
	}
	if err == nil {
		_, err = framework.LoadDir(filepath.Join(dir, "frameworks"))
	}
	return err
}

// runBundleSign implements `vigil bundle sign`.
func runBundleSign(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle sign", flag.ContinueOnError)
	keyPath := fs.String("key", "", "Ed25519 private key `file`")
	in := fs.String("in", "", "bundle `file` to sign")
	out := fs.String("out", "", "signed bundle `file` to write")
	if done, code := parseFlags(fs, args, signUsage, stdout, stderr); done {
		return code
	}
	switch {
	case fs.NArg() == 1 && *in == "" && *out == "":
		*in, *out = fs.Arg(0), fs.Arg(0)
	case fs.NArg() != 0 || *in == "" || *out == "":
		fmt.Fprintf(stderr, "vigil bundle sign: give --in FILE --out FILE, or one FILE to sign in place\n")
		return exitUsage
	}
	if *keyPath == "" {
		fmt.Fprintf(stderr, "vigil bundle sign: --key KEY is required\n")
		return exitUsage
	}
	key, err := bundle.LoadPrivateKey(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle sign: %v\n", err)
		return exitFail
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle sign: %v\n", err)
		return exitFail
	}
	var buf bytes.Buffer
	err = bundle.Sign(bytes.NewReader(data), &buf, key)
	if err == nil {
		err = writeFileAtomic(*out, buf.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle sign: %s: %v\n", *in, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "signed %s with key %s: %s\n", *out, bundle.KeyID(key.Public().(ed25519.PublicKey)), bundle.Digest(buf.Bytes()))
	return exitOK
}

// runBundleVerify implements `vigil bundle verify`.
func runBundleVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bundle verify", flag.ContinueOnError)
	trusted := &listFlag{split: true}
	fs.Var(trusted, "trusted", "trusted public key `files` (comma-separated or repeated)")
	minVersion := fs.String("min-version", "", "refuse bundles older than this `version`")
	if done, code := parseFlags(fs, args, verifyUsage, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 || len(trusted.values) == 0 {
		fmt.Fprintf(stderr, "vigil bundle verify: give --trusted PUB and one bundle FILE\n")
		return exitUsage
	}
	var keys []ed25519.PublicKey
	for _, p := range trusted.values {
		k, err := bundle.LoadPublicKeys(p)
		if err != nil {
			fmt.Fprintf(stderr, "vigil bundle verify: %v\n", err)
			return exitUsage
		}
		keys = append(keys, k...)
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle verify: %v\n", err)
		return exitFail
	}
	b, err := bundle.Verify(data, bundle.VerifyOptions{Trusted: keys, MinVersion: *minVersion})
	if err != nil {
		fmt.Fprintf(stderr, "vigil bundle verify: %s: REFUSED: %v\n", file, err)
		return exitFail
	}
	m := b.Manifest
	fmt.Fprintf(stdout, "%s: OK\nversion  %s\ncreated  %s\nexpires  %s\nfiles    %d\ndigest   %s\n",
		file, m.Version, m.Created.Format(time.RFC3339), m.Expires.Format(time.RFC3339), len(m.Files), b.Digest)
	return exitOK
}

// parseExpiry reads --expires: "90d", a Go duration, or a date or time
// (2027-03-01, RFC 3339), relative to now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			if !t.After(now) {
				return time.Time{}, fmt.Errorf("%s is in the past", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a duration (90d, 2160h) or a date (2027-03-01)", s)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced and renamed, so a reader (an agent, a server publishing
// the bundle) never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
