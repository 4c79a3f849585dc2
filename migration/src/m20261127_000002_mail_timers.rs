//! Timers behind promised times: one row per reminder, escalation or warning that has
//! fired. The unique key (kind, subject, due date) is what makes a timer fire once, even
//! with several workers and across restarts; a changed due date is a new timer.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("timers")
                    .col(pk_uuid("id"))
                    .col(string_len("kind", 64))
                    .col(uuid("subject_id"))
                    .col(date("due_date"))
                    .col(uuid("application_id"))
                    .col(timestamp_with_time_zone("fired_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_kind_subject_id_due_date")
                    .table("timers")
                    .col("kind")
                    .col("subject_id")
                    .col("due_date")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_application_id")
                    .table("timers")
                    .col("application_id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("timers").to_owned())
            .await
    }
}
