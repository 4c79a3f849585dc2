//! The store on real databases: transactions, concurrency, reference numbers, history
//! chain and replay, definition versions. Every test runs on SQLite and on PostgreSQL.

use std::sync::Arc;

use entity::enums::{ApplicationStatus, OrgRole, TaskStatus};
use entity::{application, history_event, org_membership, outbox, task};
use futures::future::join_all;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Statement,
};
use tokio::sync::Barrier;
use zhigang::calendar::local_date;
use zhigang::ids::ApplicationId;
use zhigang::store::{self, StoreError};
use zhigang::workflow::engine::{Action, ItemKind, Refusal, ReturnItem};

use crate::db_test;
use crate::helpers::*;

async fn app_row(t: &TestDb, app: ApplicationId) -> application::Model {
    application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("application exists")
}

async fn event_count(t: &TestDb, app: ApplicationId) -> u64 {
    history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.0))
        .count(&t.db)
        .await
        .expect("count")
}

async fn outbox_of(t: &TestDb, app: ApplicationId) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .filter(outbox::Column::ApplicationId.eq(app.0))
        .order_by_asc(outbox::Column::Id)
        .all(&t.db)
        .await
        .expect("outbox")
}

/// Drives a 一企一策 application to the countersign step.
async fn at_countersign(t: &TestDb, support: &[&str]) -> (ApplicationId, zhigang::ids::UserId) {
    let (company, applicant) = company(&t.db).await;
    let district = reviewer(&t.db, "D-120116").await;
    let miit = reviewer(&t.db, "TJ-MIIT").await;
    let app = submitted_yqyc(&t.db, company, applicant, support).await;
    approve(&t.db, app, "D-120116", district).await;
    approve(&t.db, app, "TJ-MIIT", miit).await;
    (app, applicant)
}

async fn fifty_concurrent_identical_approvals_let_exactly_one_through(t: &TestDb) {
    let (company, applicant) = company(&t.db).await;
    let mut reviewers = Vec::new();
    for _ in 0..5 {
        reviewers.push(reviewer(&t.db, "D-120116").await);
    }
    let miit_reviewers = 3;
    for _ in 0..miit_reviewers {
        reviewer(&t.db, "TJ-MIIT").await;
    }
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let task = task_of(&t.db, app, "D-120116").await;
    let outbox_before = outbox_of(t, app).await.len();
    let barrier = Arc::new(Barrier::new(50));
    let attempts = (0..50).map(|i| {
        let db = t.db.clone();
        let who = reviewers[i % reviewers.len()];
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store::execute(
                &db,
                app,
                who,
                Action::Approve {
                    task,
                    opinion: "同意".into(),
                },
            )
            .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task did not panic"))
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one approval goes through: {results:?}");
    for r in &results {
        match r {
            Ok(_) | Err(StoreError::Refused(Refusal::TaskClosed)) | Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(event_count(t, app).await, 2, "submit + one approval");
    // One set of outbox rows: task_arrived for each TJ-MIIT reviewer, nothing else.
    let new_rows: Vec<_> = outbox_of(t, app)
        .await
        .into_iter()
        .skip(outbox_before)
        .collect();
    assert_eq!(new_rows.len(), miit_reviewers, "{new_rows:?}");
    assert!(new_rows.iter().all(|r| r.kind == "task_arrived"));
    let row = app_row(t, app).await;
    assert_eq!(row.current_step.as_deref(), Some("lead_review"));
    assert_eq!(row.version, 2);
}
db_test!(
    fifty_concurrent_identical_approvals,
    fifty_concurrent_identical_approvals_let_exactly_one_through
);

async fn the_last_two_countersigners_approving_at_once_advance_the_application_once(t: &TestDb) {
    for _ in 0..3 {
        let (app, _) = at_countersign(t, &["rd_funding"]).await;
        let codes: Vec<String> = live_tasks(&t.db, app)
            .await
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(codes, ["TJ-CAC", "TJ-DRC", "TJ-STC"]);
        let stc = reviewer(&t.db, "TJ-STC").await;
        approve(&t.db, app, "TJ-STC", stc).await;
        let drc = reviewer(&t.db, "TJ-DRC").await;
        let cac = reviewer(&t.db, "TJ-CAC").await;
        let drc_task = task_of(&t.db, app, "TJ-DRC").await;
        let cac_task = task_of(&t.db, app, "TJ-CAC").await;
        let barrier = Arc::new(Barrier::new(2));
        let run = |who, task| {
            let db = t.db.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store::execute(
                    &db,
                    app,
                    who,
                    Action::Approve {
                        task,
                        opinion: "会签同意".into(),
                    },
                )
                .await
            })
        };
        let (a, b) = tokio::join!(run(drc, drc_task), run(cac, cac_task));
        a.expect("join").expect("DRC approval goes through");
        b.expect("join").expect("CAC approval goes through");
        let live = live_tasks(&t.db, app).await;
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].0, "TJ-AI-COORD");
        let row = app_row(t, app).await;
        assert_eq!(row.current_step.as_deref(), Some("coordination"));
        let coord_tasks = task::Entity::find()
            .filter(task::Column::ApplicationId.eq(app.0))
            .filter(task::Column::StepId.eq("coordination"))
            .count(&t.db)
            .await
            .expect("count");
        assert_eq!(coord_tasks, 1, "the step was entered exactly once");
        // submit, district, lead, three countersigners.
        assert_eq!(event_count(t, app).await, 6);
    }
}
db_test!(
    last_two_countersigners_at_once,
    the_last_two_countersigners_approving_at_once_advance_the_application_once
);

