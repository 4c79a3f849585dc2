//! Migration: indexes that let every inbox tab read a page in order from an index.
//!
//! The inbox lists each tab as a union of branches, each an equality prefix followed by the
//! sort key and the id (see `src/store/inbox.rs`): open tasks of an organization and tasks a
//! reviewer holds, by promised date; tasks a reviewer decided, by closing time. With the id
//! in the index, a branch's first rows come out of the index already in the page's order, so
//! a page no longer reads and sorts the whole queue.
//!
//! The first two replace `(org_id, status, due_date)` and `(claimant_id, status)`, which are
//! their prefixes: every query those served is served as well by the longer index, and one
//! index less is one write less per task transition. Dropping them is safe for the previous
//! application version (it only loses nothing it needs).

use sea_orm_migration::prelude::*;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns) created.
const CREATED: &[(&str, &str, &[&str])] = &[
    (
        "ix_tasks_org_id_status_due_date_id",
        "tasks",
        &["org_id", "status", "due_date", "id"],
    ),
    (
        "ix_tasks_claimant_id_status_due_date_id",
        "tasks",
        &["claimant_id", "status", "due_date", "id"],
    ),
    (
        "ix_tasks_acted_by_closed_at_id",
        "tasks",
        &["acted_by", "closed_at", "id"],
    ),
];

/// (index name, table, columns) superseded by the ones above (created by the initial
/// migration; recreated by `down`).
const DROPPED: &[(&str, &str, &[&str])] = &[
    (
        "ix_tasks_org_id_status_due_date",
        "tasks",
        &["org_id", "status", "due_date"],
    ),
    (
        "ix_tasks_claimant_id_status",
        "tasks",
        &["claimant_id", "status"],
    ),
];

async fn create(
    manager: &SchemaManager<'_>,
    (name, table, cols): &(&str, &str, &[&str]),
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(*name).table(Alias::new(*table));
    for col in *cols {
        stmt.col(Alias::new(*col));
    }
    manager.create_index(stmt.to_owned()).await
}

async fn drop_index(
    manager: &SchemaManager<'_>,
    (name, table, _): &(&str, &str, &[&str]),
) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name(*name)
                .table(Alias::new(*table))
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in CREATED {
            create(manager, index).await?;
        }
        for index in DROPPED {
            drop_index(manager, index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in DROPPED {
            create(manager, index).await?;
        }
        for index in CREATED.iter().rev() {
            drop_index(manager, index).await?;
        }
        Ok(())
    }
}
