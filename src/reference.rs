//! Image references: parse, normalise and remap under the target. Pure.

use std::fmt;

use crate::spec::TargetUrl;

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Registry host as written in references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    /// Tag, if any. A reference with neither tag nor digest gets `latest`.
    pub tag: Option<String>,
    /// `sha256:…` digest, if pinned.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an image reference: {reason}")]
pub struct RefError {
    /// The input.
    pub input: String,
    /// Why.
    pub reason: String,
}

impl ImageRef {
    /// `registry/repository`, at `tag` when given (an OCI chart or its repository, say).
    pub fn in_repository(registry: &str, repository: &str, tag: Option<String>) -> ImageRef {
        ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest: None,
        }
    }

    /// Parse and normalise (`nginx` → `docker.io/library/nginx:latest`; tag and digest kept).
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        let s = input.trim();
        let err = |reason: &str| RefError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.len() > 4096 {
            return Err(err("longer than 4096 characters"));
        }
        let r = oci_client::Reference::try_from(s).map_err(|e| err(&e.to_string()))?;
        if let Some(d) = r.digest()
            && !crate::digest::is_sha256(d)
        {
            return Err(err("only sha256 digests are supported"));
        }
        if r.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository names must be lowercase"));
        }
        let registry = match r.registry() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
            other => other.to_string(),
        };
        let mut repository = r.repository().to_string();
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: r.tag().map(str::to_string),
            digest: r.digest().map(str::to_string),
        })
    }

    /// The same image under the target: source host dropped, repository, tag and digest kept.
    pub fn remap(&self, target: &TargetUrl) -> ImageRef {
        let joined = target.join(&self.repository);
        let (registry, repository) = joined.split_once('/').unwrap_or((&joined, ""));
        ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn normalises_short_names_and_keeps_tag_and_digest() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            ("ghcr.io/a/b/c:v1", "ghcr.io/a/b/c:v1"),
            ("127.0.0.1:5000/team/api:1.0", "127.0.0.1:5000/team/api:1.0"),
        ];
        for (input, want) in cases {
            assert_eq!(ImageRef::parse(input).unwrap().to_string(), want, "{input}");
        }
        let pinned = ImageRef::parse(&format!("nginx:1.25@{D}")).unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/nginx:1.25@{D}")
        );
        assert_eq!(pinned.reference(), D);
        let digest_only = ImageRef::parse(&format!("quay.io/x/y@{D}")).unwrap();
        assert_eq!(digest_only.tag, None);
    }

    #[test]
    fn rejects_non_references() {
        for bad in [
            "",
            "{{ .Values.image }}",
            "UPPER/case",
            "ghcr.io/x:",
            "a@md5:00",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remaps_under_the_target_dropping_only_the_host() {
        let target = TargetUrl::parse("registry.example.com/ns").unwrap();
        let r = ImageRef::parse("docker.io/library/redis:7.2")
            .unwrap()
            .remap(&target);
        assert_eq!(r.to_string(), "registry.example.com/ns/library/redis:7.2");
        assert_eq!(r.registry, "registry.example.com");
        assert_eq!(r.repository, "ns/library/redis");
        let bare = TargetUrl::parse("127.0.0.1:5001").unwrap();
        let r = ImageRef::parse(&format!("ghcr.io/hashicorp/vault:1.15.0@{D}"))
            .unwrap()
            .remap(&bare);
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5001/hashicorp/vault:1.15.0@{D}")
        );
    }
}