async fn a_return_by_one_countersigner_is_held_until_the_others_decide_then_resubmission_reopens_all(
    t: &TestDb,
) {
    let (app, applicant) = at_countersign(t, &["fund_investment", "talent"]).await;
    let codes: Vec<String> = live_tasks(&t.db, app)
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(codes, ["TJ-CAC", "TJ-DRC", "TJ-FIN", "TJ-HRSS", "TJ-STC"]);
    let stc = reviewer(&t.db, "TJ-STC").await;
    approve(&t.db, app, "TJ-STC", stc).await;
    let fin = reviewer(&t.db, "TJ-FIN").await;
    let fin_task = task_of(&t.db, app, "TJ-FIN").await;
    let before = app_row(t, app).await;
    let due = before.step_due.expect("countersign has a due date");
    store::execute(
        &t.db,
        app,
        fin,
        Action::Return {
            task: fin_task,
            items: vec![ReturnItem {
                kind: ItemKind::Material,
                id: "financial_statements".into(),
                note: "请补充经审计的上年度财务报表".into(),
            }],
            comment: "材料不全".into(),
        },
    )
    .await
    .expect("return");
    // 一次性告知: held while DRC, CAC and HRSS still decide; nobody is cancelled.
    let row = app_row(t, app).await;
    assert_eq!(row.status, ApplicationStatus::InReview);
    assert_eq!(
        live_tasks(&t.db, app)
            .await
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>(),
        ["TJ-CAC", "TJ-DRC", "TJ-HRSS"]
    );
    let held = store::held_returns_of(&t.db, app.0)
        .await
        .expect("held")
        .expect("a held return is stored");
    assert_eq!(held.as_array().map(Vec::len), Some(1));
    assert!(
        outbox_of(t, app).await.iter().all(|r| r.kind != "returned"),
        "the company is not told yet"
    );
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for code in ["TJ-CAC", "TJ-DRC", "TJ-HRSS"] {
        let r = reviewer(&t.db, code).await;
        approve(&t.db, app, code, r).await;
    }
    assert!(live_tasks(&t.db, app).await.is_empty());
    let row = app_row(t, app).await;
    assert_eq!(row.status, ApplicationStatus::Returned);
    let cal = store::load_calendar(&t.db).await.expect("calendar");
    let today = local_date(store::now());
    let left = cal.working_days_between(today, due);
    assert_eq!(
        row.paused_step_days,
        Some(i32::try_from(left).expect("small"))
    );
    assert!(row.step_due.is_none(), "the clock is paused");
    let statuses: Vec<(String, TaskStatus)> = task::Entity::find()
        .filter(task::Column::ApplicationId.eq(app.0))
        .filter(task::Column::StepId.eq("countersign"))
        .all(&t.db)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| (t.org_id.to_string(), t.status))
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, s)| *s == TaskStatus::Cancelled)
            .count(),
        0
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, s)| *s == TaskStatus::Approved)
            .count(),
        4
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, s)| *s == TaskStatus::Returned)
            .count(),
        1
    );
    let returned_mail = outbox_of(t, app)
        .await
        .into_iter()
        .filter(|r| r.kind == "returned")
        .count();
    assert_eq!(returned_mail, 1, "the applicant company is told once");

    store::execute(
        &t.db,
        app,
        applicant,
        Action::Resubmit {
            note: Some("已补充".into()),
        },
    )
    .await
    .expect("resubmit");
    let codes: Vec<String> = live_tasks(&t.db, app)
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        codes,
        ["TJ-CAC", "TJ-DRC", "TJ-FIN", "TJ-HRSS", "TJ-STC"],
        "every organization again, STC included"
    );
    let row = app_row(t, app).await;
    assert_eq!(row.status, ApplicationStatus::InReview);
    assert_eq!(row.current_step.as_deref(), Some("countersign"));
    assert_eq!(
        row.step_due,
        Some(cal.add_working_days(today, left.max(1))),
        "the clock resumes with what was left"
    );
    // The history still shows who had approved before.
    let approvals = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.0))
        .filter(history_event::Column::Kind.eq("approve"))
        .all(&t.db)
        .await
        .expect("events");
    assert!(approvals.iter().any(|e| e.actor_user_id == Some(stc.0)));
    assert_eq!(
        store::held_returns_of(&t.db, app.0).await.expect("held"),
        None,
        "nothing held after resubmission"
    );
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
db_test!(
    return_is_held_and_resubmission_reopens,
    a_return_by_one_countersigner_is_held_until_the_others_decide_then_resubmission_reopens_all
);

