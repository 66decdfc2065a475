package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"

	"github.com/vigilfleet/vigil/server/internal/export"
)

// verifyExport checks the signature of an exported report ("verify FILE"):
// against --public-key when given (what an auditor away from the server
// holds), otherwise against the server's own signing key from the
// configuration (exports.signing_key, default DataDir/export-signing.key).
// It never creates a key.
func verifyExport(args []string, stdout, stderr io.Writer) error {
	f := newFlags("verify", stderr)
	pubFile := f.fs.String("public-key", "", "PEM public key (or the signing key) to verify against; default: the server's export signing key")
	file, rest, err := positional("verify", "FILE", args)
	if err != nil {
		return err
	}
	if err := f.fs.Parse(rest); err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *pubFile != "" {
		if f.fs.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
		}
		pub, err = export.LoadPublicKey(*pubFile)
	} else {
		cfg, lerr := f.load(rest)
		if lerr != nil {
			return lerr
		}
		pub, err = export.LoadPublicKey(cfg.ExportSigningKey())
	}
	if err != nil {
		return err
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	info, err := export.Verify(body, pub)
	if err != nil {
		return fmt.Errorf("verify %s: %w", file, err)
	}
	fmt.Fprintf(stdout, "OK %s: signed by key %s, sha256 %s\n", file, info.KeyID, info.SHA256)
	return nil
}
