package api

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// oaOperation is the part of an OpenAPI operation the sync test reads.
type oaOperation struct {
	Security    *[]map[string][]string `yaml:"security"`
	Permission  string                 `yaml:"x-vigil-permission"`
	Parameters  []oaParameter          `yaml:"parameters"`
	RequestBody map[string]any         `yaml:"requestBody"`
	Responses   map[string]any         `yaml:"responses"`
	OperationID string                 `yaml:"operationId"`
}

type oaParameter struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type oaDoc struct {
	OpenAPI  string                          `yaml:"openapi"`
	Security []map[string][]string           `yaml:"security"`
	Paths    map[string]map[string]yaml.Node `yaml:"paths"`
	Comps    struct {
		Parameters      map[string]oaParameter `yaml:"parameters"`
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
	} `yaml:"components"`
}

func loadOpenAPI(t *testing.T) (oaDoc, map[string]any) {
	t.Helper()
	var doc oaDoc
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(OpenAPI(), &raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

// TestOpenAPIMatchesRoutes keeps openapi.yaml and the route table in step:
// the same (method, path) pairs, the same permission on each, bearer
// security on every route but the public one, responses everywhere
// (with 401 and 403 where authentication runs), and every path parameter
// declared.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi version %q, want 3.0.x", doc.OpenAPI)
	}
	if s := doc.Comps.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearer security scheme = %+v", s)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("document-level security = %v, want bearer", doc.Security)
	}

	ginParam := regexp.MustCompile(`:([A-Za-z_]+)`)
	want := map[string]Perm{}
	for _, r := range (&Server{}).routes() {
		want[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = r.Perm
	}
	got := map[string]bool{}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options"}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		var pathParams []oaParameter
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&pathParams); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, node := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			if !slices.Contains(methods, method) {
				t.Errorf("%s: unknown key %q", path, method)
				continue
			}
			var op oaOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			key := strings.ToUpper(method) + " " + path
			got[key] = true
			perm, known := want[key]
			if !known {
				t.Errorf("%s is documented but not in the route table", key)
				continue
			}
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", key)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", key, other, op.OperationID)
			}
			ids[op.OperationID] = key
			if op.Permission != string(perm) {
				t.Errorf("%s: x-vigil-permission %q, route needs %q", key, op.Permission, perm)
			}
			checkOperationSecurity(t, key, op, perm)
			checkPathParams(t, doc, key, path, append(slices.Clone(pathParams), op.Parameters...))
		}
	}
	var missing []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("route %s is not documented in openapi.yaml", k)
	}
}

func checkOperationSecurity(t *testing.T, key string, op oaOperation, perm Perm) {
	t.Helper()
	if len(op.Responses) == 0 {
		t.Errorf("%s has no responses", key)
	}
	if _, ok := op.Responses["500"]; !ok {
		t.Errorf("%s does not document 500", key)
	}
	if op.RequestBody != nil {
		if _, ok := op.Responses["400"]; !ok {
			t.Errorf("%s takes a body but does not document 400", key)
		}
	}
	if perm == PermPublic {
		if op.Security == nil || len(*op.Security) != 0 {
			t.Errorf("%s is public but does not say security: []", key)
		}
		return
	}
	if op.Security != nil && (len(*op.Security) != 1 || (*op.Security)[0]["bearer"] == nil) {
		t.Errorf("%s overrides security with %v, want bearer", key, *op.Security)
	}
	for _, code := range []string{"401", "403"} {
		if _, ok := op.Responses[code]; !ok {
			t.Errorf("%s needs a token but does not document %s", key, code)
		}
	}
}

func checkPathParams(t *testing.T, doc oaDoc, key, path string, params []oaParameter) {
	t.Helper()
	declared := map[string]bool{}
	for _, p := range params {
		if p.Ref != "" {
			name := strings.TrimPrefix(p.Ref, "#/components/parameters/")
			p = doc.Comps.Parameters[name]
		}
		if p.In == "path" {
			if !p.Required {
				t.Errorf("%s: path parameter %s is not required", key, p.Name)
			}
			declared[p.Name] = true
		}
	}
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
		if !declared[m[1]] {
			t.Errorf("%s: path parameter %s is not declared", key, m[1])
		}
		delete(declared, m[1])
	}
	for name := range declared {
		t.Errorf("%s: declares path parameter %s that the path lacks", key, name)
	}
}

// TestOpenAPIRefsResolve: every $ref points at something in the document.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, raw := loadOpenAPI(t)
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					if !resolves(raw, ref) {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(at+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", at, i), x)
			}
		}
	}
	walk("#", raw)
}

func resolves(raw map[string]any, ref string) bool {
	parts, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = raw
	for _, p := range strings.Split(parts, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[p]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPIErrorShape: the documented error schema is ErrorBody.
func TestOpenAPIErrorShape(t *testing.T) {
	_, raw := loadOpenAPI(t)
	get := func(v any, path ...string) any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}
	errSchema := get(raw, "components", "schemas", "Error")
	for _, p := range [][]string{
		{"properties", "request_id"},
		{"properties", "error", "properties", "code"},
		{"properties", "error", "properties", "message"},
		{"properties", "error", "properties", "field"},
	} {
		if get(errSchema, p...) == nil {
			t.Errorf("Error schema lacks %s", strings.Join(p, "."))
		}
	}
	roles, _ := get(raw, "components", "schemas", "Role", "enum").([]any)
	var names []string
	for _, r := range roles {
		names = append(names, fmt.Sprint(r))
	}
	if !slices.Equal(names, Roles()) {
		t.Errorf("documented roles %v, want %v", names, Roles())
	}
	perms, _ := get(raw, "components", "schemas", "Permission", "enum").([]any)
	var ps []Perm
	for _, p := range perms {
		ps = append(ps, Perm(fmt.Sprint(p)))
	}
	if !slices.Equal(ps, allPerms()) {
		t.Errorf("documented permissions %v, want %v", ps, allPerms())
	}
}
