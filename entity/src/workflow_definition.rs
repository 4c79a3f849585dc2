//! One version of a workflow definition (the TOML source as loaded).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One version of a workflow definition (the TOML source as loaded).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_definitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub key: String,
    pub version: i32,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub checksum: String,
    pub active: bool,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
