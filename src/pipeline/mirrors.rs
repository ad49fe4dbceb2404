//! Registry mirrors for image sources (`sourceMirrors`, `mirrorsOnly`), as containerd's
//! `hosts.toml` and `registries.conf` do them: each mirror in order, then the original
//! host unless `mirrorsOnly`. Only where an image is read from changes; its target name
//! is still remapped from the original reference. IO (HEAD requests).

use super::{Ctx, Env};
use crate::reference::ImageRef;
use crate::registry::Scope;
use crate::result::ImageResult;

/// Where an image is read from.
pub(super) struct Source {
    /// The original reference or its place on a mirror.
    pub(super) from: ImageRef,
    /// Whether `sourceMirrors` lists the image's host (the report then says who served it).
    pub(super) mirrored: bool,
}

impl Source {
    /// `r`, which was produced reading from `self.from`, told in terms of the original
    /// `src`, with the serving host when mirrors were involved.
    pub(super) fn report(&self, src: &ImageRef, mut r: ImageResult) -> ImageResult {
        if self.mirrored {
            r.source = src.to_string();
            r.served_by = Some(self.from.registry.clone());
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

/// Whether `at` is there (a HEAD of its manifest); why not, otherwise.
async fn probe(env: &Env, at: &ImageRef) -> Result<(), String> {
    let client = env
        .registries
        .client(&at.registry)
        .await
        .map_err(|e| e.to_string())?;
    let scope = Scope::Pull(at.repository.clone());
    match client
        .head_manifest(&at.repository, at.reference(), &scope)
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("{at} is not there")),
        Err(e) => Err(e.to_string()),
    }
}

impl Ctx<'_> {
    /// Where to read `src` from: the first mirror that has it, else the original host
    /// (unless `mirrorsOnly`, which fails naming what each mirror answered).
    pub(super) async fn source_for(&self, src: &ImageRef) -> Result<Source, String> {
        let spec = &self.req.spec;
        let Some(mirrors) = spec.source_mirrors.get(&src.registry) else {
            return Ok(Source {
                from: src.clone(),
                mirrored: false,
            });
        };
        let mut tried = Vec::new();
        for m in mirrors {
            let at = at_mirror(src, m);
            match probe(self.env, &at).await {
                Ok(()) => {
                    return Ok(Source {
                        from: at,
                        mirrored: true,
                    });
                }
                Err(e) => tried.push(format!("{m}: {e}")),
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
        Ok(Source {
            from: src.clone(),
            mirrored: true,
        })
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
