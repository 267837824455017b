#!/usr/bin/env bash
# Installs what Tollgate's demo, interop and end-to-end tests need on a Debian bookworm
# machine, as root. Idempotent: a second run only checks.
#
#   install.sh                everything (make tools, make check)
#   install.sh --only demo    only what `make demo` runs: runc, containerd, ctr, shim, crictl
#                             (test/tools/demo.sh runs it, then `make build`)
#
#   apt packages:  runc; in-toto (Python 1.3.1), docker-registry and graphviz (the layout
#                  graph tests render DOT with dot -Tsvg) unless --only demo
#   $REPO/.cache/bin (git-ignored), built from the Go module proxy:
#       containerd, ctr, containerd-shim-runc-v2   github.com/containerd/containerd/v2
#       crictl                                     sigs.k8s.io/cri-tools
#       cosign                                     github.com/sigstore/cosign/v2 (not for demo)
#       kustomize, helm                            install-k8s-tools.sh (not for demo)
#       deadcode, staticcheck (make lint)          golang.org/x/tools, honnef.co/go/tools (not for demo)
#
# Each Go tool is rebuilt only when its stamp file (.cache/bin/.stamp-NAME) does not name
# the wanted module version or the binary is missing. Independent module graphs build in
# parallel; each prints one line when it is done, with the elapsed time against an
# estimate for a fresh 2-core machine. `go` output goes to a log shown only on failure.
# Environment:
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
# make lint: dead code (golang.org/x/tools v0.52.0 works with Go 1.26) and static analysis.
XTOOLS_MOD=golang.org/x/tools
XTOOLS_VERSION=v0.52.0
STATICCHECK_MOD=honnef.co/go/tools
STATICCHECK_VERSION=v0.8.2
# containerd's optional snapshotters need cgo or kernel headers; the tests use overlayfs.
CONTAINERD_TAGS=no_btrfs,no_devmapper,no_zfs
# The demo's containerd also leaves out the OpenTelemetry exporter plugin and the CLI's
# man-page generator (42 fewer packages to compile); it keeps CRI, NRI, the overlayfs and
# native snapshotters and the runc shim. Its own stamp keeps it apart from the full build,
# which `make tools` builds over it; the full build serves the demo as it is.
CONTAINERD_DEMO_TAGS=$CONTAINERD_TAGS,no_tracing,urfave_cli_no_docs

ONLY=all
while [ $# -gt 0 ]; do
  case $1 in
  --only) [ $# -ge 2 ] || { echo "install.sh: --only needs a set (demo)" >&2; exit 2; }; ONLY=$2; shift 2 ;;
  --only=*) ONLY=${1#--only=}; shift ;;
  -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "install.sh: unknown argument $1 (usage: install.sh [--only demo])" >&2; exit 2 ;;
  esac
done
case $ONLY in
all) APT_PACKAGES=(runc in-toto docker-registry graphviz) ;;
demo) APT_PACKAGES=(runc) ONE_COMPILE_AT_A_TIME=1 ;;
*) echo "install.sh: unknown set \"$ONLY\" (known: demo)" >&2; exit 2 ;;
esac

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

