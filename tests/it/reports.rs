//! Integration tests of the reports area: exact figures for a known set of applications,
//! CSV content and escaping, and who may see which figures.

use chrono::{DateTime, NaiveDate, Utc};
use entity::enums::{ApplicationStatus, OrgRole, TaskStatus};
use entity::{application, rating, system_admin, task, workflow_definition};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use zhigang::calendar::Calendar;
use zhigang::reports::{self, Filters};
use zhigang::store;

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, spawn_app};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The known data set: organization ids and the applications' ids by name.
struct Fixture {
    district: Uuid,
    miit: Uuid,
    stc: Uuid,
    amr: Uuid,
    company: Uuid,
    applicant: Uuid,
    overdue_task: Uuid,
}

async fn definition_id(t: &TestDb, key: &str) -> Uuid {
    workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(key))
        .filter(workflow_definition::Column::Active.eq(true))
        .one(&t.db)
        .await
        .expect("query")
        .expect("definition")
        .id
}

#[allow(clippy::too_many_arguments)]
async fn app_row(
    t: &TestDb,
    key: &str,
    reference: Option<&str>,
    company: Uuid,
    by: Uuid,
    status: ApplicationStatus,
    submitted: Option<&str>,
    decided: Option<&str>,
    case_due: Option<&str>,
) -> Uuid {
    let id = Uuid::now_v7();
    let form = if key == "yqyc" {
        yqyc_form(&["rd_funding"])
    } else {
        serde_json::json!({ "service_kind": "fast_protection" })
    };
    application::ActiveModel {
        id: Set(id),
        app_type: Set(key.into()),
        definition_id: Set(definition_id(t, key).await),
        reference: Set(reference.map(str::to_string)),
        company_id: Set(company),
        created_by: Set(by),
        form_data: Set(form),
        status: Set(status),
        current_step: Set(None),
        version: Set(1),
        round: Set(1),
        step_due: Set(None),
        case_due: Set(case_due.map(day)),
        revision_due: Set(None),
        paused_step_days: Set(None),
        paused_case_days: Set(None),
        return_items: Set(None),
        submitted_at: Set(submitted.map(at)),
        decided_at: Set(decided.map(at)),
        created_at: Set(at("2026-01-01T00:00:00Z")),
        updated_at: Set(at("2026-01-01T00:00:00Z")),
    }
    .insert(&t.db)
    .await
    .expect("application");
    id
}

#[allow(clippy::too_many_arguments)]
async fn task_row(
    t: &TestDb,
    app: Uuid,
    step: &str,
    org: Uuid,
    status: TaskStatus,
    opened: &str,
    closed: Option<&str>,
    due: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    task::ActiveModel {
        id: Set(id),
        application_id: Set(app),
        step_id: Set(step.into()),
        org_id: Set(org),
        round: Set(1),
        status: Set(status),
        claimant_id: Set(None),
        delegated_by: Set(None),
        acted_by: Set(None),
        due_date: Set(day(due)),
        opened_at: Set(at(opened)),
        closed_at: Set(closed.map(at)),
    }
    .insert(&t.db)
    .await
    .expect("task");
    id
}

async fn rating_row(t: &TestDb, app: Uuid, f: &Fixture, org: Uuid, score: i32, comment: &str) {
    rating::ActiveModel {
        id: Set(Uuid::now_v7()),
        application_id: Set(app),
        company_id: Set(f.company),
        user_id: Set(f.applicant),
        org_id: Set(Some(org)),
        score: Set(score),
        comment: Set(comment.into()),
        flagged: Set(score <= 2),
        created_at: Set(at("2026-11-21T02:00:00Z")),
    }
    .insert(&t.db)
    .await
    .expect("rating");
}

