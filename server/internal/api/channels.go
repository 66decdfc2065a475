package api

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/notify"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// urlInText finds URLs inside free text such as a delivery's status (Go's
// HTTP client quotes the URL it failed to reach in its errors).
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// scrubURLs masks every URL in text down to its scheme and host: a
// webhook's URL is its credential (Slack's carries the token in the path),
// so no status the API shows or audits may repeat one.
func scrubURLs(text string) string {
	return urlInText.ReplaceAllStringFunc(text, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "••••"
		}
		return u.Scheme + "://" + u.Host + "/••••"
	})
}

// deliveryView is one delivery of the log as the API shows it.
type deliveryView struct {
	ID         int64     `json:"id"`
	ChannelID  int64     `json:"channel_id"`
	AlertID    int64     `json:"alert_id,omitempty"`
	Event      string    `json:"event"`
	At         time.Time `json:"at"`
	OK         bool      `json:"ok"`
	Attempts   int       `json:"attempts"`
	Status     string    `json:"status"`
	DurationMS int64     `json:"duration_ms"`
}

func viewDelivery(d store.Delivery) deliveryView {
	return deliveryView{ID: d.ID, ChannelID: d.ChannelID, AlertID: d.AlertID, Event: d.Event, At: d.At.UTC(),
		OK: d.OK, Attempts: d.Attempts, Status: scrubURLs(d.Status), DurationMS: d.Duration.Milliseconds()}
}

// channelsReady answers 503 when the server runs without a notifier.
func (s *Server) channelsReady(c *gin.Context) bool {
	if r := s.governanceReady("notification channels", s.d.Notifier != nil); r != nil {
		s.refuse(c, r)
		return false
	}
	return true
}

// listChannels answers GET /notification-channels, secrets masked.
func (s *Server) listChannels(c *gin.Context) {
	if !s.channelsReady(c) {
		return
	}
	chs, err := s.d.Store.Channels(c.Request.Context())
	if err != nil {
		s.internal(c, fmt.Errorf("list channels: %w", err))
		return
	}
	out := make([]notify.ChannelView, 0, len(chs))
	for _, ch := range chs {
		out = append(out, s.d.Notifier.View(ch))
	}
	c.JSON(http.StatusOK, gin.H{"channels": out})
}

// createChannel answers POST /notification-channels.
func (s *Server) createChannel(c *gin.Context) {
	if !s.channelsReady(c) {
		return
	}
	var in notify.ChannelInput
	if !bind(c, &in) {
		return
	}
	ch, r := s.CreateChannel(c, in)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusCreated, s.d.Notifier.View(ch))
}

// updateChannel answers PUT /notification-channels/:id; a secret setting
// sent empty or left out keeps its stored value.
func (s *Server) updateChannel(c *gin.Context) {
	if !s.channelsReady(c) {
		return
	}
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in notify.ChannelInput
	if !bind(c, &in) {
		return
	}
	ch, r := s.UpdateChannel(c, id, in)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusOK, s.d.Notifier.View(ch))
}

// deleteChannel answers DELETE /notification-channels/:id.
func (s *Server) deleteChannel(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if r := s.DeleteChannel(c, id); r != nil {
		s.refuse(c, r)
		return
	}
	c.Status(http.StatusNoContent)
}

// testChannel answers POST /notification-channels/:id/test with the
// delivery it made; ok false says the receiver did not take it, and why.
func (s *Server) testChannel(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	d, r := s.TestChannel(c, id)
	if r != nil {
		s.refuse(c, r)
		return
	}
	c.JSON(http.StatusOK, viewDelivery(d))
}

// channelDeliveries answers GET /notification-channels/:id/deliveries?limit=,
// newest first.
func (s *Server) channelDeliveries(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	limit, ok := queryInt(c, "limit", 100, 1, maxGovPage)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.d.Store.Channel(ctx, id); err != nil {
		s.refuse(c, channelFailed(fmt.Errorf("channel %d: %w", id, err), id, ""))
		return
	}
	ds, err := s.d.Store.Deliveries(ctx, id, limit)
	if err != nil {
		s.internal(c, fmt.Errorf("deliveries of channel %d: %w", id, err))
		return
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDelivery(d))
	}
	c.JSON(http.StatusOK, gin.H{"channel_id": id, "deliveries": out})
}
