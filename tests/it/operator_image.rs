//! The operator image built by `scripts/build-image.sh` (no container engine): it is
//! reproducible, carries an SBOM referrer listing every crate in Cargo.lock, and — unpacked
//! layer by layer into a root directory — runs as uid 65532 under `chroot`, down to a real
//! `lazyoci mirror` over TLS between two local registries trusting only the image's own CA
//! bundle plus the test CA.
//!
//! The image is built from the binary this test suite already has
//! (`CARGO_BIN_EXE_lazyoci`, a debug build; the script strips its debug info) rather than
//! from a release build, which would add minutes to the suite, and with gzip level 1 (four
//! times faster than the default 6; the digest is as reproducible). The chroot test needs root: it
//! runs when the tests are built as root (CI) and is listed as ignored otherwise (build.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

const SPDX: &str = "application/spdx+json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What one run of the build script reported.
struct Built {
    layout: PathBuf,
    image: String,
    tag: String,
    sbom: String,
    referrers_tag: String,
}

/// `scripts/build-image.sh --binary <this suite's lazyoci> --out <out>` plus `extra`.
fn build_image(out: &Path, extra: &[&str]) -> Built {
    build_image_with(out, extra, None)
}

/// [`build_image`] with `REGISTRY_AUTH_FILE` set to `auth` (credentials for `--push`).
fn build_image_with(out: &Path, extra: &[&str], auth: Option<&Path>) -> Built {
    let mut cmd = Command::new(root().join("scripts/build-image.sh"));
    if let Some(file) = auth {
        cmd.env("REGISTRY_AUTH_FILE", file);
    }
    let run = cmd
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_lazyoci"))
        .arg("--helm")
        .arg(lazyoci::testkit::helm_bin())
        .arg("--out")
        .arg(out)
        .args(["--compression-level", "1"])
        .args(extra)
        .current_dir(root())
        .output()
        .expect("run scripts/build-image.sh");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "build-image.sh failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}): {stdout}\n{stderr}"));
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("no {k}: {v}"))
            .to_string()
    };
    Built {
        layout: out.to_path_buf(),
        image: s("image"),
        tag: s("tag"),
        sbom: s("sbom"),
        referrers_tag: s("referrersTag"),
    }
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        oci::digest(&bytes),
        digest,
        "blob content does not match its name"
    );
    bytes
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

fn index(layout: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap())
        .expect("index.json is JSON");
    v["manifests"].as_array().unwrap().clone()
}

/// The descriptor in index.json tagged `tag`.
fn tagged(layout: &Path, tag: &str) -> Value {
    index(layout)
        .into_iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in index.json"))
}

/// Every file in the layout, by name, with its bytes.
fn layout_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .build()
    {
        let e = e.unwrap();
        if e.file_type().is_some_and(|t| t.is_file()) {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

fn git(args: &[&str]) -> String {
    let out = stdout_of(Command::new("git").args(args).current_dir(root()));
    String::from_utf8(out).unwrap().trim().to_string()
}

/// (name, version) of every `[[package]]` in Cargo.lock.
fn cargo_lock_crates() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let mut out = BTreeSet::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_else(|| panic!("no {key} in {block}"))
        };
        out.insert((field("name"), field("version")));
    }
    out
}

/// Unpack the image's layers in order into `rootfs`, honouring whiteouts (`.wh.NAME` removes
/// NAME from the layers below, `.wh..wh..opq` empties its directory). With `owners`, files
/// keep the uid/gid the layer gives them (needs root).
fn unpack(layers: &[Vec<u8>], rootfs: &Path, owners: bool) {
    std::fs::create_dir_all(rootfs).unwrap();
    for (i, gz) in layers.iter().enumerate() {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(owners);
        tar.set_overwrite(true);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().into_owned();
            assert!(
                path.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "layer {i}: unsafe path {}",
                path.display()
            );
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let parent = rootfs.join(path.parent().unwrap());
            if name == ".wh..wh..opq" {
                for e in std::fs::read_dir(&parent).into_iter().flatten() {
                    let p = e.unwrap().path();
                    if p.is_dir() && !p.is_symlink() {
                        std::fs::remove_dir_all(&p).unwrap();
                    } else {
                        std::fs::remove_file(&p).unwrap();
                    }
                }
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                let p = parent.join(hidden);
                if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p).unwrap();
                } else if p.symlink_metadata().is_ok() {
                    std::fs::remove_file(&p).unwrap();
                }
            } else {
                assert!(entry.unpack_in(rootfs).unwrap(), "layer {i}: {name}");
            }
        }
    }
}

