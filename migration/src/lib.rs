//! Database migrations of zhigang. One set runs on SQLite and PostgreSQL alike.
//!
//! Rule for later migrations: each one must be compatible with the application version
//! that runs before it (add columns nullable or with defaults, never rename in place),
//! so several instances can be upgraded one at a time without downtime.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_initial;
mod m20261127_000002_mail_timers;
mod m20261127_000003_accounts;
mod m20261127_000004_ratings;
mod m20261127_000005_notification_prefs;
mod m20261127_000006_admin_audit;
mod m20261127_000007_report_indexes;
mod m20261127_000008_workbench;
mod m20261127_000009_held_returns;
mod m20261127_000010_api;
mod m20261127_000011_inbox_indexes;
mod m20261127_000012_config_generation;
mod m20261127_000013_drop_prefix_index;

/// The migrator: the list of every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_mail_timers::Migration),
            Box::new(m20261127_000003_accounts::Migration),
            Box::new(m20261127_000004_ratings::Migration),
            Box::new(m20261127_000005_notification_prefs::Migration),
            Box::new(m20261127_000006_admin_audit::Migration),
            Box::new(m20261127_000007_report_indexes::Migration),
            Box::new(m20261127_000008_workbench::Migration),
            Box::new(m20261127_000009_held_returns::Migration),
            Box::new(m20261127_000010_api::Migration),
            Box::new(m20261127_000011_inbox_indexes::Migration),
            Box::new(m20261127_000012_config_generation::Migration),
            Box::new(m20261127_000013_drop_prefix_index::Migration),
        ]
    }
}