/// The last two countersigners return at the same moment, on parallel connections: one
/// return is held, the other closes the step, and the application is returned exactly
/// once with both organizations' items, one `returned` outbox row per company member.
async fn the_last_two_countersigners_returning_at_once_return_the_application_once(t: &TestDb) {
    for _ in 0..3 {
        let (app, _) = at_countersign(t, &["rd_funding"]).await;
        let row = app_row(t, app).await;
        // A second member of the company: each member gets one notice.
        entity::company_member::ActiveModel {
            id: sea_orm::ActiveValue::Set(uuid::Uuid::now_v7()),
            company_id: sea_orm::ActiveValue::Set(row.company_id),
            user_id: sea_orm::ActiveValue::Set(user(&t.db, "colleague").await.0),
            role: sea_orm::ActiveValue::Set(entity::enums::CompanyRole::Member),
            active: sea_orm::ActiveValue::Set(true),
            created_at: sea_orm::ActiveValue::Set(store::now()),
        }
        .insert(&t.db)
        .await
        .expect("second member");
        let stc = reviewer(&t.db, "TJ-STC").await;
        approve(&t.db, app, "TJ-STC", stc).await;
        let drc = reviewer(&t.db, "TJ-DRC").await;
        let cac = reviewer(&t.db, "TJ-CAC").await;
        let drc_task = task_of(&t.db, app, "TJ-DRC").await;
        let cac_task = task_of(&t.db, app, "TJ-CAC").await;
        let barrier = Arc::new(Barrier::new(2));
        let run = |who, task, id: &'static str, note: &'static str| {
            let db = t.db.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store::execute(
                    &db,
                    app,
                    who,
                    Action::Return {
                        task,
                        items: vec![ReturnItem {
                            kind: ItemKind::Section,
                            id: id.into(),
                            note: note.into(),
                        }],
                        comment: "请补正".into(),
                    },
                )
                .await
            })
        };
        let (a, b) = tokio::join!(
            run(drc, drc_task, "request", "说明投资计划"),
            run(cac, cac_task, "plan", "补充数据安全措施")
        );
        let a = a.expect("join").expect("DRC return goes through");
        let b = b.expect("join").expect("CAC return goes through");
        let mut statuses = [a.status, b.status];
        statuses.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            statuses,
            [ApplicationStatus::InReview, ApplicationStatus::Returned],
            "one held, one returning"
        );
        let row = app_row(t, app).await;
        assert_eq!(row.status, ApplicationStatus::Returned);
        assert!(live_tasks(&t.db, app).await.is_empty());
        let items = row.return_items.clone().expect("items");
        let mut notes: Vec<&str> = items
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["note"].as_str().expect("note"))
            .collect();
        notes.sort_unstable();
        assert_eq!(notes, ["补充数据安全措施", "说明投资计划"]);
        let orgs: std::collections::BTreeSet<String> = items
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["org"].as_str().expect("org named").to_string())
            .collect();
        assert_eq!(orgs.len(), 2, "each item names its organization");
        let returned: Vec<outbox::Model> = outbox_of(t, app)
            .await
            .into_iter()
            .filter(|r| r.kind == "returned")
            .collect();
        assert_eq!(returned.len(), 2, "one per company member");
        let recipients: std::collections::BTreeSet<_> =
            returned.iter().map(|r| r.recipient_user_id).collect();
        assert_eq!(recipients.len(), 2);
        for r in &returned {
            let data = &r.payload["data"];
            assert_eq!(data["items"].as_array().map(Vec::len), Some(2), "{data}");
            // The mail shows each item's note and one comment: both name who asks.
            let comment = data["comment"].as_str().expect("comment");
            assert!(
                comment.contains("市委网信办") && comment.contains("市发展改革委"),
                "{comment}"
            );
            for item in data["items"].as_array().expect("items") {
                let note = item["note"].as_str().expect("note");
                assert!(note.starts_with("[市"), "{note}");
            }
        }
        let returns = history_event::Entity::find()
            .filter(history_event::Column::ApplicationId.eq(app.0))
            .filter(history_event::Column::Kind.eq("return"))
            .count(&t.db)
            .await
            .expect("count");
        assert_eq!(returns, 2, "both returns recorded");
        let report = zhigang::audit::verify(&t.db).await.expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