/// Six applications (and a draft) with hand-picked times; the expected figures are
/// worked out in the comments of `the_figures_of_a_known_set_of_applications_are_exact`.
async fn fixture(t: &TestDb) -> Fixture {
    use ApplicationStatus as A;
    use TaskStatus as T;
    let (company, applicant) = company(&t.db).await;
    let mut f = Fixture {
        district: org(&t.db, "D-120116").await.0,
        miit: org(&t.db, "TJ-MIIT").await.0,
        stc: org(&t.db, "TJ-STC").await.0,
        amr: org(&t.db, "TJ-AMR").await.0,
        company: company.0,
        applicant: applicant.0,
        overdue_task: Uuid::nil(),
    };
    let (c, u) = (f.company, f.applicant);
    let a1 = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0001"),
        c,
        u,
        A::Approved,
        Some("2026-09-28T00:30:00Z"),
        Some("2026-10-20T00:00:00Z"),
        Some("2026-10-30"),
    )
    .await;
    let a2 = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0002"),
        c,
        u,
        A::Rejected,
        Some("2026-09-18T01:00:00Z"),
        Some("2026-11-20T00:00:00Z"),
        Some("2026-11-01"),
    )
    .await;
    // Submitted on 31 October UTC, which is already 1 November in Beijing.
    let a3 = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0003"),
        c,
        u,
        A::InReview,
        Some("2026-10-31T17:00:00Z"),
        None,
        Some("2026-12-30"),
    )
    .await;
    let a4 = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0004"),
        c,
        u,
        A::Returned,
        Some("2026-11-01T23:00:00Z"),
        None,
        Some("2026-12-30"),
    )
    .await;
    let a5 = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0005"),
        c,
        u,
        A::InReview,
        Some("2026-11-05T10:00:00Z"),
        None,
        Some("2026-12-30"),
    )
    .await;
    // Decided on 20 October UTC = 21 October in Beijing: one day after its promised date.
    let a6 = app_row(
        t,
        "ip_fast_track",
        Some("IPFT-T-0006"),
        c,
        u,
        A::Approved,
        Some("2026-10-15T02:00:00Z"),
        Some("2026-10-20T16:30:00Z"),
        Some("2026-10-20"),
    )
    .await;
    // A draft: never reported.
    app_row(t, "yqyc", None, c, u, A::Draft, None, None, None).await;

    let d = f.district;
    // District pre-review: hours 264, 72, 6.5, 48, 1; working days 4, 2, 0, 2, 1.
    task_row(
        t,
        a1,
        "district_review",
        d,
        T::Approved,
        "2026-09-28T01:00:00Z",
        Some("2026-10-09T01:00:00Z"),
        "2026-10-09",
    )
    .await;
    task_row(
        t,
        a2,
        "district_review",
        d,
        T::Approved,
        "2026-09-18T02:00:00Z",
        Some("2026-09-21T02:00:00Z"),
        "2026-09-18",
    )
    .await;
    task_row(
        t,
        a3,
        "district_review",
        d,
        T::Approved,
        "2026-11-02T00:00:00Z",
        Some("2026-11-02T06:30:00Z"),
        "2026-11-02",
    )
    .await;
    task_row(
        t,
        a4,
        "district_review",
        d,
        T::Approved,
        "2026-11-02T00:00:00Z",
        Some("2026-11-04T00:00:00Z"),
        "2026-11-03",
    )
    .await;
    task_row(
        t,
        a5,
        "district_review",
        d,
        T::Approved,
        "2026-11-05T15:30:00Z",
        Some("2026-11-05T16:30:00Z"),
        "2026-11-05",
    )
    .await;
    let m = f.miit;
    // Lead review: hours 10, 20, 30, 40; working days 0, 1, 1, 2.
    task_row(
        t,
        a1,
        "lead_review",
        m,
        T::Approved,
        "2026-11-09T00:00:00Z",
        Some("2026-11-09T10:00:00Z"),
        "2026-11-10",
    )
    .await;
    task_row(
        t,
        a2,
        "lead_review",
        m,
        T::Rejected,
        "2026-11-09T00:00:00Z",
        Some("2026-11-09T20:00:00Z"),
        "2026-11-10",
    )
    .await;
    task_row(
        t,
        a3,
        "lead_review",
        m,
        T::Approved,
        "2026-11-09T00:00:00Z",
        Some("2026-11-10T06:00:00Z"),
        "2026-11-10",
    )
    .await;
    task_row(
        t,
        a4,
        "lead_review",
        m,
        T::Returned,
        "2026-11-09T00:00:00Z",
        Some("2026-11-10T16:00:00Z"),
        "2026-11-10",
    )
    .await;
    // Not decided by anybody: left out of the step times.
    task_row(
        t,
        a5,
        "countersign",
        f.stc,
        T::Cancelled,
        "2026-11-06T00:00:00Z",
        Some("2026-11-06T01:00:00Z"),
        "2026-11-20",
    )
    .await;
    // Live tasks: one overdue, one not.
    f.overdue_task = task_row(
        t,
        a5,
        "countersign",
        f.stc,
        T::Open,
        "2026-11-06T01:00:00Z",
        None,
        "2026-11-10",
    )
    .await;
    task_row(
        t,
        a3,
        "coordination",
        f.miit,
        T::Claimed,
        "2026-11-10T06:00:00Z",
        None,
        "2099-01-01",
    )
    .await;
    task_row(
        t,
        a6,
        "acceptance",
        f.amr,
        T::Approved,
        "2026-10-15T02:00:00Z",
        Some("2026-10-16T02:00:00Z"),
        "2026-10-19",
    )
    .await;

    rating_row(t, a1, &f, f.district, 5, "很好").await;
    rating_row(t, a2, &f, f.miit, 1, "=HYPERLINK(\"http://x\")").await;
    rating_row(t, a6, &f, f.amr, 2, "慢, \"太慢\"").await;
    f
}

