//! The reviewer's inbox: tasks of the user's organizations, counted and listed with keyset
//! pagination so a page costs the same however many applications there are.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{application, application_copy, enums::TaskStatus, task};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, JoinType, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationDef,
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

/// The inbox's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Open tasks of my organizations and tasks I hold.
    Todo,
    /// Tasks I decided.
    Done,
    /// Applications my organizations were copied on (抄送).
    Copied,
    /// An org admin's view: every live task of the organizations they administer.
    Organization,
}

impl Tab {
    /// The tab named in a URL (`todo` when unknown).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("done") => Tab::Done,
            Some("copied") => Tab::Copied,
            Some("org") => Tab::Organization,
            _ => Tab::Todo,
        }
    }

    /// The URL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tab::Todo => "todo",
            Tab::Done => "done",
            Tab::Copied => "copied",
            Tab::Organization => "org",
        }
    }
}

/// What the inbox lists.
#[derive(Debug, Clone)]
pub struct Query {
    /// The reviewer.
    pub user: Uuid,
    /// Organizations where they review.
    pub orgs: BTreeSet<Uuid>,
    /// Organizations they administer.
    pub admin_of: BTreeSet<Uuid>,
    /// Which tab.
    pub tab: Tab,
    /// Only this application type.
    pub app_type: Option<String>,
    /// Only this step.
    pub step: Option<String>,
    /// Only open (unclaimed) or only claimed tasks.
    pub status: Option<TaskStatus>,
    /// Only tasks past their promised date.
    pub overdue: bool,
    /// Today, in the portal's time zone.
    pub today: NaiveDate,
    /// Where the page starts (from the previous page's [`Page::next`]).
    pub after: Option<Cursor>,
    /// Rows per page.
    pub limit: u64,
}

/// A position in a list: the sort key and the id of the last row shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Ordered by promised date, oldest first.
    Due(NaiveDate, Uuid),
    /// Ordered by a time, newest first.
    Time(DateTime<Utc>, Uuid),
}

impl Cursor {
    /// The opaque form used in URLs.
    pub fn encode(&self) -> String {
        let raw = match self {
            Cursor::Due(d, id) => format!("d|{d}|{id}"),
            Cursor::Time(t, id) => format!("t|{}|{id}", t.timestamp_micros()),
        };
        hex::encode(raw)
    }

    /// Reads a cursor; anything malformed is `None` (the list starts at the top).
    pub fn decode(s: &str) -> Option<Self> {
        let raw = hex::decode(s).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(3, '|');
        let (kind, key, id) = (parts.next()?, parts.next()?, parts.next()?);
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "d" => Some(Cursor::Due(key.parse().ok()?, id)),
            "t" => Some(Cursor::Time(
                DateTime::from_timestamp_micros(key.parse().ok()?)?,
                id,
            )),
            _ => None,
        }
    }
}

/// One row of the inbox.
#[derive(Debug, Clone)]
pub struct Row {
    /// The task (none on the copied tab).
    pub task: Option<task::Model>,
    /// The application.
    pub app: application::Model,
    /// The copy (copied tab only).
    pub copy: Option<application_copy::Model>,
}

/// A page of the inbox.
#[derive(Debug, Clone)]
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

fn task_application() -> RelationDef {
    task::Entity::belongs_to(application::Entity)
        .from(task::Column::ApplicationId)
        .to(application::Column::Id)
        .into()
}

fn copy_application() -> RelationDef {
    application_copy::Entity::belongs_to(application::Entity)
        .from(application_copy::Column::ApplicationId)
        .to(application::Column::Id)
        .into()
}

