//! Ratings (好差评): one per decided application, 1 to 5 with a comment; low ones are
//! flagged to the deciding organization's admin.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ratings")
                    .col(pk_uuid("id"))
                    .col(uuid_uniq("application_id"))
                    .col(uuid("company_id"))
                    .col(uuid("user_id"))
                    .col(uuid_null("org_id"))
                    .col(integer("score"))
                    .col(text("comment"))
                    .col(boolean("flagged"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ratings_application_id")
                            .from("ratings", "application_id")
                            .to("applications", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_ratings_org_id_flagged")
                    .table("ratings")
                    .col("org_id")
                    .col("flagged")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("ratings").to_owned())
            .await
    }
}
