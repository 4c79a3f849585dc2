//! A company's rating (好差评) of a decided application.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A rating of 1 to 5 with a comment; 1 and 2 are flagged to the deciding org's admin.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ratings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub application_id: Uuid,
    pub company_id: Uuid,
    pub user_id: Uuid,
    pub org_id: Option<Uuid>,
    pub score: i32,
    #[sea_orm(column_type = "Text")]
    pub comment: String,
    pub flagged: bool,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
