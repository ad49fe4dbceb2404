//! `lazyoci runtime-config`: the containerd and CRI-O/podman files parse as what those
//! runtimes read (TOML), and map every source host of the config's images to the target.
//! Real helm renders the chart; no registry is contacted.

use std::collections::BTreeMap;

use crate::common::{World, charts, world};

fn config(w: &World, chart: &std::path::Path) -> std::path::PathBuf {
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/mirror\n  insecure: true\nimages:\n  extra: [\"quay.io/org/tool:1\", \"docker.io/team/worker:1.0\"]\nupstreams:\n  reloc:\n    type: local\n    path: {}\n    chart: reloc\n    versions: [\"1.0.0\"]\n",
            w.dst.addr(),
            chart.display()
        ),
    )
}

#[tokio::test]
async fn containerd_and_registries_conf_send_every_source_host_to_the_target() {
    let w = world().await;
    let chart = charts::write_overlay_chart(&w.path("charts"), w.src_host(), &w.set).unwrap();
    let cfg = config(&w, &chart);
    let cfg = cfg.to_str().unwrap();
    let (src, dst) = (w.src_host(), w.dst.addr());

    let dir = w.path("certs.d");
    let run = w.run(&[
        "runtime-config",
        "-c",
        cfg,
        "--format",
        "containerd",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut files: BTreeMap<String, toml::Table> = BTreeMap::new();
    let mut chunks = run.stdout.split(lazyoci::cli::runtime::FILE_MARKER);
    let head = chunks.next().unwrap();
    toml::from_str::<toml::Table>(head).expect("the header is comments only");
    for chunk in chunks {
        let (path, body) = chunk.split_once(" <==\n").unwrap();
        let table: toml::Table =
            toml::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
        let on_disk =
            std::fs::read_to_string(dir.join(path.trim_start_matches("/etc/containerd/certs.d/")))
                .unwrap();
        assert_eq!(on_disk.trim_end(), body.trim_end(), "{path}");
        files.insert(path.to_string(), table);
    }
    let hosts: Vec<&str> = files
        .keys()
        .map(|p| {
            p.trim_start_matches("/etc/containerd/certs.d/")
                .trim_end_matches("/hosts.toml")
        })
        .collect();
    assert_eq!(hosts, [src, "docker.io", "quay.io"], "{}", run.stdout);
    let mirror = format!("http://{dst}/v2/mirror");
    for (path, t) in &files {
        let host = &t["host"][&mirror];
        assert_eq!(host["override_path"].as_bool(), Some(true), "{path}");
        assert_eq!(host["capabilities"].as_array().unwrap().len(), 2, "{path}");
    }
    assert_eq!(
        files["/etc/containerd/certs.d/docker.io/hosts.toml"]["server"].as_str(),
        Some("https://registry-1.docker.io")
    );
    // Two hosts would need the same mirror repository, and the output says so.
    assert!(
        run.stdout
            .contains(&format!("#   {dst}/mirror/team/worker ← {src}, docker.io")),
        "{}",
        run.stdout
    );

    let run = w.run(&["runtime-config", "-c", cfg, "--format", "registries-conf"]);
    assert_eq!(run.code, 0, "{run:?}");
    let conf: toml::Table = toml::from_str(&run.stdout).unwrap();
    let mapped: BTreeMap<String, (String, String, bool)> = conf["registry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["mirror"].as_array().unwrap()[0];
            (
                r["prefix"].as_str().unwrap().to_string(),
                (
                    r["location"].as_str().unwrap().to_string(),
                    m["location"].as_str().unwrap().to_string(),
                    m["insecure"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    let want = |h: &str| (h.to_string(), format!("{dst}/mirror"), true);
    assert_eq!(
        mapped,
        BTreeMap::from([
            (src.to_string(), want(src)),
            ("docker.io".to_string(), want("docker.io")),
            ("quay.io".to_string(), want("quay.io")),
        ])
    );
}
