package ui

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// TEMPORARY scaffolding: each handler is replaced by its page; this file must be deleted.
func (u *UI) historyPage(c *gin.Context)    { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) rulesPage(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) rulePage(c *gin.Context)       { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) frameworksPage(c *gin.Context) { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) frameworkPage(c *gin.Context)  { c.AbortWithStatus(http.StatusNotImplemented) }