db_test!(
    last_two_countersigners_return_at_once,
    the_last_two_countersigners_returning_at_once_return_the_application_once
);

/// `execute_recorded` writes the admin audit record with the transition, and neither when
/// the engine refuses.
async fn an_admin_reassignment_and_its_audit_record_commit_together(t: &TestDb) {
    let (app, _) = at_countersign(t, &["rd_funding"]).await;
    let admin = user(&t.db, "sysadmin").await;
    entity::system_admin::ActiveModel {
        id: sea_orm::ActiveValue::Set(uuid::Uuid::now_v7()),
        user_id: sea_orm::ActiveValue::Set(admin.0),
        created_at: sea_orm::ActiveValue::Set(store::now()),
    }
    .insert(&t.db)
    .await
    .expect("system admin");
    let to = reviewer(&t.db, "TJ-STC").await;
    let task = task_of(&t.db, app, "TJ-STC").await;
    let events = || async {
        entity::admin_event::Entity::find()
            .count(&t.db)
            .await
            .expect("count")
    };
    let before = events().await;
    let record = zhigang::admin::AdminAction {
        actor: admin.0,
        org: None,
        action: "task.reassign",
        target: "TJ-STC",
        details: serde_json::json!({ "task": task.0, "to": to.0 }),
    };
    let transfer = Action::Transfer {
        task,
        to: zhigang::workflow::engine::Assignee {
            user: to,
            orgs: Default::default(),
        },
    };
    store::execute_recorded(&t.db, app, admin, transfer, record.clone())
        .await
        .expect("reassign");
    assert_eq!(events().await, before + 1);
    let held_by = task::Entity::find_by_id(task.0)
        .one(&t.db)
        .await
        .expect("task")
        .expect("exists")
        .claimant_id;
    assert_eq!(held_by, Some(to.0));
    // Refused (not a colleague of the task's organization): nothing recorded.
    let stranger = user(&t.db, "stranger").await;
    let refused = Action::Transfer {
        task,
        to: zhigang::workflow::engine::Assignee {
            user: stranger,
            orgs: Default::default(),
        },
    };
    let again = store::execute_recorded(&t.db, app, admin, refused, record).await;
    assert!(matches!(again, Err(StoreError::Refused(_))), "{again:?}");
    assert_eq!(events().await, before + 1);
    assert!(
        zhigang::admin::verify_chain(&t.db)
            .await
            .expect("chain")
            .is_none()
    );
}
db_test!(
    execute_recorded_is_atomic,
    an_admin_reassignment_and_its_audit_record_commit_together
);

