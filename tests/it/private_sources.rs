//! Private Helm repositories: basic auth, bearer tokens, client certificates over TLS,
//! Helm's rule that credentials stay on the repository's host, and helm's
//! repositories.yaml. Real HTTP(S) servers on loopback.

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

/// How a run of [`attempt`] should end.
struct Expect<'a> {
    code: i32,
    /// Texts stdout holds.
    stdout: &'a [&'a str],
    /// Texts stderr holds.
    stderr: &'a [&'a str],
    /// Arguments after `mirror --all --charts-only`.
    args: &'a [&'a str],
}

impl<'a> Expect<'a> {
    /// Exit `code`, nothing more asked.
    fn exit(code: i32) -> Self {
        Expect {
            code,
            stdout: &[],
            stderr: &[],
            args: &[],
        }
    }
    fn stdout(self, stdout: &'a [&'a str]) -> Self {
        Expect { stdout, ..self }
    }
    fn stderr(self, stderr: &'a [&'a str]) -> Self {
        Expect { stderr, ..self }
    }
    fn args(self, args: &'a [&'a str]) -> Self {
        Expect { args, ..self }
    }
}

/// Write the config (target path `path`, the upstream's `auth` block), run
/// `mirror --all --charts-only` with `env`, and check `expect`: the exit code, the texts,
/// that no value of `env` (the secrets) is in the output, and after a success that the
/// chart is at the target.
async fn attempt(
    w: &World,
    repo: &str,
    path: &str,
    auth: &str,
    env: &[(&str, &str)],
    expect: Expect<'_>,
) -> Run {
    config(w, path, repo, auth);
    let mut args = vec!["mirror", "--all", "--charts-only"];
    args.extend_from_slice(expect.args);
    let run = w.run_env(&args, env);
    assert_eq!(run.code, expect.code, "{run:?}");
    for want in expect.stdout {
        assert!(run.stdout.contains(want), "{want}\n{run:?}");
    }
    for want in expect.stderr {
        assert!(run.stderr.contains(want), "{want}\n{run:?}");
    }
    for (_, secret) in env {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret in the output: {run:?}"
        );
    }
    if expect.code == 0 {
        assert!(
            w.dst_digest(&format!("{path}/app"), "1.0.0")
                .await
                .is_some()
        );
    }
    run
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
    let url = repo.url();
    let auth = "    auth:\n      username: robot\n      passwordEnv: CHARTS_PASS\n";

    // A variable that is not set: exit 2 at validation, naming key path and line, and not
    // one request sent.
    attempt(
        &w,
        url,
        "b0",
        auth,
        &[],
        Expect::exit(2).stderr(&[
            "line 10: upstreams.internal.auth.passwordEnv: environment variable CHARTS_PASS is not set",
        ]),
    )
    .await;
    assert!(repo.requests().is_empty(), "{:?}", repo.requests());

    // The right password.
    attempt(
        &w,
        url,
        "b0",
        auth,
        &[("CHARTS_PASS", "pa55-w0rd")],
        Expect::exit(0),
    )
    .await;
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
    let want = format!(
        "HTTP 401 from {}: the credentials from upstreams.internal.auth (username robot, password from $CHARTS_PASS) were refused",
        host_of(url)
    );
    attempt(
        &w,
        url,
        "b1",
        auth,
        &[("CHARTS_PASS", "wrong-guess")],
        Expect::exit(1).stdout(&[&want]),
    )
    .await;

    // The password from a file next to the config.
    std::fs::write(w.path("charts.pass"), "pa55-w0rd\n").unwrap();
    let from_file = "    auth:\n      username: robot\n      password-file: ./charts.pass\n";
    attempt(&w, url, "b2", from_file, &[], Expect::exit(0)).await;

    // A file that cannot be read, and a password written inline: exit 2.
    let missing = "    auth:\n      username: robot\n      passwordFile: ./missing.pass\n";
    let expect = Expect::exit(2).stderr(&[
        "upstreams.internal.auth.passwordFile: cannot read",
        "missing.pass",
    ]);
    attempt(&w, url, "b3", missing, &[], expect).await;
    let inline = "    auth:\n      username: robot\n      password: hunter2\n";
    let expect = Expect::exit(2).stderr(&["a secret is never written in the config"]);
    attempt(&w, url, "b3", inline, &[], expect).await;

    // No credentials at all: the message says where to give them.
    let expect = Expect::exit(1).stdout(&["the repository wants credentials"]);
    attempt(&w, url, "b4", "", &[], expect).await;
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
    let from_file = "    auth:\n      tokenFile: charts.token\n";
    attempt(&w, repo.url(), "t0", from_file, &[], Expect::exit(0)).await;
    assert!(
        repo.requests_seen()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok-123"))
    );

    let from_env = "    auth:\n      tokenEnv: CHARTS_TOKEN\n";
    let expect = Expect::exit(1)
        .stdout(&["upstreams.internal.auth (token from $CHARTS_TOKEN) were refused"]);
    attempt(
        &w,
        repo.url(),
        "t1",
        from_env,
        &[("CHARTS_TOKEN", "tok-999")],
        expect,
    )
    .await;
}

