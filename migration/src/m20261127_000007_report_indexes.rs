//! Migration: indexes for reports and the inbox.
//!
//! The report queries filter applications by type, status and submission or decision
//! time, tasks by status with their promised or closing dates, ratings by score, and
//! group companies by district; each gets an index so the aggregates stay fast on a large
//! database.

use sea_orm_migration::prelude::*;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns).
const INDEXES: &[(&str, &str, &[&str])] = &[
    (
        "ix_applications_submitted_at",
        "applications",
        &["submitted_at"],
    ),
    (
        "ix_applications_decided_at",
        "applications",
        &["decided_at"],
    ),
    (
        "ix_applications_app_type_status",
        "applications",
        &["app_type", "status"],
    ),
    ("ix_tasks_status_due_date", "tasks", &["status", "due_date"]),
    (
        "ix_tasks_status_step_id_closed_at",
        "tasks",
        &["status", "step_id", "closed_at"],
    ),
    (
        "ix_tasks_org_id_application_id",
        "tasks",
        &["org_id", "application_id"],
    ),
    ("ix_ratings_score", "ratings", &["score"]),
    (
        "ix_companies_district_org_id",
        "companies",
        &["district_org_id"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, cols) in INDEXES {
            let mut stmt = Index::create();
            stmt.name(*name).table(Alias::new(*table));
            for col in *cols {
                stmt.col(Alias::new(*col));
            }
            manager.create_index(stmt.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES.iter().rev() {
            manager
                .drop_index(
                    Index::drop()
                        .name(*name)
                        .table(Alias::new(*table))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
