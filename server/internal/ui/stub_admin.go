package ui

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// TEMPORARY scaffolding: each handler is replaced by its page; this file must be deleted.
func (u *UI) loginPage(c *gin.Context)       { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) loginSubmit(c *gin.Context)     { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) logout(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) agentsPage(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) createJoinToken(c *gin.Context) { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) revokeAgent(c *gin.Context)     { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) usersPage(c *gin.Context)       { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) createUser(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) updateUser(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) deleteUser(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) auditPage(c *gin.Context)       { c.AbortWithStatus(http.StatusNotImplemented) }
