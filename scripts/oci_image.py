#!/usr/bin/env python3
"""Writes the operator image as an OCI image layout, byte for byte reproducibly.

Called by scripts/build-image.sh with a root filesystem laid out by scripts/image-rootfs.sh.
Nothing here depends on the time of the build or on who runs it:

- layers are tar files with entries sorted, mtime = SOURCE_DATE_EPOCH (the commit time),
  owner 0:0 (65532:65532 for /home/nonroot), normalised modes and no user/group names, gzipped
  with no name and a zero timestamp;
- the config's `created` and the `org.opencontainers.image.*` labels come from git;
- the SBOM (SPDX 2.3 JSON: every crate in Cargo.lock, helm, and the Debian packages the shared
  libraries and the CA bundle come from) is attached as an OCI referrer of the image manifest:
  a manifest with `subject` and `artifactType: application/spdx+json`, listed in index.json, and
  a referrers tag schema index tagged `sha256-<hex>` so that a registry without the referrers API
  (and lazyoci's own referrer copying) finds it.

Standard library only (python3 >= 3.11 for tomllib).
"""

import argparse
import concurrent.futures
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SPDX_JSON = "application/spdx+json"

NONROOT = 65532
# (path in the image, layer): the layers in order. Everything not listed is in "base".
LAYER_OF = {
    "usr/local/bin/helm": "helm",
    "usr/local/bin/lazyoci": "lazyoci",
}
LAYERS = ["base", "helm", "lazyoci"]
# Directories whose owner and mode are not root's 0755.
DIR_MODES = {"tmp": (0o1777, 0), "home/nonroot": (0o750, NONROOT)}


def canonical(obj) -> bytes:
    """JSON as every blob here is written: sorted keys, no spaces (stable bytes, stable digest)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, out: str):
        self.out = out
        self.blobs = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.blobs, digest)
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data), **extra}

    def finish(self, manifests: list) -> None:
        with open(os.path.join(self.out, "oci-layout"), "wb") as f:
            f.write(canonical({"imageLayoutVersion": "1.0.0"}))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        with open(os.path.join(self.out, "index.json"), "wb") as f:
            f.write(canonical(index))


def walk(rootfs: str) -> list:
    """Every path under rootfs, relative, parents before children, in a fixed order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = os.path.relpath(dirpath, rootfs)
        for name in dirnames + filenames:
            found.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(found, key=lambda p: p.split("/"))


def layer_of(rel: str) -> str:
    return LAYER_OF.get(rel, "base")


