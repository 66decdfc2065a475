module github.com/vigilfleet/vigil/server

go 1.26

require github.com/vigilfleet/vigil/shared v0.0.0
require github.com/vigilfleet/vigil/engine v0.0.0

replace github.com/vigilfleet/vigil/shared => ../shared
replace github.com/vigilfleet/vigil/engine => ../engine
