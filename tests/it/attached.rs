//! Signatures, attestations and referrers travel with their images: cosign's
//! `sha256-<hex>.sig`/`.att` tags and an OCI 1.1 referrer, found through the referrers tag
//! schema (the test registry has no referrers API) or, through the fault proxy, the API.

use lazyoci::testkit::images::{Signed, digest_tag, signed_image};
use lazyoci::testkit::proxy::{Fault, Proxy, Rule};

use crate::common::*;

const REPO: &str = "t/signed/app";

fn mirror_yaml(w: &World) {
    w.config("mirror.yaml", &format!("target: {{url: {}/t, insecure: true}}\nupstreams:\n  signed: {{type: local, path: charts/signed, chart: signed, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
}

/// (kind, status, digest) of the image's `attached` entries, sorted.
fn attached(run: &Run) -> Vec<(String, String, String)> {
    let image = version_of(&run.json(), "signed", "1.0.0")["images"][0].clone();
    let mut out: Vec<(String, String, String)> = image["attached"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    (s("kind"), s("status"), s("digest"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn expected(s: &Signed, status: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = [
        ("attestation", &s.att),
        ("referrer", &s.referrer),
        ("referrers-index", s.referrers_index.as_ref().unwrap()),
        ("signature", &s.sig),
    ]
    .iter()
    .map(|(k, d)| (k.to_string(), status.to_string(), d.to_string()))
    .collect();
    v.sort();
    v
}

/// Digests the target holds for the image's attached artifacts: .sig, .att, the referrer, the index.
async fn at_target(w: &World, s: &Signed) -> [Option<String>; 4] {
    let d = &s.image.digest;
    [
        w.dst_digest(REPO, &digest_tag(d, ".sig")).await,
        w.dst_digest(REPO, &digest_tag(d, ".att")).await,
        w.dst_digest(REPO, &s.referrer).await,
        w.dst_digest(REPO, &digest_tag(d, "")).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_attestations_and_referrers_travel_with_their_image() {
    let w = world().await;
    let s = signed_image(w.src_host(), "signed/app", "1.0", 500, true)
        .await
        .unwrap();
    image_chart(&w, "signed", &[s.image.reference(w.src_host())]);
    mirror_yaml(&w);

    let dry = w.run(&["mirror", "--all", "--dry-run", "-o", "json"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(attached(&dry), expected(&s, "would-copy"), "{dry:?}");
    assert!(w.dst_writes().is_empty(), "the dry run wrote");

    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(attached(&run), expected(&s, "copied"), "{run:?}");
    assert_eq!(
        w.dst_digest(REPO, "1.0").await,
        Some(s.image.digest.clone())
    );
    assert_eq!(
        at_target(&w, &s).await,
        [
            Some(s.sig.clone()),
            Some(s.att.clone()),
            Some(s.referrer.clone()),
            s.referrers_index.clone()
        ]
    );
    // The signature's blobs came along, verified by digest.
    let (_, sig) = oci::get_manifest(w.dst.addr(), REPO, &s.sig)
        .await
        .unwrap()
        .unwrap();
    let sig: serde_json::Value = serde_json::from_slice(&sig).unwrap();
    let layer = sig["layers"][0]["digest"].as_str().unwrap();
    assert!(oci::blob_exists(w.dst.addr(), REPO, layer).await.unwrap());
    let text = w.run(&["mirror", "--all", "--dry-run"]);
    assert!(
        text.stdout
            .contains(&format!("{} → exists\n", s.image.reference(w.src_host()))),
        "nothing left to copy, so no suffix: {text:?}"
    );

    // A re-run only compares digests: HEADs, one referrers API probe, no GET of a manifest
    // or blob at the source, no write at the target.
    let writes = w.dst_writes().len();
    let blob_gets = w.src.requests("GET", "/blobs/").len();
    let manifest_gets = w.src.requests("GET", "/manifests/").len();
    let probes = w.src.requests("GET", "/referrers/").len();
    let again = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let mut skipped = expected(&s, "skipped");
    skipped.retain(|(k, _, _)| k != "referrer"); // behind an unchanged index: not looked at
    assert_eq!(attached(&again), skipped, "{again:?}");
    assert_eq!(w.dst_writes().len(), writes, "the re-run wrote");
    assert_eq!(
        w.src.requests("GET", "/blobs/").len(),
        blob_gets,
        "blob GETs"
    );
    assert_eq!(
        w.src.requests("GET", "/manifests/").len(),
        manifest_gets,
        "manifest GETs"
    );
    assert_eq!(w.src.requests("GET", "/referrers/").len(), probes + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_can_be_turned_off_by_flag_and_by_spec() {
    let w = world().await;
    let s = signed_image(w.src_host(), "signed/app", "1.0", 600, true)
        .await
        .unwrap();
    image_chart(&w, "signed", &[s.image.reference(w.src_host())]);
    mirror_yaml(&w);
    let none = [None, None, None, None];

    let run = w.run(&["mirror", "--all", "-o", "json", "--no-signatures"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        w.dst_digest(REPO, "1.0").await,
        Some(s.image.digest.clone())
    );
    assert_eq!(at_target(&w, &s).await, none);
    assert!(attached(&run).is_empty(), "{run:?}");
    let asked = |w: &World| {
        w.src.requests("HEAD", "/manifests/sha256-").len()
            + w.src.requests("GET", "/referrers/").len()
    };
    assert_eq!(asked(&w), 0, "--no-signatures still looked for signatures");

    w.config("chartmirror.yaml", &format!("apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {{name: m}}\nspec:\n  signatures: false\n  target: {{url: {}/t, insecure: true}}\n  upstreams:\n    - {{name: signed, type: local, path: charts/signed, chart: signed, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    let run = w.run(&["mirror", "--all", "-c", "chartmirror.yaml", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(at_target(&w, &s).await, none);
    assert_eq!(
        asked(&w),
        0,
        "spec.signatures: false still looked for signatures"
    );

    // The default brings them over: what kept them out above was the switch.
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(attached(&run), expected(&s, "copied"), "{run:?}");
    assert!(at_target(&w, &s).await.iter().all(Option::is_some));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_from_the_api_get_a_tag_schema_index_on_a_target_without_it() {
    let w = world().await;
    let s = signed_image(w.src_host(), "signed/app", "1.0", 700, false)
        .await
        .unwrap();
    // The source answers the referrers API (through the proxy); the target does not.
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": images::OCI_INDEX, "manifests": [s.referrer_descriptor]})).unwrap();
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "GET",
            "/referrers/",
            Fault::Replace(images::OCI_INDEX.into(), index),
            100,
        )],
    )
    .unwrap();
    image_chart(&w, "signed", &[s.image.reference(proxy.addr())]);
    mirror_yaml(&w);
    let env = [("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())];
    let run = w.run_env(&["mirror", "--all", "-o", "json"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        proxy.faults_applied(0),
        1,
        "the referrers API was not asked"
    );
    assert_eq!(
        w.dst_digest(REPO, &s.referrer).await,
        Some(s.referrer.clone())
    );
    let tag = digest_tag(&s.image.digest, "");
    let (_, idx) = oci::get_manifest(w.dst.addr(), REPO, &tag)
        .await
        .unwrap()
        .expect("no referrers tag schema index at the target");
    let idx: serde_json::Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(
        idx["manifests"][0]["digest"],
        s.referrer.as_str(),
        "{idx:#}"
    );
    assert_eq!(idx["manifests"][0]["artifactType"], "application/spdx+json");
    // The API answered, so the source's tag schema was never consulted.
    let tag_path = format!("/manifests/{tag}");
    assert!(
        !proxy.records().iter().any(|r| r.path.ends_with(&tag_path)),
        "{:?}",
        proxy.records()
    );
    let writes = w.dst_writes().len();
    let again = w.run_env(&["mirror", "--all"], &env);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(w.dst_writes().len(), writes, "the re-run wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_artifact_that_cannot_be_copied_fails_the_image_before_its_tag() {
    let w = world().await;
    let s = signed_image(w.src_host(), "signed/app", "1.0", 800, true)
        .await
        .unwrap();
    let (_, sig) = oci::get_manifest(w.src_host(), "signed/app", &s.sig)
        .await
        .unwrap()
        .unwrap();
    let sig: serde_json::Value = serde_json::from_slice(&sig).unwrap();
    let layer = sig["layers"][0]["digest"].as_str().unwrap().to_string();
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "GET",
            &format!("/blobs/{layer}"),
            Fault::Corrupt,
            1000,
        )],
    )
    .unwrap();
    image_chart(&w, "signed", &[s.image.reference(proxy.addr())]);
    mirror_yaml(&w);
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let image = version_of(&run.json(), "signed", "1.0.0")["images"][0].clone();
    assert_eq!(image["status"], "failed", "{image:#}");
    let error = image["error"].as_str().unwrap();
    assert!(
        error.contains("signatures/attestations could not be copied")
            && error.contains("does not match its digest"),
        "{error}"
    );
    assert!(
        attached(&run)
            .iter()
            .any(|(k, st, d)| k == "signature" && st == "failed" && *d == s.sig),
        "{run:?}"
    );
    assert_eq!(
        w.dst_digest(REPO, "1.0").await,
        None,
        "the image was tagged without its signature"
    );
    assert_eq!(
        w.dst_digest(REPO, &digest_tag(&s.image.digest, ".sig"))
            .await,
        None
    );
}
