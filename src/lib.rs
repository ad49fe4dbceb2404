//! lazyoci: mirror Helm charts and every container image they reference into one OCI registry.
