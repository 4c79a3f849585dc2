//! Failed-login counters per account and per source address.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Failed-login counter for one key (`acct:EMAIL` or `ip:ADDRESS`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "auth_throttle")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub key: String,
    pub failures: i32,
    pub blocked_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
