use super::*;

fn auth() -> AuthSpec {
    AuthSpec::default()
}

#[test]
fn secrets_come_from_env_and_files_and_are_never_debug_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pass");
    std::fs::write(&file, "from-file\n").unwrap();
    // SAFETY: this test owns the variable name; no other test reads it.
    unsafe { std::env::set_var("LAZYOCI_TEST_ACCESS_USER", "robot") };
    let a = resolve(
        &AuthSpec {
            username_env: Some("LAZYOCI_TEST_ACCESS_USER".into()),
            password_file: Some(file.to_string_lossy().into_owned()),
            ..auth()
        },
        "upstreams.x.auth",
    )
    .unwrap();
    assert_eq!(
        a.credential,
        Some(SourceCredential::Basic {
            username: "robot".into(),
            password: "from-file".into()
        })
    );
    assert!(
        a.origin.contains("username from $LAZYOCI_TEST_ACCESS_USER"),
        "{}",
        a.origin
    );
    assert!(a.origin.contains("password from file"), "{}", a.origin);
    let shown = format!("{a:?}");
    assert!(!shown.contains("from-file"), "{shown}");
}

#[test]
fn a_missing_variable_or_file_names_the_key_and_what_to_do() {
    let e = resolve(
        &AuthSpec {
            username: Some("u".into()),
            password_env: Some("LAZYOCI_TEST_SURELY_UNSET".into()),
            ..auth()
        },
        "",
    )
    .unwrap_err();
    assert_eq!(e[0].0, "passwordEnv");
    assert!(
        e[0].1.contains("LAZYOCI_TEST_SURELY_UNSET is not set"),
        "{e:?}"
    );
    let e = resolve(
        &AuthSpec {
            token_file: Some("/nonexistent/token".into()),
            ..auth()
        },
        "",
    )
    .unwrap_err();
    assert_eq!(e[0].0, "tokenFile");
    assert!(e[0].1.contains("cannot read /nonexistent/token"), "{e:?}");
}

#[test]
fn combinations_that_cannot_work_are_problems() {
    let keys = |a: AuthSpec| a.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(
        keys(AuthSpec {
            username: Some("u".into()),
            ..auth()
        }),
        ["username"]
    );
    assert_eq!(
        keys(AuthSpec {
            cert_file: Some("c".into()),
            ..auth()
        }),
        ["certFile"]
    );
    assert_eq!(
        keys(AuthSpec {
            token_env: Some("T".into()),
            username: Some("u".into()),
            password_env: Some("P".into()),
            ..auth()
        }),
        ["tokenEnv"]
    );
    assert_eq!(
        keys(AuthSpec {
            password_env: Some("not a name".into()),
            username: Some("u".into()),
            ..auth()
        }),
        ["passwordEnv"]
    );
    assert_eq!(keys(auth()), ["username"]);
}
