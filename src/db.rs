//! Database connections: SQLite (the embedded default) and PostgreSQL (production),
//! through the same sea-orm code and the same migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

/// Opens a pool. SQLite gets WAL, foreign keys and a busy timeout, so concurrent writers
/// wait for each other instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .max_connections(max_connections)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(30))
        // sqlx pings a connection when it goes back to the pool and, by default, again
        // when it is taken out: two extra round trips per statement. A connection used
        // within the last few seconds is known to be alive; only one idle longer (which a
        // restarted server or a proxy may have dropped) is pinged before use.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                .create_if_missing(true)
        })
        // Every statement the portal sends is prepared once per connection and bound with
        // values. Left to choose, PostgreSQL re-plans the read of a transition with the
        // values each time (its generic plan looks dearer on paper), which cost more
        // than executing it: planning was 16 % of the machine under the transitions
        // benchmark. Generic plans are built once per connection and statement.
        .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_generic_plan")]));
    Ok(Database::connect(opts).await?)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// A PostgreSQL advisory lock key: "zhigang start-up".
const STARTUP_LOCK: i64 = 0x7a68_6967_616e_6701;

/// Runs `work` (migrations, reference data, the first administrator) while holding the
/// database-wide start-up lock, so that instances started together on one PostgreSQL
/// database do it one after another — the second finds everything done. The lock is a
/// session advisory lock on a connection of its own, released (also by the server, when
/// that connection closes) afterwards. SQLite serves one instance per file: no lock.
pub async fn with_startup_lock<T>(
    url: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if !url.starts_with("postgres") {
        return work.await;
    }
    let lock = connect(url, 1).await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_lock({STARTUP_LOCK})"))
        .await?;
    let result = work.await;
    let _ = lock
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({STARTUP_LOCK})"))
        .await;
    let _ = lock.close().await;
    result
}

/// True for PostgreSQL.
pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}
