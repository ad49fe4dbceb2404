//! Rate limits and retry counts, through the fault proxy: a host whose rate-limit budget is
//! spent is paused (not failed), and `--retries` sets how many attempts a request gets.

use std::time::Duration;

use lazyoci::testkit::proxy::{Fault, Proxy, Record, Rule, headers};

use crate::common::*;

/// A chart using nginx through `proxy`, and a config mirroring it.
fn through(w: &World, proxy: &Proxy) {
    image_chart(w, "limited", &[w.set.nginx.reference(proxy.addr())]);
    w.config("mirror.yaml", &format!("target: {{url: {}/t, insecure: true}}\nupstreams:\n  limited: {{type: local, path: charts/limited, chart: limited, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
}

fn run_through(w: &World, proxy: &Proxy, args: &[&str]) -> Run {
    let mut all = vec!["mirror", "--all", "--concurrency", "1"];
    all.extend(args);
    w.run_env(&all, &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())])
}

/// For every request a fault answered: the requests the proxy saw within `pause` after it
/// (must be none), and that there was a next request at all (the run went on).
fn requests_during_pauses(records: &[Record], pause: Duration) -> Vec<(usize, Vec<String>)> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.faulted)
        .map(|(i, f)| {
            assert!(
                records.len() > i + 1,
                "nothing followed fault {i}: {records:?}"
            );
            let during = records[i + 1..]
                .iter()
                .filter(|r| r.at < f.at + pause)
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            (i, during)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_rate_limit_headers_pauses_the_host_instead_of_failing() {
    let w = world().await;
    let limited = headers(&[
        ("RateLimit-Limit", "4;w=1"),
        ("RateLimit-Remaining", "0;w=1"),
    ]);
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "HEAD",
            "/manifests/1.25",
            Fault::StatusWithHeaders(429, limited),
            2,
        )],
    )
    .unwrap();
    through(&w, &proxy);
    // No retries at all: only the pause can get this image through.
    let run = run_through(&w, &proxy, &["--retries", "0"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(proxy.faults_applied(0), 2);
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(w.set.nginx.digest.clone())
    );
    // One request ages out of a 1 s window of 4 every 250 ms: nothing reached the host then.
    let pauses = requests_during_pauses(&proxy.records(), Duration::from_millis(250));
    assert_eq!(pauses.len(), 2);
    for (i, during) in pauses {
        assert!(
            during.is_empty(),
            "requests during the pause after #{i}: {during:?}"
        );
    }
    let said = format!("rate limit: pausing requests to {} for 250ms", proxy.addr());
    assert_eq!(run.stderr.matches(&said).count(), 2, "{run:?}");
    assert!(run.stderr.contains("WARN"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_holds_later_requests_back_up_to_the_max_pause() {
    let w = world().await;
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "HEAD",
            "/manifests/1.25",
            Fault::AddHeaders(headers(&[("ratelimit-remaining", "0;w=30")])),
            1,
        )],
    )
    .unwrap();
    through(&w, &proxy);
    // The window says 30 s; the cap says 300 ms.
    let run = run_through(&w, &proxy, &["--rate-limit-max-pause", "300ms"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(proxy.faults_applied(0), 1);
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(w.set.nginx.digest.clone())
    );
    let pauses = requests_during_pauses(&proxy.records(), Duration::from_millis(300));
    assert_eq!(pauses.len(), 1);
    assert!(
        pauses[0].1.is_empty(),
        "requests during the pause: {:?}",
        pauses[0].1
    );
    assert!(
        run.stderr.contains(&format!(
            "rate limit: pausing requests to {} for 300ms",
            proxy.addr()
        )),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_set_the_attempts_a_request_and_a_blob_get() {
    let w = world().await;
    let layer = w.set.nginx.blobs[1].clone();
    let error_of = |run: &Run| {
        let i = version_of(&run.json(), "limited", "1.0.0")["images"][0].clone();
        assert_eq!(i["status"], "failed", "{i:#}");
        i["error"].as_str().unwrap().to_string()
    };
    // One 503: fatal with --retries 0 …
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "HEAD",
            "/manifests/1.25",
            Fault::Status(503, None),
            1,
        )],
    )
    .unwrap();
    through(&w, &proxy);
    let run = run_through(&w, &proxy, &["--retries", "0", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(error_of(&run).contains("HTTP 503"), "{run:?}");

    // … and a blob transfer cut once is fatal too.
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "GET",
            &format!("/blobs/{layer}"),
            Fault::ResetAfter(100),
            1,
        )],
    )
    .unwrap();
    through(&w, &proxy);
    let run = run_through(&w, &proxy, &["--retries", "0", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(proxy.faults_applied(0), 1);
    assert_eq!(w.dst_digest("t/library/nginx", "1.25").await, None);

    // Two 503s: --retries 1 is not enough, the default is.
    let rules = || {
        vec![Rule::fault(
            "HEAD",
            "/manifests/1.25",
            Fault::Status(503, None),
            2,
        )]
    };
    let proxy = Proxy::start(w.src_host(), rules()).unwrap();
    through(&w, &proxy);
    let run = run_through(&w, &proxy, &["--retries", "1", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(proxy.faults_applied(0), 2);
    let proxy = Proxy::start(
        w.src_host(),
        [
            rules(),
            vec![Rule::fault(
                "GET",
                &format!("/blobs/{layer}"),
                Fault::ResetAfter(100),
                1,
            )],
        ]
        .concat(),
    )
    .unwrap();
    through(&w, &proxy);
    let run = run_through(&w, &proxy, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((proxy.faults_applied(0), proxy.faults_applied(1)), (2, 1));
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(w.set.nginx.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_ends_a_rate_limit_pause_at_once() {
    let w = world().await;
    // The target itself is rate-limited, on the chart step (which has no other way to stop):
    // one request per hour, so the pause would last the whole 10 min cap.
    let proxy = Proxy::start(
        w.dst.addr(),
        vec![Rule::fault(
            "HEAD",
            "/manifests/",
            Fault::StatusWithHeaders(
                429,
                headers(&[
                    ("ratelimit-limit", "1;w=3600"),
                    ("ratelimit-remaining", "0;w=3600"),
                ]),
            ),
            1000,
        )],
    )
    .unwrap();
    image_chart(&w, "paused", &[w.set.nginx.reference(w.src_host())]);
    w.config("mirror.yaml", &format!("target: {{url: {}/t, insecure: true}}\nupstreams:\n  paused: {{type: local, path: charts/paused, chart: paused, versions: [\"1.0.0\"]}}\n", proxy.addr()));
    let home = w.path(".home");
    std::fs::create_dir_all(&home).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lazyoci"))
        .current_dir(w.dir.path())
        .args(["mirror", "--all"])
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("LAZYOCI_HELM", lazyoci::testkit::helm_bin())
        .env("LAZYOCI_INSECURE_REGISTRIES", w.src_host())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if proxy.faults_applied(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy.faults_applied(0),
        1,
        "the run never reached the pause"
    );
    let sent = std::time::Instant::now();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(stderr.contains("for 600s"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cancelled while waiting out the rate limit"),
        "{stdout}"
    );
    assert_eq!(
        proxy.faults_applied(0),
        1,
        "requests went out during the pause"
    );
}
