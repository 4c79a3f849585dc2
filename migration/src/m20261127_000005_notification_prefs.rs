//! Notification preferences: per user and kind of email, `immediate` (the default when no
//! row exists), `digest` (new tasks only: once a day in one email) or `off`. Account and
//! security emails ignore this table; the server refuses to store `off` for them.

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
                    .table("notification_preferences")
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len("kind", 64))
                    .col(string_len("mode", 16))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notification_preferences_user_id")
                            .from("notification_preferences", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_notification_preferences_user_id_kind")
                    .table("notification_preferences")
                    .col("user_id")
                    .col("kind")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("notification_preferences").to_owned())
            .await
    }
}
