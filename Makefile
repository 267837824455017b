# Tollgate build, test and demo entry points. `make help` lists them.
SHELL       := /bin/bash
GO          ?= go
CACHE       := $(CURDIR)/.cache
BIN         := $(CURDIR)/bin
export PATH := $(CACHE)/bin:$(BIN):$(PATH)
export TOLLGATE_TOOLS_BIN := $(CACHE)/bin
# The one version: the binaries report it, `make image` tags and labels the image with it,
# and the kustomize base, the webhook manifests and the chart name that tag
# (deploy/version_test.go checks that they agree). The commit goes in the image's revision label.
VERSION     ?= v0.1.0
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null)
# The variables the linker sets to VERSION, one package path each.
VERSION_VARS := tollgate.dev/tollgate/daemon.Version tollgate.dev/tollgate/cmd/internal/cli.Version
# grpcnotrace: gRPC (linked through sigstore-go's Rekor v2 types and containerd's client)
# then leaves out golang.org/x/net/trace, whose html/template keeps the linker from dropping
# unused methods: the CLI is ~7 MB smaller and starts faster (docs/performance.md).
GOTAGS      := grpcnotrace
LDFLAGS     := -s -w $(foreach v,$(VERSION_VARS),-X $(v)=$(VERSION))
FUZZTIME    ?= 20s
LINT_BIN    ?= $(CACHE)/bin

.PHONY: help build test fuzz bench bench-e2e bench-k8s e2e k8s interop demo demo-tools lint image check tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/tollgate (the CLI) and bin/tollgated (the node daemon)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

tools: ## install test prerequisites (apt packages, containerd, crictl, cosign, kustomize, helm) into .cache
	bash test/tools/install.sh

demo-tools: ## install only what the demo runs (runc, containerd, ctr, shim, crictl) into .cache
	bash test/tools/install.sh --only demo

test: ## unit tests (no external tools needed)
	$(GO) test -count=1 ./...

interop: tools build ## interop with Python in-toto and cosign
	TOLLGATE_REQUIRE_TOOLS=$${TOLLGATE_REQUIRE_TOOLS:-1} $(GO) test -count=1 -tags interop ./test/interop/...

e2e: tools build ## end-to-end suite against a real containerd
	TOLLGATE_REQUIRE_TOOLS=$${TOLLGATE_REQUIRE_TOOLS:-1} $(GO) test -count=1 -tags e2e -timeout 40m -v ./test/e2e/...

k8s: tools image ## a real one-node Kubernetes: the DaemonSet, chart and webhook deployed and proven
	TOLLGATE_REQUIRE_TOOLS=$${TOLLGATE_REQUIRE_TOOLS:-1} $(GO) test -count=1 -tags e2e,k8s -timeout 30m -v ./test/k8s/...

fuzz: ## run every fuzz target for FUZZTIME each
	bash test/tools/fuzz.sh $(FUZZTIME)

bench: build ## in-process benchmarks and the tollgate-vs-in-toto-verify table
	bash test/tools/bench.sh

bench-e2e: tools build ## CRI create latency, first create after a pull (with and without Tollgate), tollgated's memory
	TOLLGATE_BENCH_E2E=1 $(GO) test -count=1 -tags e2e -run 'TestBench(Create|FirstCreate|Memory)$$' -timeout 45m -v ./test/e2e/...

bench-k8s: tools image ## a signed pod's start time on the real Kubernetes node, with and without Tollgate
	TOLLGATE_BENCH_K8S=1 TOLLGATE_REQUIRE_TOOLS=$${TOLLGATE_REQUIRE_TOOLS:-1} $(GO) test -count=1 -tags e2e,k8s -run 'TestBenchPodStart$$' -timeout 20m -v ./test/k8s/...

lint: ## gofmt, go vet, staticcheck and deadcode (the last two from `make tools`)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags interop ./test/interop/...
	$(GO) vet -tags e2e ./test/e2e/...
	$(GO) vet -tags e2e,k8s ./test/k8s/...
	@for t in staticcheck deadcode; do [ -x "$(LINT_BIN)/$$t" ] || { echo "$(LINT_BIN)/$$t is missing: run 'make tools'"; exit 1; }; done
	$(LINT_BIN)/staticcheck ./...
	@# Functions nothing reaches from a main are deleted, or (test seams) live in _test.go
	@# files. test/, packages named *test (cosigntest) and policy/internal/benchcpu hold
	@# test and benchmark support, reached from tests only. Let through by name: two
	@# registry options that other packages' tests (admission, the cosign interop) need, and
	@# envelope.VerifySignatures, the threshold verifier Sigstore bundles are about to use.
	@out=$$($(LINT_BIN)/deadcode -filter '^tollgate.dev/tollgate/(cmd|daemon|plugin|policy)(/|$$)' ./... | \
		grep -Ev '^daemon/registry/client\.go:[0-9]+:[0-9]+: unreachable func: (WithKeychain|WithRetries)$$' | \
		grep -Ev '^policy/envelope/verify\.go:[0-9]+:[0-9]+: unreachable func: VerifySignatures$$' | \
		grep -Ev '^([^:]*/)?[a-z]+test/[^/:]+\.go:|^policy/internal/benchcpu/'); \
		if [ -n "$$out" ]; then echo "deadcode: unreachable functions:"; echo "$$out"; exit 1; fi

# demo.sh runs demo-tools and build side by side (their downloads and compiles overlap).
demo: ## build everything and show a verified container start and an unverified one blocked
	bash test/tools/demo.sh

# The image packs bin/, so it builds bin/ itself first: within one make run `build` runs
# once, and a step in between may have rebuilt bin/ with another version (the release
# example in the interop suite runs `make build` with its own VERSION).
image: ## build the tollgate container image as an OCI layout in out/image
	@$(MAKE) --no-print-directory build
	VERSION=$(VERSION) REVISION=$(REVISION) $(GO) run ./deploy/image -out out/image

check: tools lint test interop e2e k8s ## everything CI runs: install tools, then lint, unit, interop, end-to-end and Kubernetes tests

clean: ## remove build outputs (keeps the tool cache)
	rm -rf $(BIN) out
