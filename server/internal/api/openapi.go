package api

import _ "embed" // for openapi.yaml

// openAPIDoc is a string, not a []byte, so nothing can change it.
//
//go:embed openapi.yaml
var openAPIDoc string

// OpenAPI returns the OpenAPI 3.0 document of this API (YAML), so the
// server binary can publish it and clients can be generated from it. A
// test keeps it in step with the route table.
func OpenAPI() []byte { return []byte(openAPIDoc) }
