//! An organization copied (抄送) on an application when one of its steps opened.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A copy: the organization's reviewers may read the application.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "application_copies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub application_id: Uuid,
    pub org_id: Uuid,
    pub step_id: String,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
