//! Notification preferences and the daily digest, over real SMTP (the server of
//! `mail.rs`) and through the preferences page. Every test runs on SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use entity::enums::OutboxStatus;
use entity::notification_preference::{self, NotificationMode};
use entity::outbox;
use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::json;
use uuid::Uuid;
use zhigang::ids::UserId;
use zhigang::mail::Worker;
use zhigang::mail::prefs;
use zhigang::store;

use crate::db_test;
use crate::helpers::*;
use crate::mail::{SmtpServer, count_status, drain, email_of, rows, set_locale, settings, worker};
use crate::web::spawn_app;

async fn choose(t: &TestDb, u: UserId, kind: &str, mode: NotificationMode, reviewer: bool) {
    prefs::save(
        &t.db,
        u.0,
        &[(kind.to_string(), mode)],
        reviewer,
        store::now(),
    )
    .await
    .expect("database")
    .expect("an allowed choice");
}

async fn reference_of(t: &TestDb, app: zhigang::ids::ApplicationId) -> String {
    entity::application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("query")
        .and_then(|a| a.reference)
        .expect("reference")
}

/// Runs batches until nothing is due (rows parked for the digest are never due).
async fn drain_due(w: &Worker, t: &TestDb) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let due = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
            .filter(outbox::Column::NextAttemptAt.lt(zhigang::mail::queue::digest_hold()))
            .all(&t.db)
            .await
            .expect("rows");
        if due.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} rows still due: {due:#?}",
            due.len()
        );
        if w.run_once().await.expect("batch") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `hour`:00 in Beijing on `day`.
fn local_hour(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, 0, 0).expect("time").and_utc() - chrono::Duration::hours(8)
}

/// The latest local (Beijing) day whose 10:00 has passed: a digest fired at 09:00 of it is
/// due now. Between 16:00 and 02:00 UTC, today's morning in Beijing is still ahead, and a
/// digest "of today" would wait in the outbox until then.
fn past_morning() -> NaiveDate {
    let now = store::now();
    let today = zhigang::calendar::local_date(now);
    if local_hour(today, 10) <= now {
        today
    } else {
        today.pred_opt().expect("date")
    }
}

