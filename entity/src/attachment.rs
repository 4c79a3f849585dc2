//! Metadata of an uploaded document; the bytes live in the attachment store.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Metadata of an uploaded document; the bytes live in the attachment store.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub company_id: Uuid,
    pub application_id: Option<Uuid>,
    pub uploaded_by: Uuid,
    pub material: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
