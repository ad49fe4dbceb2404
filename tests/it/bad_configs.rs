//! The bad-config corpus: every file in `tests/bad-configs/` is run through the real binary
//! against one real target registry. Each must exit 2 with nothing on stdout, name the file
//! and say what `tests/bad-configs/expected.yaml` says — and the registry must see no write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lazyoci::testkit::registry::Registry;

use crate::common::run_lazyoci;

const PLACEHOLDER: &str = "__TARGET__";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    file: String,
    exit: i32,
    stderr_contains: Vec<String>,
    /// Written by the test instead of read from the directory.
    #[serde(default)]
    generate: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs")
}

/// Files too big to commit.
fn generate(kind: &str, target: &str) -> Vec<u8> {
    match kind {
        // Just over the 4 MiB limit, and otherwise a valid start.
        "over-4mib" => {
            let mut s = format!("target:\n  url: {target}\n");
            while s.len() <= lazyoci::config::MAX_CONFIG_BYTES {
                s.push_str("# padding padding padding padding padding padding padding\n");
            }
            s.into_bytes()
        }
        // 90,000 keys in one mapping: once quadratic (a minute), now linear; the report is capped.
        "many-keys" => {
            let mut s = format!("# 90,000 unknown top-level keys\ntarget:\n  url: {target}\n");
            for i in 0..90_000 {
                s.push_str(&format!("k{i}: 1\n"));
            }
            s.into_bytes()
        }
        other => panic!("expected.yaml: unknown generate kind {other:?}"),
    }
}

fn replace_placeholder(bytes: &[u8], target: &str) -> Vec<u8> {
    let (p, t) = (PLACEHOLDER.as_bytes(), target.as_bytes());
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(p) {
            out.extend_from_slice(t);
            i += p.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn every_bad_config_exits_2_says_why_and_writes_nothing() {
    lazyoci::install_crypto_provider();
    let registry = Registry::start()
        .await
        .expect("start target registry (run scripts/install-test-deps.sh)");
    let target = registry.addr().to_string();
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("expected.yaml")).unwrap();
    let expectations: Vec<Expectation> = serde_saphyr::from_str(&text).unwrap();

    // Every committed file has an expectation, and every expectation a file (or a generator).
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "expected.yaml")
        .collect();
    let mut expected = BTreeSet::new();
    for e in &expectations {
        assert!(
            expected.insert(e.file.clone()),
            "{} is listed twice in expected.yaml",
            e.file
        );
        assert!(!e.stderr_contains.is_empty(), "{}: no needles", e.file);
        assert_eq!(
            e.generate.is_some(),
            !on_disk.contains(&e.file),
            "{}: a file must be either committed or generated",
            e.file
        );
    }
    let generated: BTreeSet<String> = expectations
        .iter()
        .filter(|e| e.generate.is_some())
        .map(|e| e.file.clone())
        .collect();
    let extras: Vec<&String> = on_disk.difference(&expected).collect();
    assert!(
        extras.is_empty(),
        "files without an expectation: {extras:?}"
    );
    let missing: Vec<&String> = expected
        .difference(&on_disk)
        .filter(|f| !generated.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "expectations without a file: {missing:?}"
    );
    assert!(
        expectations.len() >= 30,
        "the corpus has only {} files",
        expectations.len()
    );

    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for e in &expectations {
        let bytes = match &e.generate {
            Some(kind) => generate(kind, &target),
            None => replace_placeholder(&std::fs::read(dir.join(&e.file)).unwrap(), &target),
        };
        std::fs::write(work.path().join(&e.file), bytes).unwrap();
        let run = run_lazyoci(work.path(), &["mirror", "--all", "-c", &e.file], &[], &[]);
        let mut wrong = Vec::new();
        if run.code != e.exit {
            wrong.push(format!("exit {} (expected {})", run.code, e.exit));
        }
        if !run.stdout.is_empty() {
            wrong.push("stdout is not empty".to_string());
        }
        if !run.stderr.contains(&e.file) {
            wrong.push("stderr does not name the file".to_string());
        }
        if run.stderr.contains("panicked") {
            wrong.push("the binary panicked".to_string());
        }
        for needle in &e.stderr_contains {
            let needle = needle.replace(PLACEHOLDER, &target);
            if !run.stderr.contains(&needle) {
                wrong.push(format!("missing {needle:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n{run:?}", e.file, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs misbehaved:\n\n{}",
        failures.len(),
        expectations.len(),
        failures.join("\n\n")
    );

    // Nothing reached the registry (log() waits for the access log to settle).
    let writes: Vec<String> = ["PUT", "POST", "PATCH", "DELETE"]
        .iter()
        .flat_map(|m| registry.requests(m, "/v2/"))
        .collect();
    assert!(writes.is_empty(), "bad configs led to writes: {writes:?}");
}