async fn a_switched_off_event_is_not_mailed_and_the_delivery_log_says_why(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    let district = reviewer(&t.db, "D-120116").await;
    choose(t, applicant, "submitted", NotificationMode::Off, false).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    drain(&w, t, Duration::from_secs(30)).await;

    let got: BTreeSet<String> = smtp.received().iter().map(|r| r.to[0].clone()).collect();
    assert_eq!(
        got,
        BTreeSet::from([email_of(t, district).await]),
        "only the reviewer, who kept the default"
    );
    let row = rows(t)
        .await
        .into_iter()
        .find(|r| r.recipient_user_id == Some(applicant.0))
        .expect("the applicant's row is still there: it is the record");
    assert_eq!(row.kind, "submitted");
    assert_eq!(row.application_id, Some(app.0));
    assert_eq!(row.status, OutboxStatus::Dead, "closed, never sent");
    assert!(row.sent_at.is_none());
    assert_eq!(
        row.last_error.as_deref(),
        Some(zhigang::mail::queue::SWITCHED_OFF)
    );
    // The application's delivery log shows the reviewers why it was not sent.
    let web = spawn_app(t).await;
    let (colleague, _) = login_as(&web, t, "district-reviewer").await;
    make_reviewer(t, colleague, "D-120116").await;
    let page = web.get(&format!("/applications/{}", app.0)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(html.contains("未发送(收件人已关闭此类通知)"), "{html}");
    assert!(
        !html.contains("发送失败"),
        "it is not shown as a failure: {html}"
    );

    // Switched back on: the next event is mailed again.
    choose(
        t,
        applicant,
        "submitted",
        NotificationMode::Immediate,
        false,
    )
    .await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    drain(&w, t, Duration::from_secs(30)).await;
    let to_applicant = smtp
        .received()
        .iter()
        .filter(|r| r.to[0] == row.recipient_email)
        .count();
    assert_eq!(to_applicant, 1);
}
db_test!(
    switched_off,
    a_switched_off_event_is_not_mailed_and_the_delivery_log_says_why
);

async fn account_and_security_mail_is_sent_whatever_is_stored(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let u = user(&t.db, "careful").await;
    // The page refuses this; a row written some other way must not matter either.
    for kind in prefs::ALWAYS_ON {
        assert_eq!(
            prefs::save(
                &t.db,
                u.0,
                &[(kind.to_string(), NotificationMode::Off)],
                true,
                store::now()
            )
            .await
            .expect("database"),
            Err(vec![(kind.to_string(), prefs::PrefError::AlwaysOn)])
        );
        notification_preference::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(u.0),
            kind: Set(kind.to_string()),
            mode: Set(NotificationMode::Off),
            updated_at: Set(store::now()),
        }
        .insert(&t.db)
        .await
        .expect("a stray row");
    }
    let recipient = entity::user::Entity::find_by_id(u.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    for kind in prefs::ALWAYS_ON {
        store::outbox_row(
            kind,
            None,
            &recipient,
            json!({ "link": "/login", "inviter": "王经理", "inviter_org": "测试公司" }),
            store::now(),
        )
        .insert(&t.db)
        .await
        .expect("queue");
    }
    drain(&w, t, Duration::from_secs(30)).await;
    assert_eq!(smtp.received().len(), prefs::ALWAYS_ON.len());
    assert_eq!(
        count_status(t, OutboxStatus::Sent).await,
        prefs::ALWAYS_ON.len() as u64
    );
}
db_test!(
    security_mail_always_sent,
    account_and_security_mail_is_sent_whatever_is_stored
);

async fn a_digest_reviewer_gets_one_mail_with_every_new_task_once_even_from_two_workers(
    t: &TestDb,
) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    let digester = reviewer(&t.db, "D-120116").await;
    set_locale(t, digester, "en").await;
    let colleague = reviewer(&t.db, "D-120116").await;
    choose(t, digester, "task_arrived", NotificationMode::Digest, true).await;
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await);
    }
    let digester_mail = email_of(t, digester).await;
    let colleague_mail = email_of(t, colleague).await;
    // Immediate delivery: the colleague gets three, the digest reviewer none yet.
    drain_due(&w, t).await;
    let count_to = |who: &str| smtp.received().iter().filter(|r| r.to[0] == who).count();
    assert_eq!(count_to(&colleague_mail), 3);
    assert_eq!(count_to(&digester_mail), 0);
    let parked: Vec<outbox::Model> = rows(t)
        .await
        .into_iter()
        .filter(|r| r.recipient_user_id == Some(digester.0))
        .collect();
    assert_eq!(parked.len(), 3);
    assert!(
        parked.iter().all(|r| r.status == OutboxStatus::Queued),
        "waiting, shown as queued: {parked:?}"
    );

    let today = past_morning();
    assert_eq!(
        w.run_digest_at(local_hour(today, 8) - chrono::Duration::minutes(1))
            .await
            .expect("scan"),
        0,
        "not before 08:00 Beijing time"
    );
    // Two workers on their own pools, at once, then again: one digest.
    let workers: Vec<Worker> = join_all((0..2).map(|_| async {
        let pool = zhigang::db::connect(&t.url, 5).await.expect("pool");
        Worker::new(pool, &settings(Some(smtp.url()), &std::env::temp_dir())).expect("worker")
    }))
    .await;
    let at = local_hour(today, 9);
    let fired: usize = join_all(workers.iter().map(|w| w.run_digest_at(at)))
        .await
        .into_iter()
        .map(|r| r.expect("scan"))
        .sum();
    assert_eq!(fired, 1, "one digest, for the one reviewer who chose it");
    for w in &workers {
        assert_eq!(w.run_digest_at(at).await.expect("scan"), 0);
    }
    drain_due(&w, t).await;
    let digests: Vec<_> = smtp
        .received()
        .into_iter()
        .filter(|r| r.to[0] == digester_mail)
        .collect();
    assert_eq!(digests.len(), 1, "one mail");
    let d = &digests[0];
    assert_eq!(d.subject(), "[Zhigang] Daily digest: 3 new tasks");
    let mut expected_links = Vec::new();
    for app in &apps {
        let reference = reference_of(t, *app).await;
        assert!(d.text().contains(&reference), "{reference}: {}", d.text());
        assert!(d.html().contains(&reference));
        let task = task_of(&t.db, *app, "D-120116").await;
        expected_links.push(format!("https://portal.zhigang.test/tasks/{}", task.0));
    }
    assert!(
        d.text().contains("One Enterprise, One Policy"),
        "{}",
        d.text()
    );
    assert!(d.text().contains("Binhai New Area"), "{}", d.text());
    assert!(d.text().contains("promised date:"), "{}", d.text());
    let links = d.links();
    for l in &expected_links {
        assert!(links.contains(l), "{l} in {links:?}");
    }
    assert!(links.contains(&"https://portal.zhigang.test/inbox".to_string()));
    // The carried rows are sent with it; the delivery log says so.
    for r in rows(t)
        .await
        .into_iter()
        .filter(|r| r.recipient_user_id == Some(digester.0) && r.kind == "task_arrived")
    {
        assert_eq!(r.status, OutboxStatus::Sent);
        assert!(r.sent_at.is_some());
    }
    // The next day with nothing new: no digest.
    let tomorrow = today.succ_opt().expect("date");
    assert_eq!(
        w.run_digest_at(local_hour(tomorrow, 8))
            .await
            .expect("scan"),
        0
    );
    drain_due(&w, t).await;
    assert_eq!(count_to(&digester_mail), 1);
    let digest_rows = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq(prefs::DIGEST_KIND))
        .count(&t.db)
        .await
        .expect("count");
    assert_eq!(digest_rows, 1);
}
db_test!(
    digest_once,
    a_digest_reviewer_gets_one_mail_with_every_new_task_once_even_from_two_workers
);

