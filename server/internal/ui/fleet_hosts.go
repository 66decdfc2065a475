package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilfleet/vigil/server/internal/posture"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// hostsPageSize is the hosts list's page length.
const hostsPageSize = 50

var (
	hostsBandFilters = []string{"critical", "poor", "fair", "good", "excellent", "none"}
	hostsSorts       = []string{"name", "-name", "score", "-score", "last_scan_at", "-last_scan_at"}
	hostsLabelKeyRe  = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,63}$`)
)

// hostsFilter is the hosts list's query, as the REST GET /hosts reads it.
type hostsFilter struct {
	Q, Group, OS, Band, Label, Sort string
	labelKey, labelValue            string
	labelHasValue                   bool
}

func (f hostsFilter) match(h store.Host) bool {
	q, os := strings.ToLower(f.Q), strings.ToLower(f.OS)
	if q != "" && !strings.Contains(strings.ToLower(h.Name), q) && !strings.Contains(strings.ToLower(h.Address), q) {
		return false
	}
	if os != "" && !strings.Contains(strings.ToLower(h.OS), os) {
		return false
	}
	if f.Group != "" && !slices.Contains(h.Groups, f.Group) {
		return false
	}
	if f.Band != "" {
		b := h.Band
		if b == "" {
			b = "none"
		}
		if b != f.Band {
			return false
		}
	}
	if f.labelKey != "" {
		v, ok := h.Labels[f.labelKey]
		if !ok || (f.labelHasValue && v != f.labelValue) {
			return false
		}
	}
	return true
}

// hostsRow is one host of the list.
type hostsRow struct {
	store.Host
	Band   posture.Band // the host's band, typed for the templates
	Labels []string     // k=v, sorted
}

// hostsSortLink is a column header's sort link.
type hostsSortLink struct {
	Label, Href, Aria string // Aria: ascending/descending on the sorted column
}

// hostsData is what hosts.html renders.
type hostsData struct {
	Filter      hostsFilter
	Query       url.Values
	Groups      []store.Group
	Bands       []string
	Hosts       []hostsRow
	Total, All  int
	Page, Pages int
	From, To    int
	PrevHref    string
	NextHref    string
	SortName    hostsSortLink
	SortScore   hostsSortLink
	SortLast    hostsSortLink
}

// hostsPage renders /hosts: one store.Hosts call, filtered, sorted and
// paged in Go, which stays fast for tens of thousands of hosts.
func (u *UI) hostsPage(c *gin.Context) {
	ctx := c.Request.Context()
	f := hostsFilter{Q: c.Query("q"), Group: c.Query("group"), OS: c.Query("os"), Band: c.Query("band"),
		Label: strings.TrimSpace(c.Query("label")), Sort: c.DefaultQuery("sort", "name")}
	var problems []string
	if f.Band != "" && !slices.Contains(hostsBandFilters, f.Band) {
		problems = append(problems, "band must be one of "+strings.Join(hostsBandFilters, ", "))
		f.Band = ""
	}
	if !slices.Contains(hostsSorts, f.Sort) {
		problems = append(problems, "sort must be one of "+strings.Join(hostsSorts, ", "))
		f.Sort = "name"
	}
	if f.Label != "" {
		k, v, has := strings.Cut(f.Label, "=")
		if hostsLabelKeyRe.MatchString(k) {
			f.labelKey, f.labelValue, f.labelHasValue = k, v, has
		} else {
			problems = append(problems, "label must be key=value or key, with a key of 1-63 letters, digits or ._/-")
		}
	}
	page, err := strconv.Atoi(c.DefaultQuery("page", "1"))
	if err != nil || page < 1 {
		page = 1
	}
	hosts, err := u.d.Store.Hosts(ctx)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	groups, err := u.d.Store.Groups(ctx)
	if err != nil {
		u.fleetError(c, err)
		return
	}
	matched := make([]store.Host, 0, len(hosts))
	for _, h := range hosts {
		if f.match(h) {
			matched = append(matched, h)
		}
	}
	hostsSort(matched, f.Sort)
	q := c.Request.URL.Query()
	d := hostsData{Filter: f, Query: q, Groups: groups, Bands: hostsBandFilters, Total: len(matched), All: len(hosts)}
	d.Pages = max(1, (d.Total+hostsPageSize-1)/hostsPageSize)
	d.Page = min(page, d.Pages)
	lo, hi := (d.Page-1)*hostsPageSize, min(d.Page*hostsPageSize, d.Total)
	d.From, d.To = lo+1, hi
	for _, h := range matched[lo:hi] {
		d.Hosts = append(d.Hosts, hostsRow{Host: h, Band: posture.Band(h.Band), Labels: fleetLabels(h.Labels)})
	}
	if d.Page > 1 {
		d.PrevHref = "/hosts" + fleetQuery(q, "page", strconv.Itoa(d.Page-1))
	}
	if d.Page < d.Pages {
		d.NextHref = "/hosts" + fleetQuery(q, "page", strconv.Itoa(d.Page+1))
	}
	d.SortName = hostsSortHeader(q, f.Sort, "name", "Name")
	d.SortScore = hostsSortHeader(q, f.Sort, "score", "Score")
	d.SortLast = hostsSortHeader(q, f.Sort, "last_scan_at", "Last scan")
	var msg string
	if len(problems) > 0 {
		msg = "Ignored: " + strings.Join(problems, "; ") + "."
	}
	u.render(c, http.StatusOK, "hosts", Page{Title: "Hosts", Data: d, Nav: "hosts", Error: msg})
}

// hostsSortHeader links a column to its ascending sort, or to the reverse when
// it is the current one; the page goes back to 1.
func hostsSortHeader(q url.Values, cur, key, label string) hostsSortLink {
	l := hostsSortLink{Label: label}
	next := key
	switch cur {
	case key:
		next, l.Aria = "-"+key, "ascending"
	case "-" + key:
		l.Aria = "descending"
	}
	l.Href = "/hosts" + fleetQuery(q, "sort", next, "page", "")
	return l
}

// fleetQuery returns "?" + q with the pairs set ("" removes the key).
func fleetQuery(q url.Values, kv ...string) string {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			out.Del(kv[i])
		} else {
			out.Set(kv[i], kv[i+1])
		}
	}
	return "?" + out.Encode()
}

func fleetLabels(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// hostsSort orders hosts as the REST list does: never-scanned hosts
// last whichever the direction, ties in name order.
func hostsSort(hs []store.Host, by string) {
	desc := strings.HasPrefix(by, "-")
	key := strings.TrimPrefix(by, "-")
	sort.SliceStable(hs, func(i, j int) bool {
		a, b := hs[i], hs[j]
		switch key {
		case "score":
			if (a.Band == "") != (b.Band == "") {
				return b.Band == ""
			}
			if a.Score != b.Score {
				return (a.Score < b.Score) != desc
			}
		case "last_scan_at":
			if a.LastScanAt.IsZero() != b.LastScanAt.IsZero() {
				return b.LastScanAt.IsZero()
			}
			if !a.LastScanAt.Equal(b.LastScanAt) {
				return a.LastScanAt.Before(b.LastScanAt) != desc
			}
		}
		if a.Name != b.Name {
			return (a.Name < b.Name) != (desc && key == "name")
		}
		return false
	})
}
