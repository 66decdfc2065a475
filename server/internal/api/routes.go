package api

import "github.com/gin-gonic/gin"

// Perm is a permission a route requires; rbac.go says which roles hold it.
type Perm string

// The permissions.
const (
	PermPublic       Perm = "public"        // no authentication (login only)
	PermSelf         Perm = "self"          // any signed-in user, on their own account and tokens
	PermFleetRead    Perm = "fleet.read"    // hosts, groups, scans, findings, posture, rules, agents
	PermEvidenceRead Perm = "evidence.read" // evidence records of results
	PermAuditRead    Perm = "audit.read"    // the audit log
	PermHostsWrite   Perm = "hosts.write"   // hosts and groups: create, update, delete
	PermScanTrigger  Perm = "scans.trigger" // scan now
	PermAgentsManage Perm = "agents.manage" // enrolment tokens, revocation
	PermUsersManage  Perm = "users.manage"  // users and roles; everyone's tokens

	PermExceptionsRequest Perm = "exceptions.request" // ask for an exception
	PermExceptionsDecide  Perm = "exceptions.decide"  // approve, reject, revoke exceptions
	PermAlertsManage      Perm = "alerts.manage"      // acknowledge, silence, resolve alerts
	PermChannelsManage    Perm = "channels.manage"    // notification channels and their delivery log
	PermExport            Perm = "exports.read"       // signed exports (they carry evidence excerpts)
)

// Route is one endpoint: the table below is the API's single source of
// truth for paths, methods and permissions.
type Route struct {
	Method  string
	Path    string
	Perm    Perm
	Handler gin.HandlerFunc
}

func (s *Server) routes() []Route {
	return []Route{
		{"POST", "/api/v1/auth/login", PermPublic, s.login},
		{"POST", "/api/v1/auth/logout", PermSelf, s.logout},
		{"GET", "/api/v1/auth/me", PermSelf, s.me},

		{"GET", "/api/v1/hosts", PermFleetRead, s.listHosts},
		{"POST", "/api/v1/hosts", PermHostsWrite, s.createHost},
		{"GET", "/api/v1/hosts/:id", PermFleetRead, s.getHost},
		{"PUT", "/api/v1/hosts/:id", PermHostsWrite, s.updateHost},
		{"DELETE", "/api/v1/hosts/:id", PermHostsWrite, s.deleteHost},
		{"GET", "/api/v1/hosts/:id/findings", PermFleetRead, s.hostFindings},
		{"GET", "/api/v1/hosts/:id/trend", PermFleetRead, s.hostTrend},
		{"GET", "/api/v1/hosts/:id/scans", PermFleetRead, s.hostScans},
		{"POST", "/api/v1/hosts/:id/scan", PermScanTrigger, s.scanHostNow},
		{"GET", "/api/v1/hosts/:id/inventory", PermFleetRead, s.hostInventory},
		{"GET", "/api/v1/inventory/search", PermFleetRead, s.searchInventory},

		{"GET", "/api/v1/groups", PermFleetRead, s.listGroups},
		{"POST", "/api/v1/groups", PermHostsWrite, s.createGroup},
		{"DELETE", "/api/v1/groups/:id", PermHostsWrite, s.deleteGroup},

		{"GET", "/api/v1/scans", PermFleetRead, s.listScans},
		{"POST", "/api/v1/scans", PermScanTrigger, s.triggerScan},
		{"GET", "/api/v1/scans/:id", PermFleetRead, s.getScan},
		{"GET", "/api/v1/scans/:id/results", PermFleetRead, s.scanResults},
		{"GET", "/api/v1/scans/:id/results/:rule", PermEvidenceRead, s.scanResultEvidence},

		{"GET", "/api/v1/posture", PermFleetRead, s.posture},
		{"GET", "/api/v1/drift", PermFleetRead, s.drift},
		{"GET", "/api/v1/rules", PermFleetRead, s.listRules},
		{"GET", "/api/v1/rules/:id", PermFleetRead, s.getRule},
		{"GET", "/api/v1/frameworks", PermFleetRead, s.listFrameworks},
		{"GET", "/api/v1/agents", PermFleetRead, s.listAgents},
		{"POST", "/api/v1/agents/:id/revoke", PermAgentsManage, s.revokeAgent},
		{"POST", "/api/v1/enrollment-tokens", PermAgentsManage, s.createEnrollmentToken},

		{"GET", "/api/v1/users", PermUsersManage, s.listUsers},
		{"POST", "/api/v1/users", PermUsersManage, s.createUser},
		{"PUT", "/api/v1/users/:id", PermUsersManage, s.updateUser},
		{"DELETE", "/api/v1/users/:id", PermUsersManage, s.deleteUser},

		{"GET", "/api/v1/tokens", PermSelf, s.listTokens},
		{"POST", "/api/v1/tokens", PermSelf, s.createToken},
		{"DELETE", "/api/v1/tokens/:id", PermSelf, s.revokeToken},

		{"GET", "/api/v1/audit", PermAuditRead, s.listAudit},
		{"GET", "/api/v1/audit/verify", PermAuditRead, s.verifyAudit},

		{"GET", "/api/v1/exceptions", PermFleetRead, s.listExceptions},
		{"POST", "/api/v1/exceptions", PermExceptionsRequest, s.createException},
		{"GET", "/api/v1/exceptions/:id", PermFleetRead, s.getException},
		{"POST", "/api/v1/exceptions/:id/approve", PermExceptionsDecide, s.decideException("approve")},
		{"POST", "/api/v1/exceptions/:id/reject", PermExceptionsDecide, s.decideException("reject")},
		{"POST", "/api/v1/exceptions/:id/revoke", PermExceptionsDecide, s.decideException("revoke")},

		{"GET", "/api/v1/alerts", PermFleetRead, s.listAlerts},
		{"GET", "/api/v1/alerts/:id", PermFleetRead, s.getAlert},
		{"POST", "/api/v1/alerts/:id/acknowledge", PermAlertsManage, s.changeAlert("acknowledge")},
		{"POST", "/api/v1/alerts/:id/silence", PermAlertsManage, s.changeAlert("silence")},
		{"POST", "/api/v1/alerts/:id/resolve", PermAlertsManage, s.changeAlert("resolve")},
		{"POST", "/api/v1/alerts/:id/reactivate", PermAlertsManage, s.changeAlert("reactivate")},

		{"GET", "/api/v1/notification-channels", PermChannelsManage, s.listChannels},
		{"POST", "/api/v1/notification-channels", PermChannelsManage, s.createChannel},
		{"PUT", "/api/v1/notification-channels/:id", PermChannelsManage, s.updateChannel},
		{"DELETE", "/api/v1/notification-channels/:id", PermChannelsManage, s.deleteChannel},
		{"POST", "/api/v1/notification-channels/:id/test", PermChannelsManage, s.testChannel},
		{"GET", "/api/v1/notification-channels/:id/deliveries", PermChannelsManage, s.channelDeliveries},

		{"GET", "/api/v1/hosts/:id/export", PermExport, s.hostExport},
		{"GET", "/api/v1/scans/:id/export", PermExport, s.scanExport},
		{"GET", "/api/v1/export", PermExport, s.fleetExport},
		{"GET", "/api/v1/export/public-key", PermFleetRead, s.exportPublicKey},
	}
}
