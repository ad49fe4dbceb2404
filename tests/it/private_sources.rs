//! Private Helm repositories: basic auth, bearer tokens, client certificates over TLS,
//! Helm's rule that credentials stay on the repository's host, and helm's
//! repositories.yaml. Real HTTP(S) servers on loopback.

use std::path::Path;

use lazyoci::testkit::helm_repo::{HelmRepo, RepoAuth, RepoOptions, RepoTls};
use lazyoci::testkit::proxy::Proxy;

use crate::common::*;

/// Serve chart `app` 1.0.0 (its image on the world's source) with `opts`; `base_url`
/// places the archive elsewhere.
async fn app_repo(w: &World, name: &str, opts: RepoOptions) -> HelmRepo {
    let chart = charts::write_simple_chart(
        &w.path(&format!("{name}-src")),
        "app",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    let served = w.path(name);
    std::fs::create_dir_all(&served).unwrap();
    let repo = HelmRepo::serve_with(&served, opts).await.unwrap();
    repo.publish(&[&chart], None).unwrap();
    repo
}

fn config(w: &World, path: &str, repo: &str, auth: &str) -> std::path::PathBuf {
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/{path}, insecure: true}}\nupstreams:\n  internal:\n    type: repo\n    repo: {repo}\n    chart: app\n    versions: [\"1.0.0\"]\n{auth}",
            w.dst.addr()
        ),
    )
}

fn host_of(url: &str) -> &str {
    url.split("://").nth(1).unwrap_or(url)
}

