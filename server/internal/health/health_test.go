package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReady(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.5:5432: postgres://vigil:pw@db/vigil refused")
	cases := []struct {
		name    string
		checks  []Check
		code    int
		failing []string
	}{
		{"all pass", []Check{{"store", nil}, {"ca", nil}}, 200, nil},
		{"store down", []Check{{"store", secret}, {"migrations", secret}, {"ca", nil}}, 503, []string{"store", "migrations"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := Ready(func(ctx context.Context) []Check {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("probe has no deadline")
				}
				return tc.checks
			}, 2*time.Second, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d", rec.Code, tc.code)
			}
			if strings.Contains(rec.Body.String(), "5432") || strings.Contains(rec.Body.String(), "pw") {
				t.Fatalf("body leaks the error: %s", rec.Body)
			}
			var b Body
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if strings.Join(b.Failing, ",") != strings.Join(tc.failing, ",") || len(b.Checks) != len(tc.checks) {
				t.Fatalf("body %+v", b)
			}
		})
	}
}

func TestLive(t *testing.T) {
	rec := httptest.NewRecorder()
	Live().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
