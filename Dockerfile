# syntax=docker/dockerfile:1
#
# The lazyoci image: the `lazyoci` CLI/operator plus `helm` (lazyoci renders charts with the real
# `helm template`). By default it runs the operator (see charts/lazyoci-operator).
#
#   docker build \
#     --build-arg HELM_SHA256=<sha256 of helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz> \
#     -t ghcr.io/lazyoci/lazyoci:0.1.0 .
#
# HELM_SHA256 is the checksum get.helm.sh publishes next to the tarball
# (helm-<version>-linux-<arch>.tar.gz.sha256sum); the build fails when it is missing or wrong.
# For a multi-arch build, build each platform with its own checksum.
#
# Not built in this repository's CI: its machines have no container engine. The Dockerfile is
# kept to standard instructions (no BuildKit-only features beyond the syntax line).

ARG RUST_VERSION=1.95
ARG HELM_VERSION=v4.3.1

# ---- helm: a pinned release, checked against HELM_SHA256 -----------------------------------
FROM debian:bookworm-slim AS helm
ARG HELM_VERSION
ARG HELM_SHA256
ARG TARGETARCH=amd64
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    if [ -z "${HELM_SHA256:-}" ]; then \
      echo "set --build-arg HELM_SHA256=<sha256 of helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz>" >&2; \
      exit 1; \
    fi; \
    curl -fsSLo /tmp/helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    echo "${HELM_SHA256}  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp; \
    install -m 0755 "/tmp/linux-${TARGETARCH}/helm" /usr/local/bin/helm; \
    /usr/local/bin/helm version --short

# ---- lazyoci ---------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# Dependencies first, against stub sources: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/it \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs tests/it/main.rs \
 && cargo build --release --locked --bin lazyoci \
 && rm -rf src tests

COPY src ./src
# COPY keeps the sources' mtimes, which can be older than the stub build: touch the crate roots
# so cargo rebuilds lazyoci itself. (tests/it/main.rs: Cargo.toml names that test target.)
RUN touch src/main.rs src/lib.rs \
 && mkdir -p tests/it && touch tests/it/main.rs \
 && cargo build --release --locked --bin lazyoci \
 && install -m 0755 target/release/lazyoci /usr/local/bin/lazyoci \
 && /usr/local/bin/lazyoci --version

# ---- runtime: glibc + CA certificates, non-root (uid/gid 65532), no shell --------------------
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="lazyoci" \
      org.opencontainers.image.description="Mirror Helm charts and every container image they reference into one OCI registry (CLI and Kubernetes operator)" \
      org.opencontainers.image.source="https://github.com/lazyoci/lazyoci" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=helm /usr/local/bin/helm /usr/local/bin/helm
COPY --from=builder /usr/local/bin/lazyoci /usr/local/bin/lazyoci
ENV LAZYOCI_HELM=/usr/local/bin/helm
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lazyoci"]
CMD ["operator"]
