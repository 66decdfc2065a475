package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// agentJSON is an enrolled agent as the API shows it. An agent holds no
// secret the server knows (its key never leaves its host); the certificate
// serial is public and is what revocation names.
type agentJSON struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	Version    string            `json:"version"`
	OS         string            `json:"os"`
	CertSerial string            `json:"cert_serial"`
	Labels     map[string]string `json:"labels"`
	Hosts      int               `json:"hosts"` // how many hosts it scans
	HostList   []agentHost       `json:"host_list"`
	EnrolledAt *time.Time        `json:"enrolled_at"`
	LastSeenAt *time.Time        `json:"last_seen_at"`
	LastSeen   *time.Time        `json:"last_seen"` // same as last_seen_at; the name scripts use
	RevokedAt  *time.Time        `json:"revoked_at"`
	// Online is computed: seen within three heartbeat intervals. State
	// folds it with revocation: online, offline or revoked.
	Online       bool   `json:"online"`
	State        string `json:"state"`
	Hostname     string `json:"hostname"`
	SpoolBatches int64  `json:"spool_batches"`
	SpoolBytes   int64  `json:"spool_bytes"`
	BundleDigest string `json:"bundle_digest"`
}

// missedHeartbeats is how many heartbeat intervals an agent may stay
// silent before it is shown offline.
const missedHeartbeats = 3

// agentHost names a host an agent scans.
type agentHost struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func (s *Server) toAgentJSON(a store.Agent, hosts []agentHost) agentJSON {
	if hosts == nil {
		hosts = []agentHost{}
	}
	labels := a.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	state, online := s.AgentState(a)
	return agentJSON{
		ID: a.ID, Name: a.Name, Status: string(a.Status), Version: a.Version, OS: a.OS,
		CertSerial: a.CertSerial, Labels: labels, Hosts: len(hosts), HostList: hosts,
		EnrolledAt: ts(a.EnrolledAt), LastSeenAt: ts(a.LastSeenAt), LastSeen: ts(a.LastSeenAt), RevokedAt: ts(a.RevokedAt),
		Online: online, State: state, Hostname: a.Hostname,
		SpoolBatches: a.SpoolBatches, SpoolBytes: a.SpoolBytes, BundleDigest: a.BundleDigest,
	}
}

// AgentState says whether an agent is "online" (active and seen within
// three heartbeat intervals), "offline" or "revoked" (its status), so the
// REST API and the web UI show the same state.
func (s *Server) AgentState(a store.Agent) (state string, online bool) {
	online = a.Status == store.AgentActive && !a.LastSeenAt.IsZero() &&
		s.now().Sub(a.LastSeenAt) < missedHeartbeats*s.d.AgentHeartbeat
	state = "offline"
	switch {
	case a.Status != store.AgentActive:
		state = string(a.Status)
	case online:
		state = "online"
	}
	return state, online
}

// agentHosts lists the hosts each agent scans, by agent id.
func agentHosts(hosts []store.Host) map[int64][]agentHost {
	owned := map[int64][]agentHost{}
	for _, h := range hosts {
		if h.AgentID != 0 {
			owned[h.AgentID] = append(owned[h.AgentID], agentHost{ID: h.ID, Name: h.Name})
		}
	}
	return owned
}

// listAgents answers GET /agents.
func (s *Server) listAgents(c *gin.Context) {
	ctx := c.Request.Context()
	agents, err := s.d.Store.Agents(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	hosts, err := s.d.Store.Hosts(ctx)
	if err != nil {
		s.internal(c, err)
		return
	}
	owned := agentHosts(hosts)
	out := make([]agentJSON, len(agents))
	for i, a := range agents {
		out[i] = s.toAgentJSON(a, owned[a.ID])
	}
	c.JSON(http.StatusOK, gin.H{"agents": out})
}
