package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/store"
)

// auditPageSize is how many entries one page of the audit log shows.
const auditPageSize = 100

// Older pages are read in id windows (the store pages only upwards, by
// AfterID): at most auditMaxWindows windows of at most auditWindow ids
// per request, so a rare filter over a long log stays bounded; the page
// then offers to continue below the last id it scanned.
const (
	auditWindow     = 1000
	auditMaxWindows = 20
)

// auditData is what audit.html shows.
type auditData struct {
	Entries []store.AuditEntry
	Query   url.Values
	Actor   string
	Action  string
	From    string
	To      string
	// Older is the "before" id of the next, older page; 0 when there is none.
	Older  int64
	Paged  bool // this is not the newest page
	Verify *auditVerify
}

// auditVerify is the outcome of a chain check.
type auditVerify struct {
	Entries int
	Broken  string
}

// auditPage shows the audit log newest first, filtered by actor, action
// and dates, 100 entries a page, and checks the hash chain on request.
func (u *UI) auditPage(c *gin.Context) {
	q := c.Request.URL.Query()
	d := auditData{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to"))}
	d.Query = url.Values{}
	for k, v := range map[string]string{"actor": d.Actor, "action": d.Action, "from": d.From, "to": d.To} {
		if v != "" {
			d.Query.Set(k, v)
		}
	}
	show := func(status int, msg string) {
		u.render(c, status, "audit", Page{Title: "Audit log", Nav: "audit", Data: d, Error: msg})
	}
	f := store.AuditFilter{Actor: d.Actor, Action: d.Action}
	var err error
	if f.From, err = auditDate(d.From, false); err != nil {
		show(http.StatusBadRequest, "From: "+err.Error())
		return
	}
	if f.To, err = auditDate(d.To, true); err != nil {
		show(http.StatusBadRequest, "To: "+err.Error())
		return
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		show(http.StatusBadRequest, "To is before from.")
		return
	}
	var before int64
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			show(http.StatusBadRequest, fmt.Sprintf("before must be an entry id, got %q.", v))
			return
		}
	}
	if q.Get("verify") != "" {
		n, broken, err := u.d.API.VerifyAuditLog(c.Request.Context())
		if err != nil {
			u.adminFail(c, err)
			return
		}
		d.Verify = &auditVerify{Entries: n}
		if broken != nil {
			d.Verify.Broken = broken.Error()
		}
	}
	if before > 0 {
		d.Paged = true
		d.Entries, d.Older, err = auditBefore(c.Request.Context(), u.d.Store, f, before)
	} else {
		d.Entries, d.Older, err = auditNewest(c.Request.Context(), u.d.Store, f)
	}
	if err != nil {
		u.adminFail(c, err)
		return
	}
	show(http.StatusOK, "")
}

// auditNewest reads the newest page; older is the id to continue below.
func auditNewest(ctx context.Context, st store.Store, f store.AuditFilter) (page []store.AuditEntry, older int64, err error) {
	f.Desc, f.Limit = true, auditPageSize+1
	page, err = st.Audit(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("read audit log: %w", err)
	}
	if len(page) > auditPageSize {
		page = page[:auditPageSize]
		older = page[auditPageSize-1].ID
	}
	return page, older, nil
}

// auditBefore reads the page of entries with id < before, newest first,
// in ascending id windows growing downwards from before. older is the id
// to continue below, 0 at the start of the log.
func auditBefore(ctx context.Context, st store.Store, f store.AuditFilter, before int64) (page []store.AuditEntry, older int64, err error) {
	hi := before // exclusive
	w := int64(auditPageSize + 1)
	for range auditMaxWindows {
		lo := max(hi-1-w, 0) // ids in (lo, hi)
		f.AfterID, f.Limit, f.Desc = lo, int(hi-1-lo), false
		var got []store.AuditEntry
		if f.Limit > 0 {
			if got, err = st.Audit(ctx, f); err != nil {
				return nil, 0, fmt.Errorf("read audit log before entry %d: %w", hi, err)
			}
		}
		for i := len(got) - 1; i >= 0; i-- {
			if got[i].ID < hi {
				page = append(page, got[i])
			}
		}
		if len(page) > auditPageSize {
			page = page[:auditPageSize]
			return page, page[auditPageSize-1].ID, nil
		}
		if lo == 0 {
			return page, 0, nil
		}
		hi, w = lo+1, min(2*w, auditWindow)
	}
	return page, hi, nil
}

// auditDate parses a filter date: YYYY-MM-DD (UTC; a "to" date includes
// its whole day) or an RFC 3339 time.
func auditDate(v string, endOfDay bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		if endOfDay {
			t = t.Add(24 * time.Hour)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date such as 2026-01-15 or a time such as 2026-01-15T08:00:00Z", v)
	}
	return t, nil
}
