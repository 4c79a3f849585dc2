//! A timer that has fired: a reminder before or at a task's promised date, an escalation
//! of an overdue task, or a warning that a 补正 deadline approaches.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A timer that has fired; unique by (kind, subject, due date), so it fires once.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "timers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `task_due_soon`, `task_due_today`, `task_escalated`, `revision_due_soon`.
    pub kind: String,
    /// The task (or, for a revision deadline, the application) it is about.
    pub subject_id: Uuid,
    /// The due date it was computed from.
    pub due_date: Date,
    pub application_id: Uuid,
    pub fired_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