async fn concurrent_submissions_get_unique_sequential_reference_numbers(t: &TestDb) {
    let (company, applicant) = company(&t.db).await;
    let mut drafts = Vec::new();
    for _ in 0..20 {
        let app = store::create_draft(
            &t.db,
            company,
            applicant,
            "yqyc",
            yqyc_form(&["rd_funding"]),
        )
        .await
        .expect("draft");
        attach_materials(
            &t.db,
            app,
            company,
            applicant,
            &["business_licence", "financial_statements", "plan_document"],
        )
        .await;
        drafts.push(app);
    }
    let barrier = Arc::new(Barrier::new(drafts.len()));
    let results = join_all(drafts.iter().map(|app| {
        let db = t.db.clone();
        let app = *app;
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store::execute(&db, app, applicant, Action::Submit).await
        })
    }))
    .await;
    let mut refs: Vec<String> = results
        .into_iter()
        .map(|r| {
            r.expect("join")
                .expect("submit")
                .reference
                .expect("reference")
        })
        .collect();
    refs.sort();
    let year = local_date(store::now()).format("%Y").to_string();
    let expected: Vec<String> = (1..=20).map(|n| format!("YQYC-{year}-{n:06}")).collect();
    assert_eq!(refs, expected);
}
db_test!(
    reference_numbers_without_races,
    concurrent_submissions_get_unique_sequential_reference_numbers
);

async fn the_audit_catches_an_event_edited_by_hand(t: &TestDb) {
    let (app, _) = at_countersign(t, &["rd_funding"]).await;
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert!(
        report.problems.is_empty(),
        "a clean history verifies: {:?}",
        report.problems
    );
    assert_eq!(report.events, 3);
    let victim = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.0))
        .filter(history_event::Column::Seq.eq(2))
        .one(&t.db)
        .await
        .expect("query")
        .expect("event 2");
    let sql = match t.backend {
        Backend::Sqlite => {
            "UPDATE history_events SET payload = replace(payload, '同意', '驳回') WHERE id = ?"
        }
        Backend::Postgres => {
            "UPDATE history_events SET payload = replace(payload, '同意', '驳回') WHERE id = $1"
        }
    };
    t.db.execute_raw(Statement::from_sql_and_values(
        t.db.get_database_backend(),
        sql,
        [victim.id.into()],
    ))
    .await
    .expect("tamper");
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.application_id, app.0);
    assert_eq!(p.event, Some((2, victim.id)));
    assert!(p.message.contains("hash differs"), "{}", p.message);

    // The operator's command finds it too, and says which application and event.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .env("ZHIGANG_DATABASE_URL", &t.url)
        .env("ZHIGANG_LOG", "warn")
        .args(["audit", "verify"])
        .output()
        .expect("run zhigang audit verify");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&app.0.to_string()) && stdout.contains(&victim.id.to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("1 problems"), "{stdout}");
}
db_test!(
    audit_catches_hand_edits,
    the_audit_catches_an_event_edited_by_hand
);

