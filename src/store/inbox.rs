//! The reviewer's inbox: tasks of the user's organizations, counted and listed with keyset
//! pagination so a page costs the same however many applications there are.

use std::collections::BTreeSet;

use entity::{enums::TaskStatus, task};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

/// The condition for "to do": open tasks of `orgs`, and tasks claimed by `user`.
pub fn todo_condition(user: Uuid, orgs: &BTreeSet<Uuid>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(task::Column::Status.eq(TaskStatus::Open))
                .add(task::Column::OrgId.is_in(orgs.iter().copied())),
        )
        .add(
            Condition::all()
                .add(task::Column::Status.eq(TaskStatus::Claimed))
                .add(task::Column::ClaimantId.eq(user)),
        )
}

/// How many tasks wait in `user`'s to-do tab.
pub async fn count_todo<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    orgs: &BTreeSet<Uuid>,
) -> Result<u64, DbErr> {
    task::Entity::find()
        .filter(todo_condition(user, orgs))
        .count(db)
        .await
}
