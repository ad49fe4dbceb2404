//! Integration tests: the real `lazyoci` binary against real registries (Debian's
//! docker-registry), a real Helm repository server and the real helm. Run
//! `scripts/install-test-deps.sh` first (scripts/test.sh does).

mod actionable;
mod attached;
mod bad_configs;
mod bundle;
mod bundle_delta;
mod bundle_hostile;
mod bundle_readers;
mod cache;
mod cluster;
mod common;
mod corpus;
mod discovery;
mod errors;
mod faults;
mod first_hour;
mod hostile;
mod mirror_cli;
mod mirrors;
mod operator_image;
mod overlays;
mod private_registries;
mod private_sources;
mod progress_view;
mod ratelimit;
mod real_charts;
mod runtime_config;
mod selectors;
mod sources;
mod transport;
