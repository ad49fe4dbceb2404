use super::*;

fn upstream(ty: SourceType) -> UpstreamSpec {
    UpstreamSpec {
        name: "x".into(),
        source_type: ty,
        chart: "vault".into(),
        versions: vec!["1.0.0".into()],
        ..Default::default()
    }
}

#[test]
fn target_url_accepts_host_port_and_path_and_rejects_tags_and_schemes() {
    let t = TargetUrl::parse("127.0.0.1:5000/mirror/ns").unwrap();
    assert_eq!(
        (t.host.as_str(), t.path.as_str()),
        ("127.0.0.1:5000", "mirror/ns")
    );
    assert_eq!(t.join("charts"), "127.0.0.1:5000/mirror/ns/charts");
    assert_eq!(TargetUrl::parse("oci://reg.example.com").unwrap().path, "");
    assert!(
        TargetUrl::parse("reg.example.com/ns:v1")
            .unwrap_err()
            .contains("tag")
    );
    assert!(
        TargetUrl::parse("reg.example.com/ns@sha256:00")
            .unwrap_err()
            .contains("tag")
    );
    assert!(
        TargetUrl::parse("https://reg.example.com")
            .unwrap_err()
            .contains("https://")
    );
    assert!(TargetUrl::parse("reg.example.com:99999").is_err());
    assert!(TargetUrl::parse("reg.example.com/UPPER").is_err());
    assert!(TargetUrl::parse("").is_err());
}

#[test]
fn each_type_requires_its_own_location_field() {
    let u = upstream(SourceType::Repo);
    assert_eq!(
        u.problems(),
        vec![("repo", "required for type=repo".to_string())]
    );
    let mut u = upstream(SourceType::Oci);
    u.registry = Some("registry-1.docker.io/bitnamicharts".into());
    u.repo = Some("https://x".into());
    let p = u.problems();
    assert!(p[0].1.contains("oci://"), "{p:?}");
    assert_eq!(p[1].0, "repo");
    let mut u = upstream(SourceType::Local);
    u.path = Some("./c".into());
    assert!(u.problems().is_empty());
}

#[test]
fn versions_must_be_present_unique_and_tag_safe() {
    let mut u = upstream(SourceType::Local);
    u.path = Some(".".into());
    u.versions = vec![];
    assert_eq!(u.problems()[0].0, "versions");
    u.versions = vec!["1.0.0+build.1".into(), "1.0.0+build.1".into(), "a b".into()];
    let p = u.problems();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|(_, m)| m.contains("twice")));
    assert_eq!(version_tag("1.0.0+build.1"), "1.0.0_build.1");
}

#[test]
fn durations_parse_like_go() {
    assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
    assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
    assert!(parse_duration("10").is_none());
    assert!(parse_duration("1d").is_none());
}
