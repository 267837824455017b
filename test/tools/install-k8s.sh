#!/usr/bin/env bash
# Builds what test/k8s needs for a real one-node Kubernetes, into $K8S_DIR (default
# $REPO/.cache/k8s, git-ignored), one directory per version so a version bump never mixes
# binaries:
#
#   kubernetes-$K8S_VERSION/  kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#   etcd-$ETCD_VERSION/       etcd (extracted from Debian's etcd-server; the package is not
#                             installed, since installing it starts an etcd on the host)
#   cni-$CNI_VERSION/         bridge host-local loopback
#
# Kubernetes cannot be `go install`ed (its go.mod has replace directives into ./staging), so a
# throwaway wrapper module requires k8s.io/kubernetes and replaces each staging module with its
# published v0.x release of the same minor. Every binary is CGO_ENABLED=0 and -trimpath.
# A directory whose .stamp names the wanted version is reused as is: a warm rerun takes
# seconds. kubectl is also linked into $BIN for people who want it on PATH. Environment:
#   TOLLGATE_TOOLS_BIN  the tools bin dir (default $REPO/.cache/bin)
#   TOLLGATE_K8S_DIR    where the versioned directories go (default: $TOLLGATE_TOOLS_BIN/../k8s)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${TOLLGATE_TOOLS_BIN:-$REPO/.cache/bin}"
K8S_DIR="${TOLLGATE_K8S_DIR:-$(dirname "$BIN")/k8s}"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_DEB_VERSION="${ETCD_DEB_VERSION:-3.4.23}"
CNI_VERSION="${CNI_VERSION:-v1.10.0}"
GO="${GO:-go}"

log() { printf 'install-k8s: %s\n' "$*"; }
die() { printf 'install-k8s: error: %s\n' "$*" >&2; exit 1; }

command -v "$GO" >/dev/null || die "go is not on PATH"
mkdir -p "$K8S_DIR" "$BIN"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath

# fresh DIR WANT: true when DIR/.stamp says WANT (the directory was completed for it).
fresh() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

# staging_modules: the k8s.io modules kubernetes' go.mod replaces with ./staging paths.
staging_modules() {
  local gomod
  gomod=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION's go.mod"
  sed -n 's#^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod"
}

build_kubernetes() {
  local out="$K8S_DIR/kubernetes-$K8S_VERSION" want="kubernetes $K8S_VERSION"
  if fresh "$out" "$want"; then log "kubernetes $K8S_VERSION already in $out"; return; fi
  log "building kubernetes $K8S_VERSION (several minutes on a cold Go cache)"
  local start=$SECONDS mods staging_version minor
  minor=${K8S_VERSION#v1.}
  staging_version="v0.$minor"
  mods=$(staging_modules)
  [ -n "$mods" ] || die "found no staging modules in k8s.io/kubernetes@$K8S_VERSION"
  log "replacing $(wc -w <<<"$mods") staging modules with their $staging_version releases"

  local src="$K8S_DIR/.src-kubernetes-$K8S_VERSION"
  rm -rf "$src" && mkdir -p "$src"
  {
    echo "module tollgate.dev/k8sbuild"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for m in $mods; do echo "replace $m => $m $staging_version"; done
  } >"$src/go.mod"
  # The build-tagged file only anchors the commands' imports for `go mod tidy`.
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  (cd "$src" && "$GO" mod tidy) || die "go mod tidy of the kubernetes wrapper module failed"

  # The release build injects the version; without it every component reports v0.0.0 and
  # kubectl warns about skew.
  local major=1 min=${minor%%.*} vpkg ldflags="-s -w"
  for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$min"
    ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  done
  local tmp="$out.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$src" && "$GO" build -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl) ||
    die "building kubernetes $K8S_VERSION failed"
  "$tmp/kubectl" version --client >/dev/null || die "the built kubectl does not run"
  printf '%s\n' "$want" >"$tmp/.stamp"
  rm -rf "$out" && mv "$tmp" "$out"
  rm -rf "$src"
  log "kubernetes $K8S_VERSION built in $((SECONDS - start))s"
}

build_cni() {
  local out="$K8S_DIR/cni-$CNI_VERSION" want="cni plugins $CNI_VERSION"
  if fresh "$out" "$want"; then log "CNI plugins $CNI_VERSION already in $out"; return; fi
  log "building CNI plugins $CNI_VERSION"
  local start=$SECONDS tmp="$out.tmp" p
  rm -rf "$tmp" && mkdir -p "$tmp"
  for p in main/bridge ipam/host-local main/loopback; do
    GOBIN="$tmp" "$GO" install -ldflags "-s -w" "github.com/containernetworking/plugins/plugins/$p@$CNI_VERSION" ||
      die "building the CNI plugin $p failed"
  done
  printf '%s\n' "$want" >"$tmp/.stamp"
  rm -rf "$out" && mv "$tmp" "$out"
  log "CNI plugins $CNI_VERSION built in $((SECONDS - start))s"
}

extract_etcd() {
  local out="$K8S_DIR/etcd-$ETCD_DEB_VERSION" want="etcd-server $ETCD_DEB_VERSION"
  if fresh "$out" "$want"; then log "etcd $ETCD_DEB_VERSION already in $out"; return; fi
  local cand
  cand=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^ *Candidate: //p')
  if [[ $cand != "$ETCD_DEB_VERSION"* ]]; then
    apt-get update -q >/dev/null
    cand=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^ *Candidate: //p')
  fi
  [[ $cand == "$ETCD_DEB_VERSION"* ]] || die "apt offers etcd-server '$cand', not $ETCD_DEB_VERSION"
  log "extracting etcd from etcd-server $cand (downloaded, not installed)"
  local tmp="$out.tmp" dl
  rm -rf "$tmp" && mkdir -p "$tmp"
  dl=$(mktemp -d)
  chmod 0755 "$dl" # apt-get download drops privileges to _apt
  (cd "$dl" && apt-get download -q "etcd-server=$cand" >/dev/null) || die "apt-get download etcd-server=$cand failed"
  dpkg-deb -x "$dl"/etcd-server_*.deb "$dl/root"
  install -m 0755 "$dl/root/usr/bin/etcd" "$tmp/etcd"
  rm -rf "$dl"
  "$tmp/etcd" --version >/dev/null || die "the extracted etcd does not run"
  printf '%s\n' "$want" >"$tmp/.stamp"
  rm -rf "$out" && mv "$tmp" "$out"
}

start=$SECONDS
extract_etcd
build_cni
build_kubernetes
# current.env tells test/k8s which versioned directories to use.
printf 'KUBERNETES=%s\nETCD=%s\nCNI=%s\n' "$K8S_DIR/kubernetes-$K8S_VERSION" \
  "$K8S_DIR/etcd-$ETCD_DEB_VERSION" "$K8S_DIR/cni-$CNI_VERSION" >"$K8S_DIR/current.env"
ln -sf "$K8S_DIR/kubernetes-$K8S_VERSION/kubectl" "$BIN/kubectl"
log "done in $((SECONDS - start))s: $K8S_DIR"
