// Package offline is the air-gapped mode: `vigil-agent scan --bundle FILE
// --out RESULTS` verifies a bundle carried in by hand, scans this host and
// writes a results archive signed with the agent's own key, for
// `vigil-server import` on the other side of the gap.
package offline

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilfleet/vigil/agent/internal/bundlecache"
	"github.com/vigilfleet/vigil/agent/internal/scan"
	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/engine"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/resultsarchive"
)

// Options say what to scan with and where to write.
type Options struct {
	BundleFile string
	Out        string
	StateDir   string
	Trusted    []ed25519.PublicKey
	Hostname   string // default the enrolled host name, else os.Hostname
	// Session overrides the local host (tests scan an SSH target).
	Session *engine.Session
}

// Scan runs the offline scan and writes the archive to o.Out (atomically).
// A refused bundle is an error wrapping the bundle package's reason, and
// no archive is written.
func Scan(ctx context.Context, o Options) (*agentpb.ResultsArchive, error) {
	if len(o.Trusted) == 0 {
		return nil, errors.New("offline scan: no trusted bundle keys (--trusted-key or trusted_bundle_keys)")
	}
	dir, err := state.Open(o.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := dir.Identity()
	if err != nil {
		return nil, err
	}
	key, err := dir.Key()
	if err != nil {
		return nil, err
	}
	certPEM, err := dir.CertPEM()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(o.BundleFile)
	if err != nil {
		return nil, fmt.Errorf("offline scan: %w", err)
	}
	cache, err := bundlecache.Open(dir.File(state.BundlesDir), o.Trusted, nil)
	if err != nil {
		return nil, err
	}
	entry, err := cache.Accept(data)
	if err != nil {
		return nil, fmt.Errorf("offline scan: %s: %w", o.BundleFile, err)
	}
	co, err := scan.LoadCorpus(entry.RulesDir)
	if err != nil {
		return nil, err
	}
	host := o.Hostname
	if host == "" {
		host = id.Hostname
	}
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("offline scan: hostname: %w", err)
		}
	}
	sess := o.Session
	if sess == nil {
		sess = engine.NewLocalSession()
		defer sess.Close()
	}
	out := scan.Run(ctx, sess, co, engine.Filter{})
	if out.End.GetStatus() != agentpb.ScanEnd_STATUS_COMPLETED {
		return nil, fmt.Errorf("offline scan: %s", out.End.GetMessage())
	}
	rnd := make([]byte, 16)
	if _, err := rand.Read(rnd); err != nil {
		return nil, fmt.Errorf("offline scan: %w", err)
	}
	a := &agentpb.ResultsArchive{
		AgentId: id.AgentID, AgentName: id.AgentName, Hostname: host,
		BundleDigest: entry.Digest, BundleVersion: entry.Version,
		Created: timestamppb.New(time.Now()), ArchiveId: hex.EncodeToString(rnd),
		Results: out.Results, End: out.End,
	}
	if err := write(o.Out, a, key, certPEM); err != nil {
		return nil, err
	}
	return a, nil
}

// write creates the archive next to its final name and renames it into
// place, so a crash never leaves a truncated archive to be carried across.
func write(path string, a *agentpb.ResultsArchive, key crypto.Signer, certPEM []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = resultsarchive.Write(tmp, a, key, certPEM)
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
