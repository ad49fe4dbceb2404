//! Private OCI sources: a registry with htpasswd auth over TLS serving a chart and its
//! image, with credentials from the upstream's `auth` (an env var), then from
//! `REGISTRY_AUTH_FILE` (podman/skopeo's auth.json).

use lazyoci::testkit::registry::{Registry, RegistryConfig};

use crate::common::*;

#[tokio::test]
async fn an_htpasswd_registry_over_tls_as_chart_and_image_source() {
    let w = world().await;
    let certs = w.path("tls");
    tls_certs(&certs);
    // Two registries on one storage: a plain one to seed it, the private one (TLS and
    // basic auth) that lazyoci reads from.
    let storage = w.path("private-storage");
    let seed = Registry::start_with(RegistryConfig {
        storage: Some(storage.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let private = Registry::start_with(RegistryConfig {
        htpasswd: Some(format!("alice:{hash}")),
        tls: Some((certs.join("srv.crt"), certs.join("srv.key"))),
        storage: Some(storage),
        ..Default::default()
    })
    .await
    .unwrap();
    let host = private.addr();
    let img = images::image(
        seed.addr(),
        "library/app",
        "1.0",
        &[3],
        2000,
        false,
        "amd64",
    )
    .await
    .unwrap();
    let chart = charts::write_simple_chart(
        &w.path("c"),
        "ocichart",
        "2.3.4",
        &format!("{host}/library/app:1.0"),
    )
    .unwrap();
    let home = w.path("helm-home");
    let out = w.path("pkg");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    helm(&home, &["package", "-d", &s(&out), &s(&chart)]).unwrap();
    helm(
        &home,
        &[
            "push",
            &s(&out.join("ocichart-2.3.4.tgz")),
            &format!("oci://{}/charts", seed.addr()),
            "--plain-http",
        ],
    )
    .unwrap();
    let config = |path: &str, auth: &str| {
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{path}, insecure: true}}\nupstreams:\n  oc:\n    type: oci\n    registry: oci://{host}/charts\n    chart: ocichart\n    versions: [\"2.3.4\"]\n{auth}",
                w.dst.addr()
            ),
        )
    };

    // Credentials from an env var and the upstream's own CA: chart and image both come.
    let auth = "    auth: {username: alice, passwordEnv: REG_PASS, caFile: tls/ca.crt}\n";
    config("o1", auth);
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("REG_PASS", "s3cret")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("o1/ocichart", "2.3.4").await.is_some());
    assert_eq!(
        w.dst_digest("o1/library/app", "1.0").await,
        Some(img.digest.clone())
    );

    // A wrong password names the registry and where the credentials came from.
    config("o2", auth);
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("REG_PASS", "nope-nope")],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let error = version_of(&run.json(), "oc", "2.3.4")["chartError"].to_string();
    assert!(
        error.contains(&format!("authentication to {host} failed"))
            && error.contains("upstreams.oc.auth (username alice, password from $REG_PASS)"),
        "{error}"
    );
    assert!(!run.stdout.contains("nope-nope") && !run.stderr.contains("nope-nope"));

    // The same through REGISTRY_AUTH_FILE (and --ca-file), without an auth block.
    use base64::Engine as _;
    let auth_file = w.path("auth.json");
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        ),
    )
    .unwrap();
    config("o3", "");
    let ca = s(&certs.join("ca.crt"));
    let run = w.run_env(
        &["mirror", "--all", "--ca-file", &ca],
        &[("REGISTRY_AUTH_FILE", &s(&auth_file))],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        w.dst_digest("o3/library/app", "1.0").await,
        Some(img.digest.clone())
    );
    // Without it, no credentials are sent, and the message says how to give them.
    config("o4", "");
    let run = w.run(&["mirror", "--all", "--ca-file", &ca]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("requires a login"), "{run:?}");
}

/// A docker config `identitytoken` (what `docker login` stores for OAuth2 logins) is
/// traded for access tokens at the registry's token service (refresh flow), not dropped.
#[tokio::test]
async fn an_identity_token_login_uses_the_oauth2_refresh_flow() {
    use lazyoci::testkit::token::TokenServer;
    let w = world().await;
    let certs = w.path("tls");
    tls_certs(&certs);
    // The token service signs with the test CA's key; the registry trusts that CA.
    let tokens = TokenServer::start(
        &certs.join("srv.crt"),
        &certs.join("srv.key"),
        &certs.join("ca.crt"),
        &certs.join("ca.key"),
        "refresh-abc",
    )
    .await
    .unwrap();
    let storage = w.path("token-storage");
    let seed = Registry::start_with(RegistryConfig {
        storage: Some(storage.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let registry = Registry::start_with(RegistryConfig {
        storage: Some(storage),
        token: Some((tokens.url().to_string(), certs.join("ca.crt"))),
        ..Default::default()
    })
    .await
    .unwrap();
    let host = registry.addr();
    let img = images::image(seed.addr(), "team/app", "1.0", &[5], 1500, false, "amd64")
        .await
        .unwrap();
    image_chart(&w, "tok", &[format!("{host}/team/app:1.0")]);
    let ca = certs.join("ca.crt").to_string_lossy().into_owned();
    let login = |token: &str| {
        let dir = w.path(".home/docker");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            format!(r#"{{"auths":{{"{host}":{{"identitytoken":"{token}"}}}}}}"#),
        )
        .unwrap();
    };
    let insecure = format!("{},{host}", w.src_host());
    let run = |path: &str| {
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{path}, insecure: true}}\nupstreams:\n  tok: {{type: local, path: charts/tok, chart: tok, versions: [\"1.0.0\"]}}\n",
                w.dst.addr()
            ),
        );
        w.run_env(
            &["mirror", "--all", "--ca-file", &ca],
            &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
        )
    };

    login("refresh-abc");
    let r = run("k1");
    assert_eq!(r.code, 0, "{r:?}\n{}", registry.log());
    assert_eq!(w.dst_digest("k1/team/app", "1.0").await, Some(img.digest));
    let asked = tokens.requests();
    assert!(
        !asked.is_empty()
            && asked.iter().all(|t| t.method == "POST"
                && t.grant_type.as_deref() == Some("refresh_token")
                && t.refresh_ok
                && !t.authorization),
        "{asked:?}"
    );

    // A refresh token the service does not know: refused, saying where it came from.
    login("stale-token");
    let r = run("k2");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("the token service refused the credentials (HTTP 401)")
            && r.stdout.contains(&format!("the login for {host}")),
        "{r:?}"
    );
    assert!(!r.stdout.contains("stale-token") && !r.stderr.contains("stale-token"));
}
