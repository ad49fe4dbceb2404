//! Tag lists: `GET /v2/<repo>/tags/list`, following the registry's `Link` pages on the
//! same origin only. IO.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use super::RegistryError;
use super::auth::Scope;
use super::client::{RegistryClient, Retries};
use super::http::read_limited;

impl RegistryClient {
    /// Every tag of `repo` (empty when the repository does not exist), following the
    /// registry's `Link: <…>; rel="next"` pages (at most [`MAX_TAG_PAGES`]).
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.list_tags_with(repo, self.retries()).await
    }

    /// [`Self::list_tags`] for a mirror probe: a host that cannot be connected to fails
    /// at once ([`RegistryError::Unreachable`]) rather than after the retries.
    pub async fn probe_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.list_tags_with(repo, self.probe_retries()).await
    }

    async fn list_tags_with(
        &self,
        repo: &str,
        retries: Retries,
    ) -> Result<Vec<String>, RegistryError> {
        let mut url = self.url(&format!("{repo}/tags/list"));
        let mut out = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send_retrying(
                    Method::GET,
                    &url,
                    &Scope::Pull(repo.to_string()),
                    HeaderMap::new(),
                    None,
                    self.opts.request_timeout,
                    retries,
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND && out.is_empty() {
                return Ok(Vec::new());
            }
            let resp = self.expect_success(Method::GET, &url, resp).await?;
            let next = resp
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .map(|link| self.absolute(&url, &link));
            #[derive(serde::Deserialize)]
            struct Tags {
                tags: Option<Vec<String>>,
            }
            let body = read_limited(resp, 16 * 1024 * 1024)
                .await
                .map_err(|e| self.read_error("tag list", e))?;
            let t: Tags = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                host: self.host.clone(),
                reason: format!("unreadable tag list: {e}"),
            })?;
            out.extend(t.tags.unwrap_or_default());
            match next {
                Some(Ok(n)) if n != url => url = n,
                Some(Err(reason)) => {
                    return Err(RegistryError::Protocol {
                        host: self.host.clone(),
                        reason,
                    });
                }
                _ => return Ok(out),
            }
        }
        Err(RegistryError::Protocol {
            host: self.host.clone(),
            reason: format!(
                "the tag list of {repo} has more than {MAX_TAG_PAGES} pages; refusing to follow further"
            ),
        })
    }

    /// `link` (absolute, or relative to the registry as registries send it) as an absolute
    /// URL on this registry; a link to another origin is refused (credentials go with it).
    fn absolute(&self, current: &str, link: &str) -> Result<String, String> {
        let base = url::Url::parse(current).map_err(|e| e.to_string())?;
        let next = base
            .join(link)
            .map_err(|e| format!("unreadable Link header {link:?}: {e}"))?;
        if next.origin() != base.origin() {
            return Err(format!(
                "the tag list's next page {next} is on another host; refusing to send credentials there"
            ));
        }
        Ok(next.to_string())
    }
}

/// Tag list pages followed at most (a registry that pages forever is stopped).
pub const MAX_TAG_PAGES: usize = 1000;

/// The target of a `rel="next"` entry in one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}
