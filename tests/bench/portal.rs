//! `cargo bench --bench portal`: the figures of issue 7 next to baselines measured in the
//! same run, each with its target and MET / NOT MET.
//!
//! Scenarios (in this order): `transitions`, `mail`, `footprint`, `logins`, `inbox`.
//! Options (environment):
//! - `ZHIGANG_BENCH_ONLY=transitions,mail` — only these scenarios;
//! - `ZHIGANG_BENCH_DB=sqlite` — only these databases (default `sqlite,postgres`);
//! - `ZHIGANG_BENCH_SECONDS=5` — length of each timed phase (default 30);
//! - `ZHIGANG_BENCH_CLIENTS`, `ZHIGANG_BENCH_APPS`, `ZHIGANG_BENCH_MAIL_ROWS`,
//!   `ZHIGANG_BENCH_LOGINS`, `ZHIGANG_BENCH_CONNECTIONS` — sizes (see `common::Options`);
//! - `ZHIGANG_TEST_PG_URL` — the PostgreSQL server (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`); each scenario creates its own database
//!   and drops it afterwards.

// The test fixtures, shared with the integration tests so the benchmark seeds exactly
// what the tests do.
#[allow(dead_code, unused_imports)]
#[path = "../it/helpers.rs"]
mod helpers;

mod common;
mod footprint;
mod inbox;
mod logins;
mod mail;
mod transitions;

use common::{Options, Report};
use helpers::Backend;

fn backends(opts: &Options) -> Vec<Backend> {
    let mut out = Vec::new();
    if opts.wants_db("sqlite") {
        out.push(Backend::Sqlite);
    }
    if opts.wants_db("postgres") {
        out.push(Backend::Postgres);
    }
    out
}

fn db_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let opts = Options::from_env();
    let mut report = Report::default();
    println!(
        "zhigang benchmark — {}; load average at start {}",
        common::machine(),
        common::load_now()
    );
    println!(
        "options: {} s per phase, {} clients, {} applications, {} mail rows, databases {:?}, scenarios {}",
        opts.seconds,
        opts.clients,
        opts.apps,
        opts.mail_rows,
        opts.dbs,
        opts.only
            .as_ref()
            .map_or("all".to_string(), |o| o.join(","))
    );
    for b in backends(&opts) {
        if opts.wants("transitions")
            && let Err(e) = transitions::run(&opts, &mut report, b).await
        {
            report.not_run(
                format!("transitions/{}", db_name(b)),
                format!("failed: {e:#}"),
            );
        }
    }
    for b in backends(&opts) {
        if opts.wants("mail")
            && let Err(e) = mail::run(&opts, &mut report, b).await
        {
            report.not_run(format!("mail/{}", db_name(b)), format!("failed: {e:#}"));
        }
    }
    for b in backends(&opts) {
        if opts.wants("footprint")
            && let Err(e) = footprint::run(&opts, &mut report, b).await
        {
            report.not_run(
                format!("footprint/{}", db_name(b)),
                format!("failed: {e:#}"),
            );
        }
    }
    if opts.wants("logins")
        && let Err(e) = logins::run(&opts, &mut report).await
    {
        report.not_run("logins", format!("failed: {e:#}"));
    }
    for b in backends(&opts) {
        if opts.wants("inbox")
            && let Err(e) = inbox::run(&opts, &mut report, b).await
        {
            report.not_run(format!("inbox/{}", db_name(b)), format!("failed: {e:#}"));
        }
    }
    println!(
        "\nSummary ({}; load average at the end {}):",
        common::machine(),
        common::load_now()
    );
    report.print();
    Ok(())
}
