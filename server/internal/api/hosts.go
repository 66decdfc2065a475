package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/ssh"

	"github.com/vigilfleet/vigil/engine/result"
	"github.com/vigilfleet/vigil/engine/rule"
	"github.com/vigilfleet/vigil/server/internal/agentless"
	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// Limits on what callers send: the default host page and the largest page
// a caller may ask for (so a 10,000-host fleet is never serialised in one
// response by accident), and bounds on free-form host fields.
const (
	defaultHostPage = 100
	maxPage         = 1000
	maxLabels       = 64
	maxOSLen        = 128
)

var (
	hostNameRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)
	dnsLabelRe   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	labelKeyRe   = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,63}$`)
	bandFilters  = []string{string(posture.BandCritical), string(posture.BandPoor), string(posture.BandFair), string(posture.BandGood), string(posture.BandExcellent), "none"}
	hostSorts    = []string{"name", "-name", "score", "-score", "last_scan_at", "-last_scan_at"}
	statusValues = []string{string(result.Pass), string(result.Fail), string(result.Skipped), string(result.Error)}
	severities   = []string{string(rule.Critical), string(rule.High), string(rule.Medium), string(rule.Low)}
)

// hostJSON is a host as the API shows it. Pointers are null when the value
// does not exist yet (never scanned, not owned by an agent).
type hostJSON struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	OS         string            `json:"os"`
	Labels     map[string]string `json:"labels"`
	Groups     []string          `json:"groups"`
	AgentID    *int64            `json:"agent_id"`
	Mode       string            `json:"mode"`
	Score      *float64          `json:"score"`
	Band       *string           `json:"band"`
	LastScanAt *time.Time        `json:"last_scan_at"`
	NextScanAt *time.Time        `json:"next_scan_at"`
}

func toHostJSON(h store.Host) hostJSON {
	out := hostJSON{
		ID: h.ID, Name: h.Name, Address: h.Address, OS: h.OS,
		Labels: h.Labels, Groups: h.Groups, Mode: "agentless",
		LastScanAt: ts(h.LastScanAt), NextScanAt: ts(h.NextScanAt),
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	if h.AgentID != 0 {
		id := h.AgentID
		out.AgentID, out.Mode = &id, "agent"
	}
	if h.Band != "" {
		score, band := h.Score, h.Band
		out.Score, out.Band = &score, &band
	}
	return out
}

// ts is a time for JSON: UTC, or null when zero ("never").
func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// hostFilter is a parsed GET /hosts query.
type hostFilter struct {
	q, group, os string // q and os lower-cased
	bands        map[string]bool
	labels       []labelFilter
}

// labelFilter is label=key=value (that value) or label=key (any value).
type labelFilter struct {
	key, value string
	hasValue   bool
}

func (f hostFilter) match(h store.Host) bool {
	if f.q != "" && !containsFold(h.Name, f.q) && !containsFold(h.Address, f.q) && !containsFold(h.OS, f.q) {
		return false
	}
	if f.os != "" && !containsFold(h.OS, f.os) {
		return false
	}
	if f.group != "" && !slices.Contains(h.Groups, f.group) {
		return false
	}
	if f.bands != nil {
		b := h.Band
		if b == "" {
			b = "none"
		}
		if !f.bands[b] {
			return false
		}
	}
	for _, l := range f.labels {
		v, ok := h.Labels[l.key]
		if !ok || (l.hasValue && v != l.value) {
			return false
		}
	}
	return true
}

// listHosts answers GET /hosts: filter and sort in memory over the store's
// list, which stays fast for tens of thousands of hosts and keeps the
// query language independent of the database.
func (s *Server) listHosts(c *gin.Context) {
	f := hostFilter{q: strings.ToLower(c.Query("q")), os: strings.ToLower(c.Query("os")), group: c.Query("group")}
	bands, ok := queryEnum(c, "band", bandFilters)
	if !ok {
		return
	}
	if bands != nil {
		f.bands = map[string]bool{}
		for _, b := range bands {
			f.bands[b] = true
		}
	}
	for _, l := range c.QueryArray("label") {
		k, v, hasVal := strings.Cut(l, "=")
		if !labelKeyRe.MatchString(k) {
			badRequest(c, "label", "label filter %q must be key=value or key, with a key of 1-63 letters, digits or ._/-", l)
			return
		}
		f.labels = append(f.labels, labelFilter{key: k, value: v, hasValue: hasVal})
	}
	sortBy := c.DefaultQuery("sort", "name")
	if !slices.Contains(hostSorts, sortBy) {
		badRequest(c, "sort", "sort must be one of %s", strings.Join(hostSorts, ", "))
		return
	}
	limit, ok := queryInt(c, "limit", defaultHostPage, 1, maxPage)
	if !ok {
		return
	}
	offset, ok := queryInt(c, "offset", 0, 0, 1<<31-1)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if f.group != "" && !s.groupExists(c, f.group, "group") {
		return
	}
	hosts, err := s.d.Store.Hosts(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	matched := hosts[:0]
	for _, h := range hosts {
		if f.match(h) {
			matched = append(matched, h)
		}
	}
	sortHosts(matched, sortBy)
	total := len(matched)
	page := matched[min(offset, total):min(offset+limit, total)]
	out := make([]hostJSON, len(page))
	for i, h := range page {
		out[i] = toHostJSON(h)
	}
	c.JSON(http.StatusOK, gin.H{"hosts": out, "total": total})
}

// sortHosts orders hosts; hosts never scanned come last whichever the
// direction, and ties keep name order.
func sortHosts(hs []store.Host, by string) {
	desc := strings.HasPrefix(by, "-")
	key := strings.TrimPrefix(by, "-")
	sort.SliceStable(hs, func(i, j int) bool {
		a, b := hs[i], hs[j]
		switch key {
		case "score":
			if (a.Band == "") != (b.Band == "") {
				return b.Band == ""
			}
			if a.Score != b.Score {
				return (a.Score < b.Score) != desc
			}
		case "last_scan_at":
			if a.LastScanAt.IsZero() != b.LastScanAt.IsZero() {
				return b.LastScanAt.IsZero()
			}
			if !a.LastScanAt.Equal(b.LastScanAt) {
				return a.LastScanAt.Before(b.LastScanAt) != desc
			}
		}
		if a.Name != b.Name {
			return (a.Name < b.Name) != (desc && key == "name")
		}
		return false
	})
}

// hostCreate is the body of POST /hosts. SSH is the login for agentless
// scanning; it is sealed before it reaches the store and never returned.
type hostCreate struct {
	Name    string                `json:"name"`
	Address string                `json:"address"`
	OS      string                `json:"os"`
	Labels  map[string]string     `json:"labels"`
	Groups  []string              `json:"groups"`
	SSH     *agentless.Credential `json:"ssh"`
}

// hostUpdate is the body of PUT /hosts/:id: absent fields keep their value;
// ssh, when present, replaces the stored credential. The name is the
// host's key and cannot change.
type hostUpdate struct {
	Name    *string               `json:"name"`
	Address *string               `json:"address"`
	OS      *string               `json:"os"`
	Labels  map[string]string     `json:"labels"`
	Groups  []string              `json:"groups"`
	SSH     *agentless.Credential `json:"ssh"`
}

// createHost answers POST /hosts: an agentless host with its SSH
// credential.
func (s *Server) createHost(c *gin.Context) {
	var req hostCreate
	if !bind(c, &req) {
		return
	}
	if !hostNameRe.MatchString(req.Name) {
		badRequest(c, "name", "name must be 1-253 letters, digits, dots, underscores or hyphens")
		return
	}
	if !validAddress(c, req.Address) || !validOS(c, req.OS) || !validLabels(c, req.Labels) {
		return
	}
	if req.SSH == nil {
		badRequest(c, "ssh", "ssh is required: the server scans this host over SSH")
		return
	}
	if !validCredential(c, *req.SSH) {
		return
	}
	groups, ok := s.checkGroups(c, req.Groups)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	h, err := s.d.Store.CreateHost(ctx, store.Host{Name: req.Name, Address: req.Address, OS: req.OS, Labels: req.Labels, Groups: groups})
	if errors.Is(err, store.ErrConflict) {
		fail(c, http.StatusConflict, "conflict", "name", fmt.Sprintf("a host named %q already exists", req.Name))
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	if err := s.storeCredential(c, h.ID, *req.SSH); err != nil {
		// Without its credential the host cannot be scanned: take it back
		// out rather than leave a host that fails every scan.
		if derr := s.d.Store.DeleteHost(ctx, h.ID); derr != nil {
			err = errors.Join(err, derr)
		}
		s.internal(c, err)
		return
	}
	if !s.audit(c, "host.create", hostTarget(h.ID), gin.H{
		"name": h.Name, "address": h.Address, "os": h.OS, "labels": req.Labels, "groups": groups,
		"ssh": credentialSummary(*req.SSH),
	}) {
		return
	}
	s.wake()
	s.respondHost(c, http.StatusCreated, h.ID)
}

// getHost answers GET /hosts/:id.
func (s *Server) getHost(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	s.respondHost(c, http.StatusOK, id)
}

// updateHost answers PUT /hosts/:id.
func (s *Server) updateHost(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var req hostUpdate
	if !bind(c, &req) {
		return
	}
	ctx := c.Request.Context()
	h, err := s.d.Store.Host(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	changed := []string{}
	if req.Name != nil && *req.Name != h.Name {
		badRequest(c, "name", "a host cannot be renamed (its name is its key); add a new host instead")
		return
	}
	if req.Address != nil {
		if !validAddress(c, *req.Address) {
			return
		}
		h.Address = *req.Address
		changed = append(changed, "address")
	}
	if req.OS != nil {
		if !validOS(c, *req.OS) {
			return
		}
		h.OS = *req.OS
		changed = append(changed, "os")
	}
	if req.Labels != nil {
		if !validLabels(c, req.Labels) {
			return
		}
		h.Labels = req.Labels
		changed = append(changed, "labels")
	}
	if req.Groups != nil {
		groups, ok := s.checkGroups(c, req.Groups)
		if !ok {
			return
		}
		h.Groups = groups
		changed = append(changed, "groups")
	}
	if req.SSH != nil {
		if h.AgentID != 0 {
			badRequest(c, "ssh", "host %d is scanned by agent %d; an SSH credential applies only to agentless hosts", id, h.AgentID)
			return
		}
		if !validCredential(c, *req.SSH) {
			return
		}
		changed = append(changed, "ssh")
	}
	if _, err := s.d.Store.UpsertHost(ctx, h); err != nil {
		s.internal(c, err)
		return
	}
	detail := gin.H{"changed": changed, "address": h.Address, "os": h.OS, "labels": h.Labels, "groups": h.Groups}
	if req.SSH != nil {
		if err := s.storeCredential(c, id, *req.SSH); err != nil {
			s.internal(c, err)
			return
		}
		detail["ssh"] = credentialSummary(*req.SSH)
	}
	if !s.audit(c, "host.update", hostTarget(id), detail) {
		return
	}
	s.respondHost(c, http.StatusOK, id)
}

// deleteHost answers DELETE /hosts/:id: the host leaves lists and the
// schedule; its history stays.
func (s *Server) deleteHost(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	h, err := s.d.Store.Host(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	if err := s.d.Store.DeleteHost(ctx, id); err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "host.delete", hostTarget(id), gin.H{"name": h.Name}) {
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) respondHost(c *gin.Context, status int, id int64) {
	h, err := s.d.Store.Host(c.Request.Context(), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(status, toHostJSON(h))
}

// storeCredential seals the credential for this host alone and stores it.
func (s *Server) storeCredential(c *gin.Context, hostID int64, cred agentless.Credential) error {
	if s.d.Sealer == nil {
		return errors.New("store credential: no sealer configured")
	}
	plain, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("credential of host %d: %w", hostID, err)
	}
	sealed, err := s.d.Sealer.Seal(plain, agentless.AAD(hostID))
	clear(plain)
	if err != nil {
		return fmt.Errorf("seal credential of host %d: %w", hostID, err)
	}
	return s.d.Store.SetCredential(c.Request.Context(), hostID, sealed)
}

// credentialSummary is what the audit log may say about a credential:
// never the key or the password.
func credentialSummary(cr agentless.Credential) gin.H {
	auth := []string{}
	if cr.PrivateKey != "" {
		auth = append(auth, "private_key")
	}
	if cr.Password != "" {
		auth = append(auth, "password")
	}
	port := cr.Port
	if port == 0 {
		port = 22
	}
	return gin.H{"user": cr.User, "port": port, "sudo": cr.Sudo, "auth": auth}
}

// validCredential names the first bad ssh field; agentless.Validate, the
// scanner's own gate, has the last word. Messages are ours: a key parser's
// text must never carry key material back to the caller or into a log.
func validCredential(c *gin.Context, cr agentless.Credential) bool {
	switch {
	case cr.User == "":
		badRequest(c, "ssh.user", "ssh.user is required")
	case cr.Port < 0 || cr.Port > 65535:
		badRequest(c, "ssh.port", "ssh.port must be 1-65535 (0 or absent means 22)")
	case cr.PrivateKey == "" && cr.Password == "":
		badRequest(c, "ssh.private_key", "ssh.private_key or ssh.password is required")
	case cr.PrivateKey != "" && !validPrivateKey(cr.PrivateKey):
		badRequest(c, "ssh.private_key", "ssh.private_key must be an unencrypted private key in OpenSSH or PEM format (it is sealed at rest)")
	case !validKnownHosts(cr.KnownHosts):
		badRequest(c, "ssh.known_hosts", "ssh.known_hosts must hold at least one host key line in known_hosts format and no malformed line: host keys are always verified")
	default:
		if err := cr.Validate(); err != nil {
			badRequest(c, "ssh", "%v", err)
			return false
		}
		return true
	}
	return false
}

func validPrivateKey(pem string) bool {
	_, err := ssh.ParsePrivateKey([]byte(pem))
	return err == nil
}

// validKnownHosts requires at least one host key line and no bad line:
// a typo must not silently leave the host unverifiable.
func validKnownHosts(text string) bool {
	in := []byte(text)
	n := 0
	for range strings.Count(text, "\n") + 1 {
		_, _, _, _, rest, err := ssh.ParseKnownHosts(in)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false
		}
		n++
		if len(rest) == 0 {
			break
		}
		in = rest
	}
	return n > 0
}

// validAddress accepts an IP address or a DNS host name.
func validAddress(c *gin.Context, a string) bool {
	if net.ParseIP(a) != nil {
		return true
	}
	ok := a != "" && len(a) <= 253
	for _, l := range strings.Split(strings.TrimSuffix(a, "."), ".") {
		ok = ok && dnsLabelRe.MatchString(l)
	}
	if !ok {
		badRequest(c, "address", "address must be an IP address or a DNS host name, got %q", truncate(a, 80))
	}
	return ok
}

func validOS(c *gin.Context, os string) bool {
	if len(os) > maxOSLen || strings.IndexFunc(os, unicode.IsControl) >= 0 {
		badRequest(c, "os", "os must be at most %d printable characters", maxOSLen)
		return false
	}
	return true
}

func validLabels(c *gin.Context, labels map[string]string) bool {
	if len(labels) > maxLabels {
		badRequest(c, "labels", "at most %d labels", maxLabels)
		return false
	}
	for k, v := range labels {
		if !labelKeyRe.MatchString(k) {
			badRequest(c, "labels", "label key %q must be 1-63 letters, digits or ._/-", truncate(k, 80))
			return false
		}
		if len(v) > 255 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			badRequest(c, "labels", "label %q: value must be at most 255 printable characters", k)
			return false
		}
	}
	return true
}

// checkGroups verifies every named group exists and drops duplicates.
func (s *Server) checkGroups(c *gin.Context, names []string) ([]string, bool) {
	if len(names) == 0 {
		return []string{}, true
	}
	groups, err := s.d.Store.Groups(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return nil, false
	}
	known := map[string]bool{}
	for _, g := range groups {
		known[g.Name] = true
	}
	out := []string{}
	seen := map[string]bool{}
	for _, n := range names {
		if !known[n] {
			badRequest(c, "groups", "no group named %q; create it first (POST /api/v1/groups)", truncate(n, 80))
			return nil, false
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, true
}

// groupExists answers 400 naming field when no group has that name.
func (s *Server) groupExists(c *gin.Context, name, field string) bool {
	groups, err := s.d.Store.Groups(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return false
	}
	for _, g := range groups {
		if g.Name == name {
			return true
		}
	}
	badRequest(c, field, "no group named %q", truncate(name, 80))
	return false
}

// hostFindings answers GET /hosts/:id/findings: the current state of every
// rule seen on the host, with its framework references.
func (s *Server) hostFindings(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	statuses, ok := queryEnum(c, "status", statusValues)
	if !ok {
		return
	}
	sevs, ok := queryEnum(c, "severity", severities)
	if !ok {
		return
	}
	inFramework, ok := s.frameworkRules(c, c.Query("framework"))
	if !ok {
		return
	}
	ruleID := c.Query("rule")
	ctx := c.Request.Context()
	h, err := s.d.Store.Host(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	state, err := s.d.Store.CurrentState(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	accepted, err := s.acceptedNow(c, h)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := []findingJSON{}
	for _, f := range state {
		if (statuses != nil && !slices.Contains(statuses, string(f.Status))) ||
			(sevs != nil && !slices.Contains(sevs, string(f.Severity))) ||
			(inFramework != nil && !inFramework[f.RuleID]) ||
			(ruleID != "" && f.RuleID != ruleID) {
			continue
		}
		fj := s.toFindingJSON(f)
		if exc := accepted[f.RuleID]; exc != 0 && f.Status == result.Fail {
			fj.Accepted, fj.ExceptionID = true, exc
		}
		out = append(out, fj)
	}
	c.JSON(http.StatusOK, gin.H{"host_id": id, "findings": out})
}

// acceptedNow returns the rules an approved exception covers on h now,
// mapped to the exception's id; nil when the server runs without
// governance.
func (s *Server) acceptedNow(c *gin.Context, h store.Host) (map[string]int64, error) {
	if s.d.Governance == nil {
		return nil, nil
	}
	m, err := s.d.Governance.Accepted(c.Request.Context(), s.now(), []store.Host{h})
	if err != nil {
		return nil, fmt.Errorf("exceptions covering host %d: %w", h.ID, err)
	}
	return m[h.ID], nil
}

// findingJSON is a rule's state on a host, or one result of a scan.
type findingJSON struct {
	RuleID        string        `json:"rule_id"`
	Title         string        `json:"title"`
	Status        result.Status `json:"status"`
	Severity      rule.Severity `json:"severity"`
	Reason        string        `json:"reason"`
	FrameworkRefs []refJSON     `json:"framework_refs"`
	ScanID        int64         `json:"scan_id"`
	ObservedAt    *time.Time    `json:"observed_at"`
	EvidenceHash  string        `json:"evidence_hash"`
	// Accepted is set on a failing rule an approved exception covers now
	// (host findings only); Status stays fail ("failed, accepted").
	Accepted    bool  `json:"accepted,omitempty"`
	ExceptionID int64 `json:"exception_id,omitempty"`
}

func (s *Server) toFindingJSON(f store.Finding) findingJSON {
	out := findingJSON{
		RuleID: f.RuleID, Status: f.Status, Severity: f.Severity, Reason: f.Reason,
		FrameworkRefs: s.refs(f.RuleID, f.References), ScanID: f.ScanID,
		ObservedAt: ts(f.At), EvidenceHash: f.EvidenceHash,
	}
	if r := s.index().Rule(f.RuleID); r != nil {
		out.Title = r.Title
	}
	return out
}

// refJSON is one framework control a rule maps to.
type refJSON struct {
	Framework string `json:"framework"`
	Control   string `json:"control"`
}

// refs returns a rule's references from the index, derived ones included;
// a rule the index no longer knows keeps the references it was stored with.
func (s *Server) refs(ruleID string, stored []rule.Ref) []refJSON {
	rs := stored
	if s.index().Rule(ruleID) != nil {
		rs = s.index().Refs(ruleID)
	}
	out := make([]refJSON, len(rs))
	for i, r := range rs {
		out[i] = refJSON{Framework: r.Framework, Control: r.Control}
	}
	return out
}

func (s *Server) index() *posture.Index { return s.d.Posture.Index() }

// frameworkRules returns the set of rule ids mapped to a framework, nil for
// "" (no filter); an unknown framework is answered 400.
func (s *Server) frameworkRules(c *gin.Context, fw string) (map[string]bool, bool) {
	if fw == "" {
		return nil, true
	}
	ids, ok := s.index().RuleIDs(fw)
	if !ok {
		unknownFramework(c, fw)
		return nil, false
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, true
}

func unknownFramework(c *gin.Context, fw string) {
	badRequest(c, "framework", "unknown framework %q; GET /api/v1/frameworks lists them", truncate(fw, 80))
}

// hostTrend answers GET /hosts/:id/trend: one posture point per day.
func (s *Server) hostTrend(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	days, ok := queryInt(c, "days", 30, 1, 366)
	if !ok {
		return
	}
	fw := c.Query("framework")
	if _, ok := s.frameworkRules(c, fw); !ok {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.d.Store.Host(ctx, id); err != nil {
		s.internal(c, err)
		return
	}
	points, err := s.d.Posture.Trend(ctx, id, days, fw)
	if err != nil {
		s.postureError(c, err, fw)
		return
	}
	if points == nil {
		points = []posture.TrendPoint{}
	}
	c.JSON(http.StatusOK, gin.H{"host_id": id, "framework": fw, "points": points})
}

// hostScans answers GET /hosts/:id/scans, newest first.
func (s *Server) hostScans(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if _, err := s.d.Store.Host(c.Request.Context(), id); err != nil {
		s.internal(c, err)
		return
	}
	s.respondScans(c, store.ScanFilter{HostID: id})
}

// scanHostNow answers POST /hosts/:id/scan.
func (s *Server) scanHostNow(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	s.requestScan(c, id, "id")
}

// requestScan makes a host due now and nudges the scheduler; field names
// the parameter that carried the host id, for the 404.
func (s *Server) requestScan(c *gin.Context, id int64, field string) {
	ctx := c.Request.Context()
	if _, err := s.d.Store.Host(ctx, id); errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, "not_found", field, fmt.Sprintf("no host with id %d", id))
		return
	} else if err != nil {
		s.internal(c, err)
		return
	}
	now := s.now().UTC()
	if err := s.d.Store.RequestScan(ctx, id, "manual", now); err != nil {
		s.internal(c, err)
		return
	}
	if !s.audit(c, "scan.request", hostTarget(id), gin.H{"trigger": "manual"}) {
		return
	}
	s.wake()
	c.JSON(http.StatusAccepted, gin.H{"host_id": id, "requested_at": now})
}

func (s *Server) wake() {
	if s.d.Wake != nil {
		s.d.Wake()
	}
}

func hostTarget(id int64) string { return "host/" + strconv.FormatInt(id, 10) }

// queryInt parses an optional integer query parameter in [lo, hi].
func queryInt(c *gin.Context, name string, def, lo, hi int) (int, bool) {
	v := c.Query(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		badRequest(c, name, "%s must be an integer from %d to %d, got %q", name, lo, hi, truncate(v, 40))
		return 0, false
	}
	return n, true
}

// queryID parses an optional positive id query parameter; 0 when absent.
func queryID(c *gin.Context, name string) (int64, bool) {
	v := c.Query(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		badRequest(c, name, "%s must be a positive integer, got %q", name, truncate(v, 40))
		return 0, false
	}
	return n, true
}

// queryEnum parses an optional comma-separated list of allowed values; nil
// when absent.
func queryEnum(c *gin.Context, name string, allowed []string) ([]string, bool) {
	v := c.Query(name)
	if v == "" {
		return nil, true
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if !slices.Contains(allowed, p) {
			badRequest(c, name, "%s must be one of %s (comma-separated), got %q", name, strings.Join(allowed, ", "), truncate(v, 40))
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

// containsFold reports whether s contains lowerSub, ignoring case;
// lowerSub is already lower-cased.
func containsFold(s, lowerSub string) bool {
	return strings.Contains(strings.ToLower(s), lowerSub)
}

// truncate bounds caller-supplied text echoed in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