async fn replaying_the_history_reproduces_the_stored_state(t: &TestDb) {
    let (app, applicant) = at_countersign(t, &["talent"]).await;
    let hr = reviewer(&t.db, "TJ-HRSS").await;
    let task = task_of(&t.db, app, "TJ-HRSS").await;
    store::execute(&t.db, app, hr, Action::Claim { task })
        .await
        .expect("claim");
    store::execute(
        &t.db,
        app,
        hr,
        Action::Return {
            task,
            items: vec![ReturnItem {
                kind: ItemKind::Section,
                id: "plan".into(),
                note: "补充人才计划".into(),
            }],
            comment: "请补正".into(),
        },
    )
    .await
    .expect("return");
    // Held while the other countersigners decide; then merged and returned.
    for code in ["TJ-CAC", "TJ-DRC", "TJ-STC"] {
        let r = reviewer(&t.db, code).await;
        approve(&t.db, app, code, r).await;
    }
    assert_eq!(app_row(t, app).await.status, ApplicationStatus::Returned);
    store::execute(&t.db, app, applicant, Action::Resubmit { note: None })
        .await
        .expect("resubmit");
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A task changed behind the engine's back no longer matches its history.
    let live = task_of(&t.db, app, "TJ-STC").await;
    let sql = match t.backend {
        Backend::Sqlite => "UPDATE tasks SET status = 'approved' WHERE id = ?",
        Backend::Postgres => "UPDATE tasks SET status = 'approved' WHERE id = $1",
    };
    t.db.execute_raw(Statement::from_sql_and_values(
        t.db.get_database_backend(),
        sql,
        [live.0.into()],
    ))
    .await
    .expect("tamper");
    let report = zhigang::audit::verify(&t.db).await.expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].message.contains(&live.0.to_string()));
}
db_test!(
    replay_reproduces_state,
    replaying_the_history_reproduces_the_stored_state
);

async fn a_changed_definition_becomes_a_new_version_and_leaves_applications_in_flight_alone(
    t: &TestDb,
) {
    let (app, _) = at_countersign(t, &["rd_funding"]).await;
    let before = app_row(t, app).await;
    let orgs = store::load_orgs(&t.db).await.expect("orgs");
    let source = zhigang::workflow::definition::BUILTIN[0].1.replace(
        "promised_days = 10\nnext = \"coordination\"",
        "promised_days = 12\nnext = \"coordination\"",
    );
    assert_ne!(
        source,
        zhigang::workflow::definition::BUILTIN[0].1,
        "the edit applies"
    );
    let loaded = zhigang::seed::load_definition(&t.db, "yqyc.toml", &source, &orgs)
        .await
        .expect("db")
        .expect("valid");
    assert_eq!(loaded, zhigang::seed::Loaded::NewVersion(2));
    // Loading the same text again changes nothing; neither does re-seeding the built-ins
    // (their text is stored as version 1 already).
    let again = zhigang::seed::load_definition(&t.db, "yqyc.toml", &source, &orgs)
        .await
        .expect("db")
        .expect("valid");
    assert_eq!(again, zhigang::seed::Loaded::Unchanged(2));
    let (active, def) = store::active_definition(&t.db, "yqyc", &orgs)
        .await
        .expect("active");
    assert_eq!(active.version, 2);
    assert_eq!(def.step("countersign").map(|s| s.promised_days), Some(12));
    assert_eq!(
        app_row(t, app).await.definition_id,
        before.definition_id,
        "in flight keeps its version"
    );
    let stc = reviewer(&t.db, "TJ-STC").await;
    approve(&t.db, app, "TJ-STC", stc).await;
    assert_eq!(app_row(t, app).await.definition_id, before.definition_id);
    // New drafts take the new version.
    let (company, applicant) = company(&t.db).await;
    let new_app = store::create_draft(&t.db, company, applicant, "yqyc", yqyc_form(&[]))
        .await
        .expect("draft");
    assert_eq!(app_row(t, new_app).await.definition_id, active.id);
}
db_test!(
    definition_versions,
    a_changed_definition_becomes_a_new_version_and_leaves_applications_in_flight_alone
);

