//! One administrative action (user, role, organization, workflow, calendar, outbox,
//! reassignment), in one hash chain for the whole portal.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An administrative action.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "admin_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Position in the chain, from 1.
    #[sea_orm(unique)]
    pub seq: i64,
    /// Who acted.
    pub actor_user_id: Uuid,
    /// The organization concerned, if any.
    pub org_id: Option<Uuid>,
    /// What was done (`user.deactivate`, `workflow.activate`, …).
    pub action: String,
    /// What it was done to (a user's email, an organization's code, a definition key …).
    pub target: String,
    /// JSON details, hashed as stored.
    #[sea_orm(column_type = "Text")]
    pub details: String,
    pub created_at: DateTimeUtc,
    pub prev_hash: String,
    pub hash: String,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
