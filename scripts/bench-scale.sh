#!/usr/bin/env bash
# The scale case of scripts/bench.sh (`scripts/bench.sh scale [PARALLELISM]`): a real Helm
# repository server (python3 http.server, which answers If-Modified-Since) with 50 charts ×
# 4 versions, each version referencing 8 images from a pool of 300 small images, and an
# index.yaml padded to 20,000+ entries. Times lazyoci cold, its no-op re-run (with request
# counts and renders) and a selector resolved against the padded index, next to the by-hand
# approach (helm pull + helm push + helm template | grep image: + skopeo copy -P) on the
# same registries in the same run. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
P="${1:-4}"
./scripts/install-test-deps.sh >/dev/null
export LAZYOCI_TOOLS="${LAZYOCI_TOOLS:-/var/tmp/lazyoci-tools}"
export PATH="$LAZYOCI_TOOLS/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lazyoci-target}"
HELM="${LAZYOCI_HELM:-$LAZYOCI_TOOLS/bin/helm}"
cargo build --release --quiet --locked --bin lazyoci --example bench_scale_seed
BIN="$CARGO_TARGET_DIR/release/lazyoci"

WORK="$(mktemp -d /var/tmp/lazyoci-bench-scale.XXXXXX)"
export SRC_PORT=5311 DST_PORT=5312
REPO_PORT=5313
SRC=127.0.0.1:$SRC_PORT DST=127.0.0.1:$DST_PORT REPO=http://127.0.0.1:$REPO_PORT
cleanup() {
  [ -n "${REPO_PID:-}" ] && kill "$REPO_PID" 2>/dev/null || true
  ./scripts/registries.sh stop "$WORK/reg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
./scripts/registries.sh start "$WORK/reg" 2>/dev/null

echo "seeding $SRC and packaging 200 chart versions ..." >&2
"$CARGO_TARGET_DIR/release/examples/bench_scale_seed" "$SRC" "$WORK" > "$WORK/versions.txt"
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"
mkdir -p "$WORK/repo"
for d in "$WORK"/charts/*/*/; do "$HELM" package -d "$WORK/repo" "$d" >/dev/null; done
"$HELM" repo index "$WORK/repo" --url "$REPO"
# Pad the index to the size of the largest public repositories: 100 more charts × 200
# versions whose archives do not exist (nothing asks for them).
python3 - "$WORK/repo/index.yaml" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
head, entries = text.split("entries:\n", 1)
pad = []
for c in range(100):
    pad.append(f"  pad-{c:03d}:\n")
    for v in range(200):
        pad.append(
            f"  - apiVersion: v2\n    name: pad-{c:03d}\n    version: {v // 20}.{v % 20}.0\n"
            f"    digest: {'0' * 64}\n    created: \"2026-01-01T00:00:00Z\"\n"
            f"    description: padding entry {v} of pad-{c:03d}, as long as a real description\n"
            f"    urls: [pad-{c:03d}-{v}.tgz]\n"
        )
open(path, "w").write(head + "entries:\n" + "".join(pad) + entries)
PY
ENTRIES=$(grep -c '^  - apiVersion' "$WORK/repo/index.yaml")
INDEX_MIB=$(( $(stat -c %s "$WORK/repo/index.yaml") / 1024 / 1024 ))
python3 -m http.server "$REPO_PORT" --bind 127.0.0.1 --directory "$WORK/repo" 2> "$WORK/repo.log" &
REPO_PID=$!
for _ in $(seq 1 50); do curl -fsS -o /dev/null "$REPO/index.yaml" && break; sleep 0.1; done
: > "$WORK/repo.log"

{
  echo "target: {url: $DST/lazyoci, insecure: true}"
  echo "upstreams:"
  for c in $(seq -f '%02g' 0 49); do
    echo "  scale-$c: {type: repo, repo: \"$REPO\", chart: scale-$c, semver: \"*\"}"
  done
} > "$WORK/mirror.yaml"

# helm that counts its renders.
cat > "$WORK/helm-counting" <<SH
#!/bin/sh
[ "\$1" = template ] && echo x >> "$WORK/renders"
exec "$HELM" "\$@"
SH
chmod +x "$WORK/helm-counting"

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
count() { grep -c "$2" "$1" || true; }
lazyoci() {
  : > "$WORK/renders"
  LAZYOCI_HELM="$WORK/helm-counting" /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" mirror -c "$WORK/mirror.yaml" \
    --concurrency "$P" --insecure-registry "$SRC" --artifact-dir "$WORK/art" -o json "$@" > "$WORK/lazyoci.json"
}

t=$(now); lazyoci --all; L_COLD=$(elapsed "$t"); L_COLD_RSS=$(cat "$WORK/rss")
L_COLD_RENDERS=$(wc -l < "$WORK/renders")
sleep 1
for f in source target; do cp "$WORK/reg/$f/registry.log" "$WORK/$f.before"; done
: > "$WORK/repo.log"
t=$(now); lazyoci --all; L_NOOP=$(elapsed "$t"); L_NOOP_RSS=$(cat "$WORK/rss")
sleep 1
L_NOOP_RENDERS=$(wc -l < "$WORK/renders")
CACHED=$(python3 -c "import json;print(json.load(open('$WORK/lazyoci.json'))['discoveryCached'])")
new_lines() { tail -n +"$(( $(wc -l < "$WORK/$1.before") + 1 ))" "$WORK/reg/$1/registry.log"; }
new_lines source > "$WORK/source.noop"; new_lines target > "$WORK/target.noop"
SRC_HEAD=$(count "$WORK/source.noop" '"HEAD /v2/'); SRC_GET=$(count "$WORK/source.noop" '"GET /v2/')
SRC_BLOB_GET=$(count "$WORK/source.noop" '"GET /v2/[^"]*/blobs/')
DST_HEAD=$(count "$WORK/target.noop" '"HEAD /v2/'); DST_GET=$(count "$WORK/target.noop" '"GET /v2/')
DST_WRITES=$(grep -cE '"(PUT|POST|PATCH) /v2/' "$WORK/target.noop" || true)
REPO_REQ=$(count "$WORK/repo.log" '"GET '); REPO_304=$(count "$WORK/repo.log" '" 304 ')
# The same no-op without the signature lookups (4 of the 5 HEADs per image at the source).
t=$(now); lazyoci --all --no-signatures; L_NOOP_NOSIG=$(elapsed "$t")

# Resolving one selector against the padded index, from a cold artifact dir (download,
# parse, select) and with the index kept (304, parse, select).
resolve() {
  /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" mirror -c "$WORK/mirror.yaml" --chart scale-00 --dry-run \
    --charts-only --artifact-dir "$WORK/art-resolve" -o json > /dev/null
}
t=$(now); resolve; R_COLD=$(elapsed "$t"); R_RSS=$(cat "$WORK/rss")
t=$(now); resolve; R_KEPT=$(elapsed "$t"); R_KEPT_RSS=$(cat "$WORK/rss")

# By hand, as the seed's README described: per chart version helm pull, helm push, helm
# template | grep image:, then skopeo copy of every image, P at a time.
byhand() {
  "$HELM" repo add scale "$REPO" >/dev/null
  mkdir -p "$WORK/pulled"
  while read -r chart version _; do
    "$HELM" pull "scale/$chart" --version "$version" -d "$WORK/pulled"
    "$HELM" push "$WORK/pulled/$chart-$version.tgz" "oci://$DST/byhand/charts" --plain-http >/dev/null 2>&1
    "$HELM" template x "$WORK/pulled/$chart-$version.tgz" | grep -E '^\s*image:' | awk '{print $2}' | tr -d '"'
  done < "$WORK/versions.txt" | sort -u > "$WORK/byhand-images.txt"
  xargs -P "$P" -I{} sh -c 'skopeo copy --quiet --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false "docker://$1" "docker://$2/byhand/${1#*/}" >/dev/null' _ {} "$DST" < "$WORK/byhand-images.txt"
}
t=$(now); byhand; H_COLD=$(elapsed "$t")
H_IMAGES=$(wc -l < "$WORK/byhand-images.txt")

ratio() { echo "scale=2; $1 / $2" | bc; }
cat <<REPORT
Scale case — 50 charts × 4 versions ($(wc -l < "$WORK/versions.txt") chart versions, 8 images each, $H_IMAGES distinct of a pool of 300), index.yaml $ENTRIES entries ($INDEX_MIB MiB), parallelism $P, $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
| run                                       | seconds | peak RSS MiB | ratio |
|-------------------------------------------|---------|--------------|-------|
| lazyoci cold (charts + images)            | $L_COLD | $((L_COLD_RSS / 1024)) | $(ratio "$L_COLD" "$H_COLD") of by hand |
| by hand (helm pull/push/template, skopeo -P $P) | $H_COLD | | |
| lazyoci no-op re-run                      | $L_NOOP | $((L_NOOP_RSS / 1024)) | |
| lazyoci no-op re-run, --no-signatures     | $L_NOOP_NOSIG | | |
| resolve one selector, index downloaded    | $R_COLD | $((R_RSS / 1024)) | |
| resolve one selector, index kept (304)    | $R_KEPT | $((R_KEPT_RSS / 1024)) | |
Renders: cold $L_COLD_RENDERS, no-op $L_NOOP_RENDERS (chart versions from the discovery cache: $CACHED)
No-op requests: source registry $SRC_HEAD HEAD, $SRC_GET GET ($SRC_BLOB_GET blob GETs); target registry $DST_HEAD HEAD, $DST_GET GET, $DST_WRITES writes; Helm repository $REPO_REQ GET ($REPO_304 answered 304)
Command: scripts/bench.sh scale $P
REPORT
