//! Registry rate limits: the `RateLimit-Limit` / `RateLimit-Remaining` headers Docker Hub
//! sends (`100;w=21600`: 100 pulls per 21600-second window), and a per-host pause that holds
//! back every request to a host whose budget is spent, instead of failing the run. Parsing
//! is pure; [`Pauses::wait`] sleeps.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RegistryError;
use super::client::RegistryClient;
use super::http::retry_after_header;

/// Pause used when a rate-limited answer names neither `Retry-After` nor a window.
const FALLBACK_PAUSE: Duration = Duration::from_secs(60);

/// What one response says about its host's rate-limit budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (`RateLimit-Limit`).
    pub limit: Option<u64>,
    /// Requests left in the current window (`RateLimit-Remaining`).
    pub remaining: Option<u64>,
    /// Window length in seconds (the `w=` parameter of either header).
    pub window: Option<u64>,
}

/// `100;w=21600` → (100, Some(21600)).
fn parse_value(v: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = v.split(';');
    let n = parts.next()?.trim().parse().ok()?;
    let w = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("w") {
            v.trim().parse().ok()
        } else {
            None
        }
    });
    Some((n, w))
}

impl RateLimit {
    /// The rate-limit headers of a response (names are case-insensitive), or `None` when it
    /// carries none that parse.
    pub fn from_headers(headers: &HeaderMap) -> Option<RateLimit> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_value)
        };
        let limit = get("ratelimit-limit");
        let remaining = get("ratelimit-remaining");
        if limit.is_none() && remaining.is_none() {
            return None;
        }
        Some(RateLimit {
            limit: limit.map(|l| l.0),
            remaining: remaining.map(|r| r.0),
            window: remaining.and_then(|r| r.1).or(limit.and_then(|l| l.1)),
        })
    }

    /// Whether the budget is spent.
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// How long to hold requests back: the server's `Retry-After` when given; else the time
    /// one request takes to age out of the window (`window / limit`), or the whole window
    /// when the limit is unknown; at least `min`, at most `max`.
    pub fn pause(&self, retry_after: Option<Duration>, min: Duration, max: Duration) -> Duration {
        let derived = retry_after.unwrap_or_else(|| match (self.window, self.limit) {
            (Some(w), Some(l)) if l > 0 => {
                Duration::from_secs(w) / u32::try_from(l).unwrap_or(u32::MAX)
            }
            (Some(w), _) => Duration::from_secs(w),
            (None, _) => FALLBACK_PAUSE,
        });
        derived.max(min).min(max)
    }
}

/// Request pauses per registry host, shared by every client of a run.
#[derive(Debug, Default)]
pub struct Pauses {
    until: Mutex<HashMap<String, Instant>>,
    cancel: Mutex<CancellationToken>,
}

/// A pause was cut short because the run was cancelled.
#[derive(Debug)]
pub struct Cancelled;

