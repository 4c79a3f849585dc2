//! The `zhigang` binary: parses the command line and hands over to the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // handlebars logs, at debug level and below, every value a template renders: API
    // tokens shown once, CSRF tokens, personal data. Never below info, whatever the filter.
    let quiet_templates = "handlebars=info".parse().expect("a valid directive");
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ZHIGANG_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info"))
                .add_directive(quiet_templates),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = zhigang::cli::Cli::parse();
    match zhigang::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
