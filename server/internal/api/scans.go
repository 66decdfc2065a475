package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/server/internal/store"
)

const defaultScanPage = 100

var scanStatuses = []string{string(store.ScanRunning), string(store.ScanCompleted), string(store.ScanFailed)}

// scanJSON is a scan as the API shows it.
type scanJSON struct {
	ID            int64          `json:"id"`
	HostID        int64          `json:"host_id"`
	Trigger       string         `json:"trigger"`
	Status        string         `json:"status"`
	BundleVersion string         `json:"bundle_version"`
	StartedAt     *time.Time     `json:"started_at"`
	FinishedAt    *time.Time     `json:"finished_at"`
	Counts        result.Summary `json:"counts"`
	Message       string         `json:"message"`
}

func toScanJSON(sc store.Scan) scanJSON {
	return scanJSON{
		ID: sc.ID, HostID: sc.HostID, Trigger: sc.Trigger, Status: string(sc.Status),
		BundleVersion: sc.BundleVersion, StartedAt: ts(sc.StartedAt), FinishedAt: ts(sc.FinishedAt),
		Counts: sc.Counts, Message: sc.Message,
	}
}

// listScans answers GET /scans?host=&status=&before=&limit=, newest first.
// A host filter naming a deleted host still lists its scans: history about
// decommissioned hosts stays answerable.
func (s *Server) listScans(c *gin.Context) {
	host, ok := queryID(c, "host")
	if !ok {
		return
	}
	s.respondScans(c, store.ScanFilter{HostID: host})
}

// respondScans adds the status, before and limit parameters to f and
// answers the page; next_before is the cursor for the next page, null on
// the last.
func (s *Server) respondScans(c *gin.Context, f store.ScanFilter) {
	statuses, ok := queryEnum(c, "status", scanStatuses)
	if !ok {
		return
	}
	if len(statuses) > 1 {
		badRequest(c, "status", "status takes one value")
		return
	}
	if statuses != nil {
		f.Status = store.ScanStatus(statuses[0])
	}
	if f.BeforeID, ok = queryID(c, "before"); !ok {
		return
	}
	if f.Limit, ok = queryInt(c, "limit", defaultScanPage, 1, maxPage); !ok {
		return
	}
	scans, err := s.d.Store.Scans(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]scanJSON, len(scans))
	for i, sc := range scans {
		out[i] = toScanJSON(sc)
	}
	var next *int64
	if len(scans) == f.Limit {
		id := scans[len(scans)-1].ID
		next = &id
	}
	c.JSON(http.StatusOK, gin.H{"scans": out, "next_before": next})
}

// scanRequest is the body of POST /scans.
type scanRequest struct {
	HostID int64 `json:"host_id"`
}

// triggerScan answers POST /scans {"host_id"}: the same as POST
// /hosts/:id/scan.
func (s *Server) triggerScan(c *gin.Context) {
	var req scanRequest
	if !bind(c, &req) {
		return
	}
	if req.HostID <= 0 {
		badRequest(c, "host_id", "host_id must be a positive integer")
		return
	}
	s.requestScan(c, req.HostID, "host_id")
}

// getScan answers GET /scans/:id.
func (s *Server) getScan(c *gin.Context) {
	sc, ok := s.scanByPath(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, toScanJSON(sc))
}

func (s *Server) scanByPath(c *gin.Context) (store.Scan, bool) {
	id, ok := pathID(c, "id")
	if !ok {
		return store.Scan{}, false
	}
	sc, err := s.d.Store.Scan(c.Request.Context(), id)
	if err != nil {
		s.internal(c, err)
		return store.Scan{}, false
	}
	return sc, true
}

// scanResults answers GET /scans/:id/results: every result the scan
// recorded, in ingest order. pruned says the per-scan rows were removed by
// retention (the scan counted results but none remain).
func (s *Server) scanResults(c *gin.Context) {
	sc, ok := s.scanByPath(c)
	if !ok {
		return
	}
	rs, err := s.d.Store.ScanResults(c.Request.Context(), sc.ID)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]findingJSON, len(rs))
	for i, f := range rs {
		out[i] = s.toFindingJSON(f)
	}
	c.JSON(http.StatusOK, gin.H{"scan": toScanJSON(sc), "results": out, "pruned": len(rs) == 0 && sc.Counts.Total > 0})
}

// resultJSON is one rule's result in a scan, for the evidence view.
type resultJSON struct {
	RuleID        string     `json:"rule_id"`
	Title         string     `json:"title"`
	Status        string     `json:"status"`
	Severity      string     `json:"severity"`
	Reason        string     `json:"reason"`
	ObservedAt    *time.Time `json:"observed_at"`
	FrameworkRefs []refJSON  `json:"framework_refs"`
	EvidenceHash  string     `json:"evidence_hash"`
}

// scanResultEvidence answers GET /scans/:id/results/:rule: the result with
// the evidence records behind it (what was probed, expected and seen).
func (s *Server) scanResultEvidence(c *gin.Context) {
	sc, ok := s.scanByPath(c)
	if !ok {
		return
	}
	ruleID := c.Param("rule")
	ctx := c.Request.Context()
	rs, err := s.d.Store.ScanResults(ctx, sc.ID)
	if err != nil {
		s.internal(c, err)
		return
	}
	var found *store.Finding
	for i := range rs {
		if rs[i].RuleID == ruleID {
			found = &rs[i] // the last one wins, as in current state
		}
	}
	if found == nil {
		msg := fmt.Sprintf("scan %d did not evaluate rule %q", sc.ID, truncate(ruleID, 120))
		if len(rs) == 0 && sc.Counts.Total > 0 {
			msg = fmt.Sprintf("the results of scan %d were pruned by retention; the rule's current state and its transitions remain (GET /api/v1/hosts/%d/findings)", sc.ID, sc.HostID)
		}
		fail(c, http.StatusNotFound, "not_found", "rule", msg)
		return
	}
	evidence := []result.Evidence{}
	if found.EvidenceHash != "" {
		ev, err := s.d.Store.Evidence(ctx, found.EvidenceHash)
		if err != nil {
			s.internal(c, err)
			return
		}
		if ev != nil {
			evidence = ev
		}
	}
	f := s.toFindingJSON(*found)
	c.JSON(http.StatusOK, gin.H{
		"scan": toScanJSON(sc),
		"result": resultJSON{
			RuleID: f.RuleID, Title: f.Title, Status: string(f.Status), Severity: string(f.Severity),
			Reason: f.Reason, ObservedAt: f.ObservedAt, FrameworkRefs: f.FrameworkRefs, EvidenceHash: f.EvidenceHash,
		},
		"evidence": evidence,
	})
}
