//! Bad bundles: a flipped byte, a missing blob, a wrong index.json, tar entries that escape
//! or link, a bundle from another tool. Each is named; the good items still land; nothing
//! unverified is tagged.

use std::path::Path;

use crate::bundle::{bundle_config, bundle_name, push};
use crate::common::*;

/// A fresh copy of the bundle in `good`, as `name`.
fn copy_of(w: &World, name: &str) -> std::path::PathBuf {
    let to = w.path(name);
    let ok = std::process::Command::new("cp")
        .args(["-r"])
        .arg(w.path("good"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(ok.success());
    to
}

fn blob(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256").join(&digest[7..])
}

/// The images of the push report by repository (relative), with status and error.
fn statuses(run: &Run) -> Vec<(String, String, String)> {
    let r = run.json();
    let mut out = Vec::new();
    for c in r["charts"].as_array().unwrap() {
        for v in c["versions"].as_array().unwrap() {
            for i in v["images"].as_array().unwrap() {
                let s = |k: &str| i[k].as_str().unwrap_or_default().to_string();
                out.push((s("source"), s("status"), s("error")));
            }
        }
    }
    out
}

/// Every image of the set but `bad` is at `path` with its source digest; `bad` is not tagged.
async fn all_but(w: &World, path: &str, bad: &str) {
    for img in w.set.all() {
        let (_, reference) = bundle_name(img);
        let at = w
            .dst_digest(&format!("{path}/{}", img.repo), &reference)
            .await;
        if img.repo == bad {
            assert_eq!(at, None, "{bad} must not be tagged");
        } else {
            assert_eq!(
                at.as_deref(),
                Some(img.digest.as_str()),
                "{path}/{}",
                img.repo
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_bundles_are_named_and_the_rest_still_lands() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["bundle", "create", "--all", "good"]);
    assert_eq!(run.code, 0, "{run:?}");

    // A flipped byte in nginx's layer.
    let dir = copy_of(&w, "flipped");
    let layer = w.set.nginx.blobs[1].clone();
    let mut bytes = std::fs::read(blob(&dir, &layer)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(blob(&dir, &layer), bytes).unwrap();
    let v = w.run(&["bundle", "verify", "flipped"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(
        v.stdout
            .contains(&format!("blob {layer} has content with digest")),
        "{v:?}"
    );
    let p = push(&w, "flipped", "flipped");
    assert_eq!(p.code, 1, "{p:?}");
    let nginx = statuses(&p)
        .into_iter()
        .find(|s| s.0 == "library/nginx:1.25")
        .unwrap();
    assert_eq!(nginx.1, "failed");
    assert!(nginx.2.contains("does not match its digest"), "{nginx:?}");
    all_but(&w, "flipped", "library/nginx").await;
    assert!(
        !oci::blob_exists(w.dst.addr(), "flipped/library/nginx", &layer)
            .await
            .unwrap()
    );

    // A missing blob (redis's config).
    let dir = copy_of(&w, "missing");
    let config = w.set.redis.blobs[0].clone();
    std::fs::remove_file(blob(&dir, &config)).unwrap();
    let v = w.run(&["bundle", "verify", "missing"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(
        v.stdout.contains(&format!(
            "refers to {config}, which is missing from the bundle"
        )),
        "{v:?}"
    );
    let p = push(&w, "missing", "missing");
    assert_eq!(p.code, 1, "{p:?}");
    let redis = statuses(&p)
        .into_iter()
        .find(|s| s.0 == "library/redis:7.2")
        .unwrap();
    assert!(
        redis
            .2
            .contains(&format!("blob {config} is missing from the bundle")),
        "{redis:?}"
    );
    all_but(&w, "missing", "library/redis").await;

    // index.json that is not an index: nothing can be placed, nothing is written.
    let dir = copy_of(&w, "garbled");
    std::fs::write(dir.join("index.json"), b"{\"manifests\": 7}").unwrap();
    let writes = w.dst_writes().len();
    for args in [
        vec!["bundle", "verify", "garbled"],
        vec![
            "bundle",
            "push",
            "garbled",
            "--target",
            w.dst.addr(),
            "--insecure",
        ],
    ] {
        let r = w.run(&args);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains("index.json is not an OCI image index"),
            "{r:?}"
        );
    }
    assert_eq!(w.dst_writes().len(), writes);

    // index.json naming a manifest the bundle does not hold, and one without a name.
    let dir = copy_of(&w, "wrong");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let bogus = oci::digest(b"not in the bundle");
    for m in index["manifests"].as_array_mut().unwrap() {
        let name = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name == "team/job:0.9" {
            m["digest"] = bogus.clone().into();
        }
        if name == "team/hook:1.0" {
            m["annotations"] = serde_json::json!({});
        }
        // Held by digest only, named after another digest: not pushed under either.
        if name.starts_with("team/pinned@") {
            m["annotations"]["org.opencontainers.image.ref.name"] =
                format!("team/pinned@{bogus}").into();
        }
    }
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let v = w.run(&["bundle", "verify", "wrong"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(
        v.stdout
            .contains(&format!("team/job:0.9 refers to {bogus}, which is missing")),
        "{v:?}"
    );
    let p = push(&w, "wrong", "wrong");
    assert_eq!(p.code, 1, "{p:?}");
    let report = p.json().to_string();
    assert!(
        report.contains(&format!("manifest {bogus} is missing from the bundle")),
        "{report}"
    );
    assert!(
        report.contains("has no org.opencontainers.image.ref.name annotation"),
        "{report}"
    );
    assert!(report.contains("which names another digest"), "{report}");
    assert_eq!(
        w.dst_digest("wrong/team/pinned", &w.set.pinned.digest)
            .await,
        None
    );
    assert_eq!(w.dst_digest("wrong/team/job", "0.9").await, None);
    assert_eq!(w.dst_digest("wrong/team/hook", "1.0").await, None);
    assert!(w.dst_digest("wrong/library/nginx", "1.25").await.is_some());
}

/// A raw tar header for `name` (the tar crate refuses to write `..` and absolute paths).
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_entries_that_escape_or_link_are_refused_and_a_foreign_layout_pushes_by_name() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["bundle", "create", "--all", "good"]);
    assert_eq!(run.code, 0, "{run:?}");

    // The good bundle as a tar, but redis's layer replaced by a symlink, plus entries
    // escaping with .. and an absolute path.
    let good = w.path("good");
    let layer = w.set.redis.blobs[1].clone();
    let f = std::fs::File::create(w.path("evil.tar")).unwrap();
    let mut tar = tar::Builder::new(f);
    for e in walk(&good) {
        let rel = e
            .strip_prefix(&good)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.ends_with(&layer[7..]) {
            let h = raw_header(&rel, tar::EntryType::Symlink, 0, Some("/etc/passwd"));
            tar.append(&h, std::io::empty()).unwrap();
            continue;
        }
        tar.append_path_with_name(&e, &rel).unwrap();
    }
    for (name, data) in [
        ("../escaped", b"x".as_slice()),
        ("/tmp/lazyoci-absolute", b"y"),
    ] {
        let h = raw_header(name, tar::EntryType::Regular, data.len() as u64, None);
        tar.append(&h, data).unwrap();
    }
    let h = raw_header("hardlink", tar::EntryType::Link, 0, Some("index.json"));
    tar.append(&h, std::io::empty()).unwrap();
    tar.finish().unwrap();
    drop(tar);

    let v = w.run(&["bundle", "verify", "evil.tar"]);
    assert_eq!(v.code, 1, "{v:?}");
    for needle in [
        "tar entry \"../escaped\" has a path with ..; refused".to_string(),
        "tar entry \"/tmp/lazyoci-absolute\" has an absolute path; refused".to_string(),
        "tar entry \"hardlink\" is a hard link; refused".to_string(),
        "is a symbolic link; refused".to_string(),
        format!("refers to {layer}, which is missing from the bundle"),
    ] {
        assert!(v.stdout.contains(&needle), "{needle}: {v:?}");
    }
    let p = push(&w, "evil.tar", "evil");
    assert_eq!(p.code, 1, "{p:?}");
    assert!(p.stdout.contains("has a path with ..; refused"), "{p:?}");
    all_but(&w, "evil", "library/redis").await;
    assert!(
        !w.path("escaped").exists() && !w.dir.path().parent().unwrap().join("escaped").exists()
    );
    assert!(!Path::new("/tmp/lazyoci-absolute").exists());

    // A layout written by skopeo: no lazyoci.json; what has a ref name is pushed by it, what
    // has only a tag for a name is refused by name.
    let foreign = w.path("foreign");
    for (src, name) in [
        (w.set.nginx.reference(w.src.addr()), "library/nginx:1.25"),
        (w.set.api.reference(w.src.addr()), "team/api:1.0"),
        (w.set.job.reference(w.src.addr()), "latest"),
    ] {
        stdout_of(
            std::process::Command::new("skopeo")
                .args(["copy", "--preserve-digests", "--src-tls-verify=false"])
                .arg(format!("docker://{src}"))
                .arg(format!("oci:{}:{name}", foreign.display())),
        );
    }
    let p = push(&w, "foreign", "foreign");
    assert_eq!(p.code, 1, "{p:?}");
    assert!(
        p.stdout
            .contains("is named \\\"latest\\\", which has no repository"),
        "{p:?}"
    );
    assert_eq!(
        w.dst_digest("foreign/library/nginx", "1.25")
            .await
            .as_deref(),
        Some(w.set.nginx.digest.as_str())
    );
    assert_eq!(
        w.dst_digest("foreign/team/api", "1.0").await.as_deref(),
        Some(w.set.api.digest.as_str())
    );
    assert_eq!(
        oci::catalog(w.dst.addr())
            .await
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("foreign/"))
            .count(),
        2
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
