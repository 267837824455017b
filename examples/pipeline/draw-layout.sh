#!/usr/bin/env bash
# Draws the pipeline's layout (examples/pipeline/layout.yaml) as an SVG with
# `tollgate layout show --format dot` and Graphviz's dot. It made docs/images/pipeline-layout.svg:
#
#   examples/pipeline/draw-layout.sh docs/images/pipeline-layout.svg
#
# The keys are made afresh, so the keyids (and the expiry) in the picture change per run.
# Environment: TOLLGATE  a tollgate binary to use (default: built from this checkout)
set -euo pipefail

OUT=${1:?usage: draw-layout.sh OUT.svg}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command -v dot >/dev/null || { echo "draw-layout.sh: Graphviz's dot is not on PATH (Debian: apt-get install graphviz)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "${TOLLGATE:-}" ]; then
  (cd "$ROOT" && go build -tags grpcnotrace -o "$WORK/tollgate" ./cmd/tollgate)
  TOLLGATE=$WORK/tollgate
fi
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

cd "$WORK"
for k in owner builder tester packager; do
  "$TOLLGATE" keygen "$k" --type ed25519 >/dev/null 2>&1
done
cp "$ROOT/examples/pipeline/layout.yaml" layout.yaml
"$TOLLGATE" layout create --from layout.yaml --key owner --out root.layout 2>/dev/null
"$TOLLGATE" layout show --format dot root.layout | dot -Tsvg -o "$OUT"
echo "wrote $OUT"