def tar_layer(rootfs: str, paths: list, epoch: int) -> bytes:
    """An uncompressed, reproducible tar of `paths` (relative to rootfs)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel in paths:
            full = os.path.join(rootfs, rel)
            st = os.lstat(full)
            info = tarfile.TarInfo(rel)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if os.path.islink(full):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                info.mode = 0o777
                tar.addfile(info)
            elif os.path.isdir(full):
                info.type = tarfile.DIRTYPE
                info.mode, owner = DIR_MODES.get(rel, (0o755, 0))
                info.uid = info.gid = owner
                tar.addfile(info)
            elif os.path.isfile(full):
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                sys.exit(f"error: {full}: only files, directories and symlinks go into the image")
    return buf.getvalue()


def gzip_bytes(data: bytes, level: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=level) as gz:
        gz.write(data)
    return buf.getvalue()


def deb_package(path: str):
    """(package, version) of the Debian package that installed `path` (absolute), if any."""
    for candidate in (path, os.path.realpath(path)):
        try:
            out = subprocess.run(
                ["dpkg-query", "-S", candidate], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        # "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6" (several packages: "a, b: path")
        pkg = out.splitlines()[0].split(": ", 1)[0].split(",")[0].strip().split(":")[0]
        return pkg, deb_version(pkg)
    return None


def deb_version(pkg: str):
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True
        ).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def spdx_id(kind: str, name: str, version: str, seen: set) -> str:
    base = re.sub(r"[^A-Za-z0-9.-]", "-", f"SPDXRef-{kind}-{name}-{version}")
    ident, n = base, 1
    while ident in seen:
        n += 1
        ident = f"{base}-{n}"
    seen.add(ident)
    return ident


def sbom(args, rootfs_paths: list, subject_digest: str) -> dict:
    """SPDX 2.3: the image, lazyoci and every crate in Cargo.lock, helm, and Debian packages."""
    with open(args.cargo_lock, "rb") as f:
        lock = tomllib.load(f)
    seen: set = set()
    image_id = "SPDXRef-image"
    seen.add(image_id)
    packages = [
        {
            "SPDXID": image_id,
            "name": "lazyoci-operator-image",
            "versionInfo": args.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": subject_digest.split(":", 1)[1]}],
        }
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    lazyoci_id = None
    crates = sorted(lock.get("package", []), key=lambda p: (p["name"], p["version"], p.get("source", "")))
    for crate in crates:
        ident = spdx_id("crate", crate["name"], crate["version"], seen)
        source = crate.get("source", "")
        pkg = {
            "SPDXID": ident,
            "name": crate["name"],
            "versionInfo": crate["version"],
            "downloadLocation": (
                f"https://crates.io/api/v1/crates/{crate['name']}/{crate['version']}/download"
                if source.startswith("registry+")
                else "NOASSERTION"
            ),
            "filesAnalyzed": False,
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": f"pkg:cargo/{crate['name']}@{crate['version']}",
                }
            ],
        }
        if "checksum" in crate:
            pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": crate["checksum"]}]
        if crate["name"] == "lazyoci" and not source:
            lazyoci_id = ident
            pkg["primaryPackagePurpose"] = "APPLICATION"
            pkg["downloadLocation"] = args.source_url or "NOASSERTION"
        packages.append(pkg)
    if lazyoci_id is None:
        sys.exit(f"error: {args.cargo_lock} has no lazyoci package")
    relationships.append(
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": lazyoci_id}
    )
    for pkg in packages[1:]:
        if pkg["SPDXID"] != lazyoci_id:
            relationships.append(
                {"spdxElementId": lazyoci_id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": pkg["SPDXID"]}
            )
    helm_id = spdx_id("helm", "helm", args.helm_version, seen)
    packages.append(
        {
            "SPDXID": helm_id,
            "name": "helm",
            "versionInfo": args.helm_version,
            "downloadLocation": "https://github.com/helm/helm",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "APPLICATION",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": f"pkg:golang/helm.sh/helm/v4@{args.helm_version.split('+')[0]}",
                }
            ],
        }
    )
    relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": helm_id})
    debs = {}
    for rel in rootfs_paths:
        if layer_of(rel) == "base" and os.path.isfile(os.path.join(args.rootfs, rel)) and not rel.startswith("etc/"):
            found = deb_package("/" + rel)
            if found:
                debs[found[0]] = found[1]
    ca = deb_version("ca-certificates")
    if ca:
        debs["ca-certificates"] = ca
    for name in sorted(debs):
        ident = spdx_id("deb", name, debs[name] or "unknown", seen)
        packages.append(
            {
                "SPDXID": ident,
                "name": name,
                "versionInfo": debs[name] or "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "primaryPackagePurpose": "OPERATING-SYSTEM" if name != "ca-certificates" else "FILE",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/{name}@{debs[name]}?arch=amd64",
                    }
                ],
            }
        )
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": ident})
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"lazyoci-operator-image-{args.version}",
        "documentNamespace": f"https://lazyoci.io/spdx/image/{args.version}/{subject_digest.split(':', 1)[1]}",
        "creationInfo": {
            "created": args.created,
            "creators": ["Tool: lazyoci-scripts-build-image.sh", "Organization: lazyoci"],
            "comment": "Cargo.lock lists every crate of the workspace, dev-dependencies included.",
        },
        "packages": packages,
        "relationships": relationships,
    }


class Registry:
    """Just enough of the distribution API to push the SBOM referrer: blobs, a manifest by
    digest, the referrers tag schema index by tag. Credentials as skopeo finds them (basic auth
    from REGISTRY_AUTH_FILE, containers/auth.json or the docker config), then a bearer token if
    the registry asks for one."""

    def __init__(self, host: str, repo: str, tls_verify: bool):
        import ssl

        self.host, self.repo = host, repo
        self.ctx = ssl.create_default_context() if tls_verify else ssl._create_unverified_context()
        self.scheme = "https"
        self.basic = self._basic()
        self.token = None
        if not tls_verify:
            # As skopeo: without verification a plain-HTTP registry is accepted too.
            import urllib.error
            import urllib.request

            try:
                urllib.request.urlopen(f"https://{host}/v2/", context=self.ctx, timeout=30)
            except urllib.error.HTTPError:
                pass  # it answered over TLS (401 and such are fine here)
            except OSError:
                self.scheme = "http"

    def _basic(self):
        paths = [os.environ.get("REGISTRY_AUTH_FILE", "")]
        if os.environ.get("XDG_RUNTIME_DIR"):
            paths.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
        paths.append(os.path.join(os.environ.get("DOCKER_CONFIG", os.path.expanduser("~/.docker")), "config.json"))
        for path in filter(None, paths):
            try:
                with open(path) as f:
                    auth = json.load(f).get("auths", {}).get(self.host, {}).get("auth")
            except (OSError, ValueError):
                continue
            if auth:
                return "Basic " + auth
        return None

    def _open(self, method: str, path: str, body: bytes = b"", headers=None):
        import urllib.error
        import urllib.request

        url = path if path.startswith("http") else f"{self.scheme}://{self.host}{path}"
        for attempt in range(2):
            h = dict(headers or {})
            if self.token:
                h["Authorization"] = "Bearer " + self.token
            elif self.basic:
                h["Authorization"] = self.basic
            req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method, headers=h)
            try:
                return urllib.request.urlopen(req, context=self.ctx, timeout=60)
            except urllib.error.HTTPError as e:
                challenge = e.headers.get("WWW-Authenticate", "")
                if e.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):
                    self.token = self._bearer(challenge)
                    continue
                raise SystemExit(f"error: {method} {url}: {e.code} {e.read()[:300]!r}")

    def _bearer(self, challenge: str) -> str:
        import urllib.parse
        import urllib.request

        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {"scope": f"repository:{self.repo}:pull,push"}
        if "service" in params:
            query["service"] = params["service"]
        req = urllib.request.Request(params["realm"] + "?" + urllib.parse.urlencode(query))
        if self.basic:
            req.add_header("Authorization", self.basic)
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
            answer = json.load(r)
        return answer.get("token") or answer["access_token"]

    def push_blob(self, data: bytes, digest: str) -> None:
        import urllib.parse

        try:
            self._open("HEAD", f"/v2/{self.repo}/blobs/{digest}")
            return
        except SystemExit:
            pass
        r = self._open("POST", f"/v2/{self.repo}/blobs/uploads/", b"")
        location = urllib.parse.urljoin(f"{self.scheme}://{self.host}/", r.headers["Location"])
        sep = "&" if "?" in location else "?"
        self._open("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", data,
                   {"Content-Type": "application/octet-stream"})

    def push_manifest(self, data: bytes, media_type: str, ref: str) -> None:
        self._open("PUT", f"/v2/{self.repo}/manifests/{ref}", data, {"Content-Type": media_type})


def push_referrers(layout_dir: str, dest_repo: str, tls_verify: bool) -> None:
    """Push the SBOM referrer (and the referrers tag schema index) of the layout's image."""
    host, repo = dest_repo.split("/", 1)
    with open(os.path.join(layout_dir, "index.json")) as f:
        entries = json.load(f)["manifests"]

    def blob(desc) -> bytes:
        with open(os.path.join(layout_dir, "blobs", "sha256", desc["digest"].split(":", 1)[1]), "rb") as f:
            return f.read()

    reg = Registry(host, repo, tls_verify)
    for desc in entries:
        if desc["mediaType"] == OCI_MANIFEST and "artifactType" in desc:
            manifest = json.loads(blob(desc))
            for child in [manifest["config"], *manifest["layers"]]:
                reg.push_blob(blob(child), child["digest"])
            reg.push_manifest(blob(desc), OCI_MANIFEST, desc["digest"])
    for desc in entries:
        tag = desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        if desc["mediaType"] == OCI_INDEX and tag.startswith("sha256-"):
            reg.push_manifest(blob(desc), OCI_INDEX, tag)


