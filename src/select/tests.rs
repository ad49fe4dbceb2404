use super::*;

fn up(semver: &str) -> UpstreamSpec {
    UpstreamSpec {
        name: "u".into(),
        chart: "c".into(),
        semver: Some(semver.into()),
        ..Default::default()
    }
}

fn list(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pick(u: &UpstreamSpec, published: &[&str]) -> Vec<String> {
    Selector::of(u)
        .expect("valid")
        .expect("a selector")
        .select(&list(published))
        .versions
}

#[test]
fn ordering_is_semver_precedence_not_string_order() {
    let got = pick(
        &up(">=0.9.0"),
        &["0.10.0", "0.9.0", "0.9.1", "1.0.0", "0.11.0"],
    );
    assert_eq!(got, list(&["0.9.0", "0.9.1", "0.10.0", "0.11.0", "1.0.0"]));
}

#[test]
fn prereleases_on_and_off() {
    let published = ["1.0.0", "1.1.0-rc.1", "1.1.0", "1.2.0-beta.1"];
    assert_eq!(pick(&up("^1"), &published), list(&["1.0.0", "1.1.0"]));
    let mut with = up("^1");
    with.prereleases = true;
    assert_eq!(
        pick(&with, &published),
        list(&["1.0.0", "1.1.0-rc.1", "1.1.0", "1.2.0-beta.1"])
    );
    // A range that names a prerelease considers them, as Helm does.
    assert_eq!(
        pick(&up(">=1.1.0-0"), &published),
        list(&["1.1.0-rc.1", "1.1.0", "1.2.0-beta.1"])
    );
}

#[test]
fn latest_keeps_ties_across_build_metadata() {
    let mut u = up("*");
    u.latest = Some(1);
    let published = ["1.0.0", "2.0.0+b", "2.0.0+a", "1.5.0"];
    assert_eq!(pick(&u, &published), list(&["2.0.0+a", "2.0.0+b"]));
    u.latest = Some(2);
    assert_eq!(pick(&u, &published), list(&["1.5.0", "2.0.0+a", "2.0.0+b"]));
    u.latest = Some(10);
    assert_eq!(pick(&u, &published).len(), 4);
}

#[test]
fn alternatives_and_exclusions() {
    let mut u = up("^0.28 || >=2.0.0 <3");
    u.exclude = list(&["0.28.3", r"^2\.1\."]);
    let published = [
        "0.28.0", "0.28.3", "0.29.0", "1.0.0", "2.0.0", "2.1.0", "2.1.5", "2.2.0", "3.0.0",
    ];
    assert_eq!(pick(&u, &published), list(&["0.28.0", "2.0.0", "2.2.0"]));
}

#[test]
fn entries_that_are_not_versions_are_skipped_and_reported() {
    let s = Selector::of(&up("*")).expect("valid").expect("some");
    let got = s.select(&list(&["1.0.0", "latest", "main-abc123", "2.0.0"]));
    assert_eq!(got.versions, list(&["1.0.0", "2.0.0"]));
    assert_eq!(got.not_versions, list(&["latest", "main-abc123"]));
}

#[test]
fn bad_selectors_name_their_field() {
    let mut u = up(">=1.0 <<2");
    u.latest = Some(0);
    u.exclude = list(&["(unclosed"]);
    let fields: Vec<&str> = Selector::of(&u)
        .expect_err("invalid")
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, vec!["semver", "latest", "exclude"]);
    let mut no_semver = UpstreamSpec {
        latest: Some(2),
        ..Default::default()
    };
    no_semver.prereleases = true;
    assert_eq!(Selector::of(&no_semver).expect_err("invalid").len(), 2);
    assert!(
        Selector::of(&UpstreamSpec::default())
            .expect("valid")
            .is_none()
    );
}

#[test]
fn newest_and_highest_match() {
    let published = list(&["0.3.0", "0.3.1", "0.4.0", "1.0.0-rc.1", "1.2.3", "junk"]);
    assert_eq!(newest(&published, 2), list(&["1.2.3", "1.0.0-rc.1"]));
    assert_eq!(
        highest_match("~0.3.0", &published).as_deref(),
        Some("0.3.1")
    );
    assert_eq!(highest_match("^0.3", &published).as_deref(), Some("0.3.1"));
    assert_eq!(highest_match("0.x", &published).as_deref(), Some("0.4.0"));
    assert_eq!(
        highest_match(">= 0.3.0 < 1.0.0", &published).as_deref(),
        Some("0.4.0")
    );
    assert_eq!(
        highest_match(">=1, <2", &published).as_deref(),
        Some("1.2.3")
    );
    assert_eq!(highest_match("~5.0.0", &published), None);
    assert_eq!(highest_match("not a range", &published), None);
}