/// The image's layers (gzip blobs) in order, and its config.
fn image_parts(b: &Built) -> (Vec<Vec<u8>>, Value) {
    let manifest = json_blob(&b.layout, &b.image);
    let config = json_blob(&b.layout, manifest["config"]["digest"].as_str().unwrap());
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(&b.layout, l["digest"].as_str().unwrap()))
        .collect();
    (layers, config)
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn the_layer_unpacker_honours_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let lower = tar_gz(&[("a", b"1"), ("d/x", b"2"), ("d/y", b"3"), ("e/z", b"4")]);
    let upper = tar_gz(&[
        ("a", b"5"),
        ("d/.wh..wh..opq", b""),
        ("d/w", b"6"),
        ("e/.wh.z", b""),
    ]);
    unpack(&[lower, upper], dir.path(), false);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).ok();
    assert_eq!(read("a").as_deref(), Some("5"));
    assert_eq!(read("d/x"), None);
    assert_eq!(read("d/y"), None);
    assert_eq!(read("d/w").as_deref(), Some("6"));
    assert_eq!(read("e/z"), None);
    assert!(!dir.path().join("d/.wh..wh..opq").exists());
}

/// The Dockerfile's last stage against the image build-image.sh made: the same root filesystem
/// (scripts/image-rootfs.sh) and the same user, entrypoint, command, working directory,
/// environment, port and label keys.
fn dockerfile_matches(c: &Value) {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let stages: Vec<&str> = joined.split("\nFROM ").collect();
    let rootfs = stages
        .iter()
        .find(|s| s.starts_with("builder AS rootfs"))
        .expect("a rootfs stage");
    assert!(
        rootfs.contains("COPY scripts/image-rootfs.sh")
            && rootfs.contains("RUN image-rootfs.sh /rootfs "),
        "{rootfs}"
    );
    let last = stages.last().unwrap();
    assert!(
        last.starts_with("scratch\n"),
        "the last stage is not FROM scratch"
    );
    let mut seen = std::collections::BTreeMap::new();
    for line in last.lines().skip(1) {
        if let Some((op, rest)) = line.trim().split_once(' ') {
            seen.entry(op.to_string())
                .or_insert_with(Vec::new)
                .push(rest.trim().to_string());
        }
    }
    let one = |op: &str| -> String {
        let v = &seen[op];
        assert_eq!(v.len(), 1, "{op}: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("USER"), c["User"].as_str().unwrap());
    assert_eq!(one("WORKDIR"), c["WorkingDir"].as_str().unwrap());
    let json = |s: String| serde_json::from_str::<Value>(&s).unwrap();
    assert_eq!(json(one("ENTRYPOINT")), c["Entrypoint"]);
    assert_eq!(json(one("CMD")), c["Cmd"]);
    let ports: Vec<String> = c["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| p.trim_end_matches("/tcp").to_string())
        .collect();
    assert_eq!(vec![one("EXPOSE")], ports);
    let env: Vec<Value> = one("ENV")
        .split_whitespace()
        .map(|kv| Value::String(kv.to_string()))
        .collect();
    assert_eq!(Value::Array(env), c["Env"]);
    assert!(
        seen["COPY"].contains(&"--from=rootfs /rootfs/ /".to_string()),
        "{seen:?}"
    );
    let label = one("LABEL");
    let keys: BTreeSet<&str> = label
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .filter(|k| k.starts_with("org.opencontainers.image."))
        .collect();
    let built: BTreeSet<&str> = c["Labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, built);
    assert!(
        seen["ARG"].contains(&format!("VERSION={}", env!("CARGO_PKG_VERSION"))),
        "ARG VERSION is not Cargo.toml's version: {:?}",
        seen["ARG"]
    );
}

#[test]
fn the_image_builds_reproducibly_with_its_config_from_git_and_an_sbom_of_every_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build_image(&tmp.path().join("a"), &[]);
    let b = build_image(&tmp.path().join("b"), &[]);
    assert_eq!(a.image, b.image, "two builds of one commit differ");
    assert_eq!(a.sbom, b.sbom);
    assert_eq!(
        layout_files(&a.layout),
        layout_files(&b.layout),
        "the layouts differ byte for byte"
    );
    assert_eq!(a.tag, env!("CARGO_PKG_VERSION"));

    // The image: index.json tags it; its config says who runs what, from git.
    let desc = tagged(&a.layout, &a.tag);
    assert_eq!(desc["digest"], a.image.as_str());
    let (layers, config) = image_parts(&a);
    assert_eq!(layers.len(), 3, "base, helm, lazyoci");
    let c = &config["config"];
    dockerfile_matches(c);
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/lazyoci"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["operator"]));
    assert_eq!(c["WorkingDir"], "/home/nonroot");
    let labels = &c["Labels"];
    let head = git(&["rev-parse", "HEAD"]);
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision == head || revision == format!("{head}-dirty"),
        "{revision} vs {head}"
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let epoch: i64 = git(&["log", "-1", "--format=%ct"]).parse().unwrap();
    let created = Command::new("date")
        .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let created = String::from_utf8(created.stdout).unwrap();
    assert_eq!(config["created"], created.trim());
    assert_eq!(labels["org.opencontainers.image.created"], created.trim());
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // Every layer entry: owned by root (the home directory by nonroot), stamped with the
    // commit time.
    let mut files = BTreeSet::new();
    for gz in &layers {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        for e in tar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            let path = e.path().unwrap().display().to_string();
            let path = path.trim_end_matches('/').to_string();
            assert_eq!(h.mtime().unwrap() as i64, epoch, "{path}");
            let owner = if path == "home/nonroot" { 65532 } else { 0 };
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap()),
                (owner, owner),
                "{path}"
            );
            if h.entry_type().is_file() {
                files.insert(format!("/{path}"));
            }
        }
    }
    // Exactly the shared libraries lazyoci links, plus the binaries, CA bundle and users.
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_lazyoci"))
        .output()
        .unwrap();
    let mut expected: BTreeSet<String> = String::from_utf8(ldd.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            match t.as_slice() {
                [_, "=>", p, ..] if p.starts_with('/') => Some(p.to_string()),
                [p, ..] if p.starts_with('/') => Some(p.to_string()),
                _ => None,
            }
        })
        .collect();
    assert!(
        expected.iter().any(|l| l.contains("libc.so")),
        "{expected:?}"
    );
    for f in [
        "/usr/local/bin/lazyoci",
        "/usr/local/bin/helm",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
    ] {
        expected.insert(f.to_string());
    }
    assert_eq!(files, expected);

    // The SBOM: a referrer of the image, found in index.json and in the tag schema index.
    let referrer = index(&a.layout)
        .into_iter()
        .find(|d| d["artifactType"] == SPDX)
        .expect("no SPDX referrer in index.json");
    assert_eq!(referrer["digest"], a.sbom.as_str());
    let m = json_blob(&a.layout, &a.sbom);
    assert_eq!(m["subject"]["digest"], a.image.as_str());
    assert_eq!(m["artifactType"], SPDX);
    assert_eq!(a.referrers_tag, images::digest_tag(&a.image, ""));
    let tag_index = tagged(&a.layout, &a.referrers_tag);
    let tag_index = json_blob(&a.layout, tag_index["digest"].as_str().unwrap());
    assert_eq!(tag_index["manifests"][0]["digest"], a.sbom.as_str());
    assert_eq!(tag_index["manifests"][0]["artifactType"], SPDX);
    assert_eq!(m["layers"][0]["mediaType"], SPDX);
    let spdx = json_blob(&a.layout, m["layers"][0]["digest"].as_str().unwrap());
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let packages = spdx["packages"].as_array().unwrap();
    let listed: BTreeSet<(String, String)> = packages
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .is_some_and(|l| l.starts_with("pkg:cargo/"))
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let locked = cargo_lock_crates();
    assert!(locked.len() > 100, "{}", locked.len());
    assert_eq!(listed, locked, "the SBOM's crates are not Cargo.lock's");
    let helm_version = helm(tmp.path(), &["version", "--short"]).unwrap();
    assert!(
        packages
            .iter()
            .any(|p| p["name"] == "helm" && p["versionInfo"] == helm_version.trim()),
        "helm {helm_version} is not in the SBOM"
    );
}

