use std::process::ExitCode;

use lazyoci::cli::{self, Command};

fn main() -> ExitCode {
    lazyoci::install_crypto_provider();
    let cli = cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAZYOCI_LOG").unwrap_or_else(|_| {
        let default = if matches!(cli.command, Command::Operator(_)) {
            "info"
        } else {
            "warn"
        };
        default.into()
    });
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LAZYOCI_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return cli::fail(
                cli::EXIT_FAILURES,
                format!("cannot start the async runtime: {e}"),
            );
        }
    };
    runtime.block_on(async {
        match &cli.command {
            Command::Mirror(args) => cli::mirror(&cli, args).await,
            Command::Images(args) => cli::images::run(&cli, args).await,
            Command::Demo(args) => cli::demo::run(&cli, args).await,
            Command::RuntimeConfig(args) => cli::runtime::run(&cli, args).await,
            Command::Operator(args) => cli::operator(&cli, args).await,
            Command::Bundle(args) => cli::bundle::run(&cli, args).await,
            Command::Crd => cli::crd(&cli),
        }
    })
}
