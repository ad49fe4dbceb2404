//! lazyoci: mirror Helm charts and every container image they reference into one OCI registry.
//!
//! The library holds the whole pipeline; the `lazyoci` binary (CLI and operator) only
//! translates arguments into a [`pipeline::MirrorRequest`] and a [`result::MirrorReport`]
//! back into text, JSON, YAML or Kubernetes status.
//!
//! Follow one chart version through the stages:
//! [`source`] (fetch the archive) → [`chart`] (push it as a Helm OCI artifact) →
//! [`discover`] (render with helm, collect images) → [`reference`] (normalise and remap) →
//! [`registry`] (copy registry to registry, or into a [`bundle`] on disk) → [`overlay`]
//! (values that point installs at the mirror, verified by a second render). [`pipeline`]
//! strings them together.

pub mod access;
pub mod bundle;
pub mod chart;
pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod digest;
pub mod discover;
pub mod overlay;
pub mod pipeline;
pub mod reference;
pub mod registry;
pub mod result;
pub mod runtime;
pub mod select;
pub mod source;
pub mod spec;
#[doc(hidden)]
pub mod testkit;

/// An error and all its causes, `: `-separated (reqwest hides the useful part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Install the process-wide TLS crypto provider (aws-lc-rs). Call once, first thing in
/// `main` and in test helpers; later calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
