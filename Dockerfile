# syntax=docker/dockerfile:1
#
# The lazyoci image for Docker/BuildKit users: the `lazyoci` CLI/operator plus `helm` (lazyoci
# renders charts with the real `helm template`). By default it runs the operator (see
# charts/lazyoci-operator).
#
# The canonical build is scripts/build-image.sh: no container engine, reproducible, with an SBOM
# referrer (README: Deploy the operator). This Dockerfile installs the same files: its last
# stage is an empty image plus the root filesystem that scripts/image-rootfs.sh lays out, the
# script build-image.sh uses too; user, entrypoint, command, working directory, environment,
# port and label keys are the same, and tests/it/operator_image.rs compares them with the image
# build-image.sh makes.
#
#   docker build \
#     --build-arg HELM_SHA256=<sha256 of helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz> \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(git log -1 --format=%cI)" \
#     -t registry.example.com/platform/lazyoci/lazyoci:0.1.0 .
#
# HELM_SHA256 is the checksum get.helm.sh publishes next to the tarball
# (helm-<version>-linux-<arch>.tar.gz.sha256sum); the build fails when it is missing or wrong.
# For a multi-arch build, build each platform with its own checksum.
#
# Not built in this repository's CI: its machines have no container engine and cannot pull the
# FROM images. The Dockerfile is kept to standard instructions.

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

COPY build.rs ./
COPY src ./src
# COPY keeps the sources' mtimes, which can be older than the stub build: touch the crate roots
# so cargo rebuilds lazyoci itself. (tests/it/main.rs: Cargo.toml names that test target.)
RUN touch src/main.rs src/lib.rs \
 && mkdir -p tests/it && touch tests/it/main.rs \
 && cargo build --release --locked --bin lazyoci \
 && install -m 0755 target/release/lazyoci /usr/local/bin/lazyoci \
 && /usr/local/bin/lazyoci --version

# ---- the root filesystem: the same script as scripts/build-image.sh --------------------------
FROM builder AS rootfs
COPY scripts/image-rootfs.sh /usr/local/bin/image-rootfs.sh
COPY --from=helm /usr/local/bin/helm /tmp/helm
RUN image-rootfs.sh /rootfs /usr/local/bin/lazyoci /tmp/helm

# ---- runtime: that root filesystem and nothing else; non-root (uid/gid 65532), no shell ------
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=65532:65532 /rootfs/home/nonroot /home/nonroot
LABEL org.opencontainers.image.title="lazyoci" \
      org.opencontainers.image.description="Mirror Helm charts and every container image they reference into one OCI registry (CLI and Kubernetes operator)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/lazyoci/lazyoci" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}"
ENV PATH=/usr/local/bin:/usr/bin:/bin LAZYOCI_HELM=/usr/local/bin/helm
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lazyoci"]
CMD ["operator"]
