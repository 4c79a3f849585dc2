//! Timers behind promised times: reminders before and at a task's promised date,
//! escalation to the org admins of a task overdue by `escalate_after_working_days`, and a
//! warning to the applicant whose 补正 deadline approaches.
//!
//! Timers are derived from the rows that define them (live tasks and their `due_date`,
//! returned applications and their `revision_due`), so a timer that came due while the
//! portal was stopped is found at the next scan. Firing inserts a `timers` row keyed by
//! (kind, subject, due date) and the notification's outbox rows in one transaction: the
//! unique key lets exactly one of several workers (or one worker across restarts) fire
//! it, and the outbox delivers it like any other email. A reminder whose moment has
//! passed is superseded by the next one (`due soon` → `due today` → escalation) rather
//! than sent late.

use chrono::{DateTime, NaiveDate, Utc};
use entity::enums::{ApplicationStatus, OrgRole, TaskStatus};
use entity::{application, company_member, org_membership, task, timer, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::calendar::{Calendar, local_date};
use crate::store;

/// Working days before a task's promised date that the holder is reminded.
const DUE_SOON_WORKING_DAYS: u32 = 1;
/// Working days before a 补正 deadline that the applicant is warned.
const REVISION_WARNING_WORKING_DAYS: u32 = 2;

/// A timer kind (also the email template's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// The working day before a task's promised date.
    TaskDueSoon,
    /// The promised date itself.
    TaskDueToday,
    /// Overdue by the configured number of working days: to the org admins.
    TaskEscalated,
    /// A 补正 deadline is near: to the applicant company.
    RevisionDueSoon,
}

impl TimerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskDueSoon => "task_due_soon",
            Self::TaskDueToday => "task_due_today",
            Self::TaskEscalated => "task_escalated",
            Self::RevisionDueSoon => "revision_due_soon",
        }
    }
}

/// Which timer, if any, a live task with promised date `due` is at on `today`.
pub fn task_timer(
    calendar: &Calendar,
    today: NaiveDate,
    due: NaiveDate,
    escalate_after: u32,
) -> Option<TimerKind> {
    if today < due {
        (calendar.working_days_between(today, due) <= DUE_SOON_WORKING_DAYS)
            .then_some(TimerKind::TaskDueSoon)
    } else if today == due {
        Some(TimerKind::TaskDueToday)
    } else {
        (calendar.working_days_between(due, today) >= escalate_after.max(1))
            .then_some(TimerKind::TaskEscalated)
    }
}

/// Whether a 补正 deadline `due` is near enough on `today` to warn the applicant.
pub fn revision_warning(calendar: &Calendar, today: NaiveDate, due: NaiveDate) -> bool {
    today <= due && calendar.working_days_between(today, due) <= REVISION_WARNING_WORKING_DAYS
}

/// Scans for due timers at `now` and fires each that has not fired; returns how many fired.
pub async fn run_once(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    escalate_after: u32,
) -> anyhow::Result<usize> {
    let calendar = store::load_calendar(db).await?;
    let today = local_date(now);
    let mut due: Vec<(TimerKind, Uuid, NaiveDate, Uuid, Option<task::Model>)> = Vec::new();

    let live = task::Entity::find()
        .filter(task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed]))
        .all(db)
        .await?;
    for t in live {
        if let Some(kind) = task_timer(&calendar, today, t.due_date, escalate_after) {
            due.push((kind, t.id, t.due_date, t.application_id, Some(t)));
        }
    }
    let returned = application::Entity::find()
        .filter(application::Column::Status.eq(ApplicationStatus::Returned))
        .filter(application::Column::RevisionDue.is_not_null())
        .all(db)
        .await?;
    for a in returned {
        if let Some(d) = a.revision_due
            && revision_warning(&calendar, today, d)
        {
            due.push((TimerKind::RevisionDueSoon, a.id, d, a.id, None));
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    // Skip what already fired without opening a transaction for each.
    let fired: std::collections::HashSet<(String, Uuid, NaiveDate)> = timer::Entity::find()
        .filter(timer::Column::SubjectId.is_in(due.iter().map(|d| d.1).collect::<Vec<_>>()))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.kind, t.subject_id, t.due_date))
        .collect();
    let mut count = 0;
    for (kind, subject, due_date, app_id, the_task) in due {
        if fired.contains(&(kind.as_str().to_string(), subject, due_date)) {
            continue;
        }
        let overdue = calendar.working_days_between(due_date, today);
        if fire(
            db,
            now,
            kind,
            subject,
            due_date,
            app_id,
            the_task.as_ref(),
            overdue,
        )
        .await?
        {
            count += 1;
        }
    }
    Ok(count)
}

