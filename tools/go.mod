module github.com/vigilfleet/vigil/tools

go 1.26.0

// Build tools are pinned here with `tool` directives as they are adopted
// (nfpm for packages, protoc plugins for the agent protocol), so every
// machine builds with the same versions: `go tool <name>` from this module.

require (
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da // indirect
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

tool (
	golang.org/x/perf/cmd/benchstat
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)
