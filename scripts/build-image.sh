#!/usr/bin/env bash
# Builds the lazyoci operator image without a container engine, reproducibly, as an OCI image
# layout; optionally pushes it (with skopeo) together with its SBOM referrer.
#
#   scripts/build-image.sh [--binary PATH] [--helm PATH] [--out DIR] [--tag TAG]
#                          [--source-url URL] [--push HOST/REPO[:TAG]] [--dest-tls-verify=false]
#
#   --binary PATH   the lazyoci binary to put in the image (default: `cargo build --release
#                   --locked`, then $CARGO_TARGET_DIR/release/lazyoci). Debug info is stripped.
#   --helm PATH     the helm binary (default: $LAZYOCI_HELM, else /var/tmp/lazyoci-tools/bin/helm
#                   as scripts/install-test-deps.sh installs it). Must be static.
#   --out DIR       where the OCI image layout goes (default: $CARGO_TARGET_DIR/image, or
#                   target/image); replaced if it holds an earlier build.
#   --tag TAG       the tag inside the layout (default: the version in Cargo.toml).
#   --compression-level N   gzip level of the layers, 1-9 (default 6; the tests use 1, which
#                   is four times faster and 15% larger). Part of what fixes the digest.
#   --source-url    org.opencontainers.image.source (default: git's `origin` URL, else the
#                   project's home).
#   --push REF      after building, copy the image to docker://REF (the tag defaults to --tag)
#                   and its SBOM referrer under the referrers tag `sha256-<hex>`, digests kept.
#   --dest-tls-verify=false   passed to skopeo for a plain-HTTP or self-signed registry.
#
# What goes in the image: scripts/image-rootfs.sh (shared with the Dockerfile). How the layout
# is written: scripts/oci_image.py. Two builds from the same commit and the same inputs give the
# same digest: every time stamp is the commit time (SOURCE_DATE_EPOCH, overridable), nothing
# depends on who builds or when. The last line on stdout is JSON:
#   {"image": "sha256:…", "tag": "…", "sbom": "sha256:…", "referrersTag": "sha256-…"}
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" helm="" out="" tag="" source_url="" push="" skopeo_tls=() level=6
while [ "$#" -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --helm) helm="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --compression-level) level="$2"; shift 2 ;;
    --source-url) source_url="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    --dest-tls-verify=*) skopeo_tls=("$1"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
  esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
if [ -z "$binary" ]; then
  echo "building the release binary (cargo build --release --locked)" >&2
  # Paths of the checkout and of cargo's registry end up in the binary (panic locations,
  # debug info of dependencies): remap them so the digest does not depend on where the
  # clone or CARGO_HOME lives.
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/lazyoci --remap-path-prefix=$cargo_home=/cargo" \
    cargo build --release --locked --bin lazyoci >&2
  binary="$target_dir/release/lazyoci"
fi
if [ -z "$helm" ]; then
  helm="${LAZYOCI_HELM:-/var/tmp/lazyoci-tools/bin/helm}"
fi
[ -x "$helm" ] || { echo "error: helm not found at $helm (run scripts/install-test-deps.sh or pass --helm)" >&2; exit 2; }
out="${out:-$target_dir/image}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
tag="${tag:-$version}"

# Reproducibility inputs, all from git.
if git rev-parse --git-dir >/dev/null 2>&1; then
  revision="$(git rev-parse HEAD)"
  # Uncommitted changes to tracked files make the image a different one: say so.
  git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
  epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
  [ -n "$source_url" ] || source_url="$(git remote get-url origin 2>/dev/null || true)"
else
  revision="unknown"
  epoch="${SOURCE_DATE_EPOCH:?not a git checkout: set SOURCE_DATE_EPOCH}"
fi
source_url="${source_url:-https://github.com/lazyoci/lazyoci}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
helm_version="$(HOME="$(mktemp -d)" "$helm" version --short)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
scripts/image-rootfs.sh "$work/rootfs" "$binary" "$helm"
rm -rf "$out"
result="$(python3 scripts/oci_image.py --rootfs "$work/rootfs" --out "$out" --tag "$tag" \
  --epoch "$epoch" --created "$created" --version "$version" --revision "$revision" \
  --source-url "$source_url" --helm-version "$helm_version" --cargo-lock Cargo.lock \
  --compression-level "$level")"
echo "wrote the OCI image layout $out (tag $tag)" >&2

if [ -n "$push" ]; then
  dest="$push"
  # HOST[:PORT]/REPO without a tag: add --tag. (A colon after the last slash is a tag.)
  case "${dest##*/}" in *:*) ;; *) dest="$dest:$tag" ;; esac
  repo="${dest%:*}"
  referrers_tag="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["referrersTag"])' "$result")"
  skopeo copy --quiet --preserve-digests "${skopeo_tls[@]}" "oci:$out:$tag" "docker://$dest" >&2
  # skopeo 1.9 cannot push an index whose descriptors carry artifactType with digests kept:
  # the referrer goes up through the registry API directly.
  tls_verify=true
  [ "${skopeo_tls[*]:-}" != "--dest-tls-verify=false" ] || tls_verify=false
  python3 scripts/oci_image.py push-referrers "$out" "$repo" --tls-verify "$tls_verify"
  echo "pushed $dest and its SBOM ($repo:$referrers_tag)" >&2
fi
echo "$result"
