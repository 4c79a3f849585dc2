//! The first response to an API POST sent with an `Idempotency-Key`, replayed on repeats.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One idempotency key of one user.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub key: String,
    /// Method and path of the request.
    pub request: String,
    /// SHA-256 hex of the request body.
    pub body_hash: String,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
