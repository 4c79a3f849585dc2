//! Integration tests of the admin area: the system administrator's pages over real HTTP,
//! on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use entity::enums::{OrgRole, OutboxStatus, TaskStatus};
use entity::{
    admin_event, calendar_day, history_event, org_membership, organization, outbox, system_admin,
    task, user, workflow_definition,
};
use reqwest::{StatusCode, header};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;
use zhigang::store;
use zhigang::workflow::engine::Action;

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, spawn_app};

const PASSWORD: &str = "violet-harbour-tractor-58";

/// Creates a user who can sign in (a system administrator when `sysadmin`), signs them in
/// on `app`, and returns their id and email.
async fn signed_in(t: &TestDb, app: &TestApp, sysadmin: bool) -> (Uuid, String) {
    let email = format!("ops-{}@example.test", Uuid::now_v7().simple());
    let hash = zhigang::passwords::hash_blocking(PASSWORD).expect("hash");
    let id = zhigang::seed::create_user_row(&t.db, &email, "运维", &hash)
        .await
        .expect("user");
    if sysadmin {
        system_admin::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(id),
            created_at: Set(store::now()),
        }
        .insert(&t.db)
        .await
        .expect("system admin");
    }
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in");
    (id, email)
}

async fn admin_app(t: &TestDb) -> (TestApp, Uuid) {
    let app = spawn_app(t).await;
    let (id, _) = signed_in(t, &app, true).await;
    (app, id)
}

async fn body(resp: reqwest::Response) -> String {
    resp.text().await.expect("body")
}

async fn actions(t: &TestDb) -> Vec<String> {
    use sea_orm::QueryOrder;
    admin_event::Entity::find()
        .order_by_asc(admin_event::Column::Seq)
        .all(&t.db)
        .await
        .expect("admin events")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn chain_intact(t: &TestDb) {
    assert_eq!(
        zhigang::admin::verify_chain(&t.db).await.expect("verify"),
        None,
        "the admin chain verifies"
    );
}

const PAGES: [&str; 9] = [
    "/admin",
    "/admin/users",
    "/admin/orgs",
    "/admin/workflows",
    "/admin/calendar",
    "/admin/outbox",
    "/admin/audit",
    "/admin/audit/verify",
    "/admin/stuck",
];

async fn only_system_admins_enter_the_admin_area(t: &TestDb) {
    let app = spawn_app(t).await;
    for page in PAGES {
        let resp = app.get(page).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "anonymous {page}");
        assert_eq!(
            resp.headers().get(header::LOCATION).map(|v| v.as_bytes()),
            Some(&b"/login"[..]),
            "anonymous {page} goes to the login"
        );
    }
    // A reviewer and org admin of a bureau is told the area does not exist.
    let (reviewer, _) = signed_in(t, &app, false).await;
    let miit = org(&t.db, "TJ-MIIT").await;
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(miit.0),
        user_id: Set(reviewer),
        role: Set(OrgRole::OrgAdmin),
        active: Set(true),
        created_at: Set(store::now()),
    }
    .insert(&t.db)
    .await
    .expect("membership");
    for page in PAGES
        .iter()
        .copied()
        .chain(["/admin/users/not-an-id", "/admin/workflows/not-an-id"])
    {
        let resp = app.get(page).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "org admin on {page}");
    }
    let users = app.get("/").await;
    let token = crate::web::csrf_of(&body(users).await);
    let resp = app
        .client
        .post(format!("{}/admin/users/{reviewer}/system-admin", app.base))
        .form(&[("_csrf", token.as_str()), ("value", "true")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no self-promotion");
    assert!(
        !zhigang::admin::is_system_admin(&t.db, reviewer)
            .await
            .expect("query")
    );
    assert!(actions(t).await.is_empty(), "nothing recorded");

    // A system administrator sees every page.
    let admin_browser = spawn_app(t).await;
    signed_in(t, &admin_browser, true).await;
    for page in PAGES {
        let resp = admin_browser.get(page).await;
        assert_eq!(resp.status(), StatusCode::OK, "system admin on {page}");
    }
    for page in [
        "/admin/users/not-an-id".to_string(),
        format!("/admin/orgs/{}", Uuid::now_v7()),
        format!("/admin/workflows/{}/dry-run", Uuid::now_v7()),
    ] {
        let resp = admin_browser.get(&page).await;
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "system admin on {page}"
        );
    }
}
db_test!(admin_area_access, only_system_admins_enter_the_admin_area);

