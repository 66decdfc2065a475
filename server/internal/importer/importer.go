// Package importer ingests offline results archives: an air-gapped agent's
// `vigil-agent scan --bundle FILE --out RESULTS` output, carried across the
// gap and given to `vigil-server import`. An archive is accepted only when
// its certificate chains to this server's CA, its signature holds and its
// agent is enrolled and not revoked; then it is stored like a live scan of
// the host it names, once, however often it is imported.
package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
	"github.com/vigilfleet/vigil/shared/agentpb"
	"github.com/vigilfleet/vigil/shared/pki"
	"github.com/vigilfleet/vigil/shared/resultsarchive"
)

// TriggerImport is the trigger of a scan that came from an archive.
const TriggerImport = "import"

// BatchSize is how many results go into one store batch.
const BatchSize = 500

// ErrRefused is returned (wrapped, with the reason) for an archive that is
// not accepted: malformed, badly signed, from another CA, from an unknown
// or revoked agent, or about a host another owner scans.
var ErrRefused = errors.New("results archive refused")

// Recorder turns a finished scan into posture; *posture.Service is the
// production one.
type Recorder interface {
	RecordScan(ctx context.Context, hostID, scanID int64) (posture.Outcome, error)
}

// Report says what an import did.
type Report struct {
	Digest    string
	AgentID   int64
	AgentName string
	HostID    int64
	HostName  string
	ScanID    int64
	Status    store.ScanStatus
	Results   int
	// Already is true when the archive had been imported before: nothing
	// was written.
	Already     bool
	FactChanges int
	Score       float64
	Band        string
}

// Import verifies the archive file's bytes and stores it as a scan of the
// host it names (created under the archive's agent when new), with its
// inventory and posture, and an audit entry (actor "cli", action
// "results.import"). An archive imported before changes nothing and
// reports Already; one whose import was interrupted is completed in the
// same scan. Refusals wrap ErrRefused.
func Import(ctx context.Context, st store.Store, post Recorder, ca *pki.CA, data []byte, now time.Time) (Report, error) {
	a, err := resultsarchive.Read(data)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	rep := Report{Digest: a.Digest}
	if err := a.VerifyChain(ca.Pool()); err != nil {
		return rep, fmt.Errorf("%w: archive %s: its certificate was not issued by this server's CA: %w", ErrRefused, a.Digest, err)
	}
	ag, err := checkAgent(ctx, st, a)
	if err != nil {
		return rep, err
	}
	rep.AgentID, rep.AgentName = ag.ID, ag.Name
	arch := a.Archive
	rep.HostName = arch.GetHostname()
	results, err := convert(arch)
	if err != nil {
		return rep, fmt.Errorf("%w: archive %s: %w", ErrRefused, a.Digest, err)
	}
	rep.Results = len(results)

	rec, err := st.ImportedArchive(ctx, a.Digest)
	switch {
	case err == nil && !rec.FinishedAt.IsZero():
		rep.Already, rep.HostID, rep.ScanID = true, rec.HostID, rec.ScanID
		sc, err := st.Scan(ctx, rec.ScanID)
		if err != nil {
			return rep, fmt.Errorf("import %s: %w", a.Digest, err)
		}
		rep.Status = sc.Status
		return rep, nil
	case err == nil: // interrupted before: finish it in the same scan
	case errors.Is(err, store.ErrNotFound):
		if rec, err = begin(ctx, st, ag, arch, a.Digest, now); err != nil {
			return rep, err
		}
	default:
		return rep, fmt.Errorf("import %s: %w", a.Digest, err)
	}
	rep.HostID, rep.ScanID = rec.HostID, rec.ScanID
	if err := finish(ctx, st, post, arch, results, &rep); err != nil {
		return rep, fmt.Errorf("import %s into scan %d: %w", a.Digest, rec.ScanID, err)
	}
	if err := st.FinishImport(ctx, a.Digest, now); err != nil {
		return rep, fmt.Errorf("import %s: %w", a.Digest, err)
	}
	detail, _ := json.Marshal(map[string]any{"digest": a.Digest, "agent_id": ag.ID, "host": rep.HostName,
		"host_id": rep.HostID, "results": rep.Results, "status": rep.Status, "bundle_version": arch.GetBundleVersion()})
	if _, err := st.AppendAudit(ctx, store.AuditEntry{At: now, Actor: "cli", Action: "results.import",
		Target: fmt.Sprintf("scan/%d", rep.ScanID), Detail: string(detail), Source: "local"}); err != nil {
		return rep, fmt.Errorf("import %s: audit: %w", a.Digest, err)
	}
	return rep, nil
}

// checkAgent finds the enrolled, active agent the archive's certificate
// names; the archive's own claims must agree with the certificate.
func checkAgent(ctx context.Context, st store.Store, a *resultsarchive.Archive) (store.Agent, error) {
	id, name, err := pki.AgentIdentity(a.Cert)
	if err != nil {
		return store.Agent{}, fmt.Errorf("%w: archive %s: %w", ErrRefused, a.Digest, err)
	}
	if aid, aname := a.Archive.GetAgentId(), a.Archive.GetAgentName(); (aid != 0 && aid != id) || (aname != "" && aname != name) {
		return store.Agent{}, fmt.Errorf("%w: archive %s claims agent %d %q but is signed by agent %d %q",
			ErrRefused, a.Digest, aid, aname, id, name)
	}
	ag, err := st.Agent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Agent{}, fmt.Errorf("%w: archive %s: agent %d (%s) is not enrolled on this server", ErrRefused, a.Digest, id, name)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("import %s: %w", a.Digest, err)
	}
	if ag.Name != name {
		return store.Agent{}, fmt.Errorf("%w: archive %s: certificate names agent %d %q, but that agent is %q here",
			ErrRefused, a.Digest, id, name, ag.Name)
	}
	if ag.Status != store.AgentActive {
		return store.Agent{}, fmt.Errorf("%w: archive %s: agent %d (%s) is %s", ErrRefused, a.Digest, id, name, ag.Status)
	}
	return ag, nil
}

