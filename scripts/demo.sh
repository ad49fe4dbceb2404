#!/usr/bin/env bash
# The demo on a fresh machine: installs docker-registry and helm, builds lazyoci, then runs
# `lazyoci demo` — two local registries and a Helm repository, seeded and mirrored from all
# three source types, then mirrored again to show the no-op re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
export LAZYOCI_TOOLS="${LAZYOCI_TOOLS:-/var/tmp/lazyoci-tools}"
export PATH="$LAZYOCI_TOOLS/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lazyoci-target}"
cargo build --quiet --locked
exec "$CARGO_TARGET_DIR/debug/lazyoci" demo "$@"
