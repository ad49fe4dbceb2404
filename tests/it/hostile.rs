//! Hostile input and failures: crafted chart archives, credentials and redirects, TLS,
//! interrupts. Each failure is contained to its own item, with a clear error.

use std::io::Write as _;
use std::time::Duration;

use lazyoci::testkit::proxy::{Proxy, Rule};
use lazyoci::testkit::registry::{Registry, RegistryConfig};

use crate::common::*;

/// A tar entry written byte by byte, so names the tar crate would refuse can be built.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

fn chart_archive(name: &str, extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut tar = Vec::new();
    raw_entry(
        &mut tar,
        &format!("{name}/Chart.yaml"),
        b'0',
        "",
        format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n").as_bytes(),
    );
    extra(&mut tar);
    tar.extend_from_slice(&[0u8; 1024]);
    gzip(&tar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_archives_are_refused_one_by_one_and_the_rest_still_mirrors() {
    let w = world().await;
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let marker = w.path("escaped");
    let escape = format!("{}", marker.display());
    let mut archives: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            chart_archive("dotdot", |t| {
                raw_entry(t, "dotdot/../../escaped", b'0', "", b"x")
            }),
            "'..' is not allowed",
        ),
        (
            "absolute",
            chart_archive("absolute", |t| raw_entry(t, &escape, b'0', "", b"x")),
            "absolute paths are not allowed",
        ),
        (
            "symlink",
            chart_archive("symlink", |t| {
                raw_entry(t, "symlink/templates/link.yaml", b'2', "/etc/passwd", b"")
            }),
            "links are not allowed",
        ),
        (
            "hardlink",
            chart_archive("hardlink", |t| {
                raw_entry(t, "hardlink/values.yaml", b'1', "/etc/shadow", b"")
            }),
            "links are not allowed",
        ),
        (
            "notgzip",
            b"PK\x03\x04 this is a zip, not a chart".to_vec(),
            "not a gzip-compressed tar archive",
        ),
        (
            "nochart",
            gzip(&{
                let mut t = Vec::new();
                raw_entry(&mut t, "nochart/values.yaml", b'0', "", b"a: 1\n");
                t.extend_from_slice(&[0u8; 1024]);
                t
            }),
            "no Chart.yaml",
        ),
        (
            "impostor",
            {
                let mut t = Vec::new();
                raw_entry(
                    &mut t,
                    "impostor/Chart.yaml",
                    b'0',
                    "",
                    b"apiVersion: v2\nname: other\nversion: 1.0.0\n",
                );
                t.extend_from_slice(&[0u8; 1024]);
                gzip(&t)
            },
            "archive holds chart",
        ),
    ];
    // A decompression bomb: 300 MiB of zeros behind a valid Chart.yaml.
    let bomb = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut head = Vec::new();
        raw_entry(
            &mut head,
            "bomb/Chart.yaml",
            b'0',
            "",
            b"apiVersion: v2\nname: bomb\nversion: 1.0.0\n",
        );
        let mut big = Vec::new();
        raw_entry(&mut big, "bomb/big.bin", b'0', "", &[]);
        // Patch the size of the big entry to 300 MiB and stream zeros after it.
        big[124..136].copy_from_slice(format!("{:011o}\0", 300u64 << 20).as_bytes());
        big[148..156].copy_from_slice(b"        ");
        let sum: u32 = big[..512].iter().map(|b| u32::from(*b)).sum();
        big[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        gz.write_all(&head).unwrap();
        gz.write_all(&big[..512]).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    };
    archives.push(("bomb", bomb, "uncompressed"));

    let mut index = String::from("apiVersion: v1\nentries:\n");
    for (name, bytes, _) in &archives {
        std::fs::write(served.join(format!("{name}-1.0.0.tgz")), bytes).unwrap();
        let digest = &lazyoci::digest::sha256(bytes)[7..];
        index.push_str(&format!("  {name}:\n  - name: {name}\n    version: 1.0.0\n    urls: [{name}-1.0.0.tgz]\n    digest: {digest}\n"));
    }
    let good = charts::write_simple_chart(
        &w.path("good-src"),
        "good",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    helm(
        home.path(),
        &[
            "package",
            "-d",
            &served.to_string_lossy(),
            &good.to_string_lossy(),
        ],
    )
    .unwrap();
    let good_tgz = std::fs::read(served.join("good-1.0.0.tgz")).unwrap();
    index.push_str(&format!(
        "  good:\n  - name: good\n    version: 1.0.0\n    urls: [good-1.0.0.tgz]\n    digest: {}\n",
        &lazyoci::digest::sha256(&good_tgz)[7..]
    ));
    std::fs::write(served.join("index.yaml"), index).unwrap();

    let mut config = format!(
        "target: {{url: {}, insecure: true}}\nupstreams:\n",
        w.dst.addr()
    );
    for (name, _, _) in &archives {
        config.push_str(&format!(
            "  {name}: {{type: repo, repo: \"{}\", chart: {name}, versions: [\"1.0.0\"]}}\n",
            repo.url()
        ));
    }
    config.push_str(&format!(
        "  good: {{type: repo, repo: \"{}\", chart: good, versions: [\"1.0.0\"]}}\n",
        repo.url()
    ));
    w.config("mirror.yaml", &config);
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    for (name, _, needle) in &archives {
        let v = version_of(&r, name, "1.0.0");
        assert_eq!(v["chartStatus"], "failed", "{name}: {v:#}");
        let err = v["chartError"].as_str().unwrap();
        assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
        assert!(
            w.dst_digest(name, "1.0.0").await.is_none(),
            "{name} was pushed"
        );
    }
    assert_eq!(version_of(&r, "good", "1.0.0")["chartStatus"], "pushed");
    assert!(w.dst_digest("library/nginx", "1.25").await.is_some());
    assert!(
        !marker.exists(),
        "an archive entry escaped to {}",
        marker.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_do_not_follow_a_blob_redirect_to_another_host() {
    let w = world().await;
    // The same image, anonymous, elsewhere: the redirect target serves the blobs.
    let (private, img) = private_registry().await;
    let mirror_img = images::image(
        w.src_host(),
        "private/app",
        "1.0",
        &[99],
        1024,
        false,
        "amd64",
    )
    .await
    .unwrap();
    assert_eq!(img.digest, mirror_img.digest);
    let recorder = Proxy::start(w.src_host(), vec![]).unwrap();
    let front = Proxy::start(
        private.addr(),
        vec![Rule::redirect("GET", "/blobs/sha256:", recorder.addr())],
    )
    .unwrap();
    let chart = charts::write_simple_chart(
        &w.path("charts"),
        "redir",
        "1.0.0",
        &format!("{}/private/app:1.0", front.addr()),
    )
    .unwrap();
    let _ = chart;
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  redir: {{type: local, path: charts/redir, chart: redir, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    docker_login(&w, front.addr(), "alice", "s3cret");
    let run = w.run_env(
        &["mirror", "--all"],
        &[(
            "LAZYOCI_INSECURE_REGISTRIES",
            &format!("{},{}", front.addr(), recorder.addr()),
        )],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.dst_digest("private/app", "1.0").await, Some(img.digest));
    let redirected: Vec<_> = recorder.records();
    assert!(
        redirected.iter().any(|r| r.path.contains("/blobs/")),
        "no blob was fetched through the redirect"
    );
    assert!(
        redirected.iter().all(|r| r.authorization.is_none()),
        "credentials followed the redirect: {redirected:?}"
    );
    assert!(
        front.records().iter().any(|r| r.authorization.is_some()),
        "the registry itself got no credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_and_a_custom_ca_is_trusted() {
    let w = world().await;
    let dir = w.path("tls");
    tls_certs(&dir);
    let tls = Registry::start_with(RegistryConfig {
        tls: Some((dir.join("srv.crt"), dir.join("srv.key"))),
        ..Default::default()
    })
    .await
    .unwrap();
    // Seed the TLS registry by mirroring into it (through lazyoci, trusting the CA).
    let chart = charts::write_simple_chart(
        &w.path("charts"),
        "tlsapp",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    let _ = chart;
    w.config("mirror.yaml", &format!("target: {{url: {}}}\nupstreams:\n  tlsapp: {{type: local, path: charts/tlsapp, chart: tlsapp, versions: [\"1.0.0\"]}}\n", tls.addr()));

    let untrusted = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(untrusted.code, 1, "{untrusted:?}");
    // The target is probed before any work: one message, on stderr.
    assert!(
        untrusted
            .stderr
            .contains("the target registry cannot be used")
            && untrusted.stderr.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );
    let trusted = w.run(&[
        "mirror",
        "--all",
        "--ca-file",
        &dir.join("ca.crt").to_string_lossy(),
    ]);
    assert_eq!(trusted.code, 0, "{trusted:?}");
    assert!(
        trusted.stdout.contains("Chart: pushing... OK"),
        "{trusted:?}"
    );

    // target.insecure is for the target only: a plain-HTTP *source* still needs its opt-in.
    let plain = w.run_env(
        &[
            "mirror",
            "--all",
            "--images-only",
            "--ca-file",
            &dir.join("ca.crt").to_string_lossy(),
        ],
        &[("LAZYOCI_INSECURE_REGISTRIES", "")],
    );
    assert_eq!(plain.code, 1, "{plain:?}");
    assert!(
        plain
            .stdout
            .contains(&format!("{} speaks plain HTTP, not HTTPS", w.src_host())),
        "{plain:?}"
    );
    assert!(
        plain
            .stdout
            .contains(&format!("--insecure-registry {}", w.src_host())),
        "{plain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_promptly_tags_nothing_half_copied_and_a_rerun_finishes() {
    let w = world().await;
    let slow = Proxy::start(
        w.src_host(),
        vec![Rule::delay("GET", "/blobs/", Duration::from_secs(3))],
    )
    .unwrap();
    let chart = charts::write_simple_chart(
        &w.path("charts"),
        "slow",
        "1.0.0",
        &w.set.redis.reference(slow.addr()),
    )
    .unwrap();
    let _ = chart;
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  slow: {{type: local, path: charts/slow, chart: slow, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    let home = w.path(".home");
    std::fs::create_dir_all(&home).unwrap();
    for signal in ["-INT", "-TERM"] {
        let blob_gets = || {
            slow.records()
                .iter()
                .filter(|r| r.path.contains("/blobs/"))
                .count()
        };
        let before = blob_gets();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_lazyoci"))
            .current_dir(w.dir.path())
            .args(["mirror", "--all"])
            .env("HOME", &home)
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("LAZYOCI_HELM", lazyoci::testkit::helm_bin())
            .env("LAZYOCI_INSECURE_REGISTRIES", slow.addr())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until a blob download of this run is in flight, then signal.
        for _ in 0..200 {
            if blob_gets() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = child.id().to_string();
        let sent = std::time::Instant::now();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        let took = sent.elapsed();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            took < Duration::from_secs(3),
            "{signal}: stopping took {took:?}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("interrupted"),
            "{signal}"
        );
        assert!(
            w.dst_digest("library/redis", "7.2").await.is_none(),
            "{signal}: a half-copied image was tagged"
        );
    }

    let rerun = w.run_env(
        &["mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", slow.addr())],
    );
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(
        w.dst_digest("library/redis", "7.2").await,
        Some(w.set.redis.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_remote_documents_are_refused_and_reported() {
    use lazyoci::testkit::proxy::Fault;
    let w = world().await;
    // A Helm repository whose index.yaml is not an index.
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(
        served.join("index.yaml"),
        "entries: [this is: not, {an index\n",
    )
    .unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    // A registry that serves a non-JSON manifest, a manifest of the wrong digest, and an
    // oversized one, for three images; a fourth is fine.
    let other = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": w.set.nginx.blobs[0], "size": 1}, "layers": []})).unwrap();
    let proxy = Proxy::start(
        w.src_host(),
        vec![
            Rule::fault(
                "GET",
                &format!("/team/job/manifests/{}", w.set.job.digest),
                Fault::Replace("text/html".into(), b"<html>login</html>".to_vec()),
                100,
            ),
            Rule::fault(
                "GET",
                &format!("/team/hook/manifests/{}", w.set.hook.digest),
                Fault::Replace("application/vnd.oci.image.manifest.v1+json".into(), other),
                100,
            ),
            Rule::fault(
                "GET",
                &format!("/team/sub/manifests/{}", w.set.sub.digest),
                Fault::Replace(
                    "application/vnd.oci.image.manifest.v1+json".into(),
                    vec![b' '; 5 << 20],
                ),
                100,
            ),
        ],
    )
    .unwrap();
    let imgs: Vec<String> = [&w.set.job, &w.set.hook, &w.set.sub, &w.set.nginx]
        .iter()
        .map(|s| s.reference(proxy.addr()))
        .collect();
    image_chart(&w, "docs", &imgs);
    w.config(
        "mirror.yaml",
        &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  bad-index: {{type: repo, repo: \"{}\", chart: x, versions: [\"1.0.0\"]}}\n  docs: {{type: local, path: charts/docs, chart: docs, versions: [\"1.0.0\"]}}\n", w.dst.addr(), repo.url()),
    );
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    let idx = version_of(&r, "bad-index", "1.0.0");
    assert!(
        idx["chartError"]
            .as_str()
            .unwrap()
            .contains("not a valid Helm index"),
        "{idx:#}"
    );
    let v = version_of(&r, "docs", "1.0.0");
    let error_of = |repo: &str| -> String {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["source"].as_str().unwrap().contains(repo))
            .map(|i| format!("{} {}", i["status"], i["error"]))
            .unwrap()
    };
    // An HTML login page where a manifest should be: refused (its bytes are not the digest).
    assert!(
        error_of("team/job").contains("served the wrong bytes"),
        "{}",
        error_of("team/job")
    );
    assert!(
        error_of("team/hook").contains("served the wrong bytes"),
        "{}",
        error_of("team/hook")
    );
    assert!(
        error_of("team/sub").contains("larger than"),
        "{}",
        error_of("team/sub")
    );
    for repo in ["team/job", "team/hook", "team/sub"] {
        assert!(
            oci::list_tags(w.dst.addr(), repo).await.unwrap().is_empty(),
            "{repo} was tagged"
        );
    }
    assert_eq!(
        w.dst_digest("library/nginx", "1.25").await,
        Some(w.set.nginx.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_indexes_and_archives_are_refused_without_reading_them_whole() {
    let w = world().await;
    let big_index = w.path("big-index");
    let big_archive = w.path("big-archive");
    for d in [&big_index, &big_archive] {
        std::fs::create_dir_all(d).unwrap();
    }
    // 130 MiB of index.yaml (the limit is 128 MiB).
    let mut f = std::fs::File::create(big_index.join("index.yaml")).unwrap();
    let line = format!("# {}\n", "x".repeat(1021));
    for _ in 0..(130 * 1024) {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    // A 65 MiB "archive" (the limit is 64 MiB), with an index that lists it.
    std::fs::write(big_archive.join("huge-1.0.0.tgz"), vec![0u8; 65 << 20]).unwrap();
    std::fs::write(big_archive.join("index.yaml"), "apiVersion: v1\nentries:\n  huge:\n  - name: huge\n    version: 1.0.0\n    urls: [huge-1.0.0.tgz]\n").unwrap();
    let (r1, r2) = (
        helm_repo::HelmRepo::serve(&big_index).await.unwrap(),
        helm_repo::HelmRepo::serve(&big_archive).await.unwrap(),
    );
    image_chart(&w, "fine", &[w.set.job.reference(w.src_host())]);
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}, insecure: true}}\nupstreams:\n  a: {{type: repo, repo: \"{}\", chart: a, versions: [\"1.0.0\"]}}\n  huge: {{type: repo, repo: \"{}\", chart: huge, versions: [\"1.0.0\"]}}\n  fine: {{type: local, path: charts/fine, chart: fine, versions: [\"1.0.0\"]}}\n",
            w.dst.addr(),
            r1.url(),
            r2.url()
        ),
    );
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    assert!(
        version_of(&r, "a", "1.0.0")["chartError"]
            .as_str()
            .unwrap()
            .contains("larger than 128 MiB"),
        "{r:#}"
    );
    assert!(
        version_of(&r, "huge", "1.0.0")["chartError"]
            .as_str()
            .unwrap()
            .contains("larger than 64 MiB"),
        "{r:#}"
    );
    assert_eq!(version_of(&r, "fine", "1.0.0")["chartStatus"], "pushed");
}
