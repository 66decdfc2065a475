module github.com/vigilfleet/vigil/shared

go 1.26
