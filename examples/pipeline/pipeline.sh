#!/usr/bin/env bash
# A whole supply chain with tollgate alone, against a registry on loopback:
#
#   keys -> layout -> build -> test -> package (push image) -> provenance -> attach
#        -> verify the image exactly as a node would
#
# Usage: examples/pipeline/pipeline.sh            (from anywhere in the checkout)
# Environment:
#   TOLLGATE  a tollgate binary to use (default: built from this checkout)
#   WORK      working directory (default: a new temporary directory, kept for inspection)
# Exits 0 when the final `tollgate verify --image` says verified.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${WORK:-$(mktemp -d)}
BIN=$WORK/bin
mkdir -p "$BIN"
# shellcheck source=examples/lib.sh
source "$ROOT/examples/lib.sh"

say "tools"
if [ -z "${TOLLGATE:-}" ]; then
  (cd "$ROOT" && go build -tags grpcnotrace -o "$BIN/" ./cmd/tollgate)
  TOLLGATE=$BIN/tollgate
fi
# A loopback OCI registry and a tiny image builder stand in for your registry and
# `docker build`; everything else is tollgate.
(cd "$ROOT" && go build -o "$BIN/ociregistry" ./test/tools/ociregistry \
            && go build -o "$BIN/testimage" ./test/tools/testimage/cmd/testimage)
tg() { "$TOLLGATE" "$@"; }
tg version

say "registry"
start_registry "$BIN/ociregistry" "$WORK/registry.log"
IMAGE=$HOST/acme/hello:1.0
echo "registry at $HOST, image $IMAGE"

cd "$WORK"

say "keys (functionaries and the layout owner)"
tg keygen owner    --type rsa --bits 3072 --force
tg keygen builder  --type ed25519 --force
tg keygen tester   --type ecdsa --force
tg keygen packager --type ed25519 --force
tg keygen ci       --type ecdsa --force

say "layout: who does what, and what may flow between steps"
cp "$ROOT/examples/pipeline/layout.yaml" layout.yaml
tg layout create --from layout.yaml --key owner --out root.layout
tg layout show root.layout
# The same layout as a graph (render it with Graphviz: dot -Tsvg layout.dot -o layout.svg).
tg layout show --format dot root.layout >layout.dot

say "build"
mkdir -p src
printf '#!/bin/sh\necho hello\n' >src/hello.sh
tg run -n build -k builder -m src -p dist -d links -- sh -c 'mkdir -p dist && tar -C src -cf dist/hello.tar .'

say "test"
tg run -n test -k tester -m dist -d links -- sh -c 'tar -tf dist/hello.tar | grep -q hello.sh'

say "package (push the image; record its digest as the product \"image\")"
tg run -n package -k packager -m dist -d links \
  --image-product "image=$IMAGE" --insecure-registry "$HOST" \
  -- "$BIN/testimage" --program sleeper --variant pipeline "$IMAGE"

say "provenance"
tg attest --image "$IMAGE" --insecure-registry "$HOST" --predicate-type slsa-v1 --key ci \
  --builder-id https://example.com/pipeline.sh --source-uri "git+file://$ROOT" \
  --out provenance.dsse.json

say "attach the links and the provenance to the image"
tg attach --image "$IMAGE" --insecure-registry "$HOST" --link-dir links --attestation provenance.dsse.json

say "the node's policy directory (layouts and keys are node-local, never from the registry)"
mkdir -p policy/keys policy/layouts
cp owner.pub ci.pub policy/keys/
cp root.layout policy/layouts/hello.layout
cat >policy/hello.yaml <<YAML
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: hello
spec:
  images: ["$HOST/acme/hello"]
  mode: enforce
  layouts:
    - layout: layouts/hello.layout
      keys: [keys/owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
      conditions:
        - predicate.runDetails.builder.id == "https://example.com/pipeline.sh"
YAML

say "verify, as the node would"
tg verify --image "$IMAGE" --insecure-registry "$HOST" --policy-dir policy
