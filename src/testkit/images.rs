//! Synthetic images, built from deterministic layers and pushed to a registry: an OCI image,
//! a Docker v2 schema 2 image, a multi-arch index, and images sharing a base layer.

use std::io::Write as _;

use serde_json::json;

use super::oci;

/// OCI manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A pushed image.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// Repository (`team/api`).
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// Manifest (or index) digest.
    pub digest: String,
    /// Blob digests (config and layers; for an index, of every child).
    pub blobs: Vec<String>,
}

impl Seeded {
    /// `host/repo:tag`.
    pub fn reference(&self, host: &str) -> String {
        format!("{host}/{}:{}", self.repo, self.tag)
    }
}

/// A gzipped tar layer holding one file of `size` pseudo-random bytes from `seed`.
/// The same seed and size always give the same bytes.
pub fn layer(seed: u64, size: usize) -> (Vec<u8>, String) {
    let mut data = vec![0u8; size];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    let _ = tar.append_data(&mut h, format!("data/{seed}"), data.as_slice());
    let tar = tar.into_inner().unwrap_or_default();
    let diff_id = oci::digest(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    let _ = gz.write_all(&tar);
    (gz.finish().unwrap_or_default(), diff_id)
}

/// Push an image made of layers with these seeds (each `size` bytes).
pub async fn image(
    addr: &str,
    repo: &str,
    tag: &str,
    seeds: &[u64],
    size: usize,
    docker: bool,
    arch: &str,
) -> anyhow::Result<Seeded> {
    image_on(&oci::Conn::new(addr), repo, tag, seeds, size, docker, arch).await
}

/// Push a small OCI image to a registry that requires basic auth.
pub async fn image_with_auth(
    addr: &str,
    repo: &str,
    tag: &str,
    (user, password): (&str, &str),
) -> anyhow::Result<Seeded> {
    image_on(
        &oci::Conn::new(addr).with_basic(user, password),
        repo,
        tag,
        &[99],
        1024,
        false,
        "amd64",
    )
    .await
}

/// Push an image through `conn`.
pub async fn image_on(
    conn: &oci::Conn,
    repo: &str,
    tag: &str,
    seeds: &[u64],
    size: usize,
    docker: bool,
    arch: &str,
) -> anyhow::Result<Seeded> {
    let (manifest_type, config_type, layer_type) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for &seed in seeds {
        let (bytes, diff_id) = layer(seed, size);
        let len = bytes.len();
        let d = conn.push_blob(repo, bytes).await?;
        layers.push(json!({"mediaType": layer_type, "digest": d, "size": len}));
        diff_ids.push(diff_id);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/true"], "Labels": {"repo": repo, "tag": tag}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let config_len = config.len();
    let config_digest = conn.push_blob(repo, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config_len},
        "layers": layers,
    }))?;
    let digest = conn
        .push_manifest(repo, tag, manifest_type, manifest)
        .await?;
    let mut blobs = vec![config_digest];
    blobs.extend(
        layers
            .iter()
            .filter_map(|l| l["digest"].as_str().map(String::from)),
    );
    Ok(Seeded {
        repo: repo.into(),
        tag: tag.into(),
        digest,
        blobs,
    })
}

/// Push a multi-arch OCI index with one image per architecture.
pub async fn multiarch(
    addr: &str,
    repo: &str,
    tag: &str,
    arches: &[&str],
    seed: u64,
) -> anyhow::Result<Seeded> {
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    for (i, arch) in arches.iter().enumerate() {
        let child_tag = format!("{tag}-{arch}");
        let child = image(
            addr,
            repo,
            &child_tag,
            &[seed + i as u64],
            2048,
            false,
            arch,
        )
        .await?;
        let (_, bytes) = oci::get_manifest(addr, repo, &child.digest)
            .await?
            .ok_or_else(|| anyhow::anyhow!("child manifest vanished"))?;
        entries.push(json!({"mediaType": OCI_MANIFEST, "digest": child.digest, "size": bytes.len(), "platform": {"os": "linux", "architecture": arch}}));
        blobs.extend(child.blobs);
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )?;
    let digest = oci::push_manifest(addr, repo, tag, OCI_INDEX, index).await?;
    // Only the index tag should exist for this repo: drop the per-arch helper tags' names by
    // leaving them (distribution cannot delete tags alone); tests only look at `tag`.
    Ok(Seeded {
        repo: repo.into(),
        tag: tag.into(),
        digest,
        blobs,
    })
}

/// The standard set seeded for tests and the demo.
#[derive(Clone, Debug)]
pub struct SeedSet {
    /// `library/nginx:1.25`, OCI.
    pub nginx: Seeded,
    /// `library/redis:7.2`, Docker schema 2.
    pub redis: Seeded,
    /// `bitnami/multi:2.0`, OCI index for amd64 and arm64.
    pub multi: Seeded,
    /// `team/api:1.0`, shares its base layer with `worker`.
    pub api: Seeded,
    /// `team/worker:1.0`, shares its base layer with `api`.
    pub worker: Seeded,
    /// `team/job:0.9`, OCI.
    pub job: Seeded,
    /// `team/pinned:1.0`, referenced by digest.
    pub pinned: Seeded,
    /// `team/hook:1.0`, used only by a hook.
    pub hook: Seeded,
    /// `team/operand:3.1`, used only by a custom resource.
    pub operand: Seeded,
    /// `team/sub:1.0`, used only by the subchart.
    pub sub: Seeded,
}

impl SeedSet {
    /// Every image in the set.
    pub fn all(&self) -> Vec<&Seeded> {
        vec![
            &self.nginx,
            &self.redis,
            &self.multi,
            &self.api,
            &self.worker,
            &self.job,
            &self.pinned,
            &self.hook,
            &self.operand,
            &self.sub,
        ]
    }
}

