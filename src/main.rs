//! The `zhigang` binary: parses the command line and hands over to the library.

use clap::Parser;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Whatever the filter asks for, two libraries stay above the levels where they log
    // secrets: handlebars logs at debug every value a template renders (API tokens shown
    // once, CSRF tokens), and sea-orm's trace spans carry the connection options, database
    // password included. A cap, not a floor: a quieter filter stays quieter. Both are
    // global filters (an event passes only if both enable it); as a per-layer
    // `filter.and(caps)` some events the filter enabled never reached the output.
    let filter = EnvFilter::try_from_env("ZHIGANG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let caps = Targets::new()
        .with_default(Level::TRACE)
        .with_target("handlebars", Level::INFO)
        .with_target("sea_orm", Level::DEBUG);
    tracing_subscriber::registry()
        .with(filter)
        .with(caps)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
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
