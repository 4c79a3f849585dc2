//! One organization's work item on one active workflow step.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::*;

/// One organization's work item on one active workflow step.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub application_id: Uuid,
    pub step_id: String,
    pub org_id: Uuid,
    pub round: i32,
    pub status: TaskStatus,
    pub claimant_id: Option<Uuid>,
    pub delegated_by: Option<Uuid>,
    pub acted_by: Option<Uuid>,
    pub due_date: Date,
    pub opened_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
