//! Several instances: two `zhigang serve` processes on one PostgreSQL database with one
//! shared attachment store and one SMTP server, as production runs behind a proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use entity::enums::{OrgRole, OutboxStatus};
use entity::{history_event, outbox, task, timer};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use zhigang::api::tokens;
use zhigang::ids::{ApplicationId, UserId};

use crate::db_test;
use crate::helpers::*;
use crate::mail::SmtpServer;
use crate::review::{login_user, session_for};
use crate::web::TestApp;

/// A `zhigang serve` process; killed (and its log printed) when dropped.
struct Instance {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Instance {
    fn start(t: &TestDb, smtp: &SmtpServer, data: &std::path::Path, name: &str) -> Self {
        let port = free_port();
        let log = data.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_zhigang"))
            .arg("serve")
            .env("ZHIGANG_DATABASE_URL", &t.url)
            .env("ZHIGANG_SMTP_URL", smtp.url())
            // The shared attachment store (in production: S3-compatible object storage).
            .env("ZHIGANG_DATA_DIR", data)
            .env("ZHIGANG_LISTEN", format!("127.0.0.1:{port}"))
            .env("ZHIGANG_BASE_URL", "http://portal.test")
            .env("ZHIGANG_MAIL_FROM", format!("{name} <{name}@zhigang.test>"))
            .env("ZHIGANG_DB_MAX_CONNECTIONS", "8")
            .env("ZHIGANG_LOG", "warn,zhigang=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start zhigang serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.base)).await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.base,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of {}:\n{}",
                self.base,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

async fn token(t: &TestDb, user: UserId) -> String {
    tokens::create(&t.db, user.0, "instances", Some(1))
        .await
        .expect("query")
        .expect("valid")
        .secret
}

async fn api_post(base: &str, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Today in the portal's time zone (Asia/Shanghai, UTC+8 all year).
fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

async fn two_instances_share_sessions_files_work_mail_and_timers(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        eprintln!(
            "NOTE: instances:: runs on PostgreSQL only: a single-file SQLite database is for \
             one instance, so there is no second one to test."
        );
        return;
    }
    let smtp = SmtpServer::start_new().await;
    let shared = tempfile::tempdir().expect("tmp");
    // Reviewers first, so reminders and new-task emails have recipients.
    let reviewer_one = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let reviewer_two = login_user(t, "D-120116", OrgRole::Reviewer).await;
    login_user(t, "TJ-MIIT", OrgRole::Reviewer).await;
    let n = 40;
    let (company, applicant) = company(&t.db).await;
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(submitted_yqyc(&t.db, company, applicant, &["talent"]).await);
    }
    // Ten district tasks are promised for today: each "due today" reminder must fire once,
    // although both instances scan the timers as they start.
    let reminded: Vec<ApplicationId> = apps[..10].to_vec();
    for app in &reminded {
        let live = task::Entity::find()
            .filter(task::Column::ApplicationId.eq(app.0))
            .filter(task::Column::ClosedAt.is_null())
            .all(&t.db)
            .await
            .expect("tasks");
        for tk in live {
            let mut am: task::ActiveModel = tk.into();
            am.due_date = Set(today());
            am.update(&t.db).await.expect("promise today");
        }
    }

    // Both at once, as a deployment starts them.
    let mut a = Instance::start(t, &smtp, shared.path(), "one");
    let mut b = Instance::start(t, &smtp, shared.path(), "two");
    a.wait_ready().await;
    b.wait_ready().await;

    // Every reminder fired once.
    // (The day's digest timer is a row too: at most one, whichever instance fired it.)
    let task_timers = || async {
        let all = timer::Entity::find().all(&t.db).await.expect("timers");
        let digests = all.iter().filter(|f| f.kind == "daily_digest").count();
        assert!(digests <= 1, "the digest fired {digests} times");
        all.into_iter()
            .filter(|f| f.kind != "daily_digest")
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let fired = task_timers().await;
        if fired.len() >= reminded.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} timers fired",
            fired.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fired = task_timers().await;
    assert_eq!(fired.len(), reminded.len(), "{fired:?}");
    assert!(
        fired.iter().all(|f| f.kind == "task_due_today"),
        "{fired:?}"
    );
    let fired_apps: BTreeSet<_> = fired.iter().map(|f| f.application_id).collect();
    let expected_apps: BTreeSet<_> = reminded.iter().map(|a| a.0).collect();
    assert_eq!(fired_apps, expected_apps);

    // A session created on one instance works on the other (sessions live in the database).
    let on_a = session_for(t, &a.base, reviewer_one).await;
    let on_b = TestApp {
        base: b.base.clone(),
        client: on_a.client.clone(),
    };
    let inbox = on_b.get("/inbox").await;
    assert_eq!(
        inbox.status(),
        StatusCode::OK,
        "logged in on the other instance"
    );
    let html = inbox.text().await.expect("body");
    let reference = entity::application::Entity::find_by_id(apps[0].0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("application")
        .reference
        .expect("a reference");
    assert!(
        html.contains("action=\"/logout\"") && html.contains(&reference),
        "the reviewer's inbox, with the district's tasks"
    );

    // An attachment stored through one instance is read through the other.
    let me = token(t, applicant).await;
    let (s, draft) = api_post(
        &a.base,
        &me,
        "/applications",
        json!({ "type": "yqyc", "form": yqyc_form(&["talent"]) }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{draft}");
    let id = draft["id"].as_str().expect("id").to_string();
    let bytes = b"%PDF-1.4\n% shared store\n%%EOF\n".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("material", "plan_document")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("plan.pdf")
                .mime_str("application/pdf")
                .expect("mime"),
        );
    let up = reqwest::Client::new()
        .post(format!("{}/api/v1/applications/{id}/attachments", a.base))
        .bearer_auth(&me)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::CREATED);
    let att: Value = up.json().await.expect("json");
    let down = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/applications/{id}/attachments/{}",
            b.base,
            att["id"].as_str().expect("id")
        ))
        .bearer_auth(&me)
        .send()
        .await
        .expect("download");
    assert_eq!(down.status(), StatusCode::OK);
    assert_eq!(down.bytes().await.expect("bytes").to_vec(), bytes);

    // Load over both: every district task is claimed by two reviewers at once, one on each
    // instance; exactly one wins, and approves it through the other instance.
    let (tok_one, tok_two) = (token(t, reviewer_one).await, token(t, reviewer_two).await);
    let mut work = tokio::task::JoinSet::new();
    let mut acknowledged = BTreeMap::<&str, usize>::new();
    for app in &apps {
        let task_id = task_of(&t.db, *app, "D-120116").await.0;
        let (a_base, b_base) = (a.base.clone(), b.base.clone());
        let (t1, t2) = (tok_one.clone(), tok_two.clone());
        work.spawn(async move {
            let path = format!("/tasks/{task_id}/claim");
            let ((s1, _), (s2, _)) = tokio::join!(
                api_post(&a_base, &t1, &path, json!({})),
                api_post(&b_base, &t2, &path, json!({}))
            );
            let (winner, other_base) = match (s1, s2) {
                (StatusCode::OK, StatusCode::CONFLICT) => (t1, b_base),
                (StatusCode::CONFLICT, StatusCode::OK) => (t2, a_base),
                other => panic!("two claims of one task: {other:?}"),
            };
            let (s, v) = api_post(
                &other_base,
                &winner,
                &format!("/tasks/{task_id}/decision"),
                json!({ "action": "approve", "comment": "同意" }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        });
        while work.len() >= 8 {
            work.join_next().await.expect("a task").expect("no panic");
            *acknowledged.entry("claim").or_default() += 1;
            *acknowledged.entry("approve").or_default() += 1;
        }
    }
    while let Some(r) = work.join_next().await {
        r.expect("no panic");
        *acknowledged.entry("claim").or_default() += 1;
        *acknowledged.entry("approve").or_default() += 1;
    }

    // No transition lost or applied twice: per application one claim and one approval in
    // the history, the case now at the lead bureau, and every stored state equal to the
    // replay of its history.
    for app in &apps {
        let events = history_event::Entity::find()
            .filter(history_event::Column::ApplicationId.eq(app.0))
            .all(&t.db)
            .await
            .expect("history");
        let approvals = events.iter().filter(|e| e.kind == "approve").count();
        assert_eq!(approvals, 1, "{app:?}: {events:?}");
        let live = live_tasks(&t.db, *app).await;
        assert_eq!(live.len(), 1, "{app:?}: {live:?}");
        assert_eq!(live[0].0, "TJ-MIIT", "{app:?}");
    }
    let total_approvals = history_event::Entity::find()
        .filter(history_event::Column::Kind.eq("approve"))
        .all(&t.db)
        .await
        .expect("history")
        .len();
    assert_eq!(total_approvals, acknowledged["approve"]);
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Every email sent exactly once, by one instance or the other.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting = outbox::Entity::find()
            .filter(outbox::Column::Status.ne(OutboxStatus::Sent))
            .all(&t.db)
            .await
            .expect("outbox");
        let unsent: Vec<_> = waiting.iter().collect();
        if unsent.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} messages still unsent: {:?}",
            unsent.len(),
            unsent.first()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent: BTreeSet<String> = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Sent))
        .all(&t.db)
        .await
        .expect("outbox")
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    let mut per_id = BTreeMap::<String, usize>::new();
    let mut per_instance = BTreeMap::<String, usize>::new();
    for r in smtp.received() {
        *per_id.entry(r.message_id()).or_default() += 1;
        *per_instance.entry(r.from.clone()).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "arrived twice: {twice:?}");
    let arrived: BTreeSet<String> = per_id.keys().cloned().collect();
    assert_eq!(arrived, sent, "every sent message arrived, by Message-ID");
    eprintln!(
        "two instances: {} transitions acknowledged, {} messages, by instance {per_instance:?}",
        acknowledged.values().sum::<usize>(),
        sent.len()
    );
}
db_test!(
    two_instances_share_sessions_files_work_mail_and_timers,
    two_instances_share_sessions_files_work_mail_and_timers
);
