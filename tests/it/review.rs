//! The reviewer workbench over real HTTP, on SQLite and PostgreSQL: the inbox and its
//! pages, the task page, every action, what is kept when someone else acted first, and races
//! between reviewers with real parallel connections.

use entity::enums::{ApplicationStatus, OrgRole, TaskStatus};
use entity::{application, history_event, org_membership, task};
use reqwest::{StatusCode, header};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;
use zhigang::ids::{ApplicationId, TaskId, UserId};
use zhigang::store;
use zhigang::workflow::engine::Action;

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, client, csrf_of, spawn_app};

pub const REVIEWER_PASSWORD: &str = "amber-lantern-quartz-92";

/// A user of organization `code` with `role` who can log in with [`REVIEWER_PASSWORD`].
pub async fn login_user(t: &TestDb, code: &str, role: OrgRole) -> UserId {
    let hash = zhigang::passwords::hash_blocking(REVIEWER_PASSWORD).expect("hash");
    let email = format!(
        "{}-{}@bureau.test",
        code.to_lowercase(),
        Uuid::now_v7().simple()
    );
    let id = zhigang::seed::create_user_row(&t.db, &email, &format!("{code} 审核员"), &hash)
        .await
        .expect("user");
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org(&t.db, code).await.0),
        user_id: Set(id),
        role: Set(role),
        active: Set(true),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("membership");
    UserId(id)
}

/// A new browser session on `base`, logged in as `user`.
pub async fn session_for(t: &TestDb, base: &str, user: UserId) -> TestApp {
    let email = entity::user::Entity::find_by_id(user.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email;
    let app = TestApp {
        base: base.to_string(),
        client: client(),
    };
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", REVIEWER_PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login of {email}");
    app
}

/// The value of the first hidden field `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn text(resp: reqwest::Response) -> String {
    resp.text().await.expect("body")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn post(
    app: &TestApp,
    task: TaskId,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = format!("/tasks/{}", task.0);
    app.submit(&page, &format!("/tasks/{}/{action}", task.0), fields)
        .await
}

async fn status_of(t: &TestDb, app: ApplicationId) -> ApplicationStatus {
    application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("app")
        .status
}

async fn events(t: &TestDb, app: ApplicationId, kind: &str) -> u64 {
    history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.0))
        .filter(history_event::Column::Kind.eq(kind))
        .count(&t.db)
        .await
        .expect("count")
}

/// Moves an application through district and lead review to the countersign step.
async fn to_countersign(t: &TestDb, app: ApplicationId) {
    let district = reviewer(&t.db, "D-120116").await;
    let task = task_of(&t.db, app, "D-120116").await;
    store::execute(&t.db, app, district, Action::Claim { task })
        .await
        .expect("claim");
    approve(&t.db, app, "D-120116", district).await;
    let miit = reviewer(&t.db, "TJ-MIIT").await;
    let task = task_of(&t.db, app, "TJ-MIIT").await;
    store::execute(&t.db, app, miit, Action::Claim { task })
        .await
        .expect("claim");
    approve(&t.db, app, "TJ-MIIT", miit).await;
}

