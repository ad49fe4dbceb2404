//! Standard readers of a bundle besides skopeo (tests/it/bundle.rs): umoci, the OCI's own
//! layout tool, lists and reads the directory form; containerd, what Kubernetes nodes run,
//! imports the .tar form (`ctr images import`, the usual way to side-load an air-gapped node)
//! with every image under its name and digest, the Docker schema 2 ones that Debian's skopeo
//! cannot look up included. containerd needs root for its content store; that test runs in a
//! root build, as CI's is, and is listed as ignored otherwise (build.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bundle::{bundle_config, bundle_name};
use crate::common::*;

/// Every name a bundle should hold and its digest: the 10 images of the set and the chart.
fn expected_names(w: &World, dir: &Path) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = w
        .set
        .all()
        .into_iter()
        .map(|img| (bundle_name(img).0, img.digest.clone()))
        .collect();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("lazyoci.json")).unwrap()).unwrap();
    let chart = &meta["charts"][0];
    names.insert(
        format!(
            "{}:{}",
            chart["repository"].as_str().unwrap(),
            chart["tag"].as_str().unwrap()
        ),
        chart["digest"].as_str().unwrap().to_string(),
    );
    names
}

/// The ref names of `index.json`.
fn index_names(dir: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut v: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn tool(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&stdout_of(Command::new(program).args(args))).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn umoci_lists_and_reads_a_bundle_directory() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["bundle", "create", "--all", "--output", "out"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = w.path("out");
    let layout = dir.to_str().unwrap();

    // Every entry has a name (those held by digest only as `repo@sha256:…`), and umoci sees
    // exactly the names index.json holds.
    let mut listed: Vec<String> = tool("umoci", &["ls", "--layout", layout])
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    assert_eq!(listed, index_names(&dir));
    for name in expected_names(&w, &dir).keys() {
        assert!(listed.contains(name), "{name} not in {listed:?}");
    }
    // umoci reads OCI image manifests only: stat each OCI-typed single-platform image (its
    // config and layers are read and parsed).
    let mut stated = 0;
    for img in w.set.all() {
        let (ct, _) = oci::get_manifest(w.src.addr(), &img.repo, &img.tag)
            .await
            .unwrap()
            .unwrap();
        if ct != images::OCI_MANIFEST {
            continue;
        }
        let (name, _) = bundle_name(img);
        let stat = tool("umoci", &["stat", "--image", &format!("{layout}:{name}")]);
        assert!(stat.contains("LAYER"), "{name}: {stat}");
        stated += 1;
    }
    assert!(stated >= 5, "{stated}");
}

/// A containerd daemon of its own (content store, state and socket in a temp dir), stopped
/// on drop.
struct Containerd {
    child: Child,
    socket: String,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        // Under /tmp: a unix socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("ctrd")
            .tempdir_in("/tmp")
            .unwrap();
        let p = |s: &str| dir.path().join(s).display().to_string();
        let socket = p("c.sock");
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n",
            p("root"),
            p("state"),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd (scripts/install-test-deps.sh installs it)");
        let c = Containerd {
            child,
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("ctr")
            .args(["-a", &c.socket, "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> String {
        let mut all = vec!["-a", self.socket.as_str()];
        all.extend_from_slice(args);
        tool("ctr", &all)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg_attr(
    not(lazyoci_test_root),
    ignore = "needs root (containerd's content store): run the tests as root, as CI does"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_imports_every_image_of_a_bundle_tar_by_name_and_digest() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["bundle", "create", "--all", "--output", "out.tar"]);
    assert_eq!(run.code, 0, "{run:?}");
    let verified = w.run(&["bundle", "verify", "out.tar"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    // The names to expect, from the same content as a directory.
    let run = w.run(&["bundle", "create", "--all", "--output", "dir"]);
    assert_eq!(run.code, 0, "{run:?}");
    let expected = expected_names(&w, &w.path("dir"));

    let ctrd = Containerd::start();
    let tar = w.path("out.tar").display().to_string();
    ctrd.ctr(&["images", "import", "--no-unpack", "--all-platforms", &tar]);
    // REF TYPE DIGEST SIZE PLATFORMS LABELS
    let imported: BTreeMap<String, (String, String)> = ctrd
        .ctr(&["images", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    for (name, digest) in &expected {
        let (_, got) = imported
            .get(name)
            .unwrap_or_else(|| panic!("{name} not imported: {imported:?}"));
        assert_eq!(got, digest, "{name}");
    }
    assert!(
        imported.values().any(|(t, _)| t == images::DOCKER_MANIFEST),
        "the Docker schema 2 images are read too: {imported:?}"
    );
    // Every image's content (all platforms) is in containerd's store.
    let check = ctrd.ctr(&["images", "check"]);
    let mut checked = 0;
    for l in check.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[3], "complete", "{l}");
        checked += 1;
    }
    assert_eq!(checked, imported.len(), "{check}");
}
