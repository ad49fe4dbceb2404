//! Charts stored as OCI artifacts: `oci://host/path/<chart>:<version>`. IO.

use super::store::ArtifactStore;
use super::{FetchError, FetchedChart, Origin};
use crate::chart::archive;
use crate::registry::manifest::{HELM_CHART_LAYER, Parsed};
use crate::registry::{Registries, Scope};
use crate::spec::{OciLocation, version_tag};

/// Fetch `chart` at `version` from the OCI location `loc`, keeping its manifest.
pub async fn fetch(
    registries: &Registries,
    loc: &OciLocation,
    chart: &str,
    version: &str,
    store: &ArtifactStore,
) -> Result<FetchedChart, FetchError> {
    fetch_at(
        registries,
        &loc.host,
        &loc.repository(chart),
        chart,
        version,
        store,
    )
    .await
}

/// Fetch `chart` at `version` from the repository `repo` on `host` (where `fetch` would
/// look, or its place on a mirror), keeping its manifest.
pub async fn fetch_at(
    registries: &Registries,
    host: &str,
    repo: &str,
    chart: &str,
    version: &str,
    store: &ArtifactStore,
) -> Result<FetchedChart, FetchError> {
    let client = registries.client(host).await?;
    let repo = repo.to_string();
    let tag = version_tag(version);
    let location = format!("oci://{host}/{repo}:{tag}");
    let scope = Scope::Pull(repo.clone());
    let Some(manifest) = client.get_manifest(&repo, &tag, &scope).await? else {
        // Name what is there, as for a Helm repository (tags spell `+` as `_`).
        let tags = client.list_tags(&repo).await.unwrap_or_default();
        let versions: Vec<String> = tags.iter().map(|t| t.replace('_', "+")).collect();
        return Err(FetchError::NotFound {
            what: format!("{chart} version {version}"),
            location: format!("oci://{host}/{repo}"),
            hint: super::newest_published(versions.iter().map(String::as_str)),
        });
    };
    let bad = |reason: String| FetchError::Archive {
        location: location.clone(),
        source: archive::ArchiveError::Format(reason),
    };
    let (parsed, _) = Parsed::parse(&manifest.bytes, Some(&manifest.media_type)).map_err(&bad)?;
    let Parsed::Image { layers, .. } = parsed else {
        return Err(bad("an image index, not a Helm chart artifact".into()));
    };
    let layer = layers
        .iter()
        .find(|l| l.media_type == HELM_CHART_LAYER || l.media_type == "application/tar+gzip")
        .ok_or_else(|| {
            bad(format!(
                "no layer of type {HELM_CHART_LAYER}: this is not a Helm chart"
            ))
        })?;
    if layer.size > archive::MAX_ARCHIVE_BYTES as u64 {
        return Err(FetchError::Archive {
            location,
            source: archive::ArchiveError::TooLarge(format!("{} bytes", layer.size)),
        });
    }
    let bytes = match store.get(&layer.digest).await {
        Some(b) => b,
        None => {
            let resp = client.get_blob(&repo, &layer.digest).await?;
            let body = crate::registry::http::read_limited(resp, archive::MAX_ARCHIVE_BYTES)
                .await
                .map_err(|_| FetchError::Download {
                    url: location.clone(),
                    reason: "chart layer could not be read".into(),
                })?;
            let actual = crate::digest::sha256(&body);
            if actual != layer.digest {
                return Err(FetchError::DigestMismatch {
                    url: location,
                    expected: layer.digest.clone(),
                    actual,
                });
            }
            store.put(&body).await?;
            body
        }
    };
    let meta = archive::inspect(&bytes)
        .and_then(|m| archive::expect(&m, chart, version).map(|_| m))
        .map_err(|source| FetchError::Archive { location, source })?;
    Ok(FetchedChart {
        digest: layer.digest.clone(),
        archive: bytes,
        meta,
        origin: Origin::Oci {
            host: host.to_string(),
            repo,
            manifest,
        },
        note: None,
    })
}