[ "$(id -u)" = 0 ] || die "run as root (apt-get install and the e2e suite need it)"
command -v go >/dev/null || die "go is not on PATH"

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt: ${APT_PACKAGES[*]} already installed"
    return 0
  fi
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# fresh NAME PKG VERSION TAGS[|TAGS...]: true when $BIN/NAME is there and its stamp names
# this build with one of the tag sets (the first is the one go_group builds).
fresh() {
  local stamp="$BIN/.stamp-$1" have tags t
  [ -x "$BIN/$1" ] && [ -f "$stamp" ] || return 1
  have=$(<"$stamp")
  IFS='|' read -ra tags <<<"$4"
  [ ${#tags[@]} -gt 0 ] || tags=("") # no tags at all
  for t in "${tags[@]}"; do
    [ "$have" = "$2@$3 tags=$t" ] && return 0
  done
  return 1
}

# go_group VERSION TAGS NAME=PKG...: one `go install` for the tools of one module version
# that are not fresh (one module graph, downloaded once, compiled in one go command), then
# their stamps. -s -w only drop the symbol table and DWARF (stack traces keep working) and
# cut link time. -trimpath as `make build` uses it, so packages that two builds use at the
# same version (the standard library, protobuf, x/sys, ...) are compiled once, provided the
# two do not compile them at the same moment: with ONE_COMPILE_AT_A_TIME (the demo's set;
# its tools share only the standard library, and Tollgate's build after them 40% of its
# packages) every group downloads its modules at once (go install -n: modules, no
# compiling), then compiles in turn.
go_group() {
  local version=$1 accepted=$2 tags=${2%%|*} pkgs=() names=() spec
  shift 2
  for spec in "$@"; do
    fresh "${spec%%=*}" "${spec#*=}" "$version" "$accepted" && continue
    names+=("${spec%%=*}")
    pkgs+=("${spec#*=}@$version")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  local install=(env GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' ${tags:+-tags "$tags"})
  if [ -n "${ONE_COMPILE_AT_A_TIME:-}" ]; then
    # -n prints every command it would run; keep only what go says (downloads, errors).
    "${install[@]}" -n "${pkgs[@]}" 2>&1 >/dev/null | { grep '^go: ' || true; }
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
    exec {lock}>"$LOGDIR/compile.lock"
    flock "$lock"
  fi
  "${install[@]}" "${pkgs[@]}" || return 1
  for spec in "$@"; do
    local name=${spec%%=*}
    [ -x "$BIN/$name" ] || { echo "go install did not produce $BIN/$name"; return 1; }
    printf '%s\n' "${spec#*=}@$version tags=$tags" >"$BIN/.stamp-$name"
  done
}

# Groups of tools, each one module graph, built in parallel: NAME LABEL ESTIMATE (seconds
# on a fresh 2-core machine with empty Go caches, building alongside the others; in the
# demo set, whose groups compile in turn, by when it is done) VERSION
# TAGS[|TAGS accepted too] NAME=PKG...
GROUPS_demo=(containerd_demo crictl)
GROUPS_all=(containerd crictl cosign deadcode staticcheck)
CONTAINERD_CMDS=("containerd=$CONTAINERD_MOD/cmd/containerd" "ctr=$CONTAINERD_MOD/cmd/ctr"
  "containerd-shim-runc-v2=$CONTAINERD_MOD/cmd/containerd-shim-runc-v2")
group_containerd=("containerd, ctr, containerd-shim-runc-v2 $CONTAINERD_VERSION" 200 "$CONTAINERD_VERSION" "$CONTAINERD_TAGS"
  "${CONTAINERD_CMDS[@]}")
group_containerd_demo=("containerd, ctr, containerd-shim-runc-v2 $CONTAINERD_VERSION (demo build)" 180 "$CONTAINERD_VERSION"
  "$CONTAINERD_DEMO_TAGS|$CONTAINERD_TAGS" "${CONTAINERD_CMDS[@]}")
# crictl's 240: compiled after the demo's containerd, as the demo set does (docs/performance.md).
group_crictl=("crictl $CRITOOLS_VERSION" 240 "$CRITOOLS_VERSION" "" "crictl=$CRITOOLS_MOD/cmd/crictl")
group_cosign=("cosign $COSIGN_VERSION" 420 "$COSIGN_VERSION" "" "cosign=$COSIGN_MOD/cmd/cosign")
group_deadcode=("deadcode $XTOOLS_VERSION" 40 "$XTOOLS_VERSION" "" "deadcode=$XTOOLS_MOD/cmd/deadcode")
group_staticcheck=("staticcheck $STATICCHECK_VERSION" 60 "$STATICCHECK_VERSION" "" "staticcheck=$STATICCHECK_MOD/cmd/staticcheck")

# plan_groups SET: fills todo with the groups of SET that have a tool to build, and estimate
# with the longest of their estimates (they build side by side).
plan_groups() {
  local groups_var="GROUPS_$1[@]" g spec stale
  todo=() estimate=0
  for g in "${!groups_var}"; do
    local -n grp="group_$g"
    stale=0
    for spec in "${grp[@]:4}"; do
      fresh "${spec%%=*}" "${spec#*=}" "${grp[2]}" "${grp[3]}" || stale=1
    done
    if [ $stale = 0 ]; then
      log "go: ${grp[0]} already built"
    else
      todo+=("$g")
      [ "${grp[1]}" -gt "$estimate" ] && estimate=${grp[1]}
    fi
    unset -n grp
  done
}

# build_groups: builds the groups in todo side by side, one line per group as it ends (in
# the order they end), each with the time elapsed against the estimate for all of them.
build_groups() {
  local start=$SECONDS g pid rc failed=() ended=0
  local -A pid_of=()
  local how="in parallel"
  [ -z "${ONE_COMPILE_AT_A_TIME:-}" ] || how="(downloads in parallel, compiles in turn)"
  log "go: building ${todo[*]} $how from the Go module proxy (about $(mmss "$estimate") on a fresh 2-core machine; less with a warm Go cache)"
  for g in "${todo[@]}"; do
    local -n grp="group_$g"
    go_group "${grp[2]}" "${grp[3]}" "${grp[@]:4}" >"$LOGDIR/$g" 2>&1 &
    pid_of[$g]=$!
    unset -n grp
  done
  while [ ${#pid_of[@]} -gt 0 ]; do
    rc=0
    wait -n -p pid "${pid_of[@]}" || rc=$?
    for g in "${!pid_of[@]}"; do
      [ "${pid_of[$g]}" = "$pid" ] || continue
      unset "pid_of[$g]"
      ended=$((ended + 1))
      local -n grp="group_$g"
      if [ $rc = 0 ]; then
        log "go: [$ended/${#todo[@]}] ${grp[0]} built ($(mmss $((SECONDS - start))) elapsed of about $(mmss "$estimate"))"
      else
        log "go: [$ended/${#todo[@]}] ${grp[0]} FAILED after $(mmss $((SECONDS - start))); the end of its log:"
        tail -n 40 "$LOGDIR/$g" | sed 's/^/    /'
        failed+=("$g")
      fi
      unset -n grp
    done
  done
  [ ${#failed[@]} -eq 0 ] || die "building ${failed[*]} failed (see above)"
}

install_apt
mkdir -p "$BIN"
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
plan_groups "$ONLY"
[ ${#todo[@]} -eq 0 ] || build_groups

# Smoke-check that what we built runs at all (a broken static build shows here, not in a test).
"$BIN/containerd" --version >/dev/null || die "$BIN/containerd does not run"
"$BIN/ctr" --version >/dev/null || die "$BIN/ctr does not run"
"$BIN/crictl" --version >/dev/null || die "$BIN/crictl does not run"
if [ "$ONLY" = all ]; then
  "$BIN/cosign" version >/dev/null 2>&1 || die "$BIN/cosign does not run"
  if [ -f "$REPO/test/tools/install-k8s-tools.sh" ]; then
    log "running test/tools/install-k8s-tools.sh"
    bash "$REPO/test/tools/install-k8s-tools.sh"
  fi
  # The one-node Kubernetes of test/k8s (`make k8s`): a long cold build, cached by version.
  log "running test/tools/install-k8s.sh"
  bash "$REPO/test/tools/install-k8s.sh"
fi
log "tools in $BIN: $(cd "$BIN" && ls | tr '\n' ' ')"
log "done"
