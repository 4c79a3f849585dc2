//! The form and materials of an application as they were (re)submitted.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One submission of an application: round 1 is the first, each resubmission the next.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "submitted_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub application_id: Uuid,
    pub round: i32,
    /// The form data as submitted.
    pub form_data: Json,
    /// The current attachment of each material: `{material: {id, filename, sha256}}`.
    pub attachments: Json,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
