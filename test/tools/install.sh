#!/usr/bin/env bash
# Installs everything Tollgate's interop and end-to-end tests need on a Debian bookworm
# machine, as root. Idempotent: a second run only checks and prints.
#
#   apt packages:  runc, in-toto (Python 1.3.1), docker-registry
#   $REPO/.cache/bin (git-ignored), built from the Go module proxy:
#       containerd, ctr, containerd-shim-runc-v2   github.com/containerd/containerd/v2
#       crictl                                     sigs.k8s.io/cri-tools
#       cosign                                     github.com/sigstore/cosign/v2
#
# Each Go tool is rebuilt only when its stamp file (.cache/bin/.stamp-NAME) does not name
# the wanted module version or the binary is missing. The Go build cache makes a rebuild
# after a version bump cheap. Environment:
#   TOLLGATE_TOOLS_BIN   where to put the binaries (default $REPO/.cache/bin)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${TOLLGATE_TOOLS_BIN:-$REPO/.cache/bin}"

CONTAINERD_MOD=github.com/containerd/containerd/v2
CONTAINERD_VERSION=v2.4.2
CRITOOLS_MOD=sigs.k8s.io/cri-tools
CRITOOLS_VERSION=v1.34.0
COSIGN_MOD=github.com/sigstore/cosign/v2
COSIGN_VERSION=v2.6.5
# containerd's optional snapshotters need cgo or kernel headers; the tests use overlayfs.
CONTAINERD_TAGS=no_btrfs,no_devmapper,no_zfs

APT_PACKAGES=(runc in-toto docker-registry)

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get install and the e2e suite need it)"
command -v go >/dev/null || die "go is not on PATH"

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      log "apt: $p already installed ($(dpkg-query -W -f='${Version}' "$p"))"
    else
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# go_tool NAME MODULE/PATH VERSION [TAGS]: go install PATH@VERSION into $BIN unless the
# stamp says it is already there at that version.
go_tool() {
  local name=$1 pkg=$2 version=$3 tags=${4:-}
  local stamp="$BIN/.stamp-$name" want="$pkg@$version tags=$tags"
  if [ -x "$BIN/$name" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "go: $name already at $version"
    return 0
  fi
  log "go: building $name from $pkg@$version${tags:+ (tags $tags)}"
  local start=$SECONDS
  # Plain flags on purpose: same build-cache keys as any earlier `go install` of the tool.
  GOBIN="$BIN" CGO_ENABLED=0 go install ${tags:+-tags "$tags"} "$pkg@$version"
  [ -x "$BIN/$name" ] || die "go install $pkg@$version did not produce $BIN/$name"
  printf '%s\n' "$want" >"$stamp"
  log "go: $name built in $((SECONDS - start))s"
}

install_apt

mkdir -p "$BIN"
# Three independent module graphs: build them in parallel (on a cold module cache the
# downloads dominate), each group's output in its own log, printed when it ends.
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
(
  go_tool containerd              "$CONTAINERD_MOD/cmd/containerd"              "$CONTAINERD_VERSION" "$CONTAINERD_TAGS"
  go_tool ctr                     "$CONTAINERD_MOD/cmd/ctr"                     "$CONTAINERD_VERSION" "$CONTAINERD_TAGS"
  go_tool containerd-shim-runc-v2 "$CONTAINERD_MOD/cmd/containerd-shim-runc-v2" "$CONTAINERD_VERSION" "$CONTAINERD_TAGS"
) >"$LOGDIR/containerd" 2>&1 &
pids=($!)
go_tool crictl "$CRITOOLS_MOD/cmd/crictl" "$CRITOOLS_VERSION" >"$LOGDIR/crictl" 2>&1 &
pids+=($!)
go_tool cosign "$COSIGN_MOD/cmd/cosign" "$COSIGN_VERSION" >"$LOGDIR/cosign" 2>&1 &
pids+=($!)
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed=1; fi
done
cat "$LOGDIR/containerd" "$LOGDIR/crictl" "$LOGDIR/cosign"
[ "$failed" = 0 ] || die "building the Go tools failed (see above)"

# Smoke-check that what we built runs at all (a broken static build shows here, not in a test).
"$BIN/containerd" --version >/dev/null || die "$BIN/containerd does not run"
"$BIN/ctr" --version >/dev/null || die "$BIN/ctr does not run"
"$BIN/crictl" --version >/dev/null || die "$BIN/crictl does not run"
"$BIN/cosign" version >/dev/null 2>&1 || die "$BIN/cosign does not run"
log "tools in $BIN: $(cd "$BIN" && ls | tr '\n' ' ')"

if [ -f "$REPO/test/tools/install-k8s-tools.sh" ]; then
  log "running test/tools/install-k8s-tools.sh"
  bash "$REPO/test/tools/install-k8s-tools.sh"
fi
# The one-node Kubernetes of test/k8s (`make k8s`): a long cold build, cached by version.
log "running test/tools/install-k8s.sh"
bash "$REPO/test/tools/install-k8s.sh"
log "done"
