# Vigil build, test and benchmark entry points. `go test ./...` does not work
# at a workspace root, so every target loops over the modules.

MODULES   := shared engine agent server
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/vigilfleet/vigil/shared/version.Version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test unit bench bench-agents lint run clean fuzz rules-test coverage generate package package-test

all: build

build:
	@mkdir -p $(BIN)
	cd engine && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN)/vigil ./cmd/vigil
	cd agent  && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN)/vigil-agent ./cmd/vigil-agent
	cd server && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN)/vigil-server ./cmd/vigil-server

# All tests of all modules, integration tests included. SSH-target tests
# need root and debootstrap (.ci/run provides both); without them they skip
# and say how to get them. The race detector needs cgo, so it is enabled
# here for tests only.
test: build lint
	./$(BIN)/vigil rules validate rules
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...); \
	done
	$(MAKE) package-test

# Unit tests only (fast; skips the SSH harness).
unit:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) test -short -count=1 ./...); done

# Benchmarks: Go benchmarks of the hot paths, then whole-scan figures (wall
# time, rules/s, round trips, peak memory) on the local host and on a
# loopback SSH target.
bench: build
	cd engine && VIGIL_BIN=$(CURDIR)/$(BIN)/vigil $(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 30m ./...
	@echo "(ns/op above is one whole scan; rules/s, roundtrips/scan and peak-RSS-MB are per scan)"
	@# Server store: ingest of 500-result batches into both drivers for 10 s
	@# each ("steady": no status changes; "changing": every rule flips each
	@# batch), then CountsAt (posture?at=) over 1,000 hosts x 300 rules x 90
	@# days of seeded history, 100 random moments each. About 2 minutes.
	uptime
	cd server && $(GO) test -run '^$$' -bench 'BenchmarkIngest500' -benchtime 10s -benchmem -count 1 \
		./internal/store/sqlite/ ./internal/store/postgres/
	cd server && $(GO) test -run '^$$' -bench 'BenchmarkCountsAtScale' -benchtime 100x -benchmem -count 1 -timeout 15m \
		./internal/store/postgres/
	@echo "(results/s: results ingested per second; p50/p95/p99-ms: CountsAt latency; heap-MB: Go heap in use)"
	cd server && $(GO) test -run '^$$' -bench . -benchmem -count 1 $$($(GO) list ./... | grep -v '/internal/store/')
	$(MAKE) bench-agents

# Agent scale: vigil-loadgen (one process of simulated agents, real mTLS,
# heartbeats, results in 500-result batches) against one vigil-server
# process on SQLite, for each fleet size in BENCH_AGENTS. Prints connected
# agents, the server's RSS total and per agent, results/s end to end (first
# assignment to last ack) and ack p50/p95. Goal: 5,000 agents under 1 GiB.
BENCH_AGENTS ?= 500,5000
bench-agents: build
	cd server && VIGIL_BENCH_AGENTS=$(BENCH_AGENTS) VIGIL_SERVER_BIN=$(CURDIR)/$(BIN)/vigil-server $(GO) test -run '^$$' -bench 'BenchmarkAgentsScale' -benchtime 1x \
		-count 1 -timeout 60m -v ./internal/loadgen/
	@echo "(server-KiB/agent: server RSS while every agent is connected and idle, divided by agents; results/s: first assignment to last ack)"

# Every rule's proof cases on real targets, and the table of rules that
# lack a passing or a failing case.
rules-test:
	cd engine && $(GO) test -count=1 -run 'TestCorpus' .

# Framework coverage of the corpus.
coverage: build
	./$(BIN)/vigil rules coverage --rules rules

fuzz:
	cd engine && $(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./rule/
	cd engine && $(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./target/shellbatch/

lint:
	@out="$$(gofmt -l $(MODULES) tools)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

# Runs the whole of Vigil on this machine (scripts/run-local.sh): the server
# with its SQLite store in .vigil-run/, an admin, a local agent enrolled with
# a join token, and the first scan of this machine; prints the UI's URL and
# credentials. Ctrl-C stops everything; a second run reuses .vigil-run/.
run: build
	@VIGIL_RUN_BIN=$(CURDIR)/$(BIN) ./scripts/run-local.sh

# Regenerates committed code: the agent protocol from shared/proto with
# protoc (Debian's protobuf-compiler) and plugins pinned in tools/go.mod.
# .ci/check-generated runs it and fails on a diff.
PROTOS := $(shell find shared/proto -name '*.proto')
generate:
	@mkdir -p $(BIN)/tools
	cd tools && $(GO) build -o ../$(BIN)/tools/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	protoc -I shared/proto -I /usr/include \
		--plugin=protoc-gen-go=$(BIN)/tools/protoc-gen-go --plugin=protoc-gen-go-grpc=$(BIN)/tools/protoc-gen-go-grpc \
		--go_out=shared --go_opt=module=github.com/vigilfleet/vigil/shared \
		--go-grpc_out=shared --go-grpc_opt=module=github.com/vigilfleet/vigil/shared \
		$(PROTOS)

# Packages: vigil-agent and vigil-server (.deb and .rpm for each of
# PKG_ARCHES) and the noarch vigil-rules, built with nfpm pinned in
# tools/go.mod, written into $(DIST)/ under nfpm's default names
# (vigil-agent_VERSION_amd64.deb, vigil-agent-VERSION.x86_64.rpm, ...).
# The package version is VERSION when given (make package VERSION=1.2.0),
# else derived from git so that later commits sort higher: the last
# v-tag plus "+git<commits since>.<sha>", or 0.0.0~git<commits>.<sha>
# before the first tag. The binaries carry the same version.
# SIGNING_KEY=FILE (an armored OpenPGP private key; passphrase in
# NFPM_PASSPHRASE) signs every package (rpm header signature, deb debsigs
# _gpgorigin); without it the packages are unsigned. BUNDLE_PUBKEY=FILE
# ships a bundle public key in vigil-rules (see packaging/rules/README.trust).
DIST       ?= dist
PKG_ARCHES ?= amd64 arm64
ifneq ($(filter command line environment,$(origin VERSION)),)
PKG_VERSION ?= $(VERSION)
else
PKG_VERSION ?= $(shell \
	if d=$$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then \
		echo "$$d" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$$/+git\1.\2/'; \
	else \
		echo "0.0.0~git$$(git rev-list --count HEAD 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; \
	fi)
endif
PKG_LDFLAGS = -s -w -X github.com/vigilfleet/vigil/shared/version.Version=$(PKG_VERSION)
SIGNING_KEY   ?=
BUNDLE_PUBKEY ?=

package:
	@echo '$(PKG_VERSION)' | grep -Eq '^[0-9][A-Za-z0-9.+~]*$$' || \
		{ echo "package: version '$(PKG_VERSION)' is not a valid deb and rpm version (digits first; letters, digits, . + ~; no -)"; exit 1; }
	@if [ -n "$(SIGNING_KEY)" ] && [ ! -r "$(SIGNING_KEY)" ]; then echo "package: SIGNING_KEY $(SIGNING_KEY) is not readable"; exit 1; fi
	@set -e; dist=$(abspath $(DIST)); rm -rf "$$dist/build"; mkdir -p "$$dist/build/rules" "$$dist/build/keys"; \
	for arch in $(PKG_ARCHES); do \
		out="$$dist/build/linux_$$arch"; echo "== build linux/$$arch $(PKG_VERSION)"; \
		(cd engine && GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(PKG_LDFLAGS)' -o "$$out/vigil" ./cmd/vigil); \
		(cd agent  && GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(PKG_LDFLAGS)' -o "$$out/vigil-agent" ./cmd/vigil-agent); \
		(cd server && GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(PKG_LDFLAGS)' -o "$$out/vigil-server" ./cmd/vigil-server); \
	done; \
	tar -C rules --exclude=./tests -cf - . | tar -C "$$dist/build/rules" -xf -; \
	chmod -R u=rwX,go=rX "$$dist/build/rules" "$$dist/build/keys"; \
	if [ -n "$(BUNDLE_PUBKEY)" ]; then install -m 0644 "$(BUNDLE_PUBKEY)" "$$dist/build/keys/vigil-bundle.pub"; fi; \
	export VERSION='$(PKG_VERSION)' STAGE="$$dist/build" SIGNING_KEY='$(if $(SIGNING_KEY),$(abspath $(SIGNING_KEY)))'; \
	for arch in $(PKG_ARCHES); do for fmt in deb rpm; do \
		(cd tools && PKGARCH=$$arch BUILD="$$dist/build/linux_$$arch" $(GO) tool nfpm pkg -f ../nfpm.yaml -p $$fmt -t "$$dist/" && \
		 PKGARCH=$$arch BUILD="$$dist/build/linux_$$arch" $(GO) tool nfpm pkg -f ../packaging/server/nfpm.yaml -p $$fmt -t "$$dist/"); \
	done; done; \
	for fmt in deb rpm; do (cd tools && $(GO) tool nfpm pkg -f ../packaging/rules/nfpm.yaml -p $$fmt -t "$$dist/"); done; \
	rm -rf "$$dist/build"; ls -l "$$dist"

# Builds the packages into a temporary directory twice (two versions),
# inspects them with dpkg-deb and rpm, installs, upgrades, removes and
# purges the debs inside a copy of the Debian 12 test root, and checks
# signatures with rpm -K and debsig-verify. Needs root (chroot, mounts).
package-test:
	cd tools && $(GO) test -count=1 -timeout 30m ./packagetest/

clean:
	rm -rf $(BIN) dist
