#!/usr/bin/env bash
# Tollgate's own release, signed with Tollgate, against a registry on loopback:
#
#   keys -> layout -> build (make build) -> publish (build + push the tollgate image)
#        -> SLSA provenance -> attach -> verify the image exactly as a node would
#
# The in-toto layout says who may build the binaries and who may push the image, that the
# publish step may only consume what the build step produced, and (the `image` inspection)
# that the image a node runs must be the one the publish step pushed. The step is not named
# "image": that name belongs to the inspection, which a node synthesizes from the image.
#
# Usage: examples/release/release.sh            (from anywhere in the checkout)
# Environment:
#   TOLLGATE  a tollgate binary to sign and verify with (default: built from this checkout)
#   WORK      working directory (default: a new temporary directory, kept for inspection)
#   VERSION   release version and image tag (default: git describe)
# It runs `make build`, which writes bin/tollgate and bin/tollgated in the checkout.
# Exits 0 when the final `tollgate verify --image` says verified.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${WORK:-$(mktemp -d)}
BIN=$WORK/bin
KEYS=$WORK/keys
LINKS=$WORK/links
mkdir -p "$BIN" "$KEYS"
# shellcheck source=examples/lib.sh
source "$ROOT/examples/lib.sh"
cd "$ROOT"
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=$(git rev-parse HEAD 2>/dev/null || true)
# Reproducible image: created at the commit's time.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export VERSION REVISION SOURCE_DATE_EPOCH

say "tools"
if [ -z "${TOLLGATE:-}" ]; then
  go build -tags grpcnotrace -o "$BIN/" ./cmd/tollgate
  TOLLGATE=$BIN/tollgate
fi
# A loopback OCI registry stands in for ghcr.io; everything else is the real release.
go build -o "$BIN/ociregistry" ./test/tools/ociregistry
tg() { "$TOLLGATE" "$@"; }
tg version

say "registry"
start_registry "$BIN/ociregistry" "$WORK/registry.log"
REPO=$HOST/tollgate-dev/tollgate
IMAGE=$REPO:$VERSION
export IMAGE
echo "registry at $HOST, image $IMAGE"

say "keys (layout owner, build and publish functionaries, provenance signer) in $KEYS"
(
  cd "$KEYS"
  tg keygen owner     --type rsa --bits 3072 --force
  tg keygen builder   --type ed25519 --force
  tg keygen publisher --type ed25519 --force
  tg keygen ci        --type ecdsa --force
)

say "layout: the release's steps, who performs them, and what may flow between them"
cat >"$WORK/release.layout.yaml" <<YAML
expires: 720h
readme: Tollgate release $VERSION - binaries built by make build, image built and pushed by deploy/image
steps:
  - name: build
    functionaries: [$KEYS/builder.pub]
    expected_command: make build
    materials: [ALLOW *]
    products: [CREATE bin/tollgate, CREATE bin/tollgated, DISALLOW *]
  - name: publish
    functionaries: [$KEYS/publisher.pub]
    expected_command: [sh, -c, 'go run ./deploy/image -push "\$IMAGE" -insecure']
    materials: [MATCH bin/* WITH PRODUCTS FROM build, DISALLOW *]
    products: [CREATE image, DISALLOW *]
inspections:
  - image: {from: publish}   # the image a node runs must be the one publish pushed
YAML
tg layout create --from "$WORK/release.layout.yaml" --key "$KEYS/owner" --out "$WORK/release.layout"
tg layout show "$WORK/release.layout"

say "build: make build, with the source tree as materials and bin/ as products"
# The source tree is what the build can see: tracked files and untracked, unignored ones
# (build outputs, caches and .git are ignored).
SOURCES=()
while IFS= read -r -d '' f; do
  [ -e "$f" ] && SOURCES+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard)
echo "${#SOURCES[@]} source files"
tg run -n build -k "$KEYS/builder" -d "$LINKS" -m "${SOURCES[@]}" -p bin -- make build

say "publish: build the image from bin/ and push it; record its digest as the product \"image\""
tg run -n publish -k "$KEYS/publisher" -d "$LINKS" -m bin \
  --image-product "image=$IMAGE" --insecure-registry "$HOST" \
  -- sh -c 'go run ./deploy/image -push "$IMAGE" -insecure' | tee "$WORK/image.out"
PUSHED=$(tail -n1 "$WORK/image.out")
case $PUSHED in
  "$REPO"@sha256:*) echo "pushed $PUSHED" ;;
  *) echo "deploy/image did not print the pushed digest (got: $PUSHED)"; exit 1 ;;
esac

say "provenance (SLSA v1) for the pushed digest"
tg attest --image "$PUSHED" --predicate-type slsa-v1 --key "$KEYS/ci" \
  --builder-id https://tollgate.dev/examples/release.sh \
  --source-uri "git+file://$ROOT" ${REVISION:+--source-digest "gitCommit:$REVISION"} \
  --entry-point examples/release/release.sh \
  --out "$WORK/provenance.dsse.json"

say "attach the links and the provenance to the image"
tg attach --image "$PUSHED" --insecure-registry "$HOST" --link-dir "$LINKS" \
  --attestation "$WORK/provenance.dsse.json"

say "the node's policy directory (layouts and keys are node-local, never from the registry)"
POLICY=$WORK/policy
mkdir -p "$POLICY/keys" "$POLICY/layouts"
cp "$KEYS/owner.pub" "$KEYS/ci.pub" "$POLICY/keys/"
cp "$WORK/release.layout" "$POLICY/layouts/tollgate.layout"
cat >"$POLICY/tollgate.yaml" <<YAML
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: tollgate
spec:
  images: ["$REPO"]
  mode: enforce
  layouts:
    - layout: layouts/tollgate.layout
      keys: [keys/owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
      conditions:
        - provenance.builderId == "https://tollgate.dev/examples/release.sh"
YAML
cat "$POLICY/tollgate.yaml"

say "verify $IMAGE, as a node would"
tg verify --image "$IMAGE" --insecure-registry "$HOST" --policy-dir "$POLICY" | tee "$WORK/verify.out"
grep -q '^tollgate: verified ' "$WORK/verify.out" || { echo "release NOT verified"; exit 1; }
echo "release $VERSION verified: $PUSHED (evidence in $WORK)"
