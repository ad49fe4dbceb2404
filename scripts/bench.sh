#!/usr/bin/env bash
# lazyoci side by side with skopeo (Debian) on the same local registries: cold copy and
# no-op re-run, skopeo one by one and with the same parallelism, and lazyoci's peak RSS;
# then air-gap bundles: create, push, and a delta after one image changed.
# Prints a table of wall times and ratios. Not part of the test suite.
#
#   scripts/bench.sh [PARALLELISM]      (default 4)
#   scripts/bench.sh scale [PARALLELISM] (the scale case: scripts/bench-scale.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = scale ]; then shift; exec ./scripts/bench-scale.sh "$@"; fi
P="${1:-4}"
./scripts/install-test-deps.sh
export LAZYOCI_TOOLS="${LAZYOCI_TOOLS:-/var/tmp/lazyoci-tools}"
export PATH="$LAZYOCI_TOOLS/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lazyoci-target}"
cargo build --release --quiet --locked --bin lazyoci --example bench_seed
BIN="$CARGO_TARGET_DIR/release/lazyoci"

WORK="$(mktemp -d /var/tmp/lazyoci-bench.XXXXXX)"
cleanup() { SRC_PORT=5301 DST_PORT=5302 ./scripts/registries.sh stop "$WORK/reg" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
SRC_PORT=5301 DST_PORT=5302 ./scripts/registries.sh start "$WORK/reg"
SRC=127.0.0.1:5301 DST=127.0.0.1:5302

echo "seeding $SRC ..." >&2
"$CARGO_TARGET_DIR/release/examples/bench_seed" "$SRC" "$DST" "$WORK" > "$WORK/images.txt"
N=$(wc -l < "$WORK/images.txt")
BYTES=$(du -sb "$WORK/reg/source/data" | cut -f1)
LARGEST=$(find "$WORK/reg/source/data" -path '*/blobs/sha256/*' -name data -printf '%s\n' | sort -n | tail -1)

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
skopeo_one() { # image, dest prefix
  local path="${1#*/}"
  skopeo copy --quiet --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
    "docker://$1" "docker://$DST/$2/$path" >/dev/null
}
export -f skopeo_one; export DST

# Each cold copy starts from an empty target registry and an empty skopeo blob-info cache
# (otherwise skopeo mounts blobs it has seen instead of copying them).
fresh_target() {
  SRC_PORT=5301 DST_PORT=5302 ./scripts/registries.sh stop "$WORK/reg" >/dev/null 2>&1
  rm -rf "$WORK/reg/target/data" /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"
  SRC_PORT=5301 DST_PORT=5302 ./scripts/registries.sh start "$WORK/reg" >/dev/null 2>&1
}

run_lazyoci() {
  /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" mirror -c "$WORK/mirror.yaml" --all --images-only \
    --concurrency "$P" --insecure-registry "$SRC" --artifact-dir "$WORK/art" -o json > "$WORK/lazyoci.json"
}

fresh_target
t=$(now); run_lazyoci; L_COLD=$(elapsed "$t"); L_RSS=$(cat "$WORK/rss")
before=$(grep -c '"GET /v2/[^"]*/blobs/' "$WORK/reg/source/registry.log" || true)
t=$(now); run_lazyoci; L_NOOP=$(elapsed "$t")
sleep 1
after=$(grep -c '"GET /v2/[^"]*/blobs/' "$WORK/reg/source/registry.log" || true)
L_NOOP_BLOB_GETS=$((after - before))

fresh_target
t=$(now); while read -r img; do skopeo_one "$img" skopeo-one; done < "$WORK/images.txt"; S1_COLD=$(elapsed "$t")
fresh_target
t=$(now); xargs -P "$P" -I{} bash -c 'skopeo_one "$@"' _ {} skopeo-par < "$WORK/images.txt"; SP_COLD=$(elapsed "$t")
t=$(now); xargs -P "$P" -I{} bash -c 'skopeo_one "$@"' _ {} skopeo-par < "$WORK/images.txt"; SP_NOOP=$(elapsed "$t")

# Bundles (air gap): bundle create vs skopeo into OCI layouts (one per image: skopeo does not
# lock a layout's index.json, so parallel copies into one layout would race), same
# parallelism; bundle push vs lazyoci's own mirror (L_COLD above), both onto an empty target.
skopeo_oci() { # image
  local path="${1#*/}"
  skopeo copy --quiet --all --preserve-digests --src-tls-verify=false \
    "docker://$1" "oci:$WORK/skopeo-oci/${path//[\/:]/_}:$path" >/dev/null
}
export -f skopeo_oci; export WORK
t=$(now)
/usr/bin/time -f "%M" -o "$WORK/rss-create" "$BIN" bundle create -c "$WORK/mirror.yaml" --all --images-only \
  --concurrency "$P" --insecure-registry "$SRC" --artifact-dir "$WORK/art" -o json --output "$WORK/bundle" > "$WORK/create.json"
B_CREATE=$(elapsed "$t"); B_CREATE_RSS=$(cat "$WORK/rss-create")
B_SIZE=$(du -sb "$WORK/bundle/blobs" | cut -f1)
mkdir -p "$WORK/skopeo-oci"
t=$(now); xargs -P "$P" -I{} bash -c 'skopeo_oci "$@"' _ {} < "$WORK/images.txt"; S_OCI=$(elapsed "$t")
S_OCI_SIZE=$(du -sb "$WORK/skopeo-oci" | cut -f1)
rm -rf "$WORK/skopeo-oci"
fresh_target
t=$(now)
/usr/bin/time -f "%M" -o "$WORK/rss-push" "$BIN" bundle push "$WORK/bundle" --target "$DST/lazyoci" --insecure \
  --concurrency "$P" -o json > "$WORK/push.json"
B_PUSH=$(elapsed "$t"); B_PUSH_RSS=$(cat "$WORK/rss-push")

# A delta after one image changed upstream (a new 1 MiB layer added with umoci, pushed back
# under the same tag): `bundle create --since` the bundle above must hold exactly the blobs of
# that image which the first bundle did not carry.
CHANGED=$(grep -v -e bench/multi "$WORK/images.txt" | head -1)
skopeo copy --quiet --src-tls-verify=false "docker://$CHANGED" "oci:$WORK/edit:x"
head -c 1048576 /dev/urandom > "$WORK/changed.bin"
umoci insert --rootless --image "$WORK/edit:x" "$WORK/changed.bin" /changed.bin >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/edit:x" "docker://$CHANGED"
t=$(now)
"$BIN" bundle create -c "$WORK/mirror.yaml" --all --images-only --concurrency "$P" \
  --insecure-registry "$SRC" --artifact-dir "$WORK/art" --since "$WORK/bundle" \
  -o json --output "$WORK/delta" > "$WORK/delta.json"
B_DELTA=$(elapsed "$t")
skopeo inspect --raw --tls-verify=false "docker://$CHANGED" > "$WORK/changed.manifest"
{ sha256sum "$WORK/changed.manifest" | cut -d' ' -f1
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); [print(d["digest"][7:]) for d in [m["config"]] + m["layers"]]' "$WORK/changed.manifest"
} | sort -u | comm -23 - <(ls "$WORK/bundle/blobs/sha256" | sort) > "$WORK/want-delta"
ls "$WORK/delta/blobs/sha256" | sort > "$WORK/got-delta"
if cmp -s "$WORK/want-delta" "$WORK/got-delta"; then DELTA_SAME=yes; else DELTA_SAME=NO; fi
DELTA_BLOBS=$(wc -l < "$WORK/got-delta"); DELTA_SIZE=$(du -sb "$WORK/delta/blobs" | cut -f1)

