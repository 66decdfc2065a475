package ui

import (
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// fieldErrs maps a form field's name to the message shown next to it; ""
// (the form as a whole) is shown above the form.
type fieldErrs map[string]string

// Get returns the message for field (templates call it with a name).
func (f fieldErrs) Get(field string) string { return f[field] }

// Any reports whether a message is set.
func (f fieldErrs) Any() bool { return len(f) > 0 }

// refusalField places an API refusal: a refused argument (400, 404 on a
// named field, 403 self-approval and 409 conflicts go above the form) is
// shown next to its field when the form has one of that name, else above
// the form. known lists the form's field names.
func refusalField(r *api.Refusal, known ...string) fieldErrs {
	msg := upperFirst(r.Message) + "."
	f := strings.TrimPrefix(r.Field, "settings.")
	for _, k := range known {
		if f != "" && f == k {
			return fieldErrs{k: msg}
		}
	}
	return fieldErrs{"": msg}
}

// localMinute parses what an <input type=datetime-local> sends (the UI
// shows every time in UTC, so the value is read as UTC), a date (the end
// of that day, UTC) or RFC 3339.
func localMinute(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.Add(24*time.Hour - time.Second).UTC(), true
	}
	return time.Time{}, false
}

// activeAlerts counts the active alerts for the navigation badge; a
// failure only drops the badge (it is logged), never the page.
func (u *UI) activeAlerts(c *gin.Context) int {
	n, err := u.d.Store.AlertCounts(c.Request.Context(), u.now())
	if err != nil {
		u.log.Warn("ui alert count", "request_id", api.RequestID(c), "err", err)
		return 0
	}
	return n[store.AlertActive]
}
