//! Migration: the configuration generation.
//!
//! Every transition reads the organizations, the working-day calendar and its workflow
//! definition. The portal caches them per process (`zhigang::store::config`) and checks
//! one small row before each use: `config_state` holds this database's random identity and
//! a generation number that triggers raise on every insert, update or delete of those three
//! tables, in the writing transaction — so a change made by any instance (or by hand in
//! SQL) is seen by every instance at its next read, and the cache never serves stale data.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose content the cache holds.
const WATCHED: &[&str] = &["organizations", "calendar_days", "workflow_definitions"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("config_state")
                    .col(ColumnDef::new("id").integer().not_null().primary_key())
                    .col(ColumnDef::new("database_id").string_len(32).not_null())
                    .col(ColumnDef::new("generation").big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "INSERT INTO config_state (id, database_id, generation) \
                     VALUES (1, md5(random()::text || clock_timestamp()::text), 1)",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE FUNCTION bump_config_generation() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN \
                     UPDATE config_state SET generation = generation + 1; \
                     RETURN NULL; END $$",
                )
                .await?;
                for table in WATCHED {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_config_generation \
                         AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation()"
                    ))
                    .await?;
                }
            }
            _ => {
                db.execute_unprepared(
                    "INSERT INTO config_state (id, database_id, generation) \
                     VALUES (1, lower(hex(randomblob(16))), 1)",
                )
                .await?;
                for table in WATCHED {
                    for op in ["INSERT", "UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_config_generation_{} \
                             AFTER {op} ON {table} BEGIN \
                             UPDATE config_state SET generation = generation + 1; END",
                            op.to_lowercase()
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for table in WATCHED {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_config_generation ON {table}"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION IF EXISTS bump_config_generation()")
                    .await?;
            }
            _ => {
                for table in WATCHED {
                    for op in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!(
                            "DROP TRIGGER IF EXISTS {table}_config_generation_{op}"
                        ))
                        .await?;
                    }
                }
            }
        }
        manager
            .drop_table(Table::drop().table("config_state").to_owned())
            .await
    }
}
