//! The daily digest: reviewers who chose it get the new tasks of the day in one email
//! instead of one email each.
//!
//! The worker parks a `task_arrived` row of such a reviewer until the digest (queued,
//! never due: [`queue::digest_hold`]). Once a day, from `digest_hour` local time
//! (Asia/Shanghai), the digest timer fires: in one transaction it inserts the day's row in
//! `timers` — unique by (kind, subject, due date), so one worker of several, once, gets to
//! fire it — writes one `digest` outbox row per reviewer listing the parked rows, and marks
//! those rows as carried (leased for ever, so no worker and no later digest takes them).
//! When the digest is sent, the carried rows are marked sent with it; if it dies, they die
//! with its error. Nobody who has nothing new gets a digest.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use entity::enums::OutboxStatus;
use entity::notification_preference::NotificationMode;
use entity::{outbox, timer, user};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::prefs::{self, DIGEST_KIND, DIGESTIBLE};
use super::queue;
use crate::calendar::local_time;

/// The timer kind of the daily digest (its subject is the nil id: one per day).
pub const DIGEST_TIMER: &str = "daily_digest";

/// The page a digest links to besides each task: the reviewer's inbox.
const INBOX_PATH: &str = "/inbox";

/// The local day whose digest is due at `now`, if its hour has come.
pub fn due_day(now: DateTime<Utc>, digest_hour: u32) -> Option<NaiveDate> {
    let local = local_time(now);
    (local.hour() >= digest_hour.min(23)).then(|| local.date_naive())
}

/// Fires the digest of the day at `now` unless it fired already or its hour has not come.
/// Returns how many digest emails it queued.
pub async fn run_once(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    digest_hour: u32,
) -> Result<usize, DbErr> {
    let Some(day) = due_day(now, digest_hour) else {
        return Ok(0);
    };
    // Cheap check first: almost every scan of the day finds it fired.
    let fired = timer::Entity::find()
        .filter(timer::Column::Kind.eq(DIGEST_TIMER))
        .filter(timer::Column::SubjectId.eq(Uuid::nil()))
        .filter(timer::Column::DueDate.eq(day))
        .one(db)
        .await?;
    if fired.is_some() {
        return Ok(0);
    }
    let txn = db.begin().await?;
    let inserted = timer::Entity::insert(timer::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(DIGEST_TIMER.to_string()),
        subject_id: Set(Uuid::nil()),
        due_date: Set(day),
        application_id: Set(Uuid::nil()),
        fired_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            timer::Column::Kind,
            timer::Column::SubjectId,
            timer::Column::DueDate,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await;
    match inserted {
        Ok(1..) => {}
        Ok(0) | Err(DbErr::RecordNotInserted) => {
            txn.rollback().await?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    }
    let count = bundle(&txn, now).await?;
    txn.commit().await?;
    if count > 0 {
        tracing::info!(%day, digests = count, "daily digest fired");
    }
    Ok(count)
}

/// Writes the digests of everything parked; inside the timer's transaction.
async fn bundle<C: ConnectionTrait>(txn: &C, now: DateTime<Utc>) -> Result<usize, DbErr> {
    let parked = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
        .filter(outbox::Column::NextAttemptAt.eq(queue::digest_hold()))
        .filter(outbox::Column::LeaseUntil.is_null())
        .filter(outbox::Column::Kind.is_in(DIGESTIBLE.iter().copied()))
        .order_by_asc(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .all(txn)
        .await?;
    let mut by_user: BTreeMap<Uuid, Vec<outbox::Model>> = BTreeMap::new();
    for row in parked {
        if let Some(u) = row.recipient_user_id {
            by_user.entry(u).or_default().push(row);
        }
    }
    let mut count = 0;
    for (user_id, rows) in by_user {
        let recipient = user::Entity::find_by_id(user_id).one(txn).await?;
        let mut carried = Vec::new();
        let mut released = Vec::new();
        for row in rows {
            // The reviewer may have changed their mind since the row was parked: what they
            // want now decides (the worker applies it to released rows).
            let mode = prefs::effective_mode(txn, user_id, &row.kind).await?;
            match (&recipient, mode) {
                (Some(u), NotificationMode::Digest) if u.active => carried.push(row.id),
                _ => released.push(row.id),
            }
        }
        if !released.is_empty() {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
                .filter(outbox::Column::Id.is_in(released))
                .exec(txn)
                .await?;
        }
        let Some(u) = recipient.filter(|_| !carried.is_empty()) else {
            continue;
        };
        crate::store::outbox_row(
            DIGEST_KIND,
            None,
            &u,
            json!({ "link": INBOX_PATH, "carried": carried }),
            now,
        )
        .insert(txn)
        .await?;
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Some(queue::digest_hold())),
            )
            .filter(outbox::Column::Id.is_in(carried))
            .exec(txn)
            .await?;
        count += 1;
    }
    Ok(count)
}

/// The rows a digest row carries (from its payload).
pub fn carried(row: &outbox::Model) -> Vec<Uuid> {
    row.payload
        .get("data")
        .and_then(|d| d.get("carried"))
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_due_from_its_local_hour_on_the_local_day() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("instant");
        // 23:59 UTC is 07:59 the next day in Beijing.
        assert_eq!(due_day(t("2026-11-26T23:59:00Z"), 8), None);
        assert_eq!(
            due_day(t("2026-11-27T00:00:00Z"), 8),
            Some("2026-11-27".parse().expect("date"))
        );
        assert_eq!(
            due_day(t("2026-11-27T15:59:00Z"), 8),
            Some("2026-11-27".parse().expect("date"))
        );
        assert_eq!(
            due_day(t("2026-11-27T16:00:00Z"), 8),
            None,
            "next day, 00:00"
        );
    }
}