/// Run `argv` inside `rootfs` as uid/gid 65532 with exactly the image's environment (plus
/// HOME from its /etc/passwd, as a container runtime sets it).
fn in_chroot(rootfs: &Path, config: &Value, argv: &[&str]) -> Run {
    // Found on the host's PATH (or /usr/sbin) before the environment is replaced.
    let chroot = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("chroot"))
        .find(|p| p.is_file())
        .expect("chroot (coreutils)");
    let mut cmd = Command::new(chroot);
    cmd.arg("--userspec=65532:65532")
        .arg(rootfs)
        .args(argv)
        .env_clear()
        .env("HOME", "/home/nonroot");
    for kv in config["config"]["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chroot");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The digest of `reference`'s manifest, read with skopeo (credentials from `auth`).
fn skopeo_digest(reference: &str, auth: &Path) -> String {
    oci::digest(&stdout_of(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg("--authfile")
            .arg(auth)
            .arg(format!("docker://{reference}")),
    ))
}

#[cfg_attr(
    not(lazyoci_test_root),
    ignore = "needs root (chroot, files owned by uid 65532): run the tests as root, as CI does"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_as_uid_65532_in_a_chroot_and_mirrors_itself_over_tls() {
    lazyoci::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("tls");
    tls_certs(&certs);
    let tls = || lazyoci::testkit::registry::RegistryConfig {
        tls: Some((certs.join("srv.crt"), certs.join("srv.key"))),
        ..Default::default()
    };
    // The source wants credentials (alice / s3cret): the push and the mirror must bring them.
    let src = lazyoci::testkit::registry::Registry::start_with(
        lazyoci::testkit::registry::RegistryConfig {
            htpasswd: Some(format!("alice:{}", bcrypt::hash("s3cret", 4).unwrap())),
            ..tls()
        },
    )
    .await
    .unwrap();
    let auth = write_docker_config(&tmp.path().join("auth"), src.addr(), "alice", "s3cret");
    let dst = lazyoci::testkit::registry::Registry::start_with(tls())
        .await
        .unwrap();

    // Build and push the image (with its SBOM) to the source registry, as README step 2 does
    // to localhost:5000.
    let readme = Readme::load(src.addr(), dst.addr());
    assert!(
        readme
            .text
            .contains("scripts/build-image.sh --push localhost:5000/lazyoci/lazyoci:"),
        "README step 2 no longer pushes to localhost:5000/lazyoci/lazyoci"
    );
    let repo = format!("{}/lazyoci/lazyoci", src.addr());
    let built = build_image_with(
        &tmp.path().join("layout"),
        &["--push", &repo, "--dest-tls-verify=false"],
        Some(&auth),
    );
    let pushed = format!("{repo}:{}", built.tag);
    assert_eq!(skopeo_digest(&pushed, &auth), built.image);
    assert_eq!(
        skopeo_digest(&format!("{repo}:{}", built.referrers_tag), &auth),
        oci::digest(&blob(
            &built.layout,
            tagged(&built.layout, &built.referrers_tag)["digest"]
                .as_str()
                .unwrap()
        ))
    );

    let (layers, config) = image_parts(&built);
    let rootfs = tmp.path().join("rootfs");
    unpack(&layers, &rootfs, true);
    // What every container runtime adds to an image's root: the standard character devices
    // (lazyoci runs helm with stdin from /dev/null).
    std::fs::create_dir(rootfs.join("dev")).unwrap();
    for (name, minor) in [
        ("null", "3"),
        ("zero", "5"),
        ("random", "8"),
        ("urandom", "9"),
    ] {
        let ok = Command::new("mknod")
            .args(["-m", "666"])
            .arg(rootfs.join("dev").join(name))
            .args(["c", "1", minor])
            .status()
            .unwrap();
        assert!(ok.success(), "mknod /dev/{name}");
    }

    let version = in_chroot(&rootfs, &config, &["/usr/local/bin/lazyoci", "--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    let helm_run = in_chroot(&rootfs, &config, &["/usr/local/bin/helm", "version"]);
    assert_eq!(helm_run.code, 0, "{helm_run:?}");
    assert!(helm_run.stdout.contains("v4."), "{helm_run:?}");
    let crd = in_chroot(&rootfs, &config, &["/usr/local/bin/lazyoci", "crd"]);
    assert_eq!(crd.code, 0, "{crd:?}");
    assert_eq!(
        crd.stdout,
        std::fs::read_to_string(root().join("crds/chartmirror.yaml")).unwrap()
    );

    // README step 2: its mirror.yaml, with the operator chart, run inside the image as uid
    // 65532 (the registries are the test's: localhost:5000 is the source, registry.example.com
    // the target).
    let work = rootfs.join("work");
    copy_dir(
        &root().join("charts/lazyoci-operator"),
        &work.join("charts/lazyoci-operator"),
    );
    std::fs::write(work.join("mirror.yaml"), readme.mirror_yaml()).unwrap();
    // The source's credentials where lazyoci looks by default: ~/.docker/config.json.
    let docker = rootfs.join("home/nonroot/.docker");
    write_docker_config(&docker, src.addr(), "alice", "s3cret");
    let chown = Command::new("chown")
        .args(["-R", "65532:65532"])
        .arg(&work)
        .arg(&docker)
        .status()
        .unwrap();
    assert!(chown.success());
    let mirror = [
        "/usr/local/bin/lazyoci",
        "mirror",
        "--config",
        "/work/mirror.yaml",
        "--all",
        "-o",
        "json",
    ];

    // The image's own bundle does not know the test CA: both registries are refused.
    let untrusted = in_chroot(&rootfs, &config, &mirror);
    assert_eq!(untrusted.code, 1, "{untrusted:?}");
    assert!(
        untrusted
            .stderr
            .contains("the target registry cannot be used")
            && untrusted.stderr.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );

    // The test CA next to the image's bundle: everything goes through.
    let bundle = rootfs.join("etc/ssl/certs/ca-certificates.crt");
    let mut pem = std::fs::read(&bundle).unwrap();
    pem.extend(std::fs::read(certs.join("ca.crt")).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let run = in_chroot(&rootfs, &config, &mirror);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let v = version_of(&report, "lazyoci-operator", env!("CARGO_PKG_VERSION"));
    assert_eq!(v["chartStatus"], "pushed", "{v:#}");
    assert_eq!(
        v["chartRef"],
        format!(
            "oci://{}/platform/lazyoci-operator:{}",
            dst.addr(),
            env!("CARGO_PKG_VERSION")
        ),
        "{v:#}"
    );
    assert_eq!(v["images"].as_array().unwrap().len(), 1, "{v:#}");
    let image = &v["images"][0];
    assert_eq!(image["source"], pushed.as_str(), "{image:#}");
    assert_eq!(image["status"], "copied", "{image:#}");
    let target = image["target"].as_str().unwrap();
    assert_eq!(
        target,
        format!("{}/platform/lazyoci/lazyoci:{}", dst.addr(), built.tag)
    );
    assert_eq!(skopeo_digest(target, &auth), built.image);
    // The SBOM travelled with the image, by digest, with its tag schema index.
    let attached = image["attached"].as_array().expect("attached artifacts");
    assert!(
        attached.iter().any(|a| a["kind"] == "referrer"
            && a["digest"] == built.sbom.as_str()
            && a["artifactType"] == SPDX
            && a["status"] == "copied"),
        "{image:#}"
    );
    let target_repo = target.rsplit_once(':').unwrap().0;
    assert_eq!(
        skopeo_digest(&format!("{target_repo}@{}", built.sbom), &auth),
        built.sbom
    );

    // README step 3: the chart with its values runs exactly the image built and mirrored.
    let mut args = vec![
        "template".to_string(),
        "lazyoci-operator".into(),
        root().join("charts/lazyoci-operator").display().to_string(),
    ];
    for set in readme.helm_sets() {
        args.push("--set".into());
        args.push(set);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rendered = helm(&tmp.path().join("helm-home"), &args).unwrap();
    let deployment = serde_saphyr::from_multiple::<Value>(&rendered)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let deployed = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(deployed, target);
    assert_eq!(skopeo_digest(deployed, &auth), built.image);
}

/// The README's deploy path, with its example registries replaced by the test's.
struct Readme {
    text: String,
    src: String,
    dst: String,
}

impl Readme {
    fn load(src: &str, dst: &str) -> Readme {
        Readme {
            text: std::fs::read_to_string(root().join("README.md")).unwrap(),
            src: src.to_string(),
            dst: dst.to_string(),
        }
    }

    fn local(&self, text: &str) -> String {
        text.replace("registry.example.com", &self.dst)
            .replace("localhost:5000", &self.src)
    }

    /// The first fenced block after `marker`.
    fn block(&self, marker: &str) -> String {
        let at = self
            .text
            .find(marker)
            .unwrap_or_else(|| panic!("README has no {marker}"));
        let rest = &self.text[at..];
        let start = rest.find("```").unwrap();
        let body = &rest[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        body[..body.find("```").unwrap()].to_string()
    }

    /// Step 2's mirror.yaml, its chart path inside the root (/work).
    fn mirror_yaml(&self) -> String {
        let yaml = self.block("<!-- deploy:mirror.yaml");
        assert!(yaml.contains("path: charts/lazyoci-operator"), "{yaml}");
        self.local(&yaml.replace(
            "path: charts/lazyoci-operator",
            "path: /work/charts/lazyoci-operator",
        ))
    }

    /// Step 3's `--set` values.
    fn helm_sets(&self) -> Vec<String> {
        let cmd = self.block("<!-- deploy:helm-install");
        let sets: Vec<String> = cmd
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "--set")
            .map(|w| self.local(w[1]))
            .collect();
        assert!(!sets.is_empty(), "{cmd}");
        sets
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
