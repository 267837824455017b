#!/usr/bin/env bash
# Runs every Fuzz target in the module for a while each (default 20s).
# Usage: test/tools/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${1:-20s}
failed=0
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    echo "==> fuzz $pkg $t for $fuzztime"
    if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"; then
      echo "FAIL: $pkg $t (the failing input is under that package's testdata/fuzz/$t)"
      failed=1
    fi
  done
done
exit $failed
