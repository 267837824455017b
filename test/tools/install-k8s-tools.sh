#!/usr/bin/env bash
# Builds the Kubernetes rendering tools the deploy/ tests use (kustomize, helm) from the Go
# module proxy into $REPO/.cache/bin. Called from test/tools/install.sh; safe to run alone.
#
# Both are pure Go and build with CGO_ENABLED=0. They are large builds (several hundred
# packages each); a tool already present at the pinned version is not rebuilt.
#
# Versions are pinned to releases whose go.mod accepts the repository's Go toolchain
# (kustomize v5.8.3 needs Go 1.27, so v5.8.2 is the newest usable with Go 1.26).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${TOLLGATE_TOOLS_BIN:-$REPO/.cache/bin}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
GO="${GO:-go}"

mkdir -p "$BIN"
export GOBIN="$BIN" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath

# have NAME VERSION: true when $BIN/NAME exists and reports VERSION.
have() {
	local name=$1 version=$2 out
	[ -x "$BIN/$name" ] || return 1
	case $name in
	kustomize) out=$("$BIN/kustomize" version 2>/dev/null || true) ;;
	helm) out=$("$BIN/helm" version --short 2>/dev/null || true) ;;
	esac
	[[ $out == *"$version"* ]]
}

# build NAME MODULE_PACKAGE VERSION LDFLAGS
build() {
	local name=$1 pkg=$2 version=$3 ldflags=$4 start
	if have "$name" "$version"; then
		echo "install-k8s-tools: $name $version already in $BIN"
		return
	fi
	echo "install-k8s-tools: building $name $version from $pkg (CGO_ENABLED=0)"
	start=$(date +%s)
	"$GO" install -ldflags "$ldflags" "$pkg@$version"
	echo "install-k8s-tools: $name $version built in $(($(date +%s) - start))s"
}

# The version strings are normally injected by each project's release build; set them so
# `kustomize version` / `helm version` report what was built (and `have` can check it).
build kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" \
	"-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION"
build helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
	"-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