/// Push the standard set.
pub async fn seed_standard_set(addr: &str) -> anyhow::Result<SeedSet> {
    const BASE: u64 = 1000;
    Ok(SeedSet {
        nginx: image(addr, "library/nginx", "1.25", &[1], 4096, false, "amd64").await?,
        redis: image(addr, "library/redis", "7.2", &[2, 3], 4096, true, "amd64").await?,
        multi: multiarch(addr, "bitnami/multi", "2.0", &["amd64", "arm64"], 10).await?,
        api: image(addr, "team/api", "1.0", &[BASE, 20], 8192, false, "amd64").await?,
        worker: image(
            addr,
            "team/worker",
            "1.0",
            &[BASE, 21],
            8192,
            false,
            "amd64",
        )
        .await?,
        job: image(addr, "team/job", "0.9", &[30], 1024, false, "amd64").await?,
        pinned: image(addr, "team/pinned", "1.0", &[40], 1024, false, "amd64").await?,
        hook: image(addr, "team/hook", "1.0", &[50], 1024, true, "amd64").await?,
        operand: image(addr, "team/operand", "3.1", &[60], 1024, false, "amd64").await?,
        sub: image(addr, "team/sub", "1.0", &[70], 1024, false, "amd64").await?,
    })
}

/// An image with artifacts attached by its digest, as cosign and OCI 1.1 tools leave them.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The image.
    pub image: Seeded,
    /// Manifest digest of the cosign signature (tag `sha256-<hex>.sig`).
    pub sig: String,
    /// Manifest digest of the cosign attestation (tag `sha256-<hex>.att`).
    pub att: String,
    /// Manifest digest of an OCI 1.1 referrer (an SBOM whose `subject` is the image).
    pub referrer: String,
    /// The referrer's descriptor, as a referrers index lists it.
    pub referrer_descriptor: serde_json::Value,
    /// Manifest digest of the referrers tag schema index (tag `sha256-<hex>`), when pushed.
    pub referrers_index: Option<String>,
}

/// `sha256:<hex>` → `sha256-<hex>` + `suffix`.
pub fn digest_tag(digest: &str, suffix: &str) -> String {
    format!("{}{suffix}", digest.replacen(':', "-", 1))
}

/// Push a small OCI artifact manifest (one layer of `layer_type` made from `seed`) to `repo`
/// under `reference` (a tag, or its own digest when `None`). With `subject`, it names that
/// manifest in `subject` and carries `artifact_type` (an OCI 1.1 referrer). Returns its
/// digest and its descriptor.
pub async fn artifact(
    addr: &str,
    repo: &str,
    reference: Option<&str>,
    layer_type: &str,
    seed: u64,
    subject: Option<(&str, &str, usize)>,
    artifact_type: Option<&str>,
) -> anyhow::Result<(String, serde_json::Value)> {
    let payload =
        serde_json::to_vec(&json!({"seed": seed, "payload": "synthetic, not a real signature"}))?;
    let payload_len = payload.len();
    let layer = oci::push_blob(addr, repo, payload).await?;
    let config = b"{}".to_vec();
    let config_digest = oci::push_blob(addr, repo, config).await?;
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer, "size": payload_len}],
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    if let Some((media_type, digest, size)) = subject {
        m["subject"] = json!({"mediaType": media_type, "digest": digest, "size": size});
    }
    let bytes = serde_json::to_vec(&m)?;
    let digest = oci::digest(&bytes);
    let len = bytes.len();
    oci::push_manifest(
        addr,
        repo,
        reference.unwrap_or(&digest),
        OCI_MANIFEST,
        bytes,
    )
    .await?;
    let mut descriptor = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": len});
    if let Some(t) = artifact_type {
        descriptor["artifactType"] = json!(t);
    }
    Ok((digest, descriptor))
}

/// Push an OCI image `repo:tag` with a cosign-style signature and attestation (tags
/// `sha256-<hex>.sig` and `.att`) and an SBOM referrer pushed by digest; with
/// `referrers_tag`, also the referrers tag schema index (`sha256-<hex>`) listing it.
pub async fn signed_image(
    addr: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    referrers_tag: bool,
) -> anyhow::Result<Signed> {
    let image = image(addr, repo, tag, &[seed], 1024, false, "amd64").await?;
    let (_, image_bytes) = oci::get_manifest(addr, repo, &image.digest)
        .await?
        .ok_or_else(|| anyhow::anyhow!("image manifest vanished"))?;
    let d = &image.digest;
    let (sig, _) = artifact(
        addr,
        repo,
        Some(&digest_tag(d, ".sig")),
        "application/vnd.dev.cosign.simplesigning.v1+json",
        seed + 1,
        None,
        None,
    )
    .await?;
    let (att, _) = artifact(
        addr,
        repo,
        Some(&digest_tag(d, ".att")),
        "application/vnd.dsse.envelope.v1+json",
        seed + 2,
        None,
        None,
    )
    .await?;
    let (referrer, referrer_descriptor) = artifact(
        addr,
        repo,
        None,
        "application/spdx+json",
        seed + 3,
        Some((OCI_MANIFEST, d, image_bytes.len())),
        Some("application/spdx+json"),
    )
    .await?;
    let referrers_index = if referrers_tag {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [referrer_descriptor],
        }))?;
        Some(oci::push_manifest(addr, repo, &digest_tag(d, ""), OCI_INDEX, index).await?)
    } else {
        None
    };
    Ok(Signed {
        image,
        sig,
        att,
        referrer,
        referrer_descriptor,
        referrers_index,
    })
}
