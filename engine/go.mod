module github.com/vigilfleet/vigil/engine

go 1.26.0

require (
	golang.org/x/crypto v0.59.0
	golang.org/x/sync v0.25.0
	golang.org/x/term v0.48.0
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/sys v0.50.0 // indirect

require github.com/vigilfleet/vigil/shared v0.0.0

replace github.com/vigilfleet/vigil/shared => ../shared
