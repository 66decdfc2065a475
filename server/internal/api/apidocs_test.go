package api

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestAPIDocsListEveryRoute keeps docs/api.md in step with the route table
// and the permission matrix: every route appears in its route table with
// its permission, no other route is listed, and the role table marks
// exactly the permissions each role holds.
func TestAPIDocsListEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../../../docs/api.md")
	if err != nil {
		t.Fatalf("docs/api.md: %v", err)
	}
	doc := string(b)
	rowRE := regexp.MustCompile("(?m)^\\| `(GET|POST|PUT|DELETE|PATCH)` \\| `([^`]+)` \\| `([a-z._]+)` \\|")
	documented := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(doc, -1) {
		key := m[1] + " " + m[2]
		if _, dup := documented[key]; dup {
			t.Errorf("docs/api.md lists %s twice", key)
		}
		documented[key] = m[3]
	}
	ginParam := regexp.MustCompile(`:([A-Za-z_]+)`)
	for _, r := range (&Server{}).routes() {
		key := r.Method + " " + ginParam.ReplaceAllString(r.Path, "{$1}")
		perm, ok := documented[key]
		switch {
		case !ok:
			t.Errorf("docs/api.md does not list %s (permission %s)", key, r.Perm)
		case perm != string(r.Perm):
			t.Errorf("docs/api.md gives %s permission %s, the route table %s", key, perm, r.Perm)
		}
		delete(documented, key)
	}
	for key := range documented {
		t.Errorf("docs/api.md lists %s, which is not in the route table", key)
	}

	// The role table: a header naming the permissions, then one row per role.
	var header []string
	roles := map[string][]string{}
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if len(cells) > 1 && cells[0] == "Role" {
			header = cells[1:]
			continue
		}
		if header != nil && len(cells) == len(header)+1 && validRole(cells[0]) {
			roles[cells[0]] = cells[1:]
		}
	}
	if len(header) != len(allPerms()) {
		t.Fatalf("docs/api.md role table header %v, want a column for each of %v", header, allPerms())
	}
	for _, role := range Roles() {
		row, ok := roles[role]
		if !ok {
			t.Errorf("docs/api.md role table lacks role %s", role)
			continue
		}
		for i, p := range header {
			if got, want := row[i] == "yes", Allowed(role, Perm(p)); got != want {
				t.Errorf("docs/api.md: role %s, permission %s: table says %v, rbac.go says %v", role, p, got, want)
			}
		}
	}
}
