package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

// dateLayout is the date-only form accepted wherever a moment is asked for.
const dateLayout = "2006-01-02"

// parseMoment reads an RFC 3339 time or a UTC date. A date stands for the
// whole day: as the start of a range it is that day's first instant, as an
// end or as an "as of" moment its last (microsecond) instant, so ?at=D
// answers "what was the posture on D" with every scan of D included.
func parseMoment(v string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseInLocation(dateLayout, v, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-15T10:00:00Z) nor a date (2026-01-15)", truncate(v, 40))
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1).Add(-time.Microsecond)
	}
	return d, nil
}

// ParseMoment reads an RFC 3339 time or a UTC date (YYYY-MM-DD) as the
// API does; a date is its first instant, or its last when endOfDay. The
// web UI uses it so a moment typed in a form means what it means in a
// query string.
func ParseMoment(v string, endOfDay bool) (time.Time, error) { return parseMoment(v, endOfDay) }

// ParseAt reads an "as of" moment as GET /posture?at= does: a date stands
// for its last instant (today's date for now), and a moment after now is
// refused, since no posture is known there yet.
func ParseAt(v string, now time.Time) (time.Time, error) {
	at, err := parseMoment(v, true)
	if err != nil {
		return time.Time{}, err
	}
	if day, err := time.ParseInLocation(dateLayout, v, time.UTC); err == nil && !day.After(now) && at.After(now) {
		at = now
	}
	if at.After(now) {
		return time.Time{}, fmt.Errorf("%s is in the future", at.Format(time.RFC3339))
	}
	return at, nil
}

// posture answers GET /posture: the fleet's (or a group's, or a host's)
// posture at a moment, by framework.
func (s *Server) posture(c *gin.Context) {
	now := s.now().UTC()
	q := posture.FleetQuery{At: now, Framework: c.Query("framework"), Group: c.Query("group")}
	if v := c.Query("at"); v != "" {
		at, err := ParseAt(v, now)
		if err != nil {
			badRequest(c, "at", "at: %v", err)
			return
		}
		q.At = at
	}
	if _, ok := s.frameworkRules(c, q.Framework); !ok {
		return
	}
	var ok bool
	if q.HostID, ok = queryID(c, "host"); !ok {
		return
	}
	if v := c.Query("rules"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			badRequest(c, "rules", "rules must be true or false, got %q", truncate(v, 20))
			return
		}
		q.Rules = b
	}
	if q.Group != "" && !s.groupExists(c, q.Group, "group") {
		return
	}
	fp, err := s.d.Posture.Fleet(c.Request.Context(), q)
	if err != nil {
		s.postureError(c, err, q.Framework)
		return
	}
	if fp.Hosts == nil {
		fp.Hosts = []posture.HostPosture{}
	}
	if fp.Bands == nil {
		fp.Bands = map[posture.Band]int{}
	}
	c.JSON(http.StatusOK, fp)
}

// drift answers GET /drift?from=&to=&host=: rules whose state at `to`
// differs from their state at `from`.
func (s *Server) drift(c *gin.Context) {
	from, ok := requiredMoment(c, "from", false)
	if !ok {
		return
	}
	to, ok := requiredMoment(c, "to", true)
	if !ok {
		return
	}
	if !from.Before(to) {
		badRequest(c, "from", "from (%s) must be before to (%s)", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
		return
	}
	host, ok := queryID(c, "host")
	if !ok {
		return
	}
	ds, err := s.d.Posture.Drift(c.Request.Context(), from, to, host)
	if err != nil {
		s.postureError(c, err, "")
		return
	}
	if ds == nil {
		ds = []posture.Drift{}
	}
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "drift": ds})
}

func requiredMoment(c *gin.Context, name string, endOfDay bool) (time.Time, bool) {
	v := c.Query(name)
	if v == "" {
		badRequest(c, name, "%s is required (RFC 3339 time or YYYY-MM-DD)", name)
		return time.Time{}, false
	}
	t, err := parseMoment(v, endOfDay)
	if err != nil {
		badRequest(c, name, "%s: %v", name, err)
		return time.Time{}, false
	}
	return t, true
}

// postureError maps the posture service's errors: an argument it refuses
// (unknown framework, days or a window out of range) is the caller's
// mistake and answered 400 naming the field; anything else goes through
// internal.
func (s *Server) postureError(c *gin.Context, err error, fw string) {
	var ae *posture.ArgError
	switch {
	case errors.As(err, &ae):
		badRequest(c, ae.Field, "%s", ae.Msg)
	case errors.Is(err, posture.ErrUnknownFramework):
		unknownFramework(c, fw)
	default:
		s.internal(c, err)
	}
}

// listFrameworks answers GET /frameworks.
func (s *Server) listFrameworks(c *gin.Context) {
	fws := s.index().Frameworks()
	if fws == nil {
		fws = []posture.Framework{}
	}
	c.JSON(http.StatusOK, gin.H{"frameworks": fws})
}
