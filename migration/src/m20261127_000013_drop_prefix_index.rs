//! Migration: drops `ix_tasks_acted_by_closed_at`, a prefix of
//! `ix_tasks_acted_by_closed_at_id` (migration `000011`).
//!
//! Every query it served (a reviewer's "done" tab, each reviewer's last activity) is served
//! as well by the longer index, and one index less is one index entry less written on every
//! task a transition opens or changes. Dropping it is safe for the running version: it loses
//! nothing that version needs.

use sea_orm_migration::prelude::*;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_tasks_acted_by_closed_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table("tasks").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table("tasks")
                    .col("acted_by")
                    .col("closed_at")
                    .to_owned(),
            )
            .await
    }
}