async fn a_system_admin_manages_roles_and_accounts_and_each_action_is_chained(t: &TestDb) {
    let (app, me) = admin_app(t).await;
    let u = user(&t.db, "reviewer-to-be").await;
    let page = format!("/admin/users/{}", u.0);

    // A role in an unknown organization comes back with the message.
    let resp = app
        .submit(
            &page,
            &format!("{page}/roles"),
            &[("org_code", "NO-SUCH"), ("role", "reviewer")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("没有此代码的机构"), "{html}");

    let resp = app
        .submit(
            &page,
            &format!("{page}/roles"),
            &[("org_code", "TJ-MIIT"), ("role", "reviewer")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let miit = org(&t.db, "TJ-MIIT").await;
    let membership = || async {
        org_membership::Entity::find()
            .filter(org_membership::Column::UserId.eq(u.0))
            .filter(org_membership::Column::OrgId.eq(miit.0))
            .one(&t.db)
            .await
            .expect("query")
            .expect("membership")
    };
    let m = membership().await;
    assert!(m.active && m.role == OrgRole::Reviewer);
    // Promoted to org admin: the same membership, another role.
    app.submit(
        &page,
        &format!("{page}/roles"),
        &[("org_code", "TJ-MIIT"), ("role", "org_admin")],
    )
    .await;
    assert_eq!(membership().await.role, OrgRole::OrgAdmin);
    let resp = app
        .submit(&page, &format!("{page}/roles/{}/revoke", miit.0), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(!membership().await.active, "revoked");

    app.submit(&page, &format!("{page}/system-admin"), &[("value", "true")])
        .await;
    assert!(zhigang::admin::is_system_admin(&t.db, u.0).await.unwrap());
    app.submit(
        &page,
        &format!("{page}/system-admin"),
        &[("value", "false")],
    )
    .await;
    assert!(!zhigang::admin::is_system_admin(&t.db, u.0).await.unwrap());

    let resp = app
        .submit(&page, &format!("{page}/active"), &[("value", "false")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let row = user::Entity::find_by_id(u.0).one(&t.db).await.unwrap();
    assert!(!row.expect("user").active, "deactivated");
    app.submit(&page, &format!("{page}/active"), &[("value", "true")])
        .await;

    // An administrator cannot lock themselves out.
    let mine = format!("/admin/users/{me}");
    let resp = app
        .submit(&mine, &format!("{mine}/active"), &[("value", "false")])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = app
        .submit(
            &mine,
            &format!("{mine}/system-admin"),
            &[("value", "false")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    assert_eq!(
        actions(t).await,
        [
            "org_role.grant",
            "org_role.grant",
            "org_role.revoke",
            "system_admin.grant",
            "system_admin.revoke",
            "user.deactivate",
            "user.reactivate",
        ]
    );
    chain_intact(t).await;
    // The search finds the user; the audit page lists the admin log.
    let html = body(app.get("/admin/users?q=reviewer-to-be").await).await;
    assert!(html.contains(&format!("/admin/users/{}", u.0)));
    let html = body(app.get("/admin/audit").await).await;
    assert!(html.contains("system_admin.revoke") && html.contains("user.deactivate"));
}
db_test!(
    admin_roles,
    a_system_admin_manages_roles_and_accounts_and_each_action_is_chained
);

async fn a_reviewer_account_is_created_by_invitation(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let resp = app
        .submit(
            "/admin/users",
            "/admin/users/invite",
            &[
                ("name", ""),
                ("email", "not-an-email"),
                ("org_code", "TJ-STC"),
                ("role", "reviewer"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("value=\"not-an-email\""), "typed value kept");
    let email = format!("stc-{}@example.test", Uuid::now_v7().simple());
    let resp = app
        .submit(
            "/admin/users",
            "/admin/users/invite",
            &[
                ("name", "科委审核员"),
                ("email", &email),
                ("org_code", "TJ-STC"),
                ("role", "reviewer"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .unwrap()
        .expect("account created");
    // The invitee chooses a password with the link and works for the bureau.
    let link = crate::web::mail_link(t, u.id, "invitation").await;
    let invitee = spawn_app(t).await;
    let resp = invitee
        .submit(
            &link,
            "/invitation",
            &[
                ("token", link.split("token=").nth(1).unwrap_or_default()),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stc = org(&t.db, "TJ-STC").await;
    let m = org_membership::Entity::find()
        .filter(org_membership::Column::UserId.eq(u.id))
        .one(&t.db)
        .await
        .unwrap()
        .expect("membership");
    assert_eq!(
        (m.org_id, m.role, m.active),
        (stc.0, OrgRole::Reviewer, true)
    );
    assert_eq!(actions(t).await, ["user.invite"]);
}
db_test!(admin_invite, a_reviewer_account_is_created_by_invitation);

async fn an_organization_is_added_and_edited(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let resp = app
        .submit(
            "/admin/orgs",
            "/admin/orgs",
            &[
                ("code", "tj edu!"),
                ("name_zh", ""),
                ("name_en", "Education Commission"),
                ("kind", "city_bureau"),
                ("supervisor_code", "NOPE"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("value=\"tj edu!\"") && html.contains("value=\"Education Commission\""));
    assert!(
        html.contains("#code") && html.contains("#name_zh") && html.contains("#supervisor_code")
    );
    // A taken code.
    let resp = app
        .submit(
            "/admin/orgs",
            "/admin/orgs",
            &[
                ("code", "TJ-MIIT"),
                ("name_zh", "重复"),
                ("name_en", "Duplicate"),
                ("kind", "city_bureau"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let resp = app
        .submit(
            "/admin/orgs",
            "/admin/orgs",
            &[
                ("code", "P-NEWLAB"),
                ("name_zh", "新型实验平台"),
                ("name_en", "New laboratory platform"),
                ("kind", "platform_operator"),
                ("supervisor_code", "TJ-STC"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let o = organization::Entity::find()
        .filter(organization::Column::Code.eq("P-NEWLAB"))
        .one(&t.db)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(o.supervisor_code.as_deref(), Some("TJ-STC"));
    assert!(o.active);

    let page = format!("/admin/orgs/{}", o.id);
    let resp = app
        .submit(
            &page,
            &page,
            &[
                ("name_zh", "新型实验平台(更名)"),
                ("name_en", "Renamed platform"),
                ("supervisor_code", "TJ-STC"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let o = organization::Entity::find_by_id(o.id)
        .one(&t.db)
        .await
        .unwrap()
        .expect("org");
    assert_eq!(o.name_en, "Renamed platform");
    assert!(!o.active, "the unchecked box deactivates");
    assert_eq!(actions(t).await, ["org.create", "org.update"]);
    chain_intact(t).await;
}
db_test!(admin_orgs, an_organization_is_added_and_edited);

async fn a_workflow_version_is_uploaded_dry_run_and_activated(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let (company_id, applicant) = company(&t.db).await;
    let app_id = submitted_yqyc(&t.db, company_id, applicant, &["rd_funding"]).await;
    let reference = entity::application::Entity::find_by_id(app_id.0)
        .one(&t.db)
        .await
        .unwrap()
        .and_then(|a| a.reference)
        .expect("reference");

    // Mistakes are shown with their place and step; nothing is stored.
    let (_, yqyc) = zhigang::workflow::definition::BUILTIN
        .iter()
        .find(|(f, _)| *f == "yqyc.toml")
        .expect("built-in");
    let broken = yqyc.replace(
        "organization = \"TJ-MIIT\"",
        "organization = \"TJ-NOWHERE\"",
    );
    let resp = app
        .submit(
            "/admin/workflows",
            "/admin/workflows",
            &[("source", &broken)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(html.contains("TJ-NOWHERE"), "{html}");
    assert!(
        html.contains("第 ") && html.contains("lead_review"),
        "line and step: {html}"
    );
    let resp = app
        .submit(
            "/admin/workflows",
            "/admin/workflows",
            &[("source", "key = [unclosed")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let count = || async {
        workflow_definition::Entity::find()
            .filter(workflow_definition::Column::Key.eq("yqyc"))
            .count(&t.db)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);

    // The district gets 7 working days instead of 5.
    let changed = yqyc.replacen(
        "organization = \"@company.district\"\npromised_days = 5",
        "organization = \"@company.district\"\npromised_days = 7",
        1,
    );
    assert_ne!(&changed, yqyc, "the fixture changed the definition");
    let resp = app
        .submit(
            "/admin/workflows",
            "/admin/workflows",
            &[("source", &changed)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let v2 = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq("yqyc"))
        .filter(workflow_definition::Column::Version.eq(2))
        .one(&t.db)
        .await
        .unwrap()
        .expect("version 2");
    assert!(!v2.active, "stored inactive");
    let page = body(app.get(&format!("/admin/workflows/{}", v2.id)).await).await;
    assert!(page.contains("<svg"), "the diagram is drawn");

    // The dry run names the application and the change, and changes nothing.
    let before = entity::application::Entity::find_by_id(app_id.0)
        .one(&t.db)
        .await
        .unwrap();
    let html = body(
        app.get(&format!("/admin/workflows/{}/dry-run", v2.id))
            .await,
    )
    .await;
    assert!(html.contains(&reference), "{html}");
    assert!(
        html.contains("当前环节的承诺时限有变化") && html.contains("5 → 7"),
        "{html}"
    );
    let after = entity::application::Entity::find_by_id(app_id.0)
        .one(&t.db)
        .await
        .unwrap();
    assert_eq!(before, after);

    // A version whose first step is renamed: the application's current step is missing.
    let renamed = yqyc.replace("district_review", "district_check");
    let resp = app
        .submit(
            "/admin/workflows",
            "/admin/workflows",
            &[("source", &renamed)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let v3 = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq("yqyc"))
        .filter(workflow_definition::Column::Version.eq(3))
        .one(&t.db)
        .await
        .unwrap()
        .expect("version 3");
    let html = body(
        app.get(&format!("/admin/workflows/{}/dry-run", v3.id))
            .await,
    )
    .await;
    assert!(html.contains("此版本中没有当前环节"), "{html}");
    // The same text again, as a file, is refused; the file's mistakes name the file.
    let upload_file = |text: String| async {
        let token = crate::web::csrf_of(&body(app.get("/admin/workflows").await).await);
        let part = reqwest::multipart::Part::bytes(text.into_bytes()).file_name("yqyc-v4.toml");
        app.client
            .post(format!("{}/admin/workflows/file?_csrf={token}", app.base))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("POST")
    };
    let resp = upload_file(renamed.clone()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body(resp).await.contains("第 3 版"));
    let resp = upload_file(broken.clone()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body(resp).await.contains("TJ-NOWHERE"));

    let resp = app
        .submit(
            &format!("/admin/workflows/{}", v2.id),
            &format!("/admin/workflows/{}/activate", v2.id),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let orgs = store::load_orgs(&t.db).await.unwrap();
    let (active, _) = store::active_definition(&t.db, "yqyc", &orgs)
        .await
        .expect("active");
    assert_eq!(active.version, 2);
    assert_eq!(
        actions(t).await,
        ["workflow.upload", "workflow.upload", "workflow.activate"]
    );
    chain_intact(t).await;
}
db_test!(
    admin_workflows,
    a_workflow_version_is_uploaded_dry_run_and_activated
);

async fn a_calendar_day_is_added_changed_and_removed(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let day = chrono::NaiveDate::from_ymd_opt(2031, 3, 12).unwrap();
    let resp = app
        .submit(
            "/admin/calendar",
            "/admin/calendar",
            &[("day", "2031-02-30"), ("kind", "holiday"), ("name", "")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(
        html.contains("value=\"2031-02-30\"") && html.contains("#day") && html.contains("#name")
    );

    let resp = app
        .submit(
            "/admin/calendar",
            "/admin/calendar",
            &[
                ("day", "2031-03-12"),
                ("kind", "holiday"),
                ("name", "植树节"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cal = store::load_calendar(&t.db).await.unwrap();
    assert!(!cal.is_working_day(day), "a Wednesday made a holiday");
    let html = body(app.get("/admin/calendar?year=2031").await).await;
    assert!(html.contains("植树节"));

    app.submit(
        "/admin/calendar",
        "/admin/calendar",
        &[("day", "2031-03-12"), ("kind", "normal"), ("name", "")],
    )
    .await;
    assert!(
        calendar_day::Entity::find()
            .filter(calendar_day::Column::Day.eq(day))
            .one(&t.db)
            .await
            .unwrap()
            .is_none(),
        "removed"
    );
    let cal = store::load_calendar(&t.db).await.unwrap();
    assert!(cal.is_working_day(day));
    assert_eq!(actions(t).await, ["calendar.set", "calendar.set"]);
}
db_test!(admin_calendar, a_calendar_day_is_added_changed_and_removed);

async fn a_dead_message_is_listed_and_retried_once(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let to = user(&t.db, "recipient").await;
    let to = user::Entity::find_by_id(to.0)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    let mut row = store::outbox_row(
        "password_changed",
        None,
        &to,
        serde_json::json!({}),
        store::now(),
    );
    row.status = Set(OutboxStatus::Dead);
    row.attempts = Set(8);
    row.last_error = Set(Some("550 mailbox unavailable".into()));
    let id = row.insert(&t.db).await.unwrap().id;

    let html = body(app.get("/admin/outbox?status=dead").await).await;
    assert!(html.contains("550 mailbox unavailable") && html.contains(&to.email));
    let html = body(app.get("/admin/outbox?status=queued").await).await;
    assert!(!html.contains(&to.email), "a dead message is not queued");

    let retry = format!("/admin/outbox/{id}/retry");
    let resp = app.submit("/admin/outbox?status=dead", &retry, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let row = outbox::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Queued, 0));
    // A second click changes nothing and records nothing.
    app.submit("/admin/outbox", &retry, &[]).await;
    assert_eq!(actions(t).await, ["mail.retry"]);
}
db_test!(admin_outbox, a_dead_message_is_listed_and_retried_once);

async fn a_task_whose_holder_left_is_stuck_and_reassigned_through_the_engine(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let (company_id, applicant) = company(&t.db).await;
    let app_id = submitted_yqyc(&t.db, company_id, applicant, &["rd_funding"]).await;
    let reference = entity::application::Entity::find_by_id(app_id.0)
        .one(&t.db)
        .await
        .unwrap()
        .and_then(|a| a.reference)
        .expect("reference");

    // Nobody reviews for the district yet: the task is stuck.
    let html = body(app.get("/admin/stuck").await).await;
    assert!(html.contains(&reference), "{html}");
    assert!(html.contains("该机构没有在岗审核人员"));

    let holder = reviewer(&t.db, "D-120116").await;
    let colleague = reviewer(&t.db, "D-120116").await;
    let task_id = task_of(&t.db, app_id, "D-120116").await;
    store::execute(&t.db, app_id, holder, Action::Claim { task: task_id })
        .await
        .expect("claim");
    let html = body(app.get("/admin/stuck").await).await;
    assert!(!html.contains(&reference), "staffed and held: not stuck");
    user::Entity::update_many()
        .col_expr(user::Column::Active, sea_orm::sea_query::Expr::value(false))
        .filter(user::Column::Id.eq(holder.0))
        .exec(&t.db)
        .await
        .unwrap();
    let html = body(app.get("/admin/stuck").await).await;
    assert!(
        html.contains(&reference) && html.contains("持有人已不在岗"),
        "{html}"
    );

    // Someone outside the district is refused with the engine's reason.
    let outsider = reviewer(&t.db, "TJ-MIIT").await;
    let outsider_email = user::Entity::find_by_id(outsider.0)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .email;
    let action = format!("/admin/stuck/{}/reassign", task_id.0);
    let resp = app
        .submit("/admin/stuck", &action, &[("email", &outsider_email)])
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body(resp).await;
    assert!(
        html.contains(&format!("value=\"{outsider_email}\"")),
        "typed value kept"
    );

    let colleague_email = user::Entity::find_by_id(colleague.0)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .email;
    let resp = app
        .submit("/admin/stuck", &action, &[("email", &colleague_email)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let t_row = task::Entity::find_by_id(task_id.0)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t_row.status, t_row.claimant_id),
        (TaskStatus::Claimed, Some(colleague.0))
    );
    // The history, the notification and both audit chains say so.
    let last = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app_id.0))
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|e| e.seq)
        .unwrap();
    assert_eq!(last.kind, "transfer");
    assert!(
        outbox::Entity::find()
            .filter(outbox::Column::RecipientUserId.eq(colleague.0))
            .filter(outbox::Column::Kind.eq("task_transferred"))
            .one(&t.db)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(actions(t).await, ["task.reassign"]);
    chain_intact(t).await;
    let report = zhigang::audit::verify(&t.db).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Staffed and held again: not stuck, until the step is far past its promised date.
    let html = body(app.get("/admin/stuck").await).await;
    assert!(!html.contains(&reference), "{html}");
    let today = zhigang::calendar::local_date(store::now());
    task::Entity::update_many()
        .col_expr(
            task::Column::DueDate,
            sea_orm::sea_query::Expr::value(today - chrono::Duration::days(3)),
        )
        .filter(task::Column::Id.eq(task_id.0))
        .exec(&t.db)
        .await
        .unwrap();
    let html = body(app.get("/admin/stuck").await).await;
    assert!(
        !html.contains(&reference),
        "3 calendar days late is within the setting"
    );
    task::Entity::update_many()
        .col_expr(
            task::Column::DueDate,
            sea_orm::sea_query::Expr::value(today - chrono::Duration::days(21)),
        )
        .filter(task::Column::Id.eq(task_id.0))
        .exec(&t.db)
        .await
        .unwrap();
    let html = body(app.get("/admin/stuck").await).await;
    assert!(
        html.contains(&reference) && html.contains("已超期"),
        "{html}"
    );
}
db_test!(
    admin_stuck,
    a_task_whose_holder_left_is_stuck_and_reassigned_through_the_engine
);

async fn the_audit_log_is_searched_and_its_chains_verified(t: &TestDb) {
    let (app, _) = admin_app(t).await;
    let (company_id, applicant) = company(&t.db).await;
    let app_id = submitted_yqyc(&t.db, company_id, applicant, &["rd_funding"]).await;
    let other = submitted_yqyc(&t.db, company_id, applicant, &["rd_funding"]).await;
    let reference = |id: zhigang::ids::ApplicationId| async move {
        entity::application::Entity::find_by_id(id.0)
            .one(&t.db)
            .await
            .unwrap()
            .and_then(|a| a.reference)
            .expect("reference")
    };
    let (mine, theirs) = (reference(app_id).await, reference(other).await);
    let html = body(app.get(&format!("/admin/audit?reference={mine}")).await).await;
    assert!(html.contains(&mine) && !html.contains(&theirs), "{html}");
    let html = body(app.get("/admin/audit?reference=NO-SUCH-REF").await).await;
    assert!(!html.contains(&mine) && !html.contains(&theirs));
    let html = body(app.get("/admin/audit?org=TJ-MIIT").await).await;
    assert!(!html.contains(&mine), "MIIT has not acted yet");
    let resp = app.get("/admin/audit?from=yesterday").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let today = zhigang::calendar::local_date(store::now()).to_string();
    let html = body(
        app.get(&format!("/admin/audit?from={today}&to={today}"))
            .await,
    )
    .await;
    assert!(html.contains(&mine) && html.contains(&theirs));

    // Both chains intact, then one administrative event altered.
    app.submit(
        "/admin/calendar",
        "/admin/calendar",
        &[
            ("day", "2031-03-12"),
            ("kind", "holiday"),
            ("name", "植树节"),
        ],
    )
    .await;
    let html = body(app.get("/admin/audit/verify").await).await;
    assert!(html.contains("两条哈希链均完好"), "{html}");
    admin_event::Entity::update_many()
        .col_expr(
            admin_event::Column::Target,
            sea_orm::sea_query::Expr::value("2031-03-13"),
        )
        .exec(&t.db)
        .await
        .unwrap();
    let html = body(app.get("/admin/audit/verify").await).await;
    assert!(
        html.contains("发现问题") && html.contains("第 1 条事件处断裂"),
        "{html}"
    );
}
db_test!(
    admin_audit,
    the_audit_log_is_searched_and_its_chains_verified
);

async fn concurrent_admin_actions_keep_one_unbroken_chain(t: &TestDb) {
    let admin = user(&t.db, "admin").await;
    let mut handles = Vec::new();
    for i in 0..8u32 {
        let db = t.db.clone();
        handles.push(tokio::spawn(async move {
            let form = zhigang::admin::DayForm {
                day: format!("2032-05-{:02}", i + 10),
                kind: "holiday".into(),
                name: format!("测试假日 {i}"),
            };
            zhigang::admin::set_calendar_day(&db, admin.0, &form).await
        }));
    }
    let mut succeeded = 0u64;
    for h in handles {
        match h.await.expect("join") {
            Ok(Ok(_)) => succeeded += 1,
            Ok(Err(errors)) => panic!("the form is valid: {errors:?}"),
            // SQLite may refuse a writer that lost the race; it must leave nothing behind.
            Err(e) => assert!(
                t.backend == Backend::Sqlite,
                "PostgreSQL queues concurrent admins: {e:#}"
            ),
        }
    }
    assert!(succeeded >= 1);
    let events = admin_event::Entity::find().count(&t.db).await.unwrap();
    let days = calendar_day::Entity::find()
        .filter(calendar_day::Column::Name.starts_with("测试假日"))
        .count(&t.db)
        .await
        .unwrap();
    assert_eq!(
        (events, days),
        (succeeded, succeeded),
        "one admin event per change"
    );
    chain_intact(t).await;
}
db_test!(
    admin_concurrency,
    concurrent_admin_actions_keep_one_unbroken_chain
);
