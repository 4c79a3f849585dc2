//! Migration: the audit log of administrative actions (one hash chain for the portal).

use sea_orm_migration::{prelude::*, schema::*};

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("admin_events")
                    .col(pk_uuid("id"))
                    .col(big_integer_uniq("seq"))
                    .col(uuid("actor_user_id"))
                    .col(uuid_null("org_id"))
                    .col(string_len("action", 64))
                    .col(string_len("target", 200))
                    .col(text("details"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string_len("prev_hash", 64))
                    .col(string_len("hash", 64))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_admin_events_actor", "actor_user_id"),
            ("ix_admin_events_org", "org_id"),
            ("ix_admin_events_created_at", "created_at"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("admin_events")
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("admin_events").to_owned())
            .await
    }
}
