package ui

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/posture"
)

// funcs are the helpers every template may use.
func (u *UI) funcs() template.FuncMap {
	return template.FuncMap{
		// time renders a time in UTC; "never" for the zero time.
		"time": func(t any) string {
			tt, ok := toTime(t)
			if !ok {
				return "never"
			}
			return tt.UTC().Format("2006-01-02 15:04 UTC")
		},
		"date": func(t any) string {
			tt, ok := toTime(t)
			if !ok {
				return ""
			}
			return tt.UTC().Format("2006-01-02")
		},
		// ago renders how long ago t was ("3 h ago"); "never" for zero.
		"ago": func(t any) string {
			tt, ok := toTime(t)
			if !ok {
				return "never"
			}
			return ago(u.now().Sub(tt))
		},
		// score renders a 0..100 score with one decimal; "–" when unscored.
		"score": func(v float64, band posture.Band) string {
			if band == posture.BandNone {
				return "–"
			}
			return fmt.Sprintf("%.1f", v)
		},
		// band is the CSS class and label of a posture band.
		"bandLabel": func(b posture.Band) string {
			if b == posture.BandNone {
				return "not scanned"
			}
			return string(b)
		},
		"bandClass": func(b any) string {
			s := fmt.Sprint(b)
			if s == "" {
				return "band-none"
			}
			return "band-" + s
		},
		"statusClass": func(s any) string { return "status-" + fmt.Sprint(s) },
		"pct": func(part, whole int) float64 {
			if whole == 0 {
				return 0
			}
			return math.Round(1000*float64(part)/float64(whole)) / 10
		},
		// ms renders a duration in milliseconds, for delivery times.
		"ms":   func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) },
		"join": strings.Join,
		"add":  func(a, b int) int { return a + b },
		"sub":  func(a, b int) int { return a - b },
		// query returns the current URL's query with key set to value
		// (removed when value is ""), for sort and page links.
		"query": func(q url.Values, kv ...string) string {
			out := url.Values{}
			for k, v := range q {
				out[k] = append([]string(nil), v...)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] == "" {
					out.Del(kv[i])
				} else {
					out.Set(kv[i], kv[i+1])
				}
			}
			if len(out) == 0 {
				return "?"
			}
			return "?" + out.Encode()
		},
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	}
}

func toTime(t any) (time.Time, bool) {
	switch v := t.(type) {
	case time.Time:
		return v, !v.IsZero()
	case *time.Time:
		if v == nil {
			return time.Time{}, false
		}
		return *v, !v.IsZero()
	}
	return time.Time{}, false
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + ago(-d)[:len(ago(-d))-4]
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}