/// Lists one page of the inbox, ordered by a key with an index behind it, starting after
/// the cursor: the cost of a page does not grow with the number of applications.
pub async fn list<C: ConnectionTrait>(db: &C, q: &Query) -> Result<Page, DbErr> {
    let limit = q.limit.clamp(1, 200);
    if q.tab == Tab::Copied {
        return list_copied(db, q, limit).await;
    }
    // Everything below narrows the tab's condition (ANDed), whatever its own shape.
    let mut cond = Condition::all().add(match q.tab {
        Tab::Todo => todo_condition(q.user, &q.orgs),
        Tab::Organization => Condition::all()
            .add(task::Column::OrgId.is_in(q.admin_of.iter().copied()))
            .add(task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed])),
        Tab::Done => Condition::all()
            .add(task::Column::ActedBy.eq(q.user))
            .add(task::Column::ClosedAt.is_not_null()),
        Tab::Copied => unreachable!("handled above"),
    });
    if let Some(t) = &q.app_type {
        cond = cond.add(application::Column::AppType.eq(t.clone()));
    }
    if let Some(s) = &q.step {
        cond = cond.add(task::Column::StepId.eq(s.clone()));
    }
    if let Some(st) = q.status {
        cond = cond.add(task::Column::Status.eq(st));
    }
    if q.overdue {
        cond = cond
            .add(task::Column::DueDate.lt(q.today))
            .add(task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed]));
    }
    let mut select = task::Entity::find()
        .join(JoinType::InnerJoin, task_application())
        .select_also(application::Entity);
    match (q.tab, &q.after) {
        (Tab::Done, Some(Cursor::Time(t, id))) => {
            cond = cond.add(
                Condition::any().add(task::Column::ClosedAt.lt(*t)).add(
                    Condition::all()
                        .add(task::Column::ClosedAt.eq(*t))
                        .add(task::Column::Id.lt(*id)),
                ),
            );
        }
        (Tab::Todo | Tab::Organization, Some(Cursor::Due(d, id))) => {
            cond = cond.add(
                Condition::any().add(task::Column::DueDate.gt(*d)).add(
                    Condition::all()
                        .add(task::Column::DueDate.eq(*d))
                        .add(task::Column::Id.gt(*id)),
                ),
            );
        }
        _ => {}
    }
    select = select.filter(cond);
    select = if q.tab == Tab::Done {
        select
            .order_by_desc(task::Column::ClosedAt)
            .order_by_desc(task::Column::Id)
    } else {
        select
            .order_by_asc(task::Column::DueDate)
            .order_by_asc(task::Column::Id)
    };
    let mut found = select.limit(limit + 1).all(db).await?;
    let more = found.len() as u64 > limit;
    found.truncate(limit as usize);
    let next = if more {
        found.last().map(|(t, _)| match q.tab {
            Tab::Done => Cursor::Time(t.closed_at.unwrap_or_default(), t.id),
            _ => Cursor::Due(t.due_date, t.id),
        })
    } else {
        None
    };
    Ok(Page {
        rows: found
            .into_iter()
            .filter_map(|(t, a)| {
                a.map(|app| Row {
                    task: Some(t),
                    app,
                    copy: None,
                })
            })
            .collect(),
        next,
    })
}

async fn list_copied<C: ConnectionTrait>(db: &C, q: &Query, limit: u64) -> Result<Page, DbErr> {
    let mut cond =
        Condition::all().add(application_copy::Column::OrgId.is_in(q.orgs.iter().copied()));
    if let Some(t) = &q.app_type {
        cond = cond.add(application::Column::AppType.eq(t.clone()));
    }
    if let Some(s) = &q.step {
        cond = cond.add(application_copy::Column::StepId.eq(s.clone()));
    }
    if let Some(Cursor::Time(t, id)) = &q.after {
        cond = cond.add(
            Condition::any()
                .add(application_copy::Column::CreatedAt.lt(*t))
                .add(
                    Condition::all()
                        .add(application_copy::Column::CreatedAt.eq(*t))
                        .add(application_copy::Column::Id.lt(*id)),
                ),
        );
    }
    let mut found = application_copy::Entity::find()
        .join(JoinType::InnerJoin, copy_application())
        .select_also(application::Entity)
        .filter(cond)
        .order_by_desc(application_copy::Column::CreatedAt)
        .order_by_desc(application_copy::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = found.len() as u64 > limit;
    found.truncate(limit as usize);
    let next = if more {
        found.last().map(|(c, _)| Cursor::Time(c.created_at, c.id))
    } else {
        None
    };
    Ok(Page {
        rows: found
            .into_iter()
            .filter_map(|(c, a)| {
                a.map(|app| Row {
                    task: None,
                    app,
                    copy: Some(c),
                })
            })
            .collect(),
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_ignored() {
        let id = Uuid::now_v7();
        let d = Cursor::Due(NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"), id);
        assert_eq!(Cursor::decode(&d.encode()), Some(d));
        let t = Cursor::Time(
            DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("time"),
            id,
        );
        assert_eq!(Cursor::decode(&t.encode()), Some(t));
        for bad in ["", "!!", "647c787c79", "787c323032362d30312d30317c31"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
