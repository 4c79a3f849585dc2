//! Database connections: SQLite (the embedded default) and PostgreSQL (production),
//! through the same sea-orm code and the same migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    DbErr, ExecResult, QueryResult, RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;

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

/// The row a query finds by a unique key (a primary key, a unique column), if any: what
/// sea-orm's `one()` answers, without its `LIMIT`. `one()` binds the limit as a value, and
/// SQLite looks at a bound `LIMIT` when it plans, so it prepares such a statement again
/// every time it runs. For the lookups every web request makes (its session, its user);
/// the key being unique, there is at most one row to read. (The API token lookup, a join,
/// reads its one row the same way.)
pub async fn find_unique<E, C>(query: sea_orm::Select<E>, db: &C) -> Result<Option<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    C: ConnectionTrait,
{
    Ok(query.all(db).await?.into_iter().next())
}

/// True for PostgreSQL.
pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// One connection taken from the pool and kept for several statements, outside any
/// transaction. sqlx checks a connection with a round trip every time it goes back to the
/// pool (hard-coded in sqlx 0.9), so statements run through the pool one by one pay one
/// extra round trip each; a request that runs its statements on one held connection pays
/// it once, when the connection goes back.
///
/// Whoever holds one must not wait for another connection from the same pool meanwhile:
/// enough requests doing that at once would leave the pool empty, all of them waiting.
pub struct Held {
    /// The connection's database, known without waiting for the lock
    /// (`get_database_backend` cannot wait).
    backend: DbBackend,
    conn: tokio::sync::Mutex<HeldConnection>,
}

enum HeldConnection {
    Postgres(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>),
    Sqlite(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Sqlite>),
}

impl Held {
    /// Takes a connection from `db`'s pool.
    pub async fn acquire(db: &DatabaseConnection) -> Result<Held, DbErr> {
        let backend = db.get_database_backend();
        let conn = match backend {
            DbBackend::Postgres => HeldConnection::Postgres(
                db.get_postgres_connection_pool()
                    .acquire()
                    .await
                    .map_err(acquire_error)?,
            ),
            DbBackend::Sqlite => HeldConnection::Sqlite(
                db.get_sqlite_connection_pool()
                    .acquire()
                    .await
                    .map_err(acquire_error)?,
            ),
            other => {
                return Err(DbErr::BackendNotSupported {
                    db: other.as_str(),
                    ctx: "Held::acquire",
                });
            }
        };
        Ok(Held {
            backend,
            conn: tokio::sync::Mutex::new(conn),
        })
    }
}

/// A connection on which every statement commits by itself, outside any transaction: what
/// it reads was committed and stays so, so it may be remembered (`store::config`).
pub trait Autocommit: ConnectionTrait {}

impl Autocommit for DatabaseConnection {}

impl Autocommit for Held {}

/// The pool's errors as sea-orm reports them for its own acquisitions.
fn acquire_error(e: sea_orm::sqlx::Error) -> DbErr {
    match e {
        sea_orm::sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sea_orm::sqlx::Error::PoolClosed => {
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)
        }
        e => DbErr::Conn(RuntimeErr::SqlxError(e.into())),
    }
}

/// A failed statement as sea-orm reports it (`execute`, then `query`).
fn exec_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.into()))
}

fn query_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

/// A statement as sqlx runs it, with sea-orm's values bound the way sea-orm binds them.
fn bound<DB>(stmt: Statement) -> sea_orm::sqlx::query::Query<'static, DB, SqlxValues>
where
    DB: sea_orm::sqlx::Database,
    SqlxValues: sea_orm::sqlx::IntoArguments<DB>,
{
    let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
    sea_orm::sqlx::query_with(sea_orm::sqlx::AssertSqlSafe(stmt.sql), SqlxValues(values))
}

/// `$body` with `$c` bound to the held connection, whichever database it is on (the same
/// code, type-checked once per driver).
macro_rules! on_held {
    ($held:expr, |$c:ident| $body:expr) => {
        match &mut *$held.conn.lock().await {
            HeldConnection::Postgres($c) => $body,
            HeldConnection::Sqlite($c) => $body,
        }
    };
}

#[async_trait::async_trait]
impl ConnectionTrait for Held {
    fn get_database_backend(&self) -> DbBackend {
        self.backend
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        Ok(on_held!(self, |c| bound(stmt)
            .execute(&mut **c)
            .await
            .map_err(exec_error)?
            .into()))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        use sea_orm::sqlx::Executor as _;
        let sql = sea_orm::sqlx::AssertSqlSafe(sql.to_owned());
        Ok(on_held!(self, |c| c
            .execute(sql)
            .await
            .map_err(exec_error)?
            .into()))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(on_held!(self, |c| bound(stmt)
            .fetch_optional(&mut **c)
            .await
            .map_err(query_error)?
            .map(Into::into)))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        Ok(on_held!(self, |c| {
            let rows = bound(stmt).fetch_all(&mut **c).await.map_err(query_error)?;
            rows.into_iter().map(Into::into).collect()
        }))
    }
}