// convert checks and converts every result before anything is written.
func convert(arch *agentpb.ResultsArchive) ([]result.Result, error) {
	if arch.GetHostname() == "" {
		return nil, errors.New("no hostname")
	}
	out := make([]result.Result, 0, len(arch.GetResults()))
	for i, p := range arch.GetResults() {
		r, err := ResultFromProto(p, arch.GetHostname())
		if err != nil {
			return nil, fmt.Errorf("result %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// begin finds or creates the host under the agent, creates the scan and
// records the import. If another importer of the same archive recorded it
// first, this scan is failed and the other's record returned.
func begin(ctx context.Context, st store.Store, ag store.Agent, arch *agentpb.ResultsArchive, digest string, now time.Time) (store.ImportRecord, error) {
	name := arch.GetHostname()
	h, err := st.HostByName(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		osName := arch.GetEnd().GetPlatform()
		if osName == "" {
			osName = arch.GetEnd().GetInventory().GetOs()
		}
		if h, err = st.UpsertHost(ctx, store.Host{Name: name, OS: osName, AgentID: ag.ID}); err != nil {
			return store.ImportRecord{}, fmt.Errorf("import %s: %w", digest, err)
		}
	case err != nil:
		return store.ImportRecord{}, fmt.Errorf("import %s: %w", digest, err)
	case h.AgentID != ag.ID:
		owner := "the server (agentless)"
		if h.AgentID != 0 {
			owner = fmt.Sprintf("agent %d", h.AgentID)
		}
		return store.ImportRecord{}, fmt.Errorf("%w: archive %s: host %s is scanned by %s, not by agent %d (%s)",
			ErrRefused, digest, name, owner, ag.ID, ag.Name)
	}
	sc, err := st.CreateScan(ctx, store.Scan{HostID: h.ID, Trigger: TriggerImport, Status: store.ScanRunning,
		BundleVersion: arch.GetBundleVersion(), StartedAt: startedAt(arch)})
	if err != nil {
		return store.ImportRecord{}, fmt.Errorf("import %s: %w", digest, err)
	}
	rec, err := st.RecordImport(ctx, store.ImportRecord{Digest: digest, HostID: h.ID, ScanID: sc.ID, AgentID: ag.ID, StartedAt: now})
	if err != nil {
		return store.ImportRecord{}, fmt.Errorf("import %s: %w", digest, err)
	}
	if rec.ScanID != sc.ID {
		if err := st.FailScan(ctx, sc.ID, now, "duplicate import of archive "+digest); err != nil {
			return store.ImportRecord{}, fmt.Errorf("import %s: %w", digest, err)
		}
	}
	return rec, nil
}

// finish ingests the results (batches numbered from 1, so a resumed import
// replays nothing), closes the scan, records posture and inventory.
func finish(ctx context.Context, st store.Store, post Recorder, arch *agentpb.ResultsArchive, results []result.Result, rep *Report) error {
	seq := int64(0)
	for start := 0; start < len(results); start += BatchSize {
		seq++
		end := min(start+BatchSize, len(results))
		if _, err := st.Ingest(ctx, store.Batch{ScanID: rep.ScanID, Seq: seq, Results: results[start:end]}); err != nil {
			return fmt.Errorf("storing results (batch %d): %w", seq, err)
		}
	}
	done := finishedAt(arch)
	if arch.GetEnd().GetStatus() == agentpb.ScanEnd_STATUS_FAILED {
		rep.Status = store.ScanFailed
		msg := arch.GetEnd().GetMessage()
		if msg == "" {
			msg = "the offline scan failed"
		}
		if err := st.FailScan(ctx, rep.ScanID, done, msg); err != nil {
			return err
		}
	} else {
		rep.Status = store.ScanCompleted
		if err := st.FinishScan(ctx, rep.ScanID, store.ScanCompleted, done, result.Summarize(results)); err != nil {
			return err
		}
		out, err := post.RecordScan(ctx, rep.HostID, rep.ScanID)
		if err != nil {
			return err
		}
		rep.Score, rep.Band = out.Score, string(out.Band)
		if err := st.SetHostPosture(ctx, rep.HostID, done, out.Score, string(out.Band)); err != nil {
			return err
		}
	}
	if inv := arch.GetEnd().GetInventory(); inv != nil {
		n, err := st.PutFacts(ctx, rep.HostID, FactsFromInventory(inv, done))
		if err != nil {
			return err
		}
		rep.FactChanges = n
	}
	return nil
}

func startedAt(arch *agentpb.ResultsArchive) time.Time {
	if t := arch.GetEnd().GetStarted(); t != nil {
		return t.AsTime()
	}
	return arch.GetCreated().AsTime()
}

func finishedAt(arch *agentpb.ResultsArchive) time.Time {
	if t := arch.GetEnd().GetFinished(); t != nil {
		return t.AsTime()
	}
	return arch.GetCreated().AsTime()
}
