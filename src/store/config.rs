//! The configuration every transition reads — the organizations, the working-day calendar
//! and the parsed workflow definitions — cached per process.
//!
//! Before each use one row is read: `config_state`, holding the database's random identity
//! and a generation that database triggers raise whenever one of the three tables changes
//! (migration `m20261127_000012_config_generation`). A cached copy is used only while both
//! match, so a change made by another instance, or by hand in SQL, is seen at the next read.
//!
//! Only a connection outside any transaction ([`Autocommit`]) reads through the cache,
//! never a transaction: inside a transaction that changed the configuration, the generation
//! it sees may still roll back and be reused, so what it reads must not be remembered.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::calendar::Calendar;
use crate::db::Autocommit;
use crate::organizations::OrgDirectory;
use crate::workflow::definition::Definition;

/// The configuration of one generation of one database.
#[derive(Debug)]
pub struct Config {
    /// Every organization.
    pub orgs: Arc<OrgDirectory>,
    /// The working-day calendar.
    pub calendar: Arc<Calendar>,
    /// Parsed definitions by id, filled as they are asked for.
    definitions: Mutex<HashMap<Uuid, Arc<Definition>>>,
}

impl Config {
    /// The stored definition version `id`, parsed once per generation.
    pub async fn definition(&self, db: &impl Autocommit, id: Uuid) -> StoreResult<Arc<Definition>> {
        if let Some(d) = self.lock().get(&id) {
            return Ok(d.clone());
        }
        let def = Arc::new(super::definition_by_id(db, id, &self.orgs).await?);
        self.lock().insert(id, def.clone());
        Ok(def)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Definition>>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.definitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The cached configuration of each database this process uses, by database identity,
/// with its generation.
type Entries = HashMap<String, (i64, Arc<Config>)>;

static CACHE: LazyLock<Mutex<Entries>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn cache() -> std::sync::MutexGuard<'static, Entries> {
    CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current configuration: from the cache when nothing changed since it was read.
///
/// The generation is read before the tables, so a change committed in between is at worst
/// remembered under the older generation — and the next read, seeing the newer one, reads
/// again. Stale data is never remembered under a newer generation.
pub async fn current(db: &impl Autocommit) -> StoreResult<Arc<Config>> {
    let mut q = sea_orm::sea_query::Query::select();
    state_columns(&mut q);
    let row = db
        .query_one(&q)
        .await?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("a SELECT without FROM gave no row")))?;
    current_from(db, &row).await
}

/// The database's identity and configuration generation, as two columns a caller can read
/// in its own statement, for [`current_from`].
pub fn state_columns(q: &mut sea_orm::sea_query::SelectStatement) {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, Query};
    for (col, alias) in [
        ("database_id", "config_database_id"),
        ("generation", "config_generation"),
    ] {
        q.expr_as(
            Expr::SubQuery(
                None,
                Box::new(
                    Query::select()
                        .column(Alias::new(col))
                        .from(Alias::new("config_state"))
                        .and_where(Expr::col(Alias::new("id")).eq(1))
                        .to_owned()
                        .into(),
                ),
            ),
            alias,
        );
    }
}

/// The configuration for the identity and generation read by the caller (with
/// [`state_columns`]) before it reads anything else of the configuration.
pub async fn current_from(
    db: &impl Autocommit,
    row: &sea_orm::QueryResult,
) -> StoreResult<Arc<Config>> {
    let database: String = row.try_get("", "config_database_id")?;
    let generation: i64 = row.try_get("", "config_generation")?;
    if let Some((g, c)) = cache().get(&database)
        && *g == generation
    {
        return Ok(c.clone());
    }
    let config = Arc::new(Config {
        orgs: Arc::new(super::load_orgs(db).await?),
        calendar: Arc::new(super::load_calendar(db).await?),
        definitions: Mutex::new(HashMap::new()),
    });
    let mut map = cache();
    // Two readers may race; the one that saw the newer generation wins.
    match map.get(&database) {
        Some((g, _)) if *g > generation => {}
        _ => {
            map.insert(database, (generation, config.clone()));
        }
    }
    Ok(config)
}