async fn the_inbox_lists_pages_filters_and_tabs(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let mut apps = Vec::new();
    for _ in 0..27 {
        apps.push(submitted_yqyc(&t.db, company, applicant, &["talent"]).await);
    }
    let me = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let other = login_user(t, "D-120101", OrgRole::Reviewer).await;
    let mine = session_for(t, &web.base, me).await;

    // Page one: 25 rows, oldest promised date first, and a cursor to the rest.
    let page1 = text(mine.get("/inbox").await).await;
    assert!(page1.contains("(27)"), "the to-do count is shown");
    let links = |html: &str| -> Vec<String> {
        html.split("href=\"/tasks/")
            .skip(1)
            .filter_map(|s| s.split('"').next().map(str::to_string))
            .collect()
    };
    let first = links(&page1);
    assert_eq!(first.len(), 25);
    let next = page1
        .split("href=\"/inbox?")
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&").replace("&#x3D;", "="))
        .find(|s| s.contains("after="))
        .expect("a next-page link");
    let page2 = text(mine.get(&format!("/inbox?{next}")).await).await;
    let second = links(&page2);
    assert_eq!(second.len(), 2, "the rest on page two");
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "no row twice across pages"
    );

    // Filters: nothing is overdue yet; one task made overdue shows up alone, marked in words.
    let overdue = text(mine.get("/inbox?tab=todo&overdue=1").await).await;
    assert_eq!(links(&overdue).len(), 0);
    let t0 = task_of(&t.db, apps[0], "D-120116").await;
    let mut row: task::ActiveModel = task::Entity::find_by_id(t0.0)
        .one(&t.db)
        .await
        .expect("q")
        .expect("task")
        .into();
    row.due_date = Set(chrono::NaiveDate::from_ymd_opt(2025, 3, 3).expect("date"));
    row.update(&t.db).await.expect("update");
    let overdue = text(mine.get("/inbox?tab=todo&overdue=1").await).await;
    assert_eq!(links(&overdue), vec![t0.0.to_string()]);
    assert!(
        overdue.contains("已超期"),
        "overdue is said in words, not colour alone"
    );
    let other_type = text(mine.get("/inbox?type=ip_fast_track").await).await;
    assert_eq!(links(&other_type).len(), 0, "type filter");

    // Claimed by me stays in my to-do; done lists what I decided.
    let resp = post(&mine, t0, "claim", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let claimed = text(mine.get("/inbox?status=claimed").await).await;
    assert_eq!(links(&claimed), vec![t0.0.to_string()]);
    let resp = post(&mine, t0, "approve", &[("opinion", "材料齐全,同意上报")]).await;
    assert_eq!(location(&resp), "/inbox");
    let done = text(mine.get("/inbox?tab=done").await).await;
    assert_eq!(links(&done), vec![t0.0.to_string()]);

    // A reviewer of another district sees none of it.
    let theirs = session_for(t, &web.base, other).await;
    let page = text(theirs.get("/inbox").await).await;
    assert_eq!(links(&page).len(), 0);
    assert_eq!(
        theirs.get(&format!("/tasks/{}", first[1])).await.status(),
        StatusCode::NOT_FOUND
    );
}
db_test!(inbox, the_inbox_lists_pages_filters_and_tabs);

