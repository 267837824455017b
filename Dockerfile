# syntax=docker/dockerfile:1
# Tollgate image: tollgated (node daemon, the entrypoint) and the CLI, tollgate, static
# binaries on distroless. `make image` builds the same
# image without a container engine (deploy/image, an OCI layout in out/image); keep the two
# in step.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t tollgate .

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo) so the final stage needs no libc; -trimpath for reproducible builds;
# grpcnotrace as in the Makefile (smaller binaries, faster start-up).
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -tags grpcnotrace \
      -ldflags "-s -w -X tollgate.dev/tollgate/daemon.Version=${VERSION} -X tollgate.dev/tollgate/cmd/internal/cli.Version=${VERSION}" \
      -o /out/ ./cmd/tollgated ./cmd/tollgate

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Node-level supply-chain gate for Kubernetes: a containerd NRI plugin that verifies in-toto evidence" \
      org.opencontainers.image.source="https://github.com/tollgate-dev/tollgate" \
      org.opencontainers.image.url="https://github.com/tollgate-dev/tollgate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/tollgated /out/tollgate /usr/local/bin/
EXPOSE 9090
# Non-root by default: the CLI needs nothing more. tollgated needs containerd's socket
# (0660 root:root) and NRI's socket directory (0700 root), so the DaemonSet and the
# systemd unit run it as uid 0 with every capability dropped. To run it non-root, give
# containerd's [grpc] a gid, put that group on the NRI socket, and set runAsUser/
# supplementalGroups accordingly (docs/operations.md, "Running as non-root").
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tollgated"]