ratio() { echo "scale=2; $1 / $2" | bc; }
cat <<REPORT
lazyoci vs skopeo $(skopeo --version | awk '{print $3}') — $N images, $((BYTES / 1024 / 1024)) MiB stored at the source, largest layer $LARGEST bytes, parallelism $P, $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
| run                                   | seconds | ratio (lazyoci / skopeo) |
|---------------------------------------|---------|--------------------------|
| lazyoci cold copy                     | $L_COLD |                          |
| skopeo cold copy, one by one          | $S1_COLD | $(ratio "$L_COLD" "$S1_COLD") |
| skopeo cold copy, $P in parallel          | $SP_COLD | $(ratio "$L_COLD" "$SP_COLD") |
| lazyoci no-op re-run                  | $L_NOOP |                          |
| skopeo no-op re-run, $P in parallel       | $SP_NOOP | $(ratio "$L_NOOP" "$SP_NOOP") |
lazyoci peak RSS: $((L_RSS / 1024)) MiB
Blob GETs at the source during lazyoci's no-op re-run: $L_NOOP_BLOB_GETS

Bundles (air gap), parallelism $P:
| run                                          | seconds | ratio |
|----------------------------------------------|---------|-------|
| lazyoci bundle create (OCI layout dir)       | $B_CREATE |       |
| skopeo copy docker:// → oci:, $P in parallel     | $S_OCI | $(ratio "$B_CREATE" "$S_OCI") (create / skopeo) |
| lazyoci bundle push onto an empty target     | $B_PUSH |       |
| lazyoci mirror, registry to registry (above) | $L_COLD | $(ratio "$B_PUSH" "$L_COLD") (push / mirror) |
bundle create peak RSS: $((B_CREATE_RSS / 1024)) MiB; bundle push peak RSS: $((B_PUSH_RSS / 1024)) MiB
bundle size: $((B_SIZE / 1024 / 1024)) MiB (unique blobs, shared layers once); skopeo's per-image layouts: $((S_OCI_SIZE / 1024 / 1024)) MiB
delta after one image changed ($CHANGED): $B_DELTA s, $DELTA_BLOBS blobs, $((DELTA_SIZE / 1024)) KiB; exactly that image's new blobs: $DELTA_SAME
Command: scripts/bench.sh $P
REPORT