async fn another_companys_user_cannot_act_on_an_application(t: &TestDb) {
    let (company_a, applicant_a) = company(&t.db).await;
    let (_, applicant_b) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company_a, applicant_a, &["rd_funding"]).await;
    let err = store::execute(&t.db, app, applicant_b, Action::Withdraw { reason: None })
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StoreError::Refused(Refusal::NotPermitted)),
        "{err:?}"
    );
    let err = store::update_section(&t.db, app, applicant_b, 1, "plan", serde_json::Map::new())
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store::update_section(&t.db, app, applicant_a, 1, "plan", serde_json::Map::new())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StoreError::Refused(Refusal::Locked)),
        "a submitted application is locked: {err:?}"
    );
    store::execute(
        &t.db,
        app,
        applicant_a,
        Action::Withdraw {
            reason: Some("计划调整".into()),
        },
    )
    .await
    .expect("own company may withdraw");
    assert_eq!(app_row(t, app).await.status, ApplicationStatus::Withdrawn);
    assert!(live_tasks(&t.db, app).await.is_empty());
}
db_test!(
    company_boundaries,
    another_companys_user_cannot_act_on_an_application
);

/// The roles read with the application: every active membership (reviewer and admin, in
/// several organizations), none of an inactive one, and the company and system flags.
async fn roles_cover_every_active_membership(t: &TestDb) {
    let (company_a, applicant) = company(&t.db).await;
    let u = member_of(&t.db, "D-120116", OrgRole::Reviewer).await;
    let extra = [
        ("TJ-STC", OrgRole::OrgAdmin, true),
        ("TJ-DRC", OrgRole::Reviewer, true),
        ("TJ-CAC", OrgRole::Reviewer, false),
    ];
    for (code, role, active) in extra {
        org_membership::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            org_id: Set(org(&t.db, code).await.0),
            user_id: Set(u.0),
            role: Set(role),
            active: Set(active),
            created_at: Set(chrono::Utc::now()),
        }
        .insert(&t.db)
        .await
        .expect("membership");
    }
    let actor = store::actor_for(&t.db, u, company_a.0)
        .await
        .expect("roles");
    let want: std::collections::BTreeSet<_> = [
        org(&t.db, "D-120116").await,
        org(&t.db, "TJ-STC").await,
        org(&t.db, "TJ-DRC").await,
    ]
    .into_iter()
    .collect();
    assert_eq!(actor.reviewer_of, want);
    assert_eq!(
        actor.admin_of,
        [org(&t.db, "TJ-STC").await].into_iter().collect()
    );
    assert!(!actor.applicant && !actor.system_admin);
    let applicant = store::actor_for(&t.db, applicant, company_a.0)
        .await
        .expect("roles");
    assert!(applicant.applicant && applicant.reviewer_of.is_empty());
}
db_test!(roles_of_a_user, roles_cover_every_active_membership);

async fn migrations_run_down_and_up_again(t: &TestDb) {
    use migration::{Migrator, MigratorTrait};
    Migrator::down(&t.db, None).await.expect("down");
    Migrator::up(&t.db, None).await.expect("up");
    zhigang::seed::all(&t.db).await.expect("seed again");
    zhigang::seed::all(&t.db)
        .await
        .expect("seeding is idempotent");
    let orgs = store::load_orgs(&t.db).await.expect("orgs");
    assert_eq!(orgs.iter().count(), 39);
}
db_test!(migrations_down_and_up, migrations_run_down_and_up_again);

/// The portal's own PostgreSQL connections ask for generic plans (`zhigang::db::connect`):
/// left to choose, the server re-planned a transition's read every time, at a cost above
/// executing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_ask_for_generic_plans() {
    let Some(t) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let row =
        t.db.query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT setting, source FROM pg_settings WHERE name = 'plan_cache_mode'",
        ))
        .await
        .expect("query")
        .expect("a row");
    let setting: String = row.try_get_by_index(0).expect("setting");
    let source: String = row.try_get_by_index(1).expect("source");
    // Set by the connection itself, not by the server's configuration.
    assert_eq!(
        (setting.as_str(), source.as_str()),
        ("force_generic_plan", "client")
    );
}

