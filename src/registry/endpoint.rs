//! The two ends of a copy, as traits: where manifests and blobs are read ([`Source`]) and
//! where they are written ([`Sink`]). A registry is both; an OCI image layout on disk (a
//! bundle, see [`crate::bundle`]) is the other kind of end. [`super::copy::CopyJob`] walks a
//! manifest tree between any source and any sink, so the registry-to-registry mirror, the
//! bundle writer and the bundle loader share one streamed, digest-verified copy.

use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::client::RegistryClient;
use super::manifest::RawManifest;
use super::referrers::Referrer;
use super::{RegistryError, Scope};

/// A blob being read: its length when known up front, and its bytes.
pub struct BlobBody {
    /// The length the source announced (`Content-Length`, a file size), if any.
    pub len: Option<u64>,
    /// The bytes, unverified: the copy hashes them on the way.
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Where a copy reads from.
pub trait Source: Send + Sync {
    /// A name for errors (a registry host, a bundle path).
    fn host(&self) -> &str;
    /// Retries after a transient failure of one blob transfer.
    fn retries(&self) -> u32;
    /// The exact bytes of a manifest (verified when `reference` is a digest), or `None`.
    fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> impl Future<Output = Result<Option<RawManifest>, RegistryError>> + Send;
    /// Start reading a blob; a missing blob is an error naming it.
    fn get_blob_body(
        &self,
        repo: &str,
        digest: &str,
    ) -> impl Future<Output = Result<BlobBody, RegistryError>> + Send;
}

/// Where a copy writes to.
pub trait Sink: Send + Sync {
    /// A name for errors and for the run-wide blob index (a registry host, a bundle path).
    fn host(&self) -> &str;
    /// The digest `repo:reference` holds, or `None`.
    fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> impl Future<Output = Result<Option<String>, RegistryError>> + Send;
    /// The exact bytes `repo:reference` holds, or `None`.
    fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> impl Future<Output = Result<Option<RawManifest>, RegistryError>> + Send;
    /// Store a manifest under `reference` (a tag, or its own digest).
    fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &RawManifest,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// Whether the blob is there.
    fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
        scope: &Scope,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    /// Make a blob held by repository `from` available in `repo`; `true` when done.
    fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;
    /// Store a small blob held in memory.
    fn push_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        bytes: Bytes,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// Store a blob from a stream of `size` bytes; an error in the stream must leave nothing
    /// stored under `digest`.
    fn push_blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// The referrers of `digest` through the OCI referrers API, or `None` without the API.
    fn referrers_api(
        &self,
        repo: &str,
        digest: &str,
    ) -> impl Future<Output = Result<Option<Vec<Referrer>>, RegistryError>> + Send;
}

impl Source for RegistryClient {
    fn host(&self) -> &str {
        RegistryClient::host(self)
    }

    fn retries(&self) -> u32 {
        self.opts.retries
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        RegistryClient::get_manifest(self, repo, reference, scope).await
    }

    async fn get_blob_body(&self, repo: &str, digest: &str) -> Result<BlobBody, RegistryError> {
        use futures::TryStreamExt;
        let resp = self.get_blob(repo, digest).await?;
        Ok(BlobBody {
            len: resp.content_length(),
            stream: Box::pin(resp.bytes_stream().map_err(std::io::Error::other)),
        })
    }
}

impl Sink for RegistryClient {
    fn host(&self) -> &str {
        RegistryClient::host(self)
    }

    async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        RegistryClient::head_manifest(self, repo, reference, scope).await
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        RegistryClient::get_manifest(self, repo, reference, scope).await
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        RegistryClient::put_manifest(self, repo, reference, m).await
    }

    async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        RegistryClient::blob_exists(self, repo, digest, scope).await
    }

    async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        RegistryClient::mount_blob(self, repo, from, digest).await
    }

    async fn push_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        RegistryClient::push_blob_bytes(self, repo, digest, bytes).await
    }

    async fn push_blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Result<(), RegistryError> {
        RegistryClient::push_blob_stream(self, repo, digest, size, reqwest::Body::wrap_stream(body))
            .await
    }

    async fn referrers_api(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        RegistryClient::referrers_api(self, repo, digest).await
    }
}
