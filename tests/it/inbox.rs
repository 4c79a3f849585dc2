//! The inbox's lists and counts at the store, on SQLite and PostgreSQL: keyset pages across
//! the branches each tab is a union of (no task lost or shown twice, the same order as the
//! tab's condition sorted as a whole), and the capped counts of the badge and the tabs.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use entity::enums::{OrgRole, TaskStatus};
use entity::{org_membership, task};
use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;
use zhigang::store::inbox::{self, CappedCount, Cursor, Query, Tab};

use crate::db_test;
use crate::helpers::*;
use crate::review::{login_user, session_for};
use crate::web::spawn_app;

/// `n` submitted applications; their district (D-120116) tasks, in creation order.
async fn district_tasks(t: &TestDb, n: usize) -> Vec<task::Model> {
    let (company, applicant) = company(&t.db).await;
    let mut out = Vec::new();
    for _ in 0..n {
        let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
        let id = task_of(&t.db, app, "D-120116").await;
        out.push(
            task::Entity::find_by_id(id.0)
                .one(&t.db)
                .await
                .expect("query")
                .expect("task"),
        );
    }
    out
}

fn query(user: Uuid, orgs: &[Uuid], admin_of: &[Uuid], tab: Tab, limit: u64) -> Query {
    Query {
        user,
        orgs: orgs.iter().copied().collect(),
        admin_of: admin_of.iter().copied().collect(),
        tab,
        app_type: None,
        step: None,
        status: None,
        overdue: false,
        today: NaiveDate::from_ymd_opt(2027, 1, 4).expect("date"),
        after: None,
        limit,
    }
}

/// Every page of `q` from the top, following the cursors; the task ids in page order.
async fn every_page(t: &TestDb, mut q: Query) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = inbox::list(&t.db, &q).await.expect("list");
        ids.extend(
            page.rows
                .iter()
                .map(|r| r.task.as_ref().expect("a task").id),
        );
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.rows.len() as u64,
                    q.limit,
                    "only a full page has a next"
                );
                q.after = Some(next);
            }
            None => return ids,
        }
    }
    panic!("more than 100 pages: the cursor does not advance");
}

/// The tasks matching `cond`, sorted as a whole by (promised date, id): what the pages
/// must add up to.
async fn expected_by_due(t: &TestDb, cond: Condition) -> Vec<Uuid> {
    task::Entity::find()
        .filter(cond)
        .order_by_asc(task::Column::DueDate)
        .order_by_asc(task::Column::Id)
        .all(&t.db)
        .await
        .expect("query")
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn no_repeats(ids: &[Uuid]) {
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a task on two pages: {ids:?}");
}

async fn pages_cross_the_branches_without_losing_or_repeating_a_task(t: &TestDb) {
    let tasks = district_tasks(t, 14).await;
    let me = reviewer(&t.db, "D-120116").await.0;
    let someone = reviewer(&t.db, "D-120116").await.0;
    let (a, b, c) = (
        org(&t.db, "D-120116").await.0,
        org(&t.db, "D-120101").await.0,
        org(&t.db, "TJ-MIIT").await.0,
    );
    let base = NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
    let closed = Utc
        .with_ymd_and_hms(2027, 1, 2, 9, 0, 0)
        .single()
        .expect("time");
    // (organization, status, claimant or actor): claimed-by-me and open tasks of my two
    // organizations interleave by promised date, two tasks a day, so ties on the date
    // fall across branches and the id decides.
    let layout: [(Uuid, TaskStatus, Option<Uuid>); 14] = [
        (a, TaskStatus::Claimed, Some(me)),
        (a, TaskStatus::Open, None),
        (b, TaskStatus::Open, None),
        (c, TaskStatus::Claimed, Some(me)), // mine though not of my organizations
        (a, TaskStatus::Open, None),
        (a, TaskStatus::Claimed, Some(someone)), // not mine
        (c, TaskStatus::Open, None),             // not of my organizations
        (b, TaskStatus::Open, None),
        (a, TaskStatus::Claimed, Some(me)),
        (a, TaskStatus::Open, None),
        (b, TaskStatus::Open, None),
        (a, TaskStatus::Approved, Some(me)),
        (b, TaskStatus::Approved, Some(me)),
        (a, TaskStatus::Approved, Some(me)),
    ];
    for (i, (row, (org_id, status, who))) in tasks.iter().zip(layout).enumerate() {
        let mut m: task::ActiveModel = row.clone().into();
        m.org_id = Set(org_id);
        m.status = Set(status);
        m.due_date = Set(base + Duration::days(i as i64 / 2));
        if status == TaskStatus::Approved {
            m.acted_by = Set(who);
            // Two of the three decided at the same instant: the id decides again.
            m.closed_at = Set(Some(closed - Duration::hours((i as i64) % 2)));
        } else {
            m.claimant_id = Set(who);
        }
        m.update(&t.db).await.expect("update");
    }
    let mine = [a, b];

    // To do: the open tasks of my organizations and the tasks I hold, in pages of 2 and 3.
    let todo = expected_by_due(t, inbox::todo_condition(me, &mine.into())).await;
    assert_eq!(todo.len(), 9, "the layout gives nine to-do tasks");
    for limit in [1, 2, 3, 50] {
        let got = every_page(t, query(me, &mine, &[], Tab::Todo, limit)).await;
        no_repeats(&got);
        assert_eq!(got, todo, "to-do in pages of {limit}");
    }

    // Narrowed to one branch by the status filter, and by overdue (promised before today).
    for (status, limit) in [(TaskStatus::Open, 2), (TaskStatus::Claimed, 2)] {
        let mut q = query(me, &mine, &[], Tab::Todo, limit);
        q.status = Some(status);
        let want = expected_by_due(
            t,
            Condition::all()
                .add(inbox::todo_condition(me, &mine.into()))
                .add(task::Column::Status.eq(status)),
        )
        .await;
        assert_eq!(want.len(), if status == TaskStatus::Open { 6 } else { 3 });
        assert_eq!(every_page(t, q).await, want, "{status:?} only");
    }
    let mut q = query(me, &mine, &[], Tab::Todo, 2);
    q.overdue = true;
    let overdue = expected_by_due(
        t,
        Condition::all()
            .add(inbox::todo_condition(me, &mine.into()))
            .add(task::Column::DueDate.lt(q.today)),
    )
    .await;
    assert_eq!(overdue.len(), 5, "the tasks of my to-do due 1–3 January");
    assert_eq!(every_page(t, q).await, overdue);

    // Organization: every open and claimed task of the organization I administer.
    let org_tab = expected_by_due(
        t,
        Condition::all()
            .add(task::Column::OrgId.eq(a))
            .add(task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed])),
    )
    .await;
    assert_eq!(org_tab.len(), 6);
    for limit in [2, 3] {
        let got = every_page(t, query(me, &mine, &[a], Tab::Organization, limit)).await;
        assert_eq!(got, org_tab, "organization tab in pages of {limit}");
    }

    // Done: what I decided, newest first, ties broken by id (descending).
    let mut done: Vec<_> = tasks[11..].iter().map(|t| t.id).collect();
    let when = |id: &Uuid| {
        let i = tasks.iter().position(|t| t.id == *id).expect("task");
        closed - Duration::hours((i as i64) % 2)
    };
    done.sort_by(|x, y| when(y).cmp(&when(x)).then(y.cmp(x)));
    for limit in [1, 2] {
        let got = every_page(t, query(me, &mine, &[], Tab::Done, limit)).await;
        assert_eq!(got, done, "done tab in pages of {limit}");
    }

    // A cursor of the wrong kind for the tab starts at the top rather than failing.
    let mut q = query(me, &mine, &[], Tab::Todo, 50);
    q.after = Some(Cursor::Time(closed, Uuid::nil()));
    assert_eq!(every_page(t, q).await, todo);
}
db_test!(
    pages,
    pages_cross_the_branches_without_losing_or_repeating_a_task
);