/// The applicant's page lists every item of a merged return with the organization that
/// asks for it.
async fn the_applicants_page_names_the_organization_of_each_merged_item(t: &TestDb) {
    use crate::web::{fresh_uscc, mail_link, register, spawn_app};
    let web = spawn_app(t).await;
    let email = format!(
        "merged-{}@example.cn",
        rand::random_range(0..1_000_000_000u32)
    );
    assert_eq!(
        register(&web, &fresh_uscc(), &email).await.status(),
        reqwest::StatusCode::SEE_OTHER
    );
    let u = entity::user::Entity::find()
        .filter(entity::user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let link = mail_link(t, u.id, "verification").await;
    assert_eq!(web.get(&link).await.status(), reqwest::StatusCode::OK);
    let company = entity::company_member::Entity::find()
        .filter(entity::company_member::Column::UserId.eq(u.id))
        .one(&t.db)
        .await
        .expect("query")
        .expect("member")
        .company_id;
    let applicant = zhigang::ids::UserId(u.id);
    let app = submitted_yqyc(
        &t.db,
        zhigang::ids::CompanyId(company),
        applicant,
        &["rd_funding"],
    )
    .await;
    for code in ["D-120116", "TJ-MIIT", "TJ-STC"] {
        let r = reviewer(&t.db, code).await;
        approve(&t.db, app, code, r).await;
    }
    for (code, id, note) in [
        ("TJ-CAC", "plan", "补充数据安全措施"),
        ("TJ-DRC", "request", "说明投资计划"),
    ] {
        let r = reviewer(&t.db, code).await;
        let task = task_of(&t.db, app, code).await;
        store::execute(
            &t.db,
            app,
            r,
            Action::Return {
                task,
                items: vec![ReturnItem {
                    kind: ItemKind::Section,
                    id: id.into(),
                    note: note.into(),
                }],
                comment: "请补正".into(),
            },
        )
        .await
        .expect("return");
    }
    assert_eq!(app_row(t, app).await.status, ApplicationStatus::Returned);
    let page = web
        .get(&format!("/applications/{}", app.0))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("(市委网信办)") && page.contains("(市发展改革委)"),
        "{page}"
    );
    assert!(page.contains("补充数据安全措施") && page.contains("说明投资计划"));
}
db_test!(
    applicant_page_names_who_asks,
    the_applicants_page_names_the_organization_of_each_merged_item
);

/// A held connection (`zhigang::db::Held`, on which a transition reads and, on
/// PostgreSQL, writes) runs every statement on the one connection it took, out of the
/// pool until it is dropped: a temporary table it creates is there for its next
/// statements and for no other connection. Values are bound, errors come back as sea-orm's.
async fn a_held_connection_keeps_one_connection(t: &TestDb) {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, Query};
    let held = zhigang::db::Held::acquire(&t.db).await.expect("acquire");
    held.execute_unprepared("CREATE TEMPORARY TABLE held_probe (x integer NOT NULL)")
        .await
        .expect("create");
    let written = held
        .execute(
            Query::insert()
                .into_table(Alias::new("held_probe"))
                .columns([Alias::new("x")])
                .values_panic([7.into()])
                .values_panic([35.into()]),
        )
        .await
        .expect("insert");
    assert_eq!(written.rows_affected(), 2);
    let sum = Query::select()
        .expr_as(Expr::col(Alias::new("x")).sum(), Alias::new("s"))
        .from(Alias::new("held_probe"))
        .and_where(Expr::col(Alias::new("x")).gt(1))
        .to_owned();
    let row = held.query_one(&sum).await.expect("sum").expect("a row");
    assert_eq!(row.try_get::<i64>("", "s").expect("s"), 42);
    let none = held
        .query_one(
            Query::select()
                .column(Alias::new("x"))
                .from(Alias::new("held_probe"))
                .and_where(Expr::col(Alias::new("x")).eq(-1)),
        )
        .await
        .expect("query");
    assert!(none.is_none());
    // Any other connection of the pool: the table is not there.
    let elsewhere = t.db.query_one(&sum).await;
    assert!(
        matches!(elsewhere, Err(sea_orm::DbErr::Query(_))),
        "{elsewhere:?}"
    );
    // A failed statement is an error like the pool's, and the connection goes on.
    let bad = held
        .execute_unprepared("SELECT no_such_column FROM held_probe")
        .await;
    assert!(matches!(bad, Err(sea_orm::DbErr::Exec(_))), "{bad:?}");
    held.execute_unprepared("DROP TABLE held_probe")
        .await
        .expect("drop");
}
db_test!(held_connection, a_held_connection_keeps_one_connection);
