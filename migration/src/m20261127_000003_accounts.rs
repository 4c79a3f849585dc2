//! Accounts: single-use tokens (email verification, password reset, invitations) and the
//! login throttle counters, both shared by every instance through the database.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("account_tokens")
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len("kind", 32))
                    .col(string_len_uniq("token_hash", 64))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_account_tokens_user_id")
                            .from("account_tokens", "user_id")
                            .to("users", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("auth_throttle")
                    .col(pk_uuid("id"))
                    .col(string_len_uniq("key", 300))
                    .col(integer("failures"))
                    .col(timestamp_with_time_zone_null("blocked_until"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("auth_throttle").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("account_tokens").to_owned())
            .await
    }
}
