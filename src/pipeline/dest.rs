//! Where a run writes: the target registry, or a bundle on disk (`lazyoci bundle create`).
//! Both are a [`Sink`]; the stages above do not know which one they write to.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::bundle::layout::Layout;
use crate::registry::endpoint::Sink;
use crate::registry::manifest::RawManifest;
use crate::registry::referrers::Referrer;
use crate::registry::{RegistryClient, RegistryError, Scope};

/// The destination of a run.
#[derive(Clone, Debug)]
pub enum Dest {
    /// A registry.
    Registry(Arc<RegistryClient>),
    /// An OCI image layout being written.
    Bundle(Arc<Layout>),
}

impl Dest {
    /// Check the destination answers before any work: a `/v2/` probe for a registry; a
    /// bundle being written needs none.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        match self {
            Dest::Registry(c) => c.ping().await,
            Dest::Bundle(_) => Ok(()),
        }
    }
}

macro_rules! both {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            Dest::Registry($d) => $e,
            Dest::Bundle($d) => $e,
        }
    };
}

impl Sink for Dest {
    fn host(&self) -> &str {
        both!(self, d => Sink::host(&**d))
    }

    async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        both!(self, d => Sink::head_manifest(&**d, repo, reference, scope).await)
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        both!(self, d => Sink::get_manifest(&**d, repo, reference, scope).await)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        both!(self, d => Sink::put_manifest(&**d, repo, reference, m).await)
    }

    async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        both!(self, d => Sink::blob_exists(&**d, repo, digest, scope).await)
    }

    async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        both!(self, d => Sink::mount_blob(&**d, repo, from, digest).await)
    }

    async fn push_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        both!(self, d => Sink::push_blob_bytes(&**d, repo, digest, bytes).await)
    }

    async fn push_blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Result<(), RegistryError> {
        both!(self, d => Sink::push_blob_stream(&**d, repo, digest, size, body).await)
    }

    async fn referrers_api(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        both!(self, d => Sink::referrers_api(&**d, repo, digest).await)
    }
}
