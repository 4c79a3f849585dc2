//! Organization administration: reviewers (invite, deactivate, reactivate), workload, and
//! reassigning an absent colleague's tasks — over real HTTP, on SQLite and PostgreSQL.

use chrono::Duration;
use entity::enums::{OrgRole, TaskStatus};
use entity::{admin_event, history_event, org_membership, outbox, task, user};
use reqwest::{StatusCode, header};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;
use zhigang::ids::{ApplicationId, OrgId, TaskId, UserId};
use zhigang::store;
use zhigang::workflow::engine::Action;

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, client, spawn_app};

const PASSWORD: &str = "violet-harbour-tractor-58";
const DISTRICT: &str = "D-120116";

/// Gives `who` a real password and signs them in on a fresh client.
async fn login_as(t: &TestDb, app: &TestApp, who: UserId) -> TestApp {
    let u = user::Entity::find_by_id(who.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let hash = zhigang::passwords::hash_blocking(PASSWORD).expect("hash");
    let mut am: user::ActiveModel = u.clone().into();
    am.password_hash = Set(hash);
    am.update(&t.db).await.expect("set password");
    let me = TestApp {
        base: app.base.clone(),
        client: client(),
    };
    let resp = me
        .submit(
            "/login",
            "/login",
            &[("email", &u.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login of {}", u.email);
    me
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn admin_events(t: &TestDb, action: &str) -> Vec<admin_event::Model> {
    admin_event::Entity::find()
        .filter(admin_event::Column::Action.eq(action))
        .order_by_asc(admin_event::Column::Seq)
        .all(&t.db)
        .await
        .expect("admin events")
}

async fn memberships(t: &TestDb, org: OrgId, who: Uuid) -> Vec<org_membership::Model> {
    org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(org.0))
        .filter(org_membership::Column::UserId.eq(who))
        .all(&t.db)
        .await
        .expect("memberships")
}

async fn email_of(t: &TestDb, who: UserId) -> String {
    user::Entity::find_by_id(who.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email
}

/// A submitted application whose district task is claimed by `reviewer`.
async fn claimed_task(t: &TestDb, reviewer: UserId) -> (ApplicationId, TaskId) {
    let (company, applicant) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let task = task_of(&t.db, app, DISTRICT).await;
    store::execute(&t.db, app, reviewer, Action::Claim { task })
        .await
        .expect("claim");
    (app, task)
}

async fn an_org_admin_sees_only_their_own_organization(t: &TestDb) {
    let app = spawn_app(t).await;
    let org = org(&t.db, DISTRICT).await;
    let other = crate::helpers::org(&t.db, "D-120101").await;
    let admin = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let busy = reviewer(&t.db, DISTRICT).await;
    let outsider = reviewer(&t.db, "D-120101").await;
    claimed_task(t, busy).await;

    // Anonymous: sign in first.
    let resp = app.get(&format!("/org-admin/{}", org.0)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login");

    let a = login_as(t, &app, admin).await;
    let resp = a.get("/org-admin").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), format!("/org-admin/{}", org.0));
    let resp = a.get(&format!("/org-admin/{}", org.0)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.expect("body");
    let busy_email = email_of(t, busy).await;
    assert!(page.contains(&busy_email), "the reviewer is listed");
    assert!(
        !page.contains(&email_of(t, outsider).await),
        "another organization's reviewer is not"
    );
    assert!(page.contains("/inbox?tab=org"), "a link to the org's queue");
    assert!(
        page.contains(&format!("/org-admin/{}/reassign?from={}", org.0, busy.0)),
        "the busy reviewer's tasks can be reassigned"
    );
    // Another organization's administration does not exist for this admin.
    let resp = a.get(&format!("/org-admin/{}", other.0)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = a
        .get(&format!(
            "/org-admin/{}/reassign?from={}",
            other.0, outsider.0
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // A reviewer is not an org admin: the area and an org's pages are unknown to them.
    let r = login_as(t, &app, busy).await;
    assert_eq!(r.get("/org-admin").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.get(&format!("/org-admin/{}", org.0)).await.status(),
        StatusCode::NOT_FOUND
    );
    let html = r.get("/").await.text().await.expect("body");
    let token = crate::web::csrf_of(&html);
    let resp = r
        .client
        .post(format!(
            "{}/org-admin/{}/reviewers/{}/deactivate",
            r.base, org.0, admin.0
        ))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(memberships(t, org, admin.0).await.iter().all(|m| m.active));
}
db_test!(
    org_admin_scope,
    an_org_admin_sees_only_their_own_organization
);

async fn the_workload_counts_open_and_overdue_tasks_per_reviewer(t: &TestDb) {
    let org = org(&t.db, DISTRICT).await;
    let busy = reviewer(&t.db, DISTRICT).await;
    let (_, t1) = claimed_task(t, busy).await;
    claimed_task(t, busy).await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    // One claimed task is past its promised date.
    let today = zhigang::calendar::local_date(store::now());
    let row = task::Entity::find_by_id(t1.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("task");
    let mut am: task::ActiveModel = row.into();
    am.due_date = Set(today - Duration::days(3));
    am.update(&t.db).await.expect("backdate");

    let w = zhigang::org_admin::workload(&t.db, org.0, today)
        .await
        .expect("workload");
    let mine = w.by_claimant.get(&busy.0).copied().unwrap_or_default();
    assert_eq!((mine.open, mine.overdue), (2, 1));
    assert_eq!((w.unclaimed.open, w.unclaimed.overdue), (1, 0));
    assert_eq!(w.by_claimant.len(), 1);
    let other =
        zhigang::org_admin::workload(&t.db, crate::helpers::org(&t.db, "D-120101").await.0, today)
            .await
            .expect("workload");
    assert_eq!(
        other,
        Default::default(),
        "nothing leaks across organizations"
    );

    // Last activity: the newest event the reviewer recorded for the organization (the claims).
    let last = zhigang::org_admin::last_activity(&t.db, org.0)
        .await
        .expect("last activity");
    let newest = entity::history_event::Entity::find()
        .filter(entity::history_event::Column::ActorUserId.eq(busy.0))
        .all(&t.db)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.created_at)
        .max()
        .expect("the claims");
    assert_eq!(last.get(&busy.0), Some(&newest));
    assert_eq!(last.len(), 1, "only those who acted for it");
    assert!(
        zhigang::org_admin::last_activity(&t.db, crate::helpers::org(&t.db, "D-120101").await.0)
            .await
            .expect("other")
            .is_empty()
    );
}
db_test!(
    org_admin_workload,
    the_workload_counts_open_and_overdue_tasks_per_reviewer
);

async fn an_invited_reviewer_sets_name_and_password_and_joins_the_organization(t: &TestDb) {
    let app = spawn_app(t).await;
    let org = org(&t.db, DISTRICT).await;
    let admin = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let a = login_as(t, &app, admin).await;
    let page = format!("/org-admin/{}", org.0);
    let action = format!("/org-admin/{}/invite", org.0);

    let bad = a.submit(&page, &action, &[("email", "not-an-email")]).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad.text().await.expect("body");
    assert!(
        body.contains("value=\"not-an-email\""),
        "the typed value is kept"
    );

    let email = format!("new-reviewer-{}@example.cn", Uuid::now_v7().simple());
    let resp = a
        .submit(&page, &action, &[("email", &email), ("role", "reviewer")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let invited = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("invited user");
    let m = memberships(t, org, invited.id).await;
    assert_eq!(m.len(), 1);
    assert!(m[0].active && m[0].role == OrgRole::Reviewer);
    let events = admin_events(t, "org.reviewer.invite").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target, email);
    assert_eq!(events[0].org_id, Some(org.0));
    assert_eq!(events[0].actor_user_id, admin.0);
    assert!(
        zhigang::admin::verify_chain(&t.db)
            .await
            .expect("verify")
            .is_none()
    );

    let mail = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(invited.id))
        .filter(outbox::Column::Kind.eq("invitation"))
        .one(&t.db)
        .await
        .expect("query")
        .expect("an invitation is queued");
    let link = mail.payload["data"]["link"]
        .as_str()
        .expect("link")
        .to_string();
    assert!(link.starts_with("/org-invitation?token="), "{link}");
    assert!(
        !mail.payload.to_string().contains("password"),
        "no secret but the link"
    );
    let token = link.split("token=").nth(1).expect("token").to_string();
    // The email, as the worker renders it, links to the page under the portal's address
    // and names the organization and the inviter.
    let config = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    let data = zhigang::mail::compose::context(&t.db, &mail, &config, "http://portal.test")
        .await
        .expect("compose");
    let rendered = zhigang::mail::render::Renderer::new()
        .expect("templates")
        .render("invitation", zhigang::mail::render::Lang::Zh, &data)
        .expect("render");
    assert!(
        rendered.text.contains(&format!("http://portal.test{link}")),
        "{}",
        rendered.text
    );
    assert!(
        rendered.subject.contains("滨海新区"),
        "{}",
        rendered.subject
    );

    // Nobody can sign in before the invitation is accepted.
    let guest = TestApp {
        base: app.base.clone(),
        client: client(),
    };
    let resp = guest
        .submit(
            &link,
            "/org-invitation",
            &[
                ("token", &token),
                ("name", ""),
                ("password", "x"),
                ("password_confirm", "x"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = guest
        .submit(
            &link,
            "/org-invitation",
            &[
                ("token", &token),
                ("name", "孙审核"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/inbox");
    let accepted = user::Entity::find_by_id(invited.id)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    assert_eq!(accepted.name, "孙审核");
    assert!(accepted.email_verified_at.is_some());
    // The link works once.
    let again = TestApp {
        base: app.base.clone(),
        client: client(),
    };
    let resp = again
        .submit(
            &link,
            "/org-invitation",
            &[
                ("token", &token),
                ("name", "冒名"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // The list shows the new reviewer by the name they chose.
    let list = a.get(&page).await.text().await.expect("body");
    assert!(list.contains("孙审核") && list.contains(&email));

    // Inviting them again is a mistake shown on the form.
    let resp = a.submit(&page, &action, &[("email", &email)]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An existing account (here a reviewer of another district) is added at once.
    let elsewhere = reviewer(&t.db, "D-120101").await;
    let elsewhere_email = email_of(t, elsewhere).await;
    let resp = a
        .submit(
            &page,
            &action,
            &[("email", &elsewhere_email), ("role", "org_admin")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let m = memberships(t, org, elsewhere.0).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].role, OrgRole::OrgAdmin);
    assert_eq!(admin_events(t, "org.reviewer.add").await.len(), 1);
    let mails = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(elsewhere.0))
        .all(&t.db)
        .await
        .expect("query");
    assert!(
        mails.is_empty(),
        "an existing account gets no invitation link"
    );
}
db_test!(
    org_admin_invite,
    an_invited_reviewer_sets_name_and_password_and_joins_the_organization
);

async fn a_deactivated_reviewer_loses_the_organization_and_the_last_admin_stays(t: &TestDb) {
    let app = spawn_app(t).await;
    let org = org(&t.db, DISTRICT).await;
    let admin = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let colleague = reviewer(&t.db, DISTRICT).await;
    let outsider = reviewer(&t.db, "D-120101").await;
    let a = login_as(t, &app, admin).await;
    let c = login_as(t, &app, colleague).await;
    let page = format!("/org-admin/{}", org.0);
    assert!(
        c.get("/")
            .await
            .text()
            .await
            .expect("body")
            .contains("/inbox")
    );

    let resp = a
        .submit(
            &page,
            &format!("/org-admin/{}/reviewers/{}/deactivate", org.0, colleague.0),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        memberships(t, org, colleague.0)
            .await
            .iter()
            .all(|m| !m.active)
    );
    let home = c.get("/").await.text().await.expect("body");
    assert!(
        !home.contains("href=\"/inbox\""),
        "the deactivated reviewer's next page no longer offers the inbox"
    );
    let events = admin_events(t, "org.reviewer.deactivate").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target, email_of(t, colleague).await);

    let resp = a
        .submit(
            &page,
            &format!("/org-admin/{}/reviewers/{}/reactivate", org.0, colleague.0),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        memberships(t, org, colleague.0)
            .await
            .iter()
            .all(|m| m.active)
    );
    assert_eq!(admin_events(t, "org.reviewer.reactivate").await.len(), 1);

    // Someone of another organization is not found here.
    let resp = a
        .submit(
            &page,
            &format!("/org-admin/{}/reviewers/{}/deactivate", org.0, outsider.0),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        memberships(t, crate::helpers::org(&t.db, "D-120101").await, outsider.0)
            .await
            .iter()
            .all(|m| m.active)
    );

    // The last org admin cannot deactivate themselves.
    let resp = a
        .submit(
            &page,
            &format!("/org-admin/{}/reviewers/{}/deactivate", org.0, admin.0),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = resp.text().await.expect("body");
    assert!(body.contains("最后一位单位管理员"), "the reason is shown");
    assert!(
        !body.contains(&format!(
            "action=\"/org-admin/{}/reviewers/{}/deactivate\"",
            org.0, admin.0
        )),
        "and no button offers it"
    );
    assert!(memberships(t, org, admin.0).await.iter().all(|m| m.active));
    assert_eq!(admin_events(t, "org.reviewer.deactivate").await.len(), 1);
    assert!(
        zhigang::admin::verify_chain(&t.db)
            .await
            .expect("verify")
            .is_none()
    );
}
db_test!(
    org_admin_deactivate,
    a_deactivated_reviewer_loses_the_organization_and_the_last_admin_stays
);

async fn an_absent_colleagues_tasks_are_reassigned_through_the_engine(t: &TestDb) {
    let app = spawn_app(t).await;
    let org = org(&t.db, DISTRICT).await;
    let admin = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let absent = reviewer(&t.db, DISTRICT).await;
    let stand_in = reviewer(&t.db, DISTRICT).await;
    let (app1, task1) = claimed_task(t, absent).await;
    let (_, task2) = claimed_task(t, absent).await;
    let a = login_as(t, &app, admin).await;
    let page = format!("/org-admin/{}/reassign?from={}", org.0, absent.0);
    let action = format!("/org-admin/{}/reassign", org.0);
    let from = absent.0.to_string();
    let to = stand_in.0.to_string();

    let listing = a.get(&page).await;
    assert_eq!(listing.status(), StatusCode::OK);
    let listing = listing.text().await.expect("body");
    assert!(listing.contains(&task1.0.to_string()) && listing.contains(&task2.0.to_string()));
    assert!(
        listing.contains("区级预审") && listing.contains("一企一策"),
        "the step and type are named"
    );

    // No colleague chosen: the form comes back with the choice kept.
    let t1 = task1.0.to_string();
    let resp = a
        .submit(
            &page,
            &action,
            &[("from", &from), ("task", &t1), ("to", "")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.expect("body").contains("checked"));

    // All of the absent reviewer's tasks go to the stand-in.
    let resp = a
        .submit(
            &page,
            &action,
            &[("from", &from), ("all", "1"), ("to", &to)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for id in [task1, task2] {
        let row = task::Entity::find_by_id(id.0)
            .one(&t.db)
            .await
            .expect("query")
            .expect("task");
        assert_eq!(row.status, TaskStatus::Claimed);
        assert_eq!(row.claimant_id, Some(stand_in.0));
    }
    let transfers = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app1.0))
        .filter(history_event::Column::Kind.eq("transfer"))
        .all(&t.db)
        .await
        .expect("history");
    assert_eq!(transfers.len(), 1, "the engine's history event records it");
    assert_eq!(transfers[0].actor_user_id, Some(admin.0));
    // And the admin log, in the same transaction: one record per task moved.
    let records = admin_events(t, "org.task.reassign").await;
    assert_eq!(records.len(), 2, "both tasks");
    assert!(
        records
            .iter()
            .all(|r| r.org_id == Some(org.0) && r.actor_user_id == admin.0)
    );
    assert!(
        zhigang::admin::verify_chain(&t.db)
            .await
            .expect("verify")
            .is_none()
    );

    // An unclaimed task of the organization is assigned to a colleague.
    let (company, applicant) = company(&t.db).await;
    let waiting_app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let waiting = task_of(&t.db, waiting_app, DISTRICT).await;
    let unclaimed_page = format!("/org-admin/{}/reassign?from=unclaimed", org.0);
    assert!(
        a.get(&unclaimed_page)
            .await
            .text()
            .await
            .expect("body")
            .contains(&waiting.0.to_string())
    );
    let resp = a
        .submit(
            &unclaimed_page,
            &action,
            &[
                ("from", "unclaimed"),
                ("task", &waiting.0.to_string()),
                ("to", &to),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let row = task::Entity::find_by_id(waiting.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("task");
    assert_eq!(
        (row.status, row.claimant_id),
        (TaskStatus::Claimed, Some(stand_in.0))
    );

    // A task that was handled meanwhile is refused with the engine's reason.
    store::execute(
        &t.db,
        app1,
        stand_in,
        Action::Approve {
            task: task1,
            opinion: "同意".into(),
        },
    )
    .await
    .expect("approve");
    let stand_in_page = format!("/org-admin/{}/reassign?from={}", org.0, stand_in.0);
    let resp = a
        .submit(
            &stand_in_page,
            &action,
            &[("from", &to), ("task", &t1), ("to", &from)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("该任务已被他人处理"),
        "the refusal is shown: {body}"
    );

    // The application moved on to another organization: its task is not found here.
    let (_, next) = live_tasks(&t.db, app1).await[0].clone();
    let resp = a
        .submit(
            &stand_in_page,
            &action,
            &[("from", &to), ("task", &next.0.to_string()), ("to", &from)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
db_test!(
    org_admin_reassign,
    an_absent_colleagues_tasks_are_reassigned_through_the_engine
);

async fn two_admins_deactivating_each_other_at_once_leave_one_admin(t: &TestDb) {
    let org = crate::helpers::org(&t.db, DISTRICT).await;
    let a = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let b = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(
            zhigang::org_admin::set_active(&t.db, a.0, org.0, b.0, false),
            zhigang::org_admin::set_active(&t.db, b.0, org.0, a.0, false),
        );
        let active_admins = org_membership::Entity::find()
            .filter(org_membership::Column::OrgId.eq(org.0))
            .filter(org_membership::Column::Role.eq(OrgRole::OrgAdmin))
            .filter(org_membership::Column::Active.eq(true))
            .all(&t.db)
            .await
            .expect("query")
            .len();
        assert_eq!(active_admins, 1, "{ra:?} {rb:?}");
        assert!(
            matches!(ra, Ok(Ok(()))) || matches!(rb, Ok(Ok(()))),
            "one of the two went through: {ra:?} {rb:?}"
        );
        // Both admins again for the next round.
        for who in [a, b] {
            org_membership::Entity::update_many()
                .col_expr(
                    org_membership::Column::Active,
                    sea_orm::sea_query::Expr::value(true),
                )
                .filter(org_membership::Column::UserId.eq(who.0))
                .exec(&t.db)
                .await
                .expect("reset");
        }
    }
    assert!(
        zhigang::admin::verify_chain(&t.db)
            .await
            .expect("verify")
            .is_none()
    );
}
db_test!(
    org_admin_race,
    two_admins_deactivating_each_other_at_once_leave_one_admin
);

async fn two_admins_inviting_the_same_address_at_once_make_one_account(t: &TestDb) {
    use zhigang::org_admin::{Invite, invite};
    let org = crate::helpers::org(&t.db, DISTRICT).await;
    let a = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let b = member_of(&t.db, DISTRICT, OrgRole::OrgAdmin).await;
    let email = format!("twice-{}@example.cn", Uuid::now_v7().simple());
    let ask = |admin: UserId| Invite {
        admin: admin.0,
        org: org.0,
        email: &email,
        role: OrgRole::Reviewer,
        locale: "zh-CN",
    };
    let (ra, rb) = tokio::join!(invite(&t.db, ask(a)), invite(&t.db, ask(b)));
    let ok = [&ra, &rb].iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(ok, 1, "{ra:?} {rb:?}");
    let users = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .all(&t.db)
        .await
        .expect("query");
    assert_eq!(users.len(), 1);
    assert_eq!(memberships(t, org, users[0].id).await.len(), 1);
    let mails = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(users[0].id))
        .all(&t.db)
        .await
        .expect("query");
    assert_eq!(mails.len(), 1);
    assert_eq!(admin_events(t, "org.reviewer.invite").await.len(), 1);
}
db_test!(
    org_admin_invite_race,
    two_admins_inviting_the_same_address_at_once_make_one_account
);