async fn the_figures_of_a_known_set_of_applications_are_exact(t: &TestDb) {
    let f = fixture(t).await;
    let db = &t.db;
    let city = Filters::default();

    // Applications by type and status; the draft is left out.
    let status: Vec<(String, String, i64)> = reports::by_type_and_status(db, &city)
        .await
        .expect("status")
        .into_iter()
        .map(|s| (s.app_type, s.status, s.count))
        .collect();
    let expect = |v: &[(&str, &str, i64)]| -> Vec<(String, String, i64)> {
        v.iter()
            .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
            .collect()
    };
    assert_eq!(
        status,
        expect(&[
            ("ip_fast_track", "approved", 1),
            ("yqyc", "approved", 1),
            ("yqyc", "in_review", 2),
            ("yqyc", "rejected", 1),
            ("yqyc", "returned", 1),
        ])
    );

    // Time per step, nearest rank: of 5 values the 3rd and 5th, of 4 the 2nd and 4th.
    let steps = reports::step_times(db, &city).await.expect("steps");
    let row = |id: &str| {
        steps
            .iter()
            .find(|s| s.step_id == id)
            .unwrap_or_else(|| panic!("a row for {id}: {steps:?}"))
            .clone()
    };
    assert_eq!(steps.len(), 3, "{steps:?}");
    let dr = row("district_review");
    assert_eq!(
        (dr.tasks, dr.on_time),
        (5, 2),
        "on time: closed on 9 Oct and 2 Nov"
    );
    assert!((dr.median_hours - 48.0).abs() < 1e-6, "{dr:?}");
    assert!((dr.p90_hours - 264.0).abs() < 1e-6, "{dr:?}");
    // Working days over the National Day holiday (4), across the make-up Sunday 20 Sept
    // (2), on the same day (0), two weekdays (2) and past Beijing midnight (1).
    assert_eq!((dr.median_days, dr.p90_days), (2, 4), "{dr:?}");
    let lr = row("lead_review");
    assert_eq!((lr.tasks, lr.on_time), (4, 3));
    assert!((lr.median_hours - 20.0).abs() < 1e-6, "{lr:?}");
    assert!((lr.p90_hours - 40.0).abs() < 1e-6, "{lr:?}");
    assert_eq!((lr.median_days, lr.p90_days), (1, 2), "{lr:?}");
    let acc = row("acceptance");
    assert_eq!((acc.tasks, acc.on_time, acc.median_days), (1, 1, 1));

    // The SQL working days agree with the calendar's own count.
    let cal: Calendar = store::load_calendar(db).await.expect("calendar");
    assert_eq!(
        cal.working_days_between(day("2026-09-28"), day("2026-10-09")),
        4
    );
    assert_eq!(
        cal.working_days_between(day("2026-09-18"), day("2026-09-21")),
        2
    );

    // Applications decided by their promised date: 1 of 2 一企一策, 0 of 1 IP (decided
    // on 21 October in Beijing, promised for the 20th).
    let cases: Vec<(String, i64, i64)> = reports::cases_on_time(db, &city)
        .await
        .expect("cases")
        .into_iter()
        .map(|c| (c.app_type, c.decided, c.on_time))
        .collect();
    assert_eq!(
        cases,
        vec![("ip_fast_track".into(), 1, 0), ("yqyc".into(), 2, 1)]
    );

    // Overdue: the open countersign task only (the claimed one is due in 2099).
    let today = day("2026-11-27");
    let overdue = reports::overdue(db, &city, today, None)
        .await
        .expect("overdue");
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].task_id, f.overdue_task);
    assert_eq!(overdue[0].reference, "YQYC-T-0005");
    assert_eq!(overdue[0].org_id, f.stc);
    assert_eq!(overdue[0].due_date, day("2026-11-10"));
    assert_eq!(
        reports::overdue_count(db, &city, today).await.expect("n"),
        1
    );
    assert_eq!(
        reports::overdue_count(db, &city, day("2026-11-10"))
            .await
            .expect("n"),
        0,
        "due today is not overdue"
    );

    // Monthly trend by Beijing month: A3 counts for November.
    let trend = reports::monthly_trend(db, &city, day("2026-11-30"))
        .await
        .expect("trend");
    assert_eq!(trend.len(), 12);
    assert_eq!(trend[0].month, "2025-12");
    let month = |m: &str| {
        trend
            .iter()
            .find(|x| x.month == m)
            .map(|x| (x.submitted, x.decided))
            .unwrap_or_else(|| panic!("{m}"))
    };
    assert_eq!(month("2026-09"), (2, 0));
    assert_eq!(month("2026-10"), (1, 2));
    assert_eq!(month("2026-11"), (3, 1));
    assert_eq!(month("2026-08"), (0, 0));

    // Ratings.
    let r = reports::ratings(db, &city).await.expect("ratings");
    assert_eq!(r.count, 3);
    assert_eq!(r.distribution, [1, 1, 0, 0, 1]);
    assert!((r.average.expect("avg") - 8.0 / 3.0).abs() < 1e-9);
    let low = reports::low_ratings(db, &city, None).await.expect("low");
    let mut refs: Vec<_> = low.iter().map(|l| l.reference.as_str()).collect();
    refs.sort_unstable();
    assert_eq!(refs, ["IPFT-T-0006", "YQYC-T-0002"]);

    // One organization: the district sees its own tasks and the applications it touched.
    let district = Filters {
        org: Some(f.district),
        ..Filters::default()
    };
    let steps = reports::step_times(db, &district).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].step_id, "district_review");
    let n: i64 = reports::by_type_and_status(db, &district)
        .await
        .expect("status")
        .iter()
        .map(|s| s.count)
        .sum();
    assert_eq!(n, 5, "A1–A5, not the IP application");
    let r = reports::ratings(db, &district).await.expect("ratings");
    assert_eq!((r.count, r.distribution[4]), (1, 1));
    assert_eq!(
        reports::overdue_count(db, &district, today)
            .await
            .expect("n"),
        0
    );
    let stc = Filters {
        org: Some(f.stc),
        ..Filters::default()
    };
    assert_eq!(reports::overdue_count(db, &stc, today).await.expect("n"), 1);
    let amr = Filters {
        org: Some(f.amr),
        ..Filters::default()
    };
    let cases = reports::cases_on_time(db, &amr).await.expect("cases");
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].app_type, "ip_fast_track");

    // Date range by Beijing submission day, and type.
    let november = Filters {
        from: Some(day("2026-11-01")),
        to: Some(day("2026-11-30")),
        ..Filters::default()
    };
    let n: i64 = reports::by_type_and_status(db, &november)
        .await
        .expect("status")
        .iter()
        .map(|s| s.count)
        .sum();
    assert_eq!(n, 3, "A3 (1 Nov in Beijing), A4, A5");
    let october = Filters {
        from: Some(day("2026-10-01")),
        to: Some(day("2026-10-31")),
        ..Filters::default()
    };
    let n: i64 = reports::by_type_and_status(db, &october)
        .await
        .expect("status")
        .iter()
        .map(|s| s.count)
        .sum();
    assert_eq!(n, 1, "only A6");
    let ip = Filters {
        app_type: Some("ip_fast_track".into()),
        ..Filters::default()
    };
    let steps = reports::step_times(db, &ip).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].step_id, "acceptance");

    // The catalogue: the company with its AI field and outcomes.
    let cat = reports::catalogue(db, None).await.expect("catalogue");
    let c = cat
        .iter()
        .find(|c| c.name == "天津智能测试科技有限公司")
        .expect("row");
    assert_eq!(c.ai_field.as_deref(), Some("robots"));
    assert_eq!(
        (c.applications, c.approved, c.rejected, c.withdrawn, c.open),
        (6, 2, 1, 0, 3)
    );
    assert_eq!(c.district_org_id, f.district);
}
db_test!(
    the_figures_of_a_known_set_of_applications_are_exact,
    the_figures_of_a_known_set_of_applications_are_exact
);

