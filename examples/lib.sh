# Shell helpers shared by the example scripts (examples/pipeline/pipeline.sh,
# examples/release/release.sh). Source it; it defines functions only.

# say prints a step heading.
say() { printf '\n== %s\n' "$*"; }

# start_registry BINARY LOG starts the loopback OCI registry (test/tools/ociregistry) on a
# free port, stops it when the calling script exits, and sets REGISTRY_PID and HOST
# (127.0.0.1:PORT). Exits the script when the registry does not come up.
start_registry() {
  "$1" --addr 127.0.0.1:0 >"$2" 2>&1 &
  REGISTRY_PID=$!
  trap 'kill "$REGISTRY_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    grep -q '^listening on ' "$2" && break
    sleep 0.1
  done
  HOST=$(sed -n 's/^listening on //p' "$2" | head -n1)
  [ -n "$HOST" ] || { echo "registry did not start:"; cat "$2"; exit 1; }
}
