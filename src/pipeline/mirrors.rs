//! Registry mirrors for sources (`sourceMirrors`, `mirrorsOnly`), as containerd's
//! `hosts.toml` and `registries.conf` do them: each mirror in order, then the original
//! host unless `mirrorsOnly`. Images, OCI charts and the tag lists selectors read all go
//! through [`Ctx::at_mirrors`]. Only where something is read from changes; its target name
//! is still remapped from the original reference. IO (HEAD and tag-list requests).

use std::future::Future;
use std::sync::Arc;

use super::Ctx;
use crate::reference::ImageRef;
use crate::registry::client::RegistryClient;
use crate::registry::{RegistryError, Scope};
use crate::result::ImageResult;
use crate::source::FetchError;

/// Where an image (or an OCI chart) is read from.
pub(super) struct Source {
    /// The original reference or its place on a mirror.
    pub(super) from: ImageRef,
    /// Whether `sourceMirrors` lists the image's host (the report then says who served it).
    pub(super) mirrored: bool,
}

impl Source {
    /// The host to name as the one that served it, when mirrors were involved.
    pub(super) fn served_by(&self) -> Option<String> {
        self.mirrored.then(|| self.from.registry.clone())
    }

    /// `r`, which was produced reading from `self.from`, told in terms of the original
    /// `src`, with the serving host when mirrors were involved.
    pub(super) fn report(&self, src: &ImageRef, mut r: ImageResult) -> ImageResult {
        if self.mirrored {
            r.source = src.to_string();
            r.served_by = self.served_by();
        }
        r
    }
}

/// The image `src` at `mirror` (`host[:port][/path]`): the path goes before the repository.
fn at_mirror(src: &ImageRef, mirror: &str) -> ImageRef {
    let (host, path) = mirror.split_once('/').unwrap_or((mirror, ""));
    let path = path.trim_matches('/');
    ImageRef {
        registry: host.to_string(),
        repository: if path.is_empty() {
            src.repository.clone()
        } else {
            format!("{path}/{}", src.repository)
        },
        tag: src.tag.clone(),
        digest: src.digest.clone(),
    }
}

/// Whether `at` is there (a HEAD of its manifest; a mirror that cannot be connected to
/// is not retried).
async fn probe(client: Arc<RegistryClient>, at: ImageRef) -> Result<Option<()>, RegistryError> {
    let scope = Scope::Pull(at.repository.clone());
    Ok(client
        .probe_manifest(&at.repository, at.reference(), &scope)
        .await?
        .map(|_| ()))
}

/// The tags of `at`'s repository; `None` when it has none there (a proxy that has not
/// cached it, say), so that the next candidate is asked.
async fn tags(
    client: Arc<RegistryClient>,
    at: ImageRef,
) -> Result<Option<Vec<String>>, RegistryError> {
    let tags = client.probe_tags(&at.repository).await?;
    Ok((!tags.is_empty()).then_some(tags))
}

/// Mirror hosts found unreachable in this run: later images, charts and tag lists skip
/// them rather than each paying a connection attempt (a run is minutes; a mirror that
/// comes back is used again by the next run).
#[derive(Default)]
pub(super) struct Down(std::sync::Mutex<std::collections::HashSet<String>>);

impl Down {
    fn is_down(&self, host: &str) -> bool {
        self.0.lock().is_ok_and(|d| d.contains(host))
    }

    /// Remember `host` as down, warning the first time.
    fn mark(&self, host: &str, why: &RegistryError) {
        let first = self.0.lock().is_ok_and(|mut d| d.insert(host.to_string()));
        if first {
            tracing::warn!(
                "mirror {host} cannot be reached ({why}); it is skipped for the rest of this run"
            );
        }
    }
}