async fn the_badge_and_the_tabs_count_up_to_a_cap(t: &TestDb) {
    let web = spawn_app(t).await;
    let me = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let district = org(&t.db, "D-120116").await.0;
    let orgs = BTreeSet::from([district]);
    let first = district_tasks(t, 1).await.remove(0);

    let count = |cap| inbox::count_todo(&t.db, me.0, &orgs, cap);
    assert_eq!(
        count(99).await.expect("count"),
        CappedCount {
            shown: 1,
            more: false
        }
    );
    // 101 open tasks: copies of the first (one application may not have two live tasks of
    // one organization in the workflow, but the inbox's counts do not care).
    for _ in 0..100 {
        let mut copy: task::ActiveModel = first.clone().into();
        copy.id = Set(Uuid::now_v7());
        copy.insert(&t.db).await.expect("copy");
    }
    for (cap, want) in [(101, "101"), (100, "100+"), (99, "99+"), (3, "3+")] {
        assert_eq!(
            count(cap).await.expect("count").display(),
            want,
            "cap {cap}"
        );
    }

    let session = session_for(t, &web.base, me).await;
    let resp = session.get("/inbox").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("body");
    assert!(
        html.contains("<span class=\"count\">(99+ 件)</span>")
            || html.contains("<span class=\"count\">(99+ open)</span>"),
        "the navigation badge stops at 99+"
    );
    assert!(html.contains("(99+)"), "so does the to-do tab");
    assert!(
        html.contains("(0)"),
        "the done tab counts exactly below the cap"
    );

    // Below the cap the count is exact again: all but 42 decided.
    let keep: Vec<Uuid> = task::Entity::find()
        .filter(task::Column::OrgId.eq(district))
        .order_by_asc(task::Column::Id)
        .all(&t.db)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| t.id)
        .take(42)
        .collect();
    task::Entity::update_many()
        .col_expr(
            task::Column::Status,
            sea_orm::sea_query::Expr::value(TaskStatus::Approved),
        )
        .filter(task::Column::OrgId.eq(district))
        .filter(task::Column::Id.is_not_in(keep))
        .exec(&t.db)
        .await
        .expect("decide");
    let html = session.get("/inbox").await.text().await.expect("body");
    assert!(
        html.contains("<span class=\"count\">(42 件)</span>")
            || html.contains("<span class=\"count\">(42 open)</span>"),
        "exact below the cap"
    );

    // A second organization's reviewer membership adds its branch to the count.
    let other = org(&t.db, "D-120101").await.0;
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(other),
        user_id: Set(me.0),
        role: Set(OrgRole::Reviewer),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("membership");
    let mut moved: task::ActiveModel = first.into();
    moved.id = Set(Uuid::now_v7());
    moved.org_id = Set(other);
    moved
        .insert(&t.db)
        .await
        .expect("task of the other organization");
    let both = BTreeSet::from([district, other]);
    assert_eq!(
        inbox::count_todo(&t.db, me.0, &both, 99)
            .await
            .expect("count"),
        CappedCount {
            shown: 43,
            more: false
        }
    );
}
db_test!(badge, the_badge_and_the_tabs_count_up_to_a_cap);