const PASSWORD: &str = "violet-harbour-tractor-58";

/// A user who can log in with [`PASSWORD`].
async fn login_user(t: &TestDb, app: &TestApp, id: Uuid) {
    let hash = zhigang::passwords::hash_blocking(PASSWORD).expect("hash");
    let u = entity::user::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let email = u.email.clone();
    let mut am: entity::user::ActiveModel = u.into();
    am.password_hash = Set(hash);
    am.update(&t.db).await.expect("update");
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", email.as_str()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), 303, "logged in as {email}");
}

async fn as_user(t: &TestDb, id: Uuid) -> TestApp {
    let app = spawn_app(t).await;
    login_user(t, &app, id).await;
    app
}

async fn system_admin_user(t: &TestDb) -> Uuid {
    let u = user(&t.db, "admin").await;
    system_admin::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(u.0),
        created_at: Set(Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("system admin");
    u.0
}

async fn each_role_sees_only_its_own_figures(t: &TestDb) {
    let f = fixture(t).await;
    let paths = |org: Uuid| {
        vec![
            format!("/reports?org={org}"),
            format!("/reports/status.csv?org={org}"),
            format!("/reports/steps.csv?org={org}"),
            format!("/reports/cases.csv?org={org}"),
            format!("/reports/overdue.csv?org={org}"),
            format!("/reports/trend.csv?org={org}"),
            format!("/reports/ratings.csv?org={org}"),
            format!("/reports/low-ratings.csv?org={org}"),
        ]
    };

    // Anonymous: to the login page.
    let anon = spawn_app(t).await;
    for p in paths(f.district)
        .iter()
        .chain(["/reports".to_string(), "/reports/catalogue.csv".to_string()].iter())
    {
        let resp = anon.get(p).await;
        assert_eq!(resp.status(), 303, "{p}");
        assert_eq!(resp.headers()["location"], "/login", "{p}");
    }

    // An applicant: nothing.
    let applicant = as_user(t, f.applicant).await;
    for p in paths(f.district).iter().chain(
        [
            "/reports".to_string(),
            "/reports/catalogue".to_string(),
            "/reports/catalogue.csv".to_string(),
        ]
        .iter(),
    ) {
        assert_eq!(applicant.get(p).await.status(), 404, "applicant: {p}");
    }

    // A reviewer of the district: its own figures (by default too), never another's.
    let reviewer = as_user(t, reviewer(&t.db, "D-120116").await.0).await;
    let page = reviewer.get("/reports").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(
        html.contains("滨海新区"),
        "the district's dashboard by default"
    );
    assert!(
        !html.contains("IPFT-T-0006"),
        "no other organization's applications"
    );
    for p in paths(f.district) {
        assert_eq!(reviewer.get(&p).await.status(), 200, "own: {p}");
    }
    for p in paths(f.amr).into_iter().chain([
        "/reports?org=".to_string() + &Uuid::now_v7().to_string(),
        "/reports?org=not-a-uuid".to_string(),
        "/reports/catalogue".to_string(),
        "/reports/catalogue.csv".to_string(),
    ]) {
        assert_eq!(reviewer.get(&p).await.status(), 404, "other: {p}");
    }
    // The ratings CSV of the district holds its own rating only.
    let csv = reviewer
        .get(&format!("/reports/low-ratings.csv?org={}", f.district))
        .await
        .text()
        .await
        .expect("csv");
    assert!(
        !csv.contains("YQYC-T-0002") && !csv.contains("IPFT-T-0006"),
        "{csv}"
    );

    // An org admin of the lead bureau: its figures and the catalogue.
    let lead = as_user(t, member_of(&t.db, "TJ-MIIT", OrgRole::OrgAdmin).await.0).await;
    assert_eq!(lead.get("/reports/catalogue").await.status(), 200);
    assert_eq!(lead.get("/reports/catalogue.csv").await.status(), 200);
    let html = lead.get("/reports").await.text().await.expect("body");
    assert!(html.contains("YQYC-T-0002"), "its low rating is listed");
    assert_eq!(
        lead.get(&format!("/reports?org={}", f.district))
            .await
            .status(),
        404
    );

    // A system administrator: the whole city and any organization.
    let admin = as_user(t, system_admin_user(t).await).await;
    let html = admin.get("/reports").await.text().await.expect("body");
    assert!(html.contains("IPFT-T-0006") && html.contains("YQYC-T-0002"));
    for p in paths(f.amr).into_iter().chain(paths(f.district)) {
        assert_eq!(admin.get(&p).await.status(), 200, "admin: {p}");
    }
    assert_eq!(admin.get("/reports/catalogue").await.status(), 200);
    assert_eq!(
        admin
            .get(&format!("/reports?org={}", Uuid::now_v7()))
            .await
            .status(),
        404,
        "an organization that does not exist"
    );
    // Mistakes in the filters come back with the messages.
    let resp = admin.get("/reports?from=2026-13-01&type=nope").await;
    assert_eq!(resp.status(), 422);
    assert_eq!(
        admin
            .get("/reports/steps.csv?from=yesterday")
            .await
            .status(),
        400
    );
}
db_test!(
    each_role_sees_only_its_own_figures,
    each_role_sees_only_its_own_figures
);

async fn csv_exports_are_excel_friendly_and_neutralise_formulas(t: &TestDb) {
    let _f = fixture(t).await;
    let admin = as_user(t, system_admin_user(t).await).await;

    let resp = admin.get("/reports/low-ratings.csv").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let bytes = resp.bytes().await.expect("body");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
    assert!(text.starts_with("办件编号,"), "{text}");
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "the formula is neutralised and quoted: {text}"
    );
    assert!(text.contains("\"慢, \"\"太慢\"\"\""), "{text}");

    let steps = admin
        .get("/reports/steps.csv?type=yqyc")
        .await
        .text()
        .await
        .expect("csv");
    assert!(
        steps.contains("\r\n一企一策,区级预审,5,48.0,264.0,2,4,2,40.0%\r\n"),
        "{steps}"
    );
    assert!(!steps.contains("知识产权"), "type filter applies: {steps}");

    let cat = admin
        .get("/reports/catalogue.csv")
        .await
        .text()
        .await
        .expect("csv");
    assert!(
        cat.contains("天津智能测试科技有限公司,") && cat.contains(",滨海新区,智能机器人,6,2,1,0,3"),
        "{cat}"
    );

    // The dashboard: the chart is inline SVG with a title, a table fallback, no inline style.
    let html = admin.get("/reports").await.text().await.expect("html");
    assert!(html.contains("<svg class=\"rp-trend-svg\""));
    assert!(html.contains("<title id=\"rp-trend-title\">"));
    assert!(html.contains("月度趋势数据表"), "the table fallback");
    assert!(!html.contains("style="), "the CSP forbids inline styles");
    assert!(html.contains(&format!("href=\"/tasks/{}\"", _f.overdue_task)));
}
db_test!(
    csv_exports_are_excel_friendly_and_neutralise_formulas,
    csv_exports_are_excel_friendly_and_neutralise_formulas
);