impl Ctx<'_> {
    /// Ask each mirror of `src`'s host in order with `attempt` (`Ok(None)`: not there).
    /// `Ok(Some((where, answer)))` from the first mirror that has it; `Ok(None)` when the
    /// host has no mirrors or none had it and the original may be asked; `Err` naming what
    /// each mirror answered when `mirrorsOnly` forbids asking the original.
    pub(super) async fn at_mirrors<T, F, Fut>(
        &self,
        src: &ImageRef,
        attempt: F,
    ) -> Result<Option<(ImageRef, T)>, String>
    where
        F: Fn(Arc<RegistryClient>, ImageRef) -> Fut,
        Fut: Future<Output = Result<Option<T>, RegistryError>>,
    {
        let spec = &self.req.spec;
        let Some(mirrors) = spec.source_mirrors.get(&src.registry) else {
            return Ok(None);
        };
        let mut tried = Vec::new();
        for m in mirrors {
            let at = at_mirror(src, m);
            if self.mirrors_down.is_down(&at.registry) {
                tried.push(format!(
                    "{m}: skipped, {} could not be reached earlier in this run",
                    at.registry
                ));
                continue;
            }
            let answer = match self.env.registries.client(&at.registry).await {
                Ok(client) => attempt(client, at.clone()).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Some(t)) => return Ok(Some((at, t))),
                Ok(None) => tried.push(format!("{m}: {at} is not there")),
                Err(e) => {
                    if e.is_unreachable() {
                        self.mirrors_down.mark(&at.registry, &e);
                    }
                    tried.push(format!("{m}: {e}"));
                }
            }
        }
        if spec.mirrors_only {
            return Err(format!(
                "no mirror of {} served it ({}); mirrorsOnly: true forbids asking {} itself",
                src.registry,
                tried.join("; "),
                src.registry
            ));
        }
        Ok(None)
    }

    /// Where to read `src` from: the first mirror that has it, else the original host
    /// (unless `mirrorsOnly`, which fails naming what each mirror answered).
    pub(super) async fn source_for(&self, src: &ImageRef) -> Result<Source, String> {
        let mirrored = self.req.spec.source_mirrors.contains_key(&src.registry);
        let from = match self.at_mirrors(src, probe).await? {
            Some((at, ())) => at,
            None => src.clone(),
        };
        Ok(Source { from, mirrored })
    }

    /// The tags of `src`'s repository, from the first mirror that lists any, else from the
    /// original host (unless `mirrorsOnly`).
    pub(super) async fn tags_for(&self, src: &ImageRef) -> Result<Vec<String>, FetchError> {
        if let Some((_, t)) = self
            .at_mirrors(src, tags)
            .await
            .map_err(FetchError::Mirrors)?
        {
            return Ok(t);
        }
        let client = self.env.registries.client(&src.registry).await?;
        Ok(client.list_tags(&src.repository).await?)
    }
}

/// Chart dependencies on OCI registries are read through the mirrors too.
impl crate::source::deps::OciRoute for Ctx<'_> {
    async fn manifest_at(
        &self,
        host: &str,
        repository: &str,
        tag: &str,
    ) -> Result<(String, String), String> {
        let at = ImageRef::in_repository(host, repository, Some(tag.to_string()));
        let from = self.source_for(&at).await?.from;
        Ok((from.registry, from.repository))
    }

    async fn tags(&self, host: &str, repository: &str) -> Result<Vec<String>, String> {
        let at = ImageRef::in_repository(host, repository, None);
        self.tags_for(&at).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_path_goes_before_the_repository() {
        let src = ImageRef::parse("docker.io/library/nginx:1.25").unwrap();
        let at = at_mirror(&src, "artifactory.corp.example/dockerhub-remote/");
        assert_eq!(
            at.to_string(),
            "artifactory.corp.example/dockerhub-remote/library/nginx:1.25"
        );
        assert_eq!(
            at_mirror(&src, "mirror.local:5000").to_string(),
            "mirror.local:5000/library/nginx:1.25"
        );
    }
}
