package api

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
)

// The roles, least privileged first. A user has exactly one.
const (
	RoleViewer        = "viewer"         // looks at the fleet
	RoleAuditor       = "auditor"        // looks at the fleet, evidence and the audit log
	RoleOperator      = "operator"       // runs the fleet: hosts, groups, scans
	RoleSecurityAdmin = "security_admin" // operator plus agents and the audit log
	RoleAdmin         = "admin"          // everything, users included
)

// permsOf is the permission matrix. It is a function rather than a package
// variable so that nothing can change it at run time.
func permsOf(role string) []Perm {
	switch role {
	case RoleViewer:
		return []Perm{PermFleetRead, PermSelf}
	case RoleAuditor:
		return []Perm{PermFleetRead, PermEvidenceRead, PermAuditRead, PermExport, PermSelf}
	case RoleOperator:
		return []Perm{PermFleetRead, PermEvidenceRead, PermHostsWrite, PermScanTrigger, PermExceptionsRequest,
			PermAlertsManage, PermExport, PermSelf}
	case RoleSecurityAdmin:
		return []Perm{PermFleetRead, PermEvidenceRead, PermAuditRead, PermHostsWrite, PermScanTrigger, PermAgentsManage,
			PermExceptionsRequest, PermExceptionsDecide, PermAlertsManage, PermChannelsManage, PermExport, PermSelf}
	case RoleAdmin:
		return allPerms()
	}
	return nil
}

// allPerms lists every permission a route can require except PermPublic.
func allPerms() []Perm {
	return []Perm{PermSelf, PermFleetRead, PermEvidenceRead, PermAuditRead, PermHostsWrite,
		PermScanTrigger, PermAgentsManage, PermUsersManage, PermExceptionsRequest, PermExceptionsDecide,
		PermAlertsManage, PermChannelsManage, PermExport}
}

// Roles returns the role names, least privileged first, so the UI and the
// user API can offer and validate them.
func Roles() []string {
	return []string{RoleViewer, RoleAuditor, RoleOperator, RoleSecurityAdmin, RoleAdmin}
}

// validRole reports whether role is one of Roles.
func validRole(role string) bool { return slices.Contains(Roles(), role) }

// Allowed reports whether role holds permission p. Everyone may use a
// public route; an unknown role holds nothing else.
func Allowed(role string, p Perm) bool {
	if p == PermPublic {
		return true
	}
	return slices.Contains(permsOf(role), p)
}

// authorize refuses, with 403 naming the permission, a caller whose role
// lacks p. It runs after authenticate.
func (s *Server) authorize(p Perm) gin.HandlerFunc {
	return func(c *gin.Context) {
		pr := principal(c)
		if pr == nil {
			// authenticate always runs first; reaching here is a wiring bug.
			s.log.Error("authorize without a principal", "request_id", RequestID(c), "route", c.FullPath())
			fail(c, http.StatusInternalServerError, "internal", "", "internal error")
			return
		}
		if !Allowed(pr.User.Role, p) {
			fail(c, http.StatusForbidden, "forbidden", "",
				fmt.Sprintf("role %q lacks permission %q", pr.User.Role, p))
			return
		}
		c.Next()
	}
}
