package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

var _ = time.Now

// TEMPORARY scaffolding: every handler here is replaced by its real implementation; this file must be deleted.
func (s *Server) listHosts(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) createHost(c *gin.Context)         { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) getHost(c *gin.Context)            { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) updateHost(c *gin.Context)         { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) deleteHost(c *gin.Context)         { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) hostFindings(c *gin.Context)       { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) hostTrend(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) hostScans(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) scanHostNow(c *gin.Context)        { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) listGroups(c *gin.Context)         { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) createGroup(c *gin.Context)        { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) deleteGroup(c *gin.Context)        { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) listScans(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) triggerScan(c *gin.Context)        { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) getScan(c *gin.Context)            { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) scanResults(c *gin.Context)        { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) scanResultEvidence(c *gin.Context) { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) posture(c *gin.Context)            { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) drift(c *gin.Context)              { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) listRules(c *gin.Context)          { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) getRule(c *gin.Context)            { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) listFrameworks(c *gin.Context)     { c.AbortWithStatus(http.StatusNotImplemented) }
func (s *Server) listAgents(c *gin.Context)         { c.AbortWithStatus(http.StatusNotImplemented) }
