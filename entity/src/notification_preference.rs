//! A user's choice for one kind of email: immediately, in the daily digest, or not at all.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a user wants one kind of email delivered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum NotificationMode {
    /// One email per event, as soon as it happens (the default).
    #[sea_orm(string_value = "immediate")]
    Immediate,
    /// Collected into one email a day (new tasks only).
    #[sea_orm(string_value = "digest")]
    Digest,
    /// Not mailed; the delivery log records why.
    #[sea_orm(string_value = "off")]
    Off,
}

/// One user's mode for one kind; unique by (user, kind). No row means immediate.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The email kind (`task_arrived`, `approved`, …), as in the outbox.
    pub kind: String,
    pub mode: NotificationMode,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
