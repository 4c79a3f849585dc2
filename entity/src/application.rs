//! An application for support, with its workflow position and optimistic-concurrency `version`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::*;

/// An application for support, with its workflow position and optimistic-concurrency `version`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub app_type: String,
    pub definition_id: Uuid,
    #[sea_orm(unique)]
    pub reference: Option<String>,
    pub company_id: Uuid,
    pub created_by: Uuid,
    pub form_data: Json,
    pub status: ApplicationStatus,
    pub current_step: Option<String>,
    pub version: i64,
    pub round: i32,
    pub step_due: Option<Date>,
    pub case_due: Option<Date>,
    pub revision_due: Option<Date>,
    pub paused_step_days: Option<i32>,
    pub paused_case_days: Option<i32>,
    pub return_items: Option<Json>,
    pub submitted_at: Option<DateTimeUtc>,
    pub decided_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries in the store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The returns for revision held in a countersign round (一次性告知), as JSON: a nullable
/// column added after the first release. It has its own partial entity over `applications`
/// so that [`Model`] (built field by field elsewhere) keeps its shape; the store reads and
/// writes it in the same transaction as the rest of the application.
pub mod held_returns {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The `held_returns` column of an application.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "applications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub held_returns: Option<Json>,
    }

    /// Relations are resolved by explicit queries in the store.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