def main() -> None:
    if sys.argv[1:2] == ["push-referrers"]:
        p = argparse.ArgumentParser(prog="oci_image.py push-referrers")
        p.add_argument("layout")
        p.add_argument("repo", help="HOST/REPO")
        p.add_argument("--tls-verify", default="true", choices=["true", "false"])
        a = p.parse_args(sys.argv[2:])
        push_referrers(a.layout, a.repo, a.tls_verify == "true")
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rootfs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--epoch", type=int, required=True, help="SOURCE_DATE_EPOCH")
    p.add_argument("--created", required=True, help="RFC 3339 time of --epoch")
    p.add_argument("--version", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--source-url", default="")
    p.add_argument("--helm-version", required=True)
    p.add_argument("--cargo-lock", required=True)
    p.add_argument("--compression-level", type=int, default=6, choices=range(1, 10))
    args = p.parse_args()

    if os.path.exists(os.path.join(args.out, "index.json")):
        sys.exit(f"error: {args.out} already holds an image layout; give a fresh or empty --out")
    layout = Layout(args.out)
    paths = walk(args.rootfs)
    layers, diff_ids, history = [], [], []

    def make_layer(name: str):
        raw = tar_layer(args.rootfs, [r for r in paths if layer_of(r) == name], args.epoch)
        return "sha256:" + hashlib.sha256(raw).hexdigest(), gzip_bytes(raw, args.compression_level)

    # zlib lets go of the GIL: the layers compress in parallel, and land in order.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(LAYERS)) as pool:
        for name, (diff_id, gz) in zip(LAYERS, pool.map(make_layer, LAYERS)):
            diff_ids.append(diff_id)
            layers.append(layout.blob(gz, OCI_LAYER_GZIP))
            history.append({"created": args.created, "created_by": f"scripts/build-image.sh: {name}"})

    labels = {
        "org.opencontainers.image.title": "lazyoci",
        "org.opencontainers.image.description": (
            "Mirror Helm charts and every container image they reference into one OCI registry "
            "(CLI and Kubernetes operator)"
        ),
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.source": args.source_url,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.created": args.created,
    }
    config = {
        "created": args.created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{NONROOT}:{NONROOT}",
            "Entrypoint": ["/usr/local/bin/lazyoci"],
            "Cmd": ["operator"],
            "WorkingDir": "/home/nonroot",
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "LAZYOCI_HELM=/usr/local/bin/helm",
            ],
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_desc = layout.blob(canonical(config), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
        "annotations": {
            "org.opencontainers.image.created": args.created,
            "org.opencontainers.image.revision": args.revision,
            "org.opencontainers.image.version": args.version,
        },
    }
    image = layout.blob(canonical(manifest), OCI_MANIFEST)
    image_platform = {**image, "platform": {"architecture": "amd64", "os": "linux"}}

    sbom_desc = layout.blob(
        canonical(sbom(args, paths, image["digest"])),
        SPDX_JSON,
        annotations={"org.opencontainers.image.title": "sbom.spdx.json"},
    )
    empty = layout.blob(b"{}", OCI_EMPTY)
    referrer = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SPDX_JSON,
        "config": {**empty, "data": "e30="},
        "layers": [sbom_desc],
        "subject": image,
        "annotations": {"org.opencontainers.image.created": args.created},
    }
    referrer_desc = layout.blob(canonical(referrer), OCI_MANIFEST, artifactType=SPDX_JSON,
                                annotations={"org.opencontainers.image.created": args.created})
    # The referrers tag schema: what a registry without the referrers API serves for the image.
    referrers_index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [referrer_desc]}
    referrers_tag = "sha256-" + image["digest"].split(":", 1)[1]
    referrers_index_desc = layout.blob(canonical(referrers_index), OCI_INDEX)

    layout.finish(
        [
            {**image_platform, "annotations": {"org.opencontainers.image.ref.name": args.tag}},
            referrer_desc,
            {**referrers_index_desc, "annotations": {"org.opencontainers.image.ref.name": referrers_tag}},
        ]
    )
    print(json.dumps({"image": image["digest"], "tag": args.tag, "sbom": referrer_desc["digest"],
                      "referrersTag": referrers_tag}))


if __name__ == "__main__":
    main()
