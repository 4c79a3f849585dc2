//! The last reference number allocated per prefix and year.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// The last reference number allocated per prefix and year.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "reference_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub prefix: String,
    pub year: i32,
    pub last_value: i64,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
