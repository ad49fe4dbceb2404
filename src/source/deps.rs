//! Chart dependencies that are not vendored in `charts/`: resolved from Chart.lock (or the
//! Chart.yaml range), fetched through the same repo and OCI sources as any chart, and
//! added to a copy of the archive so that helm can render it. The archive that is pushed
//! stays the original. OCI dependencies are read where an [`OciRoute`] says (the pipeline
//! routes them through the spec's source mirrors, as it does charts and images). IO.

use std::future::Future;

use bytes::Bytes;

use super::repo::RepoSource;
use super::store::ArtifactStore;
use crate::chart::archive;
use crate::discover::tree::{ChartNode, Dependency};
use crate::registry::Registries;
use crate::spec::OciLocation;

/// Where OCI dependencies are read from. The pipeline's implementation asks the spec's
/// source mirrors first (and only them with `mirrorsOnly`), then the original.
pub trait OciRoute: Sync {
    /// `(host, repository)` to read tag `tag` of `host/repository` from.
    fn manifest_at(
        &self,
        host: &str,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(String, String), String>> + Send;
    /// The tags of `host/repository`.
    fn tags(
        &self,
        host: &str,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// Dependencies fetched for one chart at most.
const MAX_FETCHED: usize = 32;

/// Why a dependency could not be provided.
#[derive(Debug, thiserror::Error)]
#[error("dependency {name} {version} of {chart}: {reason}")]
pub struct DependencyError {
    /// The chart declaring it.
    pub chart: String,
    /// Dependency name.
    pub name: String,
    /// Version or range.
    pub version: String,
    /// Why, and what to do.
    pub reason: String,
}

/// The archive with every missing dependency of the top chart added under `charts/`, or
/// `None` when nothing is missing. Fetched dependencies are themselves rendered as
/// published (their own `charts/`).
pub async fn vendor_missing(
    tree: &ChartNode,
    archive_bytes: &Bytes,
    repos: &RepoSource,
    registries: &Registries,
    route: &impl OciRoute,
    store: &ArtifactStore,
) -> Result<Option<Bytes>, DependencyError> {
    let missing: Vec<Dependency> = tree
        .dependencies()
        .into_iter()
        .filter(|d| !tree.subcharts.iter().any(|s| s.name == d.name))
        .collect();
    if missing.len() > MAX_FETCHED {
        return Err(DependencyError {
            chart: tree.name.clone(),
            name: format!("({} dependencies)", missing.len()),
            version: String::new(),
            reason: format!(
                "more than {MAX_FETCHED} dependencies are not vendored; vendor them (helm dependency build) before publishing"
            ),
        });
    }
    let mut extra = Vec::new();
    for dep in missing {
        let err = |reason: String| DependencyError {
            chart: tree.name.clone(),
            name: dep.name.clone(),
            version: dep.version.clone(),
            reason,
        };
        let version = match tree.locked_version(&dep.name, &dep.repository) {
            Some(v) => v,
            None => resolve(&dep, repos, route).await.map_err(&err)?,
        };
        let fetched = fetch(&dep, &version, repos, registries, route, store)
            .await
            .map_err(&err)?;
        extra.push((
            format!("charts/{}-{}.tgz", dep.name, version),
            fetched.to_vec(),
        ));
    }
    if extra.is_empty() {
        return Ok(None);
    }
    let original = archive_bytes.clone();
    // Repacking decompresses the whole archive: off the runtime's threads.
    let repacked = tokio::task::spawn_blocking(move || archive::append(&original, &extra))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    repacked
        .map(|b| Some(Bytes::from(b)))
        .map_err(|e| DependencyError {
            chart: tree.name.clone(),
            name: String::new(),
            version: String::new(),
            reason: format!("cannot add fetched dependencies to the archive: {e}"),
        })
}

enum Where {
    Repo(String),
    Oci(OciLocation),
}

fn location(dep: &Dependency) -> Result<Where, String> {
    let r = dep.repository.trim();
    if r.starts_with("http://") || r.starts_with("https://") {
        Ok(Where::Repo(r.to_string()))
    } else if r.starts_with("oci://") {
        OciLocation::parse(r).map(Where::Oci)
    } else if r.is_empty() || r.starts_with("file://") {
        Err(format!(
            "it is not vendored in charts/ and its repository {:?} is not fetchable; vendor it before publishing (helm dependency build)",
            r
        ))
    } else {
        Err(format!(
            "it is not vendored in charts/ and its repository {r:?} is a local helm repo alias; write the repository URL in Chart.yaml or vendor it"
        ))
    }
}

/// The highest published version satisfying the Chart.yaml constraint.
async fn resolve(
    dep: &Dependency,
    repos: &RepoSource,
    route: &impl OciRoute,
) -> Result<String, String> {
    if semver::Version::parse(dep.version.trim_start_matches('v')).is_ok() {
        return Ok(dep.version.clone());
    }
    let published = match location(dep)? {
        Where::Repo(url) => repos
            .versions(&url, &dep.name)
            .await
            .map_err(|e| e.to_string())?,
        Where::Oci(loc) => route
            .tags(&loc.host, &loc.repository(&dep.name))
            .await?
            .into_iter()
            .map(|t| t.replace('_', "+"))
            .collect(),
    };
    crate::select::highest_match(&dep.version, &published).ok_or_else(|| {
        format!(
            "no published version satisfies {:?} (found: {})",
            dep.version,
            if published.is_empty() {
                "none".to_string()
            } else {
                published.join(", ")
            }
        )
    })
}

async fn fetch(
    dep: &Dependency,
    version: &str,
    repos: &RepoSource,
    registries: &Registries,
    route: &impl OciRoute,
    store: &ArtifactStore,
) -> Result<Bytes, String> {
    let fetched = match location(dep)? {
        Where::Repo(url) => repos.fetch(&url, &dep.name, version, store).await,
        Where::Oci(loc) => {
            let tag = crate::spec::version_tag(version);
            let (host, repo) = route
                .manifest_at(&loc.host, &loc.repository(&dep.name), &tag)
                .await?;
            super::oci::fetch_at(registries, &host, &repo, &dep.name, version, store).await
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(fetched.archive)
}
