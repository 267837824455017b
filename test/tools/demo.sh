#!/usr/bin/env bash
# make demo: build the demo program (test/e2e/demo, which drives the e2e harness) and run
# it. It needs root, the tools from `test/tools/install.sh --only demo` (make demo-tools),
# bin/tollgate and bin/tollgated (make build); `make demo` does both first.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it starts containerd and runs containers (sudo make demo)" >&2
  exit 1
fi
for b in bin/tollgate bin/tollgated; do
  [ -x "$b" ] || { echo "demo: $b is missing: run 'make demo' (it builds it) or 'make build'" >&2; exit 1; }
done
mkdir -p .cache/e2e-bin
echo "building the demo (go build -tags e2e ./test/e2e/demo) ..."
CGO_ENABLED=0 go build -tags e2e -o .cache/e2e-bin/demo ./test/e2e/demo
# exec: the demo itself gets Ctrl-C and tears everything down.
exec .cache/e2e-bin/demo "$@"