/// Fires one timer: the `timers` row and the outbox rows commit together, or neither
/// (another worker got there first).
#[allow(clippy::too_many_arguments)]
async fn fire(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    kind: TimerKind,
    subject: Uuid,
    due_date: NaiveDate,
    app_id: Uuid,
    the_task: Option<&task::Model>,
    overdue_days: u32,
) -> Result<bool, DbErr> {
    let Some(app) = application::Entity::find_by_id(app_id).one(db).await? else {
        return Ok(false);
    };
    let txn = db.begin().await?;
    let inserted = timer::Entity::insert(timer::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.as_str().to_string()),
        subject_id: Set(subject),
        due_date: Set(due_date),
        application_id: Set(app_id),
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
    let inserted = match inserted {
        Ok(n) => n,
        Err(DbErr::RecordNotInserted) => 0,
        Err(e) => return Err(e),
    };
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let recipients = recipients(&txn, kind, &app, the_task).await?;
    let data = match the_task {
        Some(t) => json!({
            "task": t.id,
            "due": t.due_date,
            "overdue_days": (kind == TimerKind::TaskEscalated).then_some(overdue_days),
        }),
        None => json!({ "revision_due": due_date }),
    };
    for u in recipients {
        crate::store::outbox_row(kind.as_str(), Some(&app), &u, data.clone(), now)
            .insert(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(kind = kind.as_str(), application_id = %app.id, reference = app.reference.as_deref().unwrap_or(""), "timer fired");
    Ok(true)
}

async fn recipients<C: ConnectionTrait>(
    db: &C,
    kind: TimerKind,
    app: &application::Model,
    the_task: Option<&task::Model>,
) -> Result<Vec<user::Model>, DbErr> {
    let ids: Vec<Uuid> = match (kind, the_task) {
        (TimerKind::RevisionDueSoon, _) | (_, None) => company_member::Entity::find()
            .filter(company_member::Column::CompanyId.eq(app.company_id))
            .filter(company_member::Column::Active.eq(true))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
        (TimerKind::TaskEscalated, Some(t)) => org_membership::Entity::find()
            .filter(org_membership::Column::OrgId.eq(t.org_id))
            .filter(org_membership::Column::Role.eq(OrgRole::OrgAdmin))
            .filter(org_membership::Column::Active.eq(true))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect(),
        (TimerKind::TaskDueSoon | TimerKind::TaskDueToday, Some(t)) => match t.claimant_id {
            Some(u) => vec![u],
            None => org_membership::Entity::find()
                .filter(org_membership::Column::OrgId.eq(t.org_id))
                .filter(org_membership::Column::Active.eq(true))
                .all(db)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .collect(),
        },
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .filter(user::Column::Active.eq(true))
        .order_by_asc(user::Column::Email)
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn a_task_moves_from_due_soon_to_due_today_to_escalated_in_working_days() {
        let cal = Calendar::default();
        // Due Monday 2026-12-07.
        let due = d("2026-12-07");
        assert_eq!(
            task_timer(&cal, d("2026-12-03"), due, 3),
            None,
            "Thursday: two working days ahead"
        );
        assert_eq!(
            task_timer(&cal, d("2026-12-04"), due, 3),
            Some(TimerKind::TaskDueSoon),
            "Friday"
        );
        assert_eq!(
            task_timer(&cal, d("2026-12-05"), due, 3),
            Some(TimerKind::TaskDueSoon),
            "Saturday"
        );
        assert_eq!(task_timer(&cal, due, due, 3), Some(TimerKind::TaskDueToday));
        assert_eq!(
            task_timer(&cal, d("2026-12-09"), due, 3),
            None,
            "two working days late"
        );
        assert_eq!(
            task_timer(&cal, d("2026-12-10"), due, 3),
            Some(TimerKind::TaskEscalated)
        );
        assert!(revision_warning(&cal, d("2026-12-03"), due));
        assert!(!revision_warning(&cal, d("2026-12-02"), due));
        assert!(!revision_warning(&cal, d("2026-12-08"), due));
    }
}