async fn a_reviewer_claims_and_decides_on_the_task_page(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    let me = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let s = session_for(t, &web.base, me).await;
    let task = task_of(&t.db, app, "D-120116").await;

    let page = text(s.get(&format!("/tasks/{}", task.0)).await).await;
    assert!(page.contains("天津智能测试科技有限公司"), "the company");
    assert!(page.contains("扩大服务机器人产线"), "the form data");
    assert!(page.contains("business_licence.pdf"), "the attachments");
    assert!(page.contains("<svg"), "the diagram");
    assert!(page.contains("action=\"/tasks/"), "actions are offered");

    assert_eq!(
        post(&s, task, "claim", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    // An empty opinion comes back with the message, nothing is lost or changed.
    let resp = post(&s, task, "approve", &[("opinion", "  ")]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = text(resp).await;
    assert!(body.contains("error-message"), "the field's message");
    assert_eq!(events(t, app, "approve").await, 0);

    // Return with items: the applicant gets one notice listing everything.
    let resp = post(
        &s,
        task,
        "return",
        &[
            ("item", "section:request"),
            ("note:section:request", "申请金额请与计划书一致"),
            ("item", "material:plan_document"),
            ("note:material:plan_document", "请补充盖章页"),
            ("comment", "请一次性补正以下内容"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", text(resp).await);
    assert_eq!(status_of(t, app).await, ApplicationStatus::Returned);
    let notices = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::ApplicationId.eq(app.0))
        .filter(entity::outbox::Column::Kind.eq("returned"))
        .all(&t.db)
        .await
        .expect("outbox");
    assert_eq!(notices.len(), 1, "one notice to the one company member");
    let payload = notices[0].payload.to_string();
    assert!(payload.contains("申请金额请与计划书一致") && payload.contains("请补充盖章页"));

    // The company changes the amount and resubmits; the reviewer sees exactly what changed.
    let version = application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("q")
        .expect("app")
        .version;
    let mut values = serde_json::Map::new();
    values.insert("support_requested".into(), serde_json::json!(["talent"]));
    values.insert("amount_requested".into(), serde_json::json!(3_000_000));
    store::update_section(&t.db, app, applicant, version, "request", values)
        .await
        .expect("fix the section");
    store::execute(&t.db, app, applicant, Action::Resubmit { note: None })
        .await
        .expect("resubmit");
    let task2 = task_of(&t.db, app, "D-120116").await;
    let page = text(s.get(&format!("/tasks/{}", task2.0)).await).await;
    assert!(page.contains("与退回时版本相比的修改"), "the diff section");
    assert!(
        page.contains("<del>5000000</del>") && page.contains("<ins>3000000</ins>"),
        "before and after of the changed field"
    );
    assert!(
        !page.contains("<del>320</del>"),
        "unchanged fields are not listed"
    );

    assert_eq!(
        post(&s, task2, "claim", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let resp = post(&s, task2, "approve", &[("opinion", "补正后材料齐全,同意")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let lead = task_of(&t.db, app, "TJ-MIIT").await;

    // The lead bureau rejects with a reason the applicant sees.
    let miit = login_user(t, "TJ-MIIT", OrgRole::Reviewer).await;
    let m = session_for(t, &web.base, miit).await;
    assert_eq!(
        post(&m, lead, "claim", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    let resp = post(&m, lead, "reject", &[("reason", "")]).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = post(&m, lead, "reject", &[("reason", "不符合一企一策支持条件")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of(t, app).await, ApplicationStatus::Rejected);
}
db_test!(task_page, a_reviewer_claims_and_decides_on_the_task_page);

async fn the_second_reviewer_is_told_and_keeps_what_they_typed(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    let a = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let b = login_user(t, "D-120116", OrgRole::OrgAdmin).await;
    let sa = session_for(t, &web.base, a).await;
    let sb = session_for(t, &web.base, b).await;
    let task = task_of(&t.db, app, "D-120116").await;

    // B opens the page first (and keeps its CSRF token), then A claims and approves.
    let b_page = text(sb.get(&format!("/tasks/{}", task.0)).await).await;
    let b_token = csrf_of(&b_page);
    assert_eq!(
        post(&sa, task, "claim", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post(&sa, task, "approve", &[("opinion", "同意")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // B posts an approval from the stale page: told, shown the new state, text kept.
    let resp = sb
        .client
        .post(format!("{}/tasks/{}/approve", sb.base, task.0))
        .form(&[
            ("_csrf", b_token.as_str()),
            ("opinion", "我认为应当同意,理由如下"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body = text(resp).await;
    assert!(
        body.contains("他人已先行处理"),
        "the conflict is named: {body}"
    );
    assert!(
        body.contains("我认为应当同意,理由如下"),
        "the typed opinion is kept"
    );
    assert!(body.contains("已同意"), "the new state is shown");
    assert_eq!(events(t, app, "approve").await, 1);
}
db_test!(
    stale_page,
    the_second_reviewer_is_told_and_keeps_what_they_typed
);

async fn two_reviewers_claiming_at_once_one_wins(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    for _round in 0..3 {
        let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
        let task = task_of(&t.db, app, "D-120116").await;
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let u = login_user(t, "D-120116", OrgRole::Reviewer).await;
            let s = session_for(t, &web.base, u).await;
            let token = csrf_of(&text(s.get(&format!("/tasks/{}", task.0)).await).await);
            sessions.push((s, token));
        }
        let mut handles = Vec::new();
        for (s, token) in sessions {
            handles.push(tokio::spawn(async move {
                s.client
                    .post(format!("{}/tasks/{}/claim", s.base, task.0))
                    .form(&[("_csrf", token.as_str())])
                    .send()
                    .await
                    .expect("post")
                    .status()
            }));
        }
        let mut statuses = Vec::new();
        for h in handles {
            statuses.push(h.await.expect("join"));
        }
        let won = statuses
            .iter()
            .filter(|s| **s == StatusCode::SEE_OTHER)
            .count();
        let lost = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((won, lost), (1, 3), "{statuses:?}");
        assert_eq!(events(t, app, "claim").await, 1, "one claim recorded");
    }
}
db_test!(claim_race, two_reviewers_claiming_at_once_one_wins);

async fn adding_a_countersigner_while_another_approves(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    for _round in 0..3 {
        let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
        to_countersign(t, app).await;
        // Everyone but 市科委 approves; then 市科委 approves while the lead adds 市场监管委.
        let live = live_tasks(&t.db, app).await;
        for (code, _) in &live {
            if code != "TJ-STC" {
                let u = reviewer(&t.db, code).await;
                let task = task_of(&t.db, app, code).await;
                store::execute(&t.db, app, u, Action::Claim { task })
                    .await
                    .expect("claim");
                approve(&t.db, app, code, u).await;
            }
        }
        let stc = login_user(t, "TJ-STC", OrgRole::Reviewer).await;
        let lead = login_user(t, "TJ-MIIT", OrgRole::Reviewer).await;
        let s_stc = session_for(t, &web.base, stc).await;
        let s_lead = session_for(t, &web.base, lead).await;
        let stc_task = task_of(&t.db, app, "TJ-STC").await;
        assert_eq!(
            post(&s_stc, stc_task, "claim", &[]).await.status(),
            StatusCode::SEE_OTHER
        );
        let lead_task = task::Entity::find()
            .filter(task::Column::ApplicationId.eq(app.0))
            .filter(task::Column::StepId.eq("lead_review"))
            .one(&t.db)
            .await
            .expect("q")
            .expect("lead task");
        let lead_page = text(s_lead.get(&format!("/tasks/{}", lead_task.id)).await).await;
        assert!(
            lead_page.contains("/add_signer"),
            "the lead may add a countersigner"
        );
        let amr = org(&t.db, "TJ-AMR").await;
        let stc_token = csrf_of(&text(s_stc.get(&format!("/tasks/{}", stc_task.0)).await).await);
        let lead_token = csrf_of(&lead_page);
        let lead_version = hidden(&lead_page, "version");
        let approve_req = s_stc
            .client
            .post(format!("{}/tasks/{}/approve", s_stc.base, stc_task.0))
            .form(&[("_csrf", stc_token.as_str()), ("opinion", "同意")])
            .send();
        let add_req = s_lead
            .client
            .post(format!("{}/tasks/{}/add_signer", s_lead.base, lead_task.id))
            .form(&[
                ("_csrf", lead_token.as_str()),
                ("version", lead_version.as_str()),
                ("org", &amr.0.to_string()),
                ("reason", "涉及市场准入"),
            ])
            .send();
        let (a, b) = tokio::join!(approve_req, add_req);
        let (a, b) = (a.expect("approve").status(), b.expect("add").status());
        assert_eq!(a, StatusCode::SEE_OTHER, "the approval goes through");
        let row = application::Entity::find_by_id(app.0)
            .one(&t.db)
            .await
            .expect("q")
            .expect("app");
        let amr_tasks = task::Entity::find()
            .filter(task::Column::ApplicationId.eq(app.0))
            .filter(task::Column::OrgId.eq(amr.0))
            .all(&t.db)
            .await
            .expect("q");
        if b == StatusCode::SEE_OTHER && row.current_step.as_deref() == Some("countersign") {
            // The addition came first: the step waits for the new organization.
            assert_eq!(amr_tasks.len(), 1);
            assert_eq!(amr_tasks[0].status, TaskStatus::Open);
        } else {
            // The approval closed the step first: the addition is refused, nothing half-done.
            assert_eq!(b, StatusCode::CONFLICT, "the lead is told");
            assert_eq!(row.current_step.as_deref(), Some("coordination"));
            assert!(amr_tasks.is_empty());
        }
        assert_eq!(events(t, app, "approve").await, 2 + live.len() as u64);
    }
}
db_test!(
    add_signer_race,
    adding_a_countersigner_while_another_approves
);

async fn transfer_delegate_comment_and_remind(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    let a = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let b = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let sa = session_for(t, &web.base, a).await;
    let sb = session_for(t, &web.base, b).await;
    let task = task_of(&t.db, app, "D-120116").await;
    assert_eq!(
        post(&sa, task, "claim", &[]).await.status(),
        StatusCode::SEE_OTHER
    );

    // 委派: B acts, and the task comes back to A.
    let resp = post(&sa, task, "delegate", &[("to", &b.0.to_string())]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let row = task::Entity::find_by_id(task.0)
        .one(&t.db)
        .await
        .expect("q")
        .expect("t");
    assert_eq!((row.claimant_id, row.delegated_by), (Some(b.0), Some(a.0)));
    assert!(
        text(sb.get("/inbox").await)
            .await
            .contains(&task.0.to_string())
    );

    // Comments: an internal note and a message to the applicant.
    let resp = post(
        &sb,
        task,
        "comment",
        &[("text", "内部:核对营业执照"), ("visibility", "internal")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = post(
        &sb,
        task,
        "comment",
        &[("text", ""), ("visibility", "applicant")],
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "an empty comment is refused"
    );
    let page = text(sb.get(&format!("/tasks/{}", task.0)).await).await;
    assert!(page.contains("内部:核对营业执照") && page.contains("内部"));

    // 转办 by A of a task A no longer holds is refused with the engine's reason.
    let resp = post(&sa, task, "transfer", &[("to", &b.0.to_string())]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // B's approval is a recommendation: the task comes back to A, who decides. Then the
    // lead's task becomes overdue and the district (an involved organization) reminds its
    // holder.
    assert_eq!(
        post(&sb, task, "approve", &[("opinion", "建议同意")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let row = task::Entity::find_by_id(task.0)
        .one(&t.db)
        .await
        .expect("q")
        .expect("t");
    assert_eq!((row.claimant_id, row.delegated_by), (Some(a.0), None));
    assert_eq!(
        post(&sa, task, "approve", &[("opinion", "同意")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let lead = task_of(&t.db, app, "TJ-MIIT").await;
    let mut row: task::ActiveModel = task::Entity::find_by_id(lead.0)
        .one(&t.db)
        .await
        .expect("q")
        .expect("t")
        .into();
    row.due_date = Set(chrono::NaiveDate::from_ymd_opt(2025, 3, 3).expect("date"));
    row.update(&t.db).await.expect("update");
    let page = text(sa.get(&format!("/tasks/{}", task.0)).await).await;
    assert!(
        page.contains("/remind"),
        "an overdue task of the current step can be reminded"
    );
    let token = csrf_of(&page);
    let resp = sa
        .client
        .post(format!("{}/tasks/{}/remind", sa.base, task.0))
        .form(&[("_csrf", token.as_str()), ("task", &lead.0.to_string())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(events(t, app, "remind").await, 1);
}
db_test!(hand_over, transfer_delegate_comment_and_remind);

async fn only_the_tasks_organizations_may_open_or_act(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    let task = task_of(&t.db, app, "D-120116").await;
    let path = format!("/tasks/{}", task.0);

    let anonymous = TestApp {
        base: web.base.clone(),
        client: client(),
    };
    let resp = anonymous.get(&path).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/login");

    let outsider = login_user(t, "TJ-STC", OrgRole::OrgAdmin).await;
    let s = session_for(t, &web.base, outsider).await;
    assert_eq!(s.get(&path).await.status(), StatusCode::NOT_FOUND);
    let token = csrf_of(&text(s.get("/inbox").await).await);
    let resp = s
        .client
        .post(format!("{}{path}/claim", s.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.get(&format!("/tasks/{}", Uuid::now_v7())).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(events(t, app, "claim").await, 0);

    // A reviewer without the CSRF token changes nothing.
    let insider = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let s = session_for(t, &web.base, insider).await;
    let resp = s
        .client
        .post(format!("{}{path}/claim", s.base))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(events(t, app, "claim").await, 0);
    // And an unknown action is not a page.
    let token = csrf_of(&text(s.get(&path).await).await);
    let resp = s
        .client
        .post(format!("{}{path}/explode", s.base))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
db_test!(task_access, only_the_tasks_organizations_may_open_or_act);

async fn an_organization_copied_on_a_step_reads_it_in_its_copied_tab(t: &TestDb) {
    let web = spawn_app(t).await;
    let (company, applicant) = company(&t.db).await;
    let form = serde_json::json!({
        "service_kind": "fast_protection",
        "online_infringement": true,
        "ip_kind": "invention_patent",
        "ip_number": "ZL202610000001.1",
        "title": "一种服务机器人的导航方法",
        "urgency": "线上店铺大量仿冒,急需快速维权",
    });
    let app = store::create_draft(&t.db, company, applicant, "ip_fast_track", form)
        .await
        .expect("draft");
    attach_materials(&t.db, app, company, applicant, &["ip_certificate"]).await;
    store::execute(&t.db, app, applicant, Action::Submit)
        .await
        .expect("submit");

    let cac = login_user(t, "TJ-CAC", OrgRole::Reviewer).await;
    let s = session_for(t, &web.base, cac).await;
    let page = text(s.get("/inbox?tab=copied").await).await;
    let link = format!("/applications/{}", app.0);
    assert!(page.contains(&link), "the copy is listed: {page}");
    assert!(!page.contains("href=\"/tasks/"), "but no task of theirs");
    assert_eq!(
        s.get(&link).await.status(),
        StatusCode::OK,
        "they may read it"
    );
    let amr_task = task_of(&t.db, app, "TJ-AMR").await;
    assert_eq!(
        s.get(&format!("/tasks/{}", amr_task.0)).await.status(),
        StatusCode::NOT_FOUND,
        "the task stays the holder's"
    );
    // An organization not copied sees nothing.
    let stc = login_user(t, "TJ-STC", OrgRole::Reviewer).await;
    let other = session_for(t, &web.base, stc).await;
    assert!(
        !text(other.get("/inbox?tab=copied").await)
            .await
            .contains(&link)
    );
    assert_eq!(other.get(&link).await.status(), StatusCode::NOT_FOUND);
}
db_test!(
    copied,
    an_organization_copied_on_a_step_reads_it_in_its_copied_tab
);