/// An HTTPS [`app_repo`] with `auth` that demands a client certificate; the test CA, the
/// server's certificate and a client certificate `client` are made in `<scratch>/tls`,
/// which is returned.
async fn mtls_repo(w: &World, name: &str, auth: RepoAuth) -> (HelmRepo, std::path::PathBuf) {
    let certs = w.path("tls");
    tls_certs(&certs);
    client_cert(&certs, "client");
    let tls = RepoTls {
        cert: certs.join("srv.crt"),
        key: certs.join("srv.key"),
        client_ca: Some(certs.join("ca.crt")),
    };
    let repo = app_repo(
        w,
        name,
        RepoOptions {
            auth,
            tls: Some(tls),
        },
    )
    .await;
    (repo, certs)
}

#[tokio::test]
async fn a_client_certificate_over_tls_with_the_upstreams_own_ca() {
    let w = world().await;
    let (repo, _) = mtls_repo(&w, "mtls", RepoAuth::None).await;
    let url = repo.url();

    // The CA for this upstream only, and the client certificate.
    let both = "    auth:\n      caFile: tls/ca.crt\n      certFile: tls/client.crt\n      keyFile: tls/client.key\n";
    attempt(&w, url, "m0", both, &[], Expect::exit(0)).await;

    // Without the client certificate the handshake is refused; without the CA the server
    // is not trusted.
    let ca_only = "    auth:\n      caFile: tls/ca.crt\n";
    let expect = Expect::exit(1).stdout(&["cannot read Helm repository index"]);
    attempt(&w, url, "m1", ca_only, &[], expect).await;
    let run = attempt(&w, url, "m1", "", &[], Expect::exit(1)).await;
    assert!(run.stdout.to_lowercase().contains("certificate"), "{run:?}");

    // A certificate with someone else's key is a setup error, before any request.
    let before = repo.requests().len();
    let mismatched = "    auth:\n      caFile: tls/ca.crt\n      certFile: tls/client.crt\n      keyFile: tls/srv.key\n";
    let expect = Expect::exit(2).stderr(&[
        "upstreams.internal.auth.certFile",
        "the client certificate does not match the private key",
    ]);
    attempt(&w, url, "m2", mismatched, &[], expect).await;
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
        let auth = format!(
            "    auth:\n      username: robot\n      passwordEnv: CHARTS_PASS\n      passCredentials: {pass}\n"
        );
        let cache = format!("cache-{path}");
        let args = ["--artifact-dir", &cache];
        let expect = Expect::exit(0).args(&args);
        attempt(&w, repo.url(), path, &auth, &env, expect).await;
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
    let (repo, certs) = mtls_repo(
        &w,
        "rc",
        RepoAuth::Basic("robot".into(), "pa55-w0rd".into()),
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
    let rc_arg = rc.to_string_lossy().into_owned();
    let args = ["--repository-config", &rc_arg];
    let with_rc = Expect::exit(0).args(&args);
    attempt(&w, &format!("{}/", repo.url()), "r0", "", &[], with_rc).await;
    // Without it, the same config fails (the credentials did come from the file).
    attempt(&w, repo.url(), "r1", "", &[], Expect::exit(1)).await;
    // A repositories.yaml that cannot be read is a usage error.
    let unreadable = Expect::exit(2)
        .args(&["--repository-config", "nonexistent.yaml"])
        .stderr(&["--repository-config"]);
    attempt(&w, repo.url(), "r1", "", &[], unreadable).await;
}

#[tokio::test]
async fn a_chartmirror_manifest_on_the_cli_warns_about_each_secret_it_cannot_read() {
    let w = world().await;
    let chart = ocichart(&w);
    push_oci_chart(&w, &chart, OCICHART_ARCHIVE);
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