impl Pauses {
    /// End pauses (with [`Cancelled`]) when `token` is cancelled.
    pub fn cancel_with(&self, token: CancellationToken) {
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// Hold requests to `host` back for `pause` from now (a longer pause already set stays).
    /// Logged, with the host, the length and why.
    pub fn hold(&self, host: &str, pause: Duration, why: &str, limit: &RateLimit) {
        let until = Instant::now() + pause;
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let current = map.entry(host.to_string()).or_insert(until);
        if *current > until {
            return;
        }
        *current = until;
        drop(map);
        tracing::warn!(
            host,
            pause = ?pause,
            reason = why,
            limit = ?limit.limit,
            remaining = ?limit.remaining,
            window_secs = ?limit.window,
            "rate limit: pausing requests to {host} for {pause:?}"
        );
    }

    /// Wait until requests to `host` may go out again.
    pub async fn wait(&self, host: &str) -> Result<(), Cancelled> {
        loop {
            let until = {
                let map = self.until.lock().unwrap_or_else(|p| p.into_inner());
                match map.get(host) {
                    Some(u) if *u > Instant::now() => *u,
                    _ => return Ok(()),
                }
            };
            let cancel = self
                .cancel
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// What one request has spent waiting on rate limits so far.
#[derive(Debug, Default)]
pub(super) struct PauseBudget {
    waited: Duration,
    pauses: u32,
}

/// Rate-limited answers one request waits out before they count as failed attempts.
const MAX_PAUSES_PER_REQUEST: u32 = 20;

impl RegistryClient {
    /// Wait while requests to this host are paused.
    pub(super) async fn rate_limit_wait(&self) -> Result<(), RegistryError> {
        self.pauses
            .wait(&self.host)
            .await
            .map_err(|Cancelled| RegistryError::Cancelled {
                host: self.host.clone(),
            })
    }

    /// Read a response's rate-limit headers. A spent budget pauses the host for later
    /// requests. Returns `true` when the response is a 429 with rate-limit headers that the
    /// request should wait out and send again (without spending a retry): while `budget`
    /// allows, otherwise the 429 is an ordinary failed attempt.
    pub(super) fn rate_limited(&self, resp: &Response, budget: &mut PauseBudget) -> bool {
        let Some(limit) = RateLimit::from_headers(resp.headers()) else {
            return false;
        };
        let (min, max) = (self.opts.backoff_base, self.opts.rate_limit_max_pause);
        let retry_after = retry_after_header(resp.headers());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let left = max.saturating_sub(budget.waited);
            if left.is_zero() || budget.pauses >= MAX_PAUSES_PER_REQUEST {
                return false;
            }
            let pause = limit.pause(retry_after, min, max).min(left);
            budget.waited += pause;
            budget.pauses += 1;
            self.pauses.hold(
                &self.host,
                pause,
                "HTTP 429 with rate-limit headers",
                &limit,
            );
            return true;
        }
        if limit.exhausted() {
            let pause = limit.pause(retry_after, min, max);
            self.pauses
                .hold(&self.host, pause, "rate-limit budget spent", &limit);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_docker_hub_headers_in_any_case() {
        let rl = RateLimit::from_headers(&headers(&[
            ("RateLimit-Limit", "100;w=21600"),
            ("RateLimit-Remaining", "76;w=21600"),
        ]))
        .unwrap();
        assert_eq!(
            rl,
            RateLimit {
                limit: Some(100),
                remaining: Some(76),
                window: Some(21600)
            }
        );
        assert!(!rl.exhausted());
        let rl =
            RateLimit::from_headers(&headers(&[("ratelimit-remaining", "0;w=21600")])).unwrap();
        assert!(rl.exhausted());
        assert_eq!(rl.window, Some(21600));
        assert_eq!(
            RateLimit::from_headers(&headers(&[("ratelimit-remaining", "lots")])),
            None
        );
        assert_eq!(RateLimit::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn pauses_follow_retry_after_then_the_window_and_stay_bounded() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(600));
        let hub = RateLimit {
            limit: Some(100),
            remaining: Some(0),
            window: Some(21600),
        };
        // One pull ages out of a 6 h window every 216 s.
        assert_eq!(hub.pause(None, min, max), Duration::from_secs(216));
        assert_eq!(
            hub.pause(Some(Duration::from_secs(7)), min, max),
            Duration::from_secs(7)
        );
        let no_limit = RateLimit { limit: None, ..hub };
        assert_eq!(no_limit.pause(None, min, max), max, "capped");
        assert_eq!(RateLimit::default().pause(None, min, max), FALLBACK_PAUSE);
        assert_eq!(hub.pause(Some(Duration::ZERO), min, max), min, "floored");
    }

    #[tokio::test]
    async fn a_pause_holds_only_its_host_and_ends_on_cancel() {
        let p = Pauses::default();
        let token = CancellationToken::new();
        p.cancel_with(token.clone());
        p.hold(
            "a",
            Duration::from_secs(3600),
            "test",
            &RateLimit::default(),
        );
        assert!(p.wait("b").await.is_ok());
        let waiting = p.wait("a");
        token.cancel();
        assert!(waiting.await.is_err());
    }
}