async fn login_as(app: &crate::web::TestApp, t: &TestDb, name: &str) -> (UserId, String) {
    let password = "violet-harbour-tractor-58";
    let email = format!("{name}-{}@example.test", Uuid::now_v7().simple());
    let hash = zhigang::passwords::hash_blocking(password).expect("hash");
    let id = zhigang::seed::create_user_row(&t.db, &email, name, &hash)
        .await
        .expect("user");
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", email.as_str()), ("password", password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "logged in");
    (UserId(id), email)
}

async fn make_reviewer(t: &TestDb, u: UserId, code: &str) {
    let org = org(&t.db, code).await;
    entity::org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org.0),
        user_id: Set(u.0),
        role: Set(entity::enums::OrgRole::Reviewer),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("membership");
}

async fn the_preferences_page_saves_choices_and_refuses_to_switch_off_security_mail(t: &TestDb) {
    let app = spawn_app(t).await;
    let (me, _) = login_as(&app, t, "reviewer").await;
    // Not yet a reviewer: no digest offered, and a forged one is refused.
    let page = app.get("/account/notifications").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(html.contains("id=\"approved-off\""), "{html}");
    assert!(!html.contains("-digest\""), "{html}");
    let resp = app
        .submit(
            "/account/notifications",
            "/account/notifications",
            &[("task_arrived", "digest")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A reviewer now.
    make_reviewer(t, me, "D-120116").await;
    let html = app
        .get("/account/notifications")
        .await
        .text()
        .await
        .expect("body");
    assert!(html.contains("id=\"task_arrived-digest\""), "{html}");
    assert!(!html.contains("id=\"approved-off\""), "{html}");
    assert!(!html.contains("name=\"password_reset\""), "{html}");
    let resp = app
        .submit(
            "/account/notifications",
            "/account/notifications",
            &[
                ("task_arrived", "digest"),
                ("cc", "off"),
                ("reminder", "immediate"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let modes = prefs::modes_of(&t.db, me.0).await.expect("modes");
    assert_eq!(modes.get("task_arrived"), Some(&NotificationMode::Digest));
    assert_eq!(modes.get("cc"), Some(&NotificationMode::Off));
    assert_eq!(modes.get("reminder"), Some(&NotificationMode::Immediate));
    let html = app
        .get("/account/notifications")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        html.contains("id=\"task_arrived-digest\" name=\"task_arrived\" value=\"digest\" checked"),
        "{html}"
    );
    assert!(
        html.contains("id=\"cc-off\" name=\"cc\" value=\"off\" checked"),
        "{html}"
    );

    // Security mail cannot be switched off: refused, nothing stored, the rest kept as typed.
    let resp = app
        .submit(
            "/account/notifications",
            "/account/notifications",
            &[("password_changed", "off"), ("cc", "immediate")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("body");
    assert!(html.contains("账号与安全类邮件不能关闭"), "{html}");
    assert!(
        html.contains("id=\"cc-immediate\" name=\"cc\" value=\"immediate\" checked"),
        "{html}"
    );
    let modes = prefs::modes_of(&t.db, me.0).await.expect("modes");
    assert_eq!(modes.get("password_changed"), None);
    assert_eq!(
        modes.get("cc"),
        Some(&NotificationMode::Off),
        "nothing stored"
    );
    // Anonymous: to the login page.
    let anon = crate::web::client()
        .get(format!("{}/account/notifications", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(anon.status(), StatusCode::SEE_OTHER);
}
db_test!(
    preferences_page,
    the_preferences_page_saves_choices_and_refuses_to_switch_off_security_mail
);

async fn tasks_parked_for_the_digest_are_mailed_one_by_one_after_switching_back(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    let reviewer = reviewer(&t.db, "D-120116").await;
    let mail = email_of(t, reviewer).await;
    choose(t, reviewer, "task_arrived", NotificationMode::Digest, true).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    drain_due(&w, t).await;
    assert_eq!(
        smtp.received().iter().filter(|r| r.to[0] == mail).count(),
        0
    );
    // Changed their mind before the digest: the digest releases both, the worker sends
    // each on its own, and there is no digest.
    choose(
        t,
        reviewer,
        "task_arrived",
        NotificationMode::Immediate,
        true,
    )
    .await;
    let today = past_morning();
    assert_eq!(
        w.run_digest_at(local_hour(today, 10)).await.expect("scan"),
        0
    );
    drain_due(&w, t).await;
    let got: Vec<_> = smtp
        .received()
        .into_iter()
        .filter(|r| r.to[0] == mail)
        .collect();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|r| r.subject().starts_with("【智港】新的审核任务"))
    );
    assert_eq!(
        count_status(t, OutboxStatus::Queued).await,
        0,
        "nothing left parked"
    );
}
db_test!(
    digest_released,
    tasks_parked_for_the_digest_are_mailed_one_by_one_after_switching_back
);
