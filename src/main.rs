//! The `zhigang` binary: parses the command line and hands over to the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Whatever the filter asks for, two libraries stay at levels where they log no
    // secrets: handlebars logs at debug every value a template renders (API tokens shown
    // once, CSRF tokens), and sea-orm's trace spans carry the connection options, database
    // password included. The directives replace any the filter has for these targets. One
    // filter on the plain subscriber: layered filters dropped events (per-layer) or
    // panicked in the span registry (two global filters).
    let filter = EnvFilter::try_from_env("ZHIGANG_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("handlebars=info".parse().expect("directive"))
        .add_directive("sea_orm=info".parse().expect("directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
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
