package ui

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// TEMPORARY scaffolding: each handler is replaced by its page; this file must be deleted.
func (u *UI) dashboard(c *gin.Context)    { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) hostsPage(c *gin.Context)    { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) hostPage(c *gin.Context)     { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) scanNow(c *gin.Context)      { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) scanPage(c *gin.Context)     { c.AbortWithStatus(http.StatusNotImplemented) }
func (u *UI) evidencePage(c *gin.Context) { c.AbortWithStatus(http.StatusNotImplemented) }
