//! Mail: delivers the outbox.
//!
//! The workflow store writes one `outbox` row per recipient in the same transaction as the
//! state change, so a committed change is always mailed and a rolled-back one never is.
//! The [`Worker`] claims due rows under a lease, renders them ([`render`]) in the
//! recipient's language and sends them ([`transport`]): SMTP over kept-open connections, or
//! `.eml` files when no server is configured. The Message-ID is the row's, so a resend
//! after a crash is recognisably the same message. Temporary failures retry with
//! exponential backoff and jitter; permanent ones, and rows out of attempts, go dead with
//! their last error for an administrator to see and retry.
//!
//! Each recipient's preferences ([`prefs`]) apply at delivery: a kind switched off is
//! closed unsent with the reason in the row (the delivery log shows it), a reviewer's new
//! tasks may wait for the once-a-day [`digest`]; account and security emails are always
//! sent.

pub mod compose;
pub mod digest;
pub mod prefs;
pub mod queue;
pub mod render;
pub mod timers;
pub mod transport;
mod worker;

pub use transport::{SendError, Transport};
pub use worker::{RunningWorker, Worker};

use crate::settings::Settings;

/// `zhigang worker`: runs the worker alone (no HTTP) until Ctrl-C or SIGTERM. The
/// database must already be migrated (`zhigang migrate` or `zhigang serve`), so that
/// several workers never race to migrate it.
pub async fn run_standalone(settings: &Settings) -> anyhow::Result<()> {
    use migration::MigratorTrait;
    let db = crate::db::connect(&settings.database_url(), settings.db_max_connections).await?;
    let pending = migration::Migrator::get_pending_migrations(&db).await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database has {} pending migrations: run `zhigang migrate` first",
            pending.len()
        );
    }
    let worker = Worker::new(db, settings)?;
    tracing::info!("mail worker started");
    worker.run(crate::startup::shutdown_signal()).await;
    Ok(())
}