/// The working days counted in SQL agree with the calendar's own count for many spans
/// across weekends, holidays and make-up working days, and across Beijing midnight.
async fn working_days_in_sql_match_the_calendar(t: &TestDb) {
    let (company, applicant) = company(&t.db).await;
    let district = org(&t.db, "D-120116").await.0;
    let app = app_row(
        t,
        "yqyc",
        Some("YQYC-T-0100"),
        company.0,
        applicant.0,
        ApplicationStatus::InReview,
        Some("2025-01-01T00:00:00Z"),
        None,
        None,
    )
    .await;
    let cal = store::load_calendar(&t.db).await.expect("calendar");
    let base = at("2025-01-01T00:00:00Z");
    let mut expected = std::collections::BTreeMap::new();
    // A fixed pseudo-random sequence: the same spans on every run.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..80 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let start_minutes = i64::try_from((x >> 33) % (700 * 24 * 60)).expect("fits");
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let length_minutes = i64::try_from((x >> 33) % (30 * 24 * 60)).expect("fits");
        let opened = base + chrono::Duration::minutes(start_minutes);
        let closed = opened + chrono::Duration::minutes(length_minutes);
        let step = format!("s{i:03}");
        task_row(
            t,
            app,
            &step,
            district,
            TaskStatus::Approved,
            &opened.to_rfc3339(),
            Some(&closed.to_rfc3339()),
            "2030-01-01",
        )
        .await;
        let days = cal.working_days_between(
            zhigang::calendar::local_date(opened),
            zhigang::calendar::local_date(closed),
        );
        expected.insert(step, (i64::from(days), length_minutes));
    }
    let steps = reports::step_times(&t.db, &Filters::default())
        .await
        .expect("steps");
    assert_eq!(steps.len(), expected.len());
    for s in steps {
        let (days, minutes) = expected[&s.step_id];
        assert_eq!(s.median_days, days, "{}", s.step_id);
        assert_eq!(s.p90_days, days, "{}", s.step_id);
        #[allow(clippy::cast_precision_loss)]
        let hours = minutes as f64 / 60.0;
        assert!((s.median_hours - hours).abs() < 1e-3, "{s:?} vs {hours}");
    }
}
db_test!(
    working_days_in_sql_match_the_calendar,
    working_days_in_sql_match_the_calendar
);
