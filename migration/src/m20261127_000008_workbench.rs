//! Migration: what the reviewer workbench needs beyond the engine's tables — the version of
//! the form and materials at each (re)submission, so a resubmission can be compared with the
//! version that was returned, and the organizations copied (抄送) on an application.

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
                    .table("submitted_versions")
                    .col(pk_uuid("id"))
                    .col(uuid("application_id"))
                    .col(integer("round"))
                    .col(json_binary("form_data"))
                    .col(json_binary("attachments"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_submitted_versions_application_id")
                            .from("submitted_versions", "application_id")
                            .to("applications", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_submitted_versions_application_id_round")
                    .table("submitted_versions")
                    .col("application_id")
                    .col("round")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("application_copies")
                    .col(pk_uuid("id"))
                    .col(uuid("application_id"))
                    .col(uuid("org_id"))
                    .col(string_len("step_id", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_application_copies_application_id")
                            .from("application_copies", "application_id")
                            .to("applications", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_application_copies_org_id_created_at")
                    .table("application_copies")
                    .col("org_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_application_copies_application_id")
                    .table("application_copies")
                    .col("application_id")
                    .to_owned(),
            )
            .await?;
        // The reviewer's "done" tab, and each reviewer's last activity for their org admin.
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_acted_by_closed_at")
                    .table("tasks")
                    .col("acted_by")
                    .col("closed_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_history_events_actor_org_id_actor_user_id_created_at")
                    .table("history_events")
                    .col("actor_org_id")
                    .col("actor_user_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "ix_history_events_actor_org_id_actor_user_id_created_at",
                "history_events",
            ),
            ("ix_tasks_acted_by_closed_at", "tasks"),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table("application_copies").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("submitted_versions").to_owned())
            .await
    }
}