#[tokio::test]
async fn basic_auth_from_env_or_file_and_clear_failures() {
    let w = world().await;
    let basic = RepoOptions {
        auth: RepoAuth::Basic("robot".into(), "pa55-w0rd".into()),
        tls: None,
    };
    let repo = app_repo(&w, "basic", basic).await;
    let auth = "    auth:\n      username: robot\n      passwordEnv: CHARTS_PASS\n";

    // A variable that is not set: exit 2 at validation, naming key path and line, and not
    // one request sent.
    config(&w, "b0", repo.url(), auth);
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("line 10: upstreams.internal.auth.passwordEnv: environment variable CHARTS_PASS is not set"),
        "{run:?}"
    );
    assert!(repo.requests().is_empty(), "{:?}", repo.requests());

    // The right password.
    let run = w.run_env(
        &["mirror", "--all", "--charts-only"],
        &[("CHARTS_PASS", "pa55-w0rd")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("b0/app", "1.0.0").await.is_some());
    assert!(
        repo.requests_seen().iter().all(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))),
        "{:?}",
        repo.requests_seen()
    );

    // A wrong one: the message names the host and where the credentials came from, never
    // the secret.
    config(&w, "b1", repo.url(), auth);
    let run = w.run_env(
        &["mirror", "--all", "--charts-only"],
        &[("CHARTS_PASS", "wrong-guess")],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let want = format!(
        "HTTP 401 from {}: the credentials from upstreams.internal.auth (username robot, password from $CHARTS_PASS) were refused",
        host_of(repo.url())
    );
    assert!(run.stdout.contains(&want), "{want}\n{run:?}");
    assert!(!run.stdout.contains("wrong-guess") && !run.stderr.contains("wrong-guess"));

    // The password from a file next to the config.
    std::fs::write(w.path("charts.pass"), "pa55-w0rd\n").unwrap();
    config(
        &w,
        "b2",
        repo.url(),
        "    auth:\n      username: robot\n      password-file: ./charts.pass\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("b2/app", "1.0.0").await.is_some());

    // A file that cannot be read, and a password written inline: exit 2.
    config(
        &w,
        "b3",
        repo.url(),
        "    auth:\n      username: robot\n      passwordFile: ./missing.pass\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("upstreams.internal.auth.passwordFile: cannot read")
            && run.stderr.contains("missing.pass"),
        "{run:?}"
    );
    config(
        &w,
        "b3",
        repo.url(),
        "    auth:\n      username: robot\n      password: hunter2\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("a secret is never written in the config"),
        "{run:?}"
    );

    // No credentials at all: the message says where to give them.
    config(&w, "b4", repo.url(), "");
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("the repository wants credentials"),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_bearer_token_from_a_file_or_the_environment() {
    let w = world().await;
    let repo = app_repo(
        &w,
        "bearer",
        RepoOptions {
            auth: RepoAuth::Bearer("tok-123".into()),
            tls: None,
        },
    )
    .await;
    std::fs::write(w.path("charts.token"), "tok-123\n").unwrap();
    config(
        &w,
        "t0",
        repo.url(),
        "    auth:\n      tokenFile: charts.token\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("t0/app", "1.0.0").await.is_some());
    assert!(
        repo.requests_seen()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok-123"))
    );

    config(
        &w,
        "t1",
        repo.url(),
        "    auth:\n      tokenEnv: CHARTS_TOKEN\n",
    );
    let run = w.run_env(
        &["mirror", "--all", "--charts-only"],
        &[("CHARTS_TOKEN", "tok-999")],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("upstreams.internal.auth (token from $CHARTS_TOKEN) were refused"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("tok-999") && !run.stderr.contains("tok-999"));
}

fn mtls(dir: &Path) -> RepoTls {
    RepoTls {
        cert: dir.join("srv.crt"),
        key: dir.join("srv.key"),
        client_ca: Some(dir.join("ca.crt")),
    }
}

#[tokio::test]
async fn a_client_certificate_over_tls_with_the_upstreams_own_ca() {
    let w = world().await;
    let certs = w.path("tls");
    tls_certs(&certs);
    client_cert(&certs, "client");
    let repo = app_repo(
        &w,
        "mtls",
        RepoOptions {
            auth: RepoAuth::None,
            tls: Some(mtls(&certs)),
        },
    )
    .await;

    // The CA for this upstream only, and the client certificate.
    config(
        &w,
        "m0",
        repo.url(),
        "    auth:\n      caFile: tls/ca.crt\n      certFile: tls/client.crt\n      keyFile: tls/client.key\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("m0/app", "1.0.0").await.is_some());

    // Without the client certificate the handshake is refused; without the CA the server
    // is not trusted.
    config(
        &w,
        "m1",
        repo.url(),
        "    auth:\n      caFile: tls/ca.crt\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("cannot read Helm repository index"),
        "{run:?}"
    );
    config(&w, "m1", repo.url(), "");
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.to_lowercase().contains("certificate"), "{run:?}");

    // A certificate with someone else's key is a setup error, before any request.
    let before = repo.requests().len();
    config(
        &w,
        "m2",
        repo.url(),
        "    auth:\n      caFile: tls/ca.crt\n      certFile: tls/client.crt\n      keyFile: tls/srv.key\n",
    );
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("upstreams.internal.auth.certFile")
            && run
                .stderr
                .contains("the client certificate does not match the private key"),
        "{run:?}"
    );
    assert_eq!(repo.requests().len(), before);
}

#[tokio::test]
async fn archives_on_another_host_get_no_credentials_unless_pass_credentials() {
    let w = world().await;
    let chart = charts::write_simple_chart(
        &w.path("pc-src"),
        "app",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    // The archives live on another server, watched by a recording proxy; index.yaml (on
    // the authenticated repository) names them by absolute URL.
    std::fs::create_dir_all(w.path("pkgs")).unwrap();
    let pkgs = HelmRepo::serve(&w.path("pkgs")).await.unwrap();
    let proxy = Proxy::start(host_of(pkgs.url()), vec![]).unwrap();
    pkgs.publish(&[&chart], Some(&format!("http://{}", proxy.addr())))
        .unwrap();
    std::fs::create_dir_all(w.path("index")).unwrap();
    std::fs::copy(w.path("pkgs/index.yaml"), w.path("index/index.yaml")).unwrap();
    let repo = HelmRepo::serve_with(
        &w.path("index"),
        RepoOptions {
            auth: RepoAuth::Basic("robot".into(), "pa55-w0rd".into()),
            tls: None,
        },
    )
    .await
    .unwrap();
    let env = [("CHARTS_PASS", "pa55-w0rd")];
    for (pass, path) in [(false, "p0"), (true, "p1")] {
        config(
            &w,
            path,
            repo.url(),
            &format!(
                "    auth:\n      username: robot\n      passwordEnv: CHARTS_PASS\n      passCredentials: {pass}\n"
            ),
        );
        let cache = format!("cache-{path}");
        let run = w.run_env(
            &["mirror", "--all", "--charts-only", "--artifact-dir", &cache],
            &env,
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            w.dst_digest(&format!("{path}/app"), "1.0.0")
                .await
                .is_some()
        );
        let archive: Vec<_> = proxy
            .records()
            .into_iter()
            .filter(|r| r.path.ends_with("app-1.0.0.tgz"))
            .collect();
        let last = archive.last().expect("the archive came through the proxy");
        if pass {
            assert!(
                last.authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Basic ")),
                "passCredentials: true sends them: {last:?}"
            );
        } else {
            assert_eq!(
                last.authorization, None,
                "credentials leaked to another host"
            );
        }
    }
}

#[tokio::test]
async fn helms_repositories_yaml_supplies_credentials_and_tls_files() {
    let w = world().await;
    let certs = w.path("tls");
    tls_certs(&certs);
    client_cert(&certs, "client");
    let repo = app_repo(
        &w,
        "rc",
        RepoOptions {
            auth: RepoAuth::Basic("robot".into(), "pa55-w0rd".into()),
            tls: Some(mtls(&certs)),
        },
    )
    .await;
    // The real helm writes repositories.yaml (and checks the repository as it does).
    let home = w.path("helm-home");
    let t = |f: &str| certs.join(f).to_string_lossy().into_owned();
    helm(
        &home,
        &[
            "repo",
            "add",
            "internal",
            repo.url(),
            "--username",
            "robot",
            "--password",
            "pa55-w0rd",
            "--ca-file",
            &t("ca.crt"),
            "--cert-file",
            &t("client.crt"),
            "--key-file",
            &t("client.key"),
        ],
    )
    .unwrap();
    let rc = home.join("config/repositories.yaml");
    assert!(rc.is_file());
    config(&w, "r0", &format!("{}/", repo.url()), "");
    let rc_arg = rc.to_string_lossy().into_owned();
    let run = w.run(&[
        "mirror",
        "--all",
        "--charts-only",
        "--repository-config",
        &rc_arg,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("r0/app", "1.0.0").await.is_some());
    // Without it, the same config fails (the credentials did come from the file).
    config(&w, "r1", repo.url(), "");
    let run = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(run.code, 1, "{run:?}");
    // A repositories.yaml that cannot be read is a usage error.
    let run = w.run(&["mirror", "--all", "--repository-config", "nonexistent.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--repository-config"), "{run:?}");
}

#[tokio::test]
async fn a_chartmirror_manifest_on_the_cli_warns_about_each_secret_it_cannot_read() {
    let w = world().await;
    let chart = charts::write_simple_chart(
        &w.path("c"),
        "ocichart",
        "2.3.4",
        &w.set.redis.reference(w.src_host()),
    )
    .unwrap();
    push_oci_chart(&w, &chart, "ocichart-2.3.4.tgz");
    w.config(
        "cm.yaml",
        &format!(
            "apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {{name: m}}\nspec:\n  target:\n    url: \"{}/mirror\"\n    insecure: true\n    secretRef: {{name: push-creds}}\n    certSecretRef: {{name: push-ca}}\n  upstreams:\n    - name: oc\n      type: oci\n      registry: \"oci://{}/charts\"\n      chart: ocichart\n      versions: [\"2.3.4\"]\n      secretRef: {{name: oc-auth}}\n      certSecretRef: {{name: oc-tls}}\n",
            w.dst.addr(),
            w.src_host()
        ),
    );
    for args in [
        &["mirror", "-c", "cm.yaml", "--all", "--dry-run"][..],
        &["images", "-c", "cm.yaml"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 0, "{r:?}");
        // Once per field, naming the Secret and what the CLI takes instead.
        for (field, secret, instead) in [
            ("spec.target.secretRef", "push-creds", "docker config"),
            ("spec.target.certSecretRef", "push-ca", "--ca-file"),
            ("spec.upstreams[0].secretRef (oc)", "oc-auth", "`auth:`"),
            (
                "spec.upstreams[0].certSecretRef (oc)",
                "oc-tls",
                "caFile/certFile/keyFile",
            ),
        ] {
            let lines: Vec<&str> = r
                .stderr
                .lines()
                .filter(|l| l.starts_with(&format!("warning: {field} ")))
                .collect();
            assert_eq!(lines.len(), 1, "{field}: {r:?}");
            assert!(
                lines[0].contains(&format!("(Secret \"{secret}\") is ignored"))
                    && lines[0].contains(instead),
                "{lines:?}"
            );
        }
    }
    // The same spec as mirror.yaml has no Secret references, and no warnings.
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/mirror, insecure: true}}\nupstreams:\n  oc: {{type: oci, registry: \"oci://{}/charts\", chart: ocichart, versions: [\"2.3.4\"]}}\n",
            w.dst.addr(),
            w.src_host()
        ),
    );
    let r = w.run(&["mirror", "--all", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning:"), "{r:?}");
}
