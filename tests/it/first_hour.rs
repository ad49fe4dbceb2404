//! A newcomer's first hour (issue 14): the scripts the README names fail loudly when they
//! cannot do their job, and help and output flags mean what they say.

/// `scripts/registries.sh start` with its source port held by another registry: it must
/// fail and say so, not report the other process's registry as its own.
#[tokio::test]
async fn registries_sh_refuses_a_busy_port() {
    let busy = lazyoci::testkit::registry::Registry::start().await.unwrap();
    let port = busy.addr().rsplit(':').next().unwrap().to_string();
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let script = format!("{}/scripts/registries.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(dir.path())
        .env("SRC_PORT", &port)
        .env("DST_PORT", &free)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::process::Command::new("bash")
        .arg(&script)
        .arg("stop")
        .arg(dir.path())
        .output();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} is already in use")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("source/pid").exists() && !dir.path().join("target/pid").exists(),
        "nothing was left running"
    );
}

/// `crd -o json` prints JSON (the same CRD as the YAML), and `crd --help` does not offer
/// flags `crd` ignores.
#[test]
fn crd_prints_json_when_asked_and_its_help_shows_what_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| crate::common::run_lazyoci(dir.path(), args, &[], &[]);
    let json = run(&["crd", "-o", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let crd = json.json();
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "chartmirrors.lazyoci.io");
    let yaml = run(&["crd"]);
    assert!(
        yaml.stdout.contains("kind: CustomResourceDefinition"),
        "{yaml:?}"
    );
    let help = run(&["crd", "--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(
        help.stdout.contains("--output") && !help.stdout.contains("--theme"),
        "{help:?}"
    );
}
