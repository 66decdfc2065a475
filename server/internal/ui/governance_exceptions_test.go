package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/server/internal/api"
	"github.com/vigilfleet/vigil/server/internal/store"
)

// goodJustification is long enough for the service's 10-character floor.
const goodJustification = "Root login is needed by the backup job until Q3; AllowUsers restricts it to the backup host."

// exceptionIDs lists the exception rows a page shows, in order.
func exceptionIDs(body string) []int64 {
	var out []int64
	for _, m := range regexp.MustCompile(`<tr id="exception-(\d+)"`).FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

func TestGovExceptionRequestApproveShowsAccepted(t *testing.T) {
	s := newGovSite(t)
	f := seedFleet(t, s.site)
	op := s.signIn("olga", api.RoleOperator)
	sec := s.signIn("sam", api.RoleSecurityAdmin)
	viewer := s.signIn("vic", api.RoleViewer)
	hostPath := fmt.Sprintf("/hosts/%d", f.web.ID)

	// The failing rule offers "request exception" to whoever may request.
	link := fmt.Sprintf(`/exceptions?request_host=%d&amp;request_rule=%s#request`, f.web.ID, fleetRuleA)
	wantPage(t, op.get(hostPath), http.StatusOK, link)
	wantAbsent(t, viewer.get(hostPath), "request exception", "failed, accepted")
	p := op.get(fmt.Sprintf("/exceptions?request_host=%d&request_rule=%s", f.web.ID, fleetRuleA))
	wantPage(t, p, http.StatusOK, `value="`+fleetRuleA+`"`, fmt.Sprintf(`<option value="%d" selected>web-1</option>`, f.web.ID), "No exception has been requested yet.")

	expires := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")
	p = op.post("/exceptions", url.Values{"scope": {"host"}, "host_id": {strconv.FormatInt(f.web.ID, 10)}, "rule_id": {fleetRuleA},
		"justification": {goodJustification}, "expires_at": {expires}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/exceptions" {
		t.Fatalf("request: %d %q\n%s", p.status, p.header.Get("Location"), clip(p.body))
	}
	p = op.get("/exceptions")
	ids := exceptionIDs(p.body)
	if len(ids) != 1 {
		t.Fatalf("exceptions listed: %v\n%s", ids, clip(p.body))
	}
	id := ids[0]
	wantPage(t, p, http.StatusOK, "requested", "olga", "web-1", expires, "Exception "+strconv.FormatInt(id, 10)+" requested")
	approve := fmt.Sprintf(`action="/exceptions/%d/approve"`, id)
	wantAbsent(t, p, approve) // an operator may not decide
	wantAbsent(t, viewer.get("/exceptions"), approve, `method="post" action="/exceptions"`)
	// The server refuses what the page does not offer.
	wantPage(t, op.post(fmt.Sprintf("/exceptions/%d/approve", id), nil), http.StatusForbidden, "exceptions.decide")
	wantPage(t, viewer.post("/exceptions", url.Values{"scope": {"fleet"}, "rule_id": {fleetRuleA}, "justification": {goodJustification}}),
		http.StatusForbidden, "exceptions.request")

	// Not accepted before the approval.
	wantAbsent(t, op.get(hostPath), "failed, accepted")

	p = sec.get("/exceptions")
	wantPage(t, p, http.StatusOK, approve, fmt.Sprintf(`formaction="/exceptions/%d/reject"`, id))
	p = sec.post(fmt.Sprintf("/exceptions/%d/approve", id), url.Values{"note": {"Fine until the backup job moves."}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("approve: %d\n%s", p.status, clip(p.body))
	}
	p = sec.get("/exceptions")
	wantPage(t, p, http.StatusOK, "approved by <strong>sam</strong>", "Fine until the backup job moves.",
		fmt.Sprintf(`action="/exceptions/%d/revoke"`, id))
	// Approving twice is a conflict, shown in the row.
	p = sec.post(fmt.Sprintf("/exceptions/%d/approve", id), nil)
	wantPage(t, p, http.StatusConflict, `<p class="field-error" role="alert">`, "approved")

	// The host page marks the failure accepted and scores it both ways.
	p = viewer.get(hostPath)
	wantPage(t, p, http.StatusOK, "failed, accepted", fmt.Sprintf("#exception-%d", id), "with exceptions", "1 failure accepted")
	wantAbsent(t, p, "request exception")
	if !strings.Contains(op.get("/").body, "(1 accepted)") {
		t.Error("the dashboard does not show the score with exceptions and the accepted failure")
	}

	// Revoke: the rule counts as failing again.
	p = sec.post(fmt.Sprintf("/exceptions/%d/revoke", id), url.Values{"note": {"job moved"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", p.status, clip(p.body))
	}
	wantAbsent(t, viewer.get(hostPath), "failed, accepted")
	wantPage(t, viewer.get("/exceptions?state=revoked"), http.StatusOK, "revoked by sam", "job moved")
	wantPage(t, viewer.get("/exceptions?state=approved"), http.StatusOK, "No exception matches these filters.")

	actions := map[string]int{}
	for _, e := range auditActions(t, s.st) {
		actions[e.Action]++
	}
	for _, a := range []string{"exception.request", "exception.approve", "exception.revoke"} {
		if actions[a] != 1 {
			t.Errorf("audit %s: %d entries, want 1 (%v)", a, actions[a], actions)
		}
	}
}

func TestGovExceptionSelfApprovalRefused(t *testing.T) {
	s := newGovSite(t)
	seedFleet(t, s.site)
	sec := s.signIn("sam", api.RoleSecurityAdmin)
	admin := s.signIn("ada", api.RoleAdmin)
	p := sec.post("/exceptions", url.Values{"scope": {"fleet"}, "rule_id": {fleetRuleB}, "justification": {goodJustification}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("request: %d\n%s", p.status, clip(p.body))
	}
	p = sec.get("/exceptions")
	ids := exceptionIDs(p.body)
	if len(ids) != 1 {
		t.Fatalf("exceptions: %v", ids)
	}
	id := ids[0]
	// Neither approve nor reject is offered on one's own request...
	wantAbsent(t, p, fmt.Sprintf(`/exceptions/%d/approve`, id), fmt.Sprintf(`/exceptions/%d/reject`, id))
	wantPage(t, p, http.StatusOK, "awaiting another approver", "whole fleet")
	// ...and the server refuses it.
	p = sec.post(fmt.Sprintf("/exceptions/%d/approve", id), nil)
	wantPage(t, p, http.StatusForbidden, `<p class="field-error" role="alert">`)
	e, err := s.st.Exception(context.Background(), id)
	if err != nil || e.State != store.ExceptionRequested {
		t.Fatalf("after a self-approval: %+v %v", e, err)
	}
	// Another decider may reject it.
	wantPage(t, admin.get("/exceptions"), http.StatusOK, fmt.Sprintf(`/exceptions/%d/approve`, id))
	if p := admin.post(fmt.Sprintf("/exceptions/%d/reject", id), url.Values{"note": {"use a host exception"}}); p.status != http.StatusSeeOther {
		t.Fatalf("reject: %d\n%s", p.status, clip(p.body))
	}
	wantPage(t, sec.get("/exceptions"), http.StatusOK, "rejected by <strong>ada</strong>", "use a host exception")
	// An unknown action is no page at all.
	wantPage(t, admin.post(fmt.Sprintf("/exceptions/%d/frobnicate", id), nil), http.StatusNotFound)
}

func TestGovExceptionFormErrorsNextToFields(t *testing.T) {
	s := newGovSite(t)
	f := seedFleet(t, s.site)
	op := s.signIn("olga", api.RoleOperator)
	host := strconv.FormatInt(f.web.ID, 10)
	cases := []struct {
		name  string
		form  url.Values
		field string
		want  string
	}{
		{"no host", url.Values{"scope": {"host"}, "rule_id": {fleetRuleA}, "justification": {goodJustification}}, "host_id", "Choose the host"},
		{"no group", url.Values{"scope": {"group"}, "rule_id": {fleetRuleA}, "justification": {goodJustification}}, "group_id", "Choose the group"},
		{"no scope", url.Values{"rule_id": {fleetRuleA}, "justification": {goodJustification}}, "scope", "Choose what the exception covers"},
		{"no rule", url.Values{"scope": {"host"}, "host_id": {host}, "justification": {goodJustification}}, "rule_id", "Enter the id"},
		{"no justification", url.Values{"scope": {"host"}, "host_id": {host}, "rule_id": {fleetRuleA}}, "justification", "Explain why"},
		// The rest are the service's own validation, placed by the
		// refusal's field.
		{"unknown rule", url.Values{"scope": {"host"}, "host_id": {host}, "rule_id": {"no-such-rule"}, "justification": {goodJustification}}, "rule_id", "no-such-rule"},
		{"short justification", url.Values{"scope": {"host"}, "host_id": {host}, "rule_id": {fleetRuleA}, "justification": {"because"}}, "justification", "10"},
		{"past expiry", url.Values{"scope": {"host"}, "host_id": {host}, "rule_id": {fleetRuleA}, "justification": {goodJustification}, "expires_at": {"2020-01-01"}}, "expires_at", ""},
		{"unknown host", url.Values{"scope": {"host"}, "host_id": {"99999"}, "rule_id": {fleetRuleA}, "justification": {goodJustification}}, "host_id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := op.post("/exceptions", tc.form)
			if p.status < 400 || p.status >= 500 {
				t.Fatalf("status %d, want a 4xx refusal\n%s", p.status, clip(p.body))
			}
			msg := fieldError(p.body, tc.field)
			if msg == "" || !strings.Contains(msg, tc.want) {
				t.Fatalf("message next to %s: %q, want one containing %q\n%s", tc.field, msg, tc.want, clip(p.body))
			}
			if !strings.Contains(p.body, `aria-describedby="err-`+tc.field+`"`) {
				t.Errorf("the %s field is not described by its error", tc.field)
			}
		})
	}
	list, err := s.st.Exceptions(context.Background(), store.ExceptionFilter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("refused requests stored: %v %v", list, err)
	}
	// The form keeps what was typed.
	p := op.post("/exceptions", url.Values{"scope": {"host"}, "host_id": {host}, "rule_id": {fleetRuleA}, "justification": {"because"}})
	wantPage(t, p, p.status, ">because</textarea>", `value="`+fleetRuleA+`"`)
}

func TestGovFormsRefuseMissingCSRF(t *testing.T) {
	s := newGovSite(t)
	f := seedFleet(t, s.site)
	admin := s.signIn("ada", api.RoleAdmin)
	ctx := context.Background()
	a, _, err := s.st.RaiseAlert(ctx, store.Alert{Kind: "scan_overdue", Key: fmt.Sprintf("scan_overdue/host/%d", f.web.ID), Severity: "medium",
		HostID: f.web.ID, Title: "web-1 has not been scanned for 3 days", Detail: "{}", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	posts := map[string]url.Values{
		"/exceptions": {"scope": {"fleet"}, "rule_id": {fleetRuleA}, "justification": {goodJustification}},
		fmt.Sprintf("/alerts/%d/acknowledge", a.ID): {},
		"/notifications": {"kind": {"webhook"}, "name": {"x"}, "url": {"http://127.0.0.1:9/hook"}, "min_severity": {"low"}},
	}
	for path, form := range posts {
		for name, tok := range map[string]string{"missing": "", "wrong": strings.Repeat("0", 32)} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			f.Set("_csrf", tok)
			p := admin.post(path, f)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
				t.Errorf("POST %s with a %s CSRF token: %d, want 403 naming CSRF", path, name, p.status)
			}
		}
	}
	if list, _ := s.st.Exceptions(ctx, store.ExceptionFilter{}); len(list) != 0 {
		t.Errorf("an exception was stored without a CSRF token: %+v", list)
	}
	if got, _ := s.st.Alert(ctx, a.ID); got.State != store.AlertActive {
		t.Errorf("the alert changed without a CSRF token: %s", got.State)
	}
	if chs, _ := s.st.Channels(ctx); len(chs) != 0 {
		t.Errorf("a channel was stored without a CSRF token: %+v", chs)
	}
}
