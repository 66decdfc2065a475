package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// scanData is what scan.html renders.
type scanData struct {
	Scan     store.Scan
	Host     store.Host
	HostGone bool // deleted since: its history stays, its page does not
	Status   string
	Statuses []string
	Results  []fleetFindingRow
	All      int
	Pruned   bool
}

// scanPage renders /scans/:id: the scan and its results.
func (u *UI) scanPage(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	sc, err := u.d.Store.Scan(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	d := scanData{Scan: sc, Status: c.Query("status"), Statuses: fleetStatuses}
	if d.Host, d.HostGone, err = u.scanHost(c, sc); err != nil {
		u.fleetError(c, err)
		return
	}
	var msg string
	if d.Status != "" && !slices.Contains(fleetStatuses, d.Status) {
		msg = "Ignored: status must be one of " + strings.Join(fleetStatuses, ", ") + "."
		d.Status = ""
	}
	rs, err := u.d.Store.ScanResults(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	d.All = len(rs)
	d.Pruned = len(rs) == 0 && sc.Counts.Total > 0
	d.Results = u.filterFindings(rs, fleetFindingFilter{Status: d.Status}, nil)
	u.render(c, http.StatusOK, "scan", Page{Title: fmt.Sprintf("Scan %d", id), Data: d, Nav: "hosts", Error: msg})
}

// scanHost returns the scanned host; gone is true when it was deleted
// (its scans stay answerable).
func (u *UI) scanHost(c *gin.Context, sc store.Scan) (store.Host, bool, error) {
	h, err := u.d.Store.Host(c.Request.Context(), sc.HostID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Host{ID: sc.HostID, Name: fmt.Sprintf("host %d", sc.HostID)}, true, nil
	}
	return h, false, err
}

// evidenceData is what evidence.html renders.
type evidenceData struct {
	Scan     store.Scan
	Host     store.Host
	HostGone bool
	Finding  store.Finding
	Rule     *rule.Rule
	Refs     []rule.Ref
	Evidence []result.Evidence
}

// evidencePage renders /scans/:id/results/:rule: one rule's result in a
// scan with every evidence record behind it.
func (u *UI) evidencePage(c *gin.Context) {
	id, ok := u.pathInt(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	sc, err := u.d.Store.Scan(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	ruleID := c.Param("rule")
	rs, err := u.d.Store.ScanResults(ctx, id)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	var found *store.Finding
	for i := range rs {
		if rs[i].RuleID == ruleID {
			found = &rs[i] // the last one wins, as in current state
		}
	}
	if found == nil {
		msg := fmt.Sprintf("Scan %d did not evaluate rule %q.", id, fleetClip(ruleID, 120))
		if len(rs) == 0 && sc.Counts.Total > 0 {
			msg = fmt.Sprintf("The results of scan %d were pruned by retention. The rule's current state and its history remain on the host's page (/hosts/%d).", id, sc.HostID)
		}
		u.renderError(c, req(c), http.StatusNotFound, msg)
		return
	}
	d := evidenceData{Scan: sc, Finding: *found, Rule: u.d.Posture.Index().Rule(ruleID)}
	if d.Host, d.HostGone, err = u.scanHost(c, sc); err != nil {
		u.fleetError(c, err)
		return
	}
	d.Refs = found.References
	if d.Rule != nil {
		d.Refs = u.d.Posture.Index().Refs(ruleID)
	}
	if found.EvidenceHash != "" {
		if d.Evidence, err = u.d.Store.Evidence(ctx, found.EvidenceHash); err != nil {
			u.fleetError(c, err)
			return
		}
	}
	u.render(c, http.StatusOK, "evidence", Page{Title: "Evidence: " + ruleID, Data: d, Nav: "hosts"})
}

// fleetClip bounds caller-supplied text echoed on a page.
func fleetClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
