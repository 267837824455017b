#!/usr/bin/env bash
# make demo: install what the demo runs (test/tools/install.sh --only demo: runc, containerd,
# ctr, shim, crictl), build bin/tollgate, bin/tollgated (make build) and the demo program
# (test/e2e/demo, which drives the e2e harness), then run the demo. Needs root.
#
# On a fresh machine the time goes to compiling (both cores busy) and to downloading modules
# (cores idle). So Tollgate's modules download while the tools build, and Tollgate compiles
# after the tools: the packages both use at the same version (the standard library,
# protobuf, x/sys, ...) are then compiled once, with the same -trimpath. Each step prints
# one line when it is done.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it starts containerd and runs containers (sudo make demo)" >&2
  exit 1
fi

# Seconds for everything before the demo itself on a fresh 2-core machine with empty Go
# caches (how it was derived: docs/performance.md, "The first make demo").
ESTIMATE=350
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# -trimpath everywhere, as `make build` does: the demo program and the test image it builds
# (the harness runs `go build`, which reads GOFLAGS) reuse make build's compiled packages.
export GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"

# The modules `make build`, the demo program and its test image need: `go list -deps`
# downloads exactly those (and compiles nothing).
fetch_modules() {
  CGO_ENABLED=0 go list -deps -tags e2e ./cmd/... ./test/e2e/demo ./test/tools/testimage/cmd/testimage >/dev/null
}

build_tollgate() {
  make --no-print-directory build &&
    mkdir -p .cache/e2e-bin &&
    CGO_ENABLED=0 go build -tags e2e -o .cache/e2e-bin/demo ./test/e2e/demo
}

# step WHAT LOG CMD...: runs CMD with its output in LOG; one line when it ends.
step() {
  local what=$1 log=$2
  shift 2
  if "$@" >"$log" 2>&1; then
    echo "demo: $what: done ($(mmss $((SECONDS - start))) elapsed of about $(mmss $ESTIMATE))"
  else
    echo "demo: $what: FAILED after $(mmss $((SECONDS - start))); the end of its log:" >&2
    tail -n 40 "$log" | sed 's/^/    /' >&2
    return 1
  fi
}

echo "demo: installing the demo's tools, then building Tollgate" \
  "(about $(mmss $ESTIMATE) on a fresh 2-core machine; seconds when done before)"
start=$SECONDS
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
bash test/tools/install.sh --only demo &
tools=$!
step "download of Tollgate's Go modules" "$logs/fetch" fetch_modules || { wait "$tools"; exit 1; }
wait "$tools" || exit 1
step "build of bin/tollgate, bin/tollgated and the demo program" "$logs/build" build_tollgate || exit 1
# exec: the demo itself gets Ctrl-C and tears everything down.
exec .cache/e2e-bin/demo "$@"
