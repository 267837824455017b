#!/usr/bin/env bash
# make demo: install what the demo runs (test/tools/install.sh --only demo: runc, containerd,
# ctr, shim, crictl) and, side by side, build bin/tollgate, bin/tollgated (make build) and
# the demo program (test/e2e/demo, which drives the e2e harness); then run the demo. The two
# halves download their Go modules at the same time and keep both cores busy, so a first run
# waits for the network once. Each half prints one line when it is done. Needs root.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it starts containerd and runs containers (sudo make demo)" >&2
  exit 1
fi

# Seconds for everything before the demo itself on a fresh 2-core machine with empty Go
# caches (how it was measured: docs/dev/demo-timing.md).
ESTIMATE=330
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# -trimpath everywhere, as `make build` does: the demo program and the test image it builds
# (the harness runs `go build`, which reads GOFLAGS) reuse make build's compiled packages.
export GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"

build_tollgate() {
  make --no-print-directory build &&
    mkdir -p .cache/e2e-bin &&
    CGO_ENABLED=0 go build -tags e2e -o .cache/e2e-bin/demo ./test/e2e/demo
}

echo "demo: installing the demo's tools and building Tollgate side by side" \
  "(about $(mmss $ESTIMATE) on a fresh 2-core machine; seconds when done before)"
start=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash test/tools/install.sh --only demo &
tools=$!
build_tollgate >"$log" 2>&1 &
build=$!

rc=0
wait "$build" || rc=$?
if [ $rc = 0 ]; then
  echo "demo: bin/tollgate, bin/tollgated and the demo program built ($(mmss $((SECONDS - start))) elapsed)"
else
  echo "demo: building Tollgate FAILED after $(mmss $((SECONDS - start))); the end of its log:" >&2
  tail -n 40 "$log" | sed 's/^/    /' >&2
fi
wait "$tools" || rc=1
[ $rc = 0 ] || exit 1
echo "demo: ready after $(mmss $((SECONDS - start))) (estimate $(mmss $ESTIMATE)); starting the demo"
# exec: the demo itself gets Ctrl-C and tears everything down.
exec .cache/e2e-bin/demo "$@"
