//! `lazyoci demo` (filled in once the testkit lands).
use std::process::ExitCode;

/// Run the demo.
pub async fn run(_cli: &super::Cli, _args: &super::DemoArgs) -> ExitCode {
    super::fail(super::EXIT_FAILURES, "the demo is not built yet")
}
