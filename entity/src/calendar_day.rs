//! A calendar override: a holiday on a weekday or a make-up working day on a weekend.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A calendar override: a holiday on a weekday or a make-up working day on a weekend.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "calendar_days")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub day: Date,
    pub kind: String,
    pub name: String,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
