package ui

import "github.com/vigilfleet/vigil/server/internal/api"

// routes is the UI's single list of pages and form actions, each with the
// permission of the matching REST endpoint.
func (u *UI) routes() []route {
	return []route{
		{"GET", "/login", api.PermPublic, u.loginPage},
		{"POST", "/login", api.PermPublic, u.loginSubmit},
		{"POST", "/logout", api.PermSelf, u.logout},

		{"GET", "/", api.PermFleetRead, u.dashboard},
		{"GET", "/hosts", api.PermFleetRead, u.hostsPage},
		{"GET", "/hosts/:id", api.PermFleetRead, u.hostPage},
		{"POST", "/hosts/:id/scan", api.PermScanTrigger, u.scanNow},
		{"GET", "/scans/:id", api.PermFleetRead, u.scanPage},
		{"GET", "/scans/:id/results/:rule", api.PermEvidenceRead, u.evidencePage},

		{"GET", "/history", api.PermFleetRead, u.historyPage},
		{"GET", "/rules", api.PermFleetRead, u.rulesPage},
		{"GET", "/rules/:id", api.PermFleetRead, u.rulePage},
		{"GET", "/frameworks", api.PermFleetRead, u.frameworksPage},
		{"GET", "/frameworks/:id", api.PermFleetRead, u.frameworkPage},

		{"GET", "/agents", api.PermFleetRead, u.agentsPage},
		{"POST", "/agents/tokens", api.PermAgentsManage, u.createJoinToken},
		{"POST", "/agents/:id/revoke", api.PermAgentsManage, u.revokeAgent},
		{"GET", "/users", api.PermUsersManage, u.usersPage},
		{"POST", "/users", api.PermUsersManage, u.createUser},
		{"POST", "/users/:id", api.PermUsersManage, u.updateUser},
		{"POST", "/users/:id/delete", api.PermUsersManage, u.deleteUser},
		{"GET", "/audit", api.PermAuditRead, u.auditPage},

		{"GET", "/exceptions", api.PermFleetRead, u.exceptionsPage},
		{"POST", "/exceptions", api.PermExceptionsRequest, u.requestException},
		{"POST", "/exceptions/:id/:action", api.PermExceptionsDecide, u.decideException},
		{"GET", "/alerts", api.PermFleetRead, u.alertsPage},
		{"POST", "/alerts/:id/:action", api.PermAlertsManage, u.changeAlert},
		{"GET", "/notifications", api.PermChannelsManage, u.notificationsPage},
		{"POST", "/notifications", api.PermChannelsManage, u.createChannel},
		{"POST", "/notifications/:id", api.PermChannelsManage, u.updateChannel},
		{"POST", "/notifications/:id/test", api.PermChannelsManage, u.testChannel},
		{"POST", "/notifications/:id/delete", api.PermChannelsManage, u.deleteChannel},
		{"GET", "/hosts/:id/export", api.PermExport, u.hostExport},
		{"GET", "/export", api.PermExport, u.fleetExport},
	}
}
