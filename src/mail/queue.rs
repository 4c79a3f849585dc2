//! The outbox as a work queue: claiming due rows under a lease, and recording the outcome.
//!
//! A claim sets `lease_until` and counts the attempt in the same statement, so a row
//! another worker holds is invisible until its lease runs out, and a row that keeps
//! crashing its worker still reaches `mail_max_attempts` and goes dead.

use chrono::{DateTime, Utc};
use entity::enums::OutboxStatus;
use entity::outbox;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryTrait, Statement,
};

/// Claims up to `limit` due rows for this worker until `lease_until`.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED` lets concurrent workers each take different rows
/// without waiting for each other. SQLite: the single `UPDATE … RETURNING` statement runs
/// under the database's write lock, so two workers cannot both match the same row.
pub async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    let backend = db.get_database_backend();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let stmt = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "WITH due AS ( \
                SELECT id FROM outbox \
                WHERE status = 'queued' AND next_attempt_at <= $1 \
                  AND (lease_until IS NULL OR lease_until < $1) \
                ORDER BY next_attempt_at, id \
                LIMIT $2 \
                FOR UPDATE SKIP LOCKED) \
             UPDATE outbox SET lease_until = $3, attempts = outbox.attempts + 1 \
             FROM due WHERE outbox.id = due.id \
             RETURNING outbox.*",
            [now.into(), limit.into(), lease_until.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "UPDATE outbox SET lease_until = ?, attempts = attempts + 1 \
             WHERE id IN ( \
                SELECT id FROM outbox \
                WHERE status = 'queued' AND next_attempt_at <= ? \
                  AND (lease_until IS NULL OR lease_until < ?) \
                ORDER BY next_attempt_at, id \
                LIMIT ?) \
             RETURNING *",
            [lease_until.into(), now.into(), now.into(), limit.into()],
        ),
    };
    let mut rows = outbox::Entity::find().from_raw_sql(stmt).all(db).await?;
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows)
}

/// Records a successful send. Returns false when the lease was lost meanwhile (another
/// worker may have sent it too — the shared Message-ID lets the recipient's client fold
/// the two).
pub async fn mark_sent<C: ConnectionTrait>(
    db: &C,
    row: &outbox::Model,
    lease: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(!mark_sent_many(db, &[row.id], lease, now).await?.is_empty())
}

/// Records successful sends of rows claimed under the same `lease`, in one statement.
/// Returns the ids recorded: a row missing from it had lost its lease meanwhile (as for
/// [`mark_sent`]).
pub async fn mark_sent_many<C: ConnectionTrait>(
    db: &C,
    ids: &[uuid::Uuid],
    lease: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<uuid::Uuid>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Sent))
        .col_expr(outbox::Column::SentAt, Expr::value(Some(now)))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
        .filter(outbox::Column::LeaseUntil.eq(lease))
        .into_query();
    // UPDATE … RETURNING: PostgreSQL, and SQLite since 3.35 (the claim relies on it too).
    update.returning_col(outbox::Column::Id);
    db.query_all(&update)
        .await?
        .iter()
        .map(|r| r.try_get::<uuid::Uuid>("", "id"))
        .collect()
}

/// Records a failure: back to the queue at `retry_at`, or dead when `retry_at` is `None`.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    row: &outbox::Model,
    lease: DateTime<Utc>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let mut update = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Some(error.to_string())),
        );
    update = match retry_at {
        Some(at) => update
            .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Queued))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(at)),
        None => update.col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Dead)),
    };
    let res = update
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
        .filter(outbox::Column::LeaseUntil.eq(lease))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Puts a dead row back in the queue for an immediate attempt with a fresh attempt count
/// (the administrators' retry button). Returns false when the row is not dead.
pub async fn retry_dead<C: ConnectionTrait>(
    db: &C,
    id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Queued))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Dead))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// `next_attempt_at` of a row waiting for the daily digest: never due by itself. The
/// digest timer picks such rows up (see [`super::digest`]).
pub fn digest_hold() -> DateTime<Utc> {
    // 9999-12-31T00:00:00Z: representable on both databases, and sorts after any real
    // instant in SQLite's text form too.
    DateTime::<Utc>::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a row was not sent: the recipient switched this kind of email off. Written as the
/// row's last error, so the delivery log says it.
pub const SWITCHED_OFF: &str =
    "not sent: the recipient switched this kind of notification off in their preferences";

/// Records that a claimed row is not sent because the recipient switched its kind off:
/// the row is closed (dead, so no worker takes it again) with [`SWITCHED_OFF`] as the
/// reason. Returns false when the lease was lost meanwhile.
pub async fn mark_switched_off<C: ConnectionTrait>(
    db: &C,
    row: &outbox::Model,
    lease: DateTime<Utc>,
) -> Result<bool, DbErr> {
    mark_failed(db, row, lease, SWITCHED_OFF, None).await
}

/// Parks a claimed row until the next daily digest: queued, never due by itself, no lease
/// and a fresh attempt count. Returns false when the lease was lost meanwhile.
pub async fn hold_for_digest<C: ConnectionTrait>(
    db: &C,
    row: &outbox::Model,
    lease: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(digest_hold()))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
        .filter(outbox::Column::LeaseUntil.eq(lease))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records the outcome of a digest for the rows it carried: sent with it, or dead with
/// its error. Rows already sent are left alone.
pub async fn settle_digested<C: ConnectionTrait>(
    db: &C,
    ids: &[uuid::Uuid],
    outcome: Result<DateTime<Utc>, &str>,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let update = outbox::Entity::update_many().col_expr(
        outbox::Column::LeaseUntil,
        Expr::value(Option::<DateTime<Utc>>::None),
    );
    let update = match outcome {
        Ok(at) => update
            .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Sent))
            .col_expr(outbox::Column::SentAt, Expr::value(Some(at)))
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Err(e) => update
            .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Dead))
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Some(format!(
                    "the daily digest that carried it failed: {e}"
                ))),
            ),
    };
    Ok(update
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::Status.ne(OutboxStatus::Sent))
        .exec(db)
        .await?
        .rows_affected)
}
