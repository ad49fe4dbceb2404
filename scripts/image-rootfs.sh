#!/usr/bin/env bash
# Lays out the operator image's root filesystem in ROOTFS (which must not exist yet):
#   /usr/local/bin/lazyoci        the lazyoci binary (debug info stripped)
#   /usr/local/bin/helm           the pinned helm (a static Go binary)
#   the shared libraries `ldd` reports for lazyoci, at the paths ldd names, and the dynamic
#   loader at its PT_INTERP path (there is no static target on the build machines)
#   /etc/ssl/certs/ca-certificates.crt   Debian's ca-certificates bundle
#   /etc/passwd, /etc/group       root and nonroot (uid/gid 65532), no shell
#   /etc/nsswitch.conf            files, then DNS
#   /home/nonroot (65532, 0750), /tmp (1777)
#
# Both builds of the image use it: scripts/build-image.sh (daemonless, canonical) and the
# Dockerfile (its last stage copies ROOTFS into an empty image), so they install the same files.
#
#   scripts/image-rootfs.sh ROOTFS LAZYOCI_BINARY HELM_BINARY
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 ROOTFS LAZYOCI_BINARY HELM_BINARY" >&2
  exit 2
fi
rootfs="$1" lazyoci="$2" helm="$3"
for f in "$lazyoci" "$helm"; do
  [ -x "$f" ] || { echo "error: $f is not an executable file" >&2; exit 2; }
done
bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$bundle" ] || { echo "error: $bundle is missing: install Debian's ca-certificates" >&2; exit 2; }
[ ! -e "$rootfs" ] || { echo "error: $rootfs exists; give a fresh directory" >&2; exit 2; }

mkdir -p "$rootfs"/{etc/ssl/certs,usr/local/bin,home/nonroot,tmp}
install -m 0755 "$lazyoci" "$rootfs/usr/local/bin/lazyoci"
# Debug info only makes the layer larger; `objcopy --strip-debug` is deterministic and a no-op
# on a release build (cargo's release profile already strips debug info).
objcopy --strip-debug "$rootfs/usr/local/bin/lazyoci"
install -m 0755 "$helm" "$rootfs/usr/local/bin/helm"

# Shared libraries: every `=> /path` line of ldd, and the loader (the absolute path line).
# Each is copied as a regular file (symlinks resolved) at the path the loader looks it up.
libs="$(ldd "$lazyoci" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')"
[ -n "$libs" ] || { echo "error: ldd reported no libraries for $lazyoci" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  chmod 0755 "$rootfs$lib"
done
# A statically linked helm needs nothing; refuse a dynamic one rather than ship it broken.
if ldd "$helm" >/dev/null 2>&1; then
  echo "error: $helm is dynamically linked; the image carries only lazyoci's libraries" >&2
  exit 1
fi

install -m 0644 "$bundle" "$rootfs$bundle"
cat > "$rootfs/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
cat > "$rootfs/etc/group" <<'GR'
root:x:0:
nonroot:x:65532:
GR
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
chmod 0755 "$rootfs"/etc "$rootfs"/etc/ssl "$rootfs"/etc/ssl/certs
chown 65532:65532 "$rootfs/home/nonroot" 2>/dev/null || true
chmod 0750 "$rootfs/home/nonroot"
chmod 1777 "$rootfs/tmp"
