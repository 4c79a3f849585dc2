//! The access matrix: every route × every role, with the expected outcome of each cell,
//! including object ids of another company or organization (IDOR). Refusals are 404 for
//! objects the user may not know exist and 403 for actions on objects they may see but not
//! take. Runs on SQLite and PostgreSQL, over real HTTP with one logged-in session per role.
//!
//! Cells that would change state when allowed run after every refusal of their row, and a
//! refusal must leave the application's history untouched.

use std::collections::BTreeMap;
use std::fmt;

use entity::enums::OrgRole;
use entity::{attachment, history_event, user};
use reqwest::{StatusCode, header};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;
use zhigang::ids::{ApplicationId, UserId};
use zhigang::store;
use zhigang::workflow::engine::Action;

use crate::db_test;
use crate::helpers::*;
use crate::review::{REVIEWER_PASSWORD, login_user, session_for};
use crate::web::{TestApp, client, csrf_of, settings_for};

/// A tiny but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Not logged in.
    Anonymous,
    /// A member of company A (which owns the objects).
    ApplicantA,
    /// A member of company B.
    ApplicantB,
    /// A reviewer of the organization holding the task (滨海新区).
    HolderReviewer,
    /// A reviewer of another organization (和平区).
    OtherReviewer,
    /// The holding organization's admin.
    OrgAdmin,
    /// A system administrator.
    SystemAdmin,
}

use Role::*;

/// Every role, in the order the cells run.
pub const ROLES: [Role; 7] = [
    Anonymous,
    ApplicantA,
    ApplicantB,
    HolderReviewer,
    OtherReviewer,
    OrgAdmin,
    SystemAdmin,
];

/// What a cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 200.
    Ok,
    /// 303 to `/login`.
    Login,
    /// 404: the object's existence is not revealed.
    NotFound,
    /// 403: visible, but not theirs to do.
    Forbidden,
    /// 303 somewhere other than the login page.
    Elsewhere,
    /// 400: a link that is not (or no longer) valid.
    BadRequest,
    /// 401 for wrong credentials (429 once the address is throttled).
    WrongCredentials,
    /// Allowed: the action was taken or refused on its merits (303, 409 or 422), never a
    /// refusal of access.
    Allowed,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

fn matches(expect: Expect, status: StatusCode, location: &str) -> bool {
    match expect {
        Expect::Ok => status == StatusCode::OK,
        Expect::Login => status == StatusCode::SEE_OTHER && location == "/login",
        Expect::NotFound => status == StatusCode::NOT_FOUND,
        Expect::Forbidden => status == StatusCode::FORBIDDEN,
        Expect::Elsewhere => status == StatusCode::SEE_OTHER && location != "/login",
        Expect::BadRequest => status == StatusCode::BAD_REQUEST,
        Expect::WrongCredentials => {
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS
        }
        Expect::Allowed => {
            (status == StatusCode::SEE_OTHER && location != "/login")
                || status == StatusCode::CONFLICT
                || status == StatusCode::UNPROCESSABLE_ENTITY
                || status == StatusCode::OK
        }
    }
}

/// The objects the routes name.
pub struct Objects {
    /// Company A's submitted application (a task of 滨海新区 open on it).
    pub app: Uuid,
    /// Company A's draft.
    pub draft: Uuid,
    /// Company A's decided (approved) application.
    pub decided: Uuid,
    /// The open task on `app`.
    pub task: Uuid,
    /// An attachment of `app`.
    pub attachment: Uuid,
    /// A colleague of company A's applicant.
    pub member: Uuid,
    /// The id of the other organization (和平区).
    pub other_org: Uuid,
    /// The id of the holding organization (滨海新区).
    pub holder_org: Uuid,
    /// The holding organization's reviewer.
    pub holder_user: Uuid,
    /// Another reviewer of the holding organization (whom org admins may deactivate).
    pub spare_reviewer: Uuid,
    /// A document on company A's profile (一企一档).
    pub profile_doc: Uuid,
    /// A workflow definition version.
    pub definition: Uuid,
}

/// The portal with one logged-in session per role and the objects.
pub struct World {
    pub sessions: BTreeMap<Role, TestApp>,
    pub objects: Objects,
}

async fn set_password(t: &TestDb, user: UserId) {
    let row = user::Entity::find_by_id(user.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let mut am: user::ActiveModel = row.into();
    am.password_hash = Set(zhigang::passwords::hash_blocking(REVIEWER_PASSWORD).expect("hash"));
    am.update(&t.db).await.expect("password");
}

pub async fn world(t: &TestDb) -> World {
    // The portal, with a data directory this test also writes attachments into.
    let data_dir = t.data_dir();
    let mut settings = settings_for(t, "http://portal.test");
    settings.data_dir = data_dir.clone();
    let portal = zhigang::startup::Application::with_database(&settings, t.db.clone())
        .await
        .expect("build app");
    let base = format!("http://{}", portal.addr());
    tokio::spawn(portal.run());
    let (company_a, applicant_a) = company(&t.db).await;
    let (_company_b, applicant_b) = company(&t.db).await;
    set_password(t, applicant_a).await;
    set_password(t, applicant_b).await;
    let colleague = user(&t.db, "colleague").await;
    entity::company_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(company_a.0),
        user_id: Set(colleague.0),
        role: Set(entity::enums::CompanyRole::Member),
        active: Set(true),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("colleague");

    let app = submitted_yqyc(&t.db, company_a, applicant_a, &["talent"]).await;
    let draft = store::create_draft(
        &t.db,
        company_a,
        applicant_a,
        "yqyc",
        yqyc_form(&["talent"]),
    )
    .await
    .expect("draft");
    let decided = decided_application(t, company_a, applicant_a).await;
    let task = task_of(&t.db, app, "D-120116").await;
    // Give one attachment real stored content, in the store the portal reads.
    let row = attachment::Entity::find()
        .filter(attachment::Column::ApplicationId.eq(app.0))
        .one(&t.db)
        .await
        .expect("query")
        .expect("attachment");
    let attachment = row.id;
    let files =
        zhigang::attachments::AttachmentStore::local(&data_dir.join("attachments"), 1024 * 1024)
            .expect("store");
    let stored = files
        .put(bytes::Bytes::from_static(
            b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
        ))
        .await
        .expect("put");
    let mut am: attachment::ActiveModel = row.into();
    am.storage_key = Set(stored.key.clone());
    am.sha256 = Set(stored.sha256.clone());
    am.update(&t.db).await.expect("attachment");
    let profile_doc = store::attach_to_profile(
        &t.db,
        company_a,
        applicant_a,
        "business_licence",
        "营业执照.pdf",
        &stored,
    )
    .await
    .expect("profile document");
    let definition = entity::workflow_definition::Entity::find()
        .one(&t.db)
        .await
        .expect("query")
        .expect("a definition")
        .id;
    let spare_reviewer = reviewer(&t.db, "D-120116").await;

    let holder = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let other = login_user(t, "D-120101", OrgRole::Reviewer).await;
    let admin = login_user(t, "D-120116", OrgRole::OrgAdmin).await;
    let sysadmin = login_user(t, "TJ-MIIT", OrgRole::Reviewer).await;
    // A system administrator who is no organization's reviewer.
    org_membership_off(t, sysadmin).await;
    entity::system_admin::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(sysadmin.0),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("system admin");

    let mut sessions = BTreeMap::new();
    sessions.insert(
        Anonymous,
        TestApp {
            base: base.clone(),
            client: client(),
        },
    );
    for (role, who) in [
        (ApplicantA, applicant_a),
        (ApplicantB, applicant_b),
        (HolderReviewer, holder),
        (OtherReviewer, other),
        (OrgAdmin, admin),
        (SystemAdmin, sysadmin),
    ] {
        sessions.insert(role, session_for(t, &base, who).await);
    }
    World {
        sessions,
        objects: Objects {
            app: app.0,
            draft: draft.0,
            decided: decided.0,
            task: task.0,
            attachment,
            member: colleague.0,
            other_org: org(&t.db, "D-120101").await.0,
            holder_org: org(&t.db, "D-120116").await.0,
            holder_user: holder.0,
            spare_reviewer: spare_reviewer.0,
            profile_doc,
            definition,
        },
    }
}

async fn org_membership_off(t: &TestDb, who: UserId) {
    entity::org_membership::Entity::delete_many()
        .filter(entity::org_membership::Column::UserId.eq(who.0))
        .exec(&t.db)
        .await
        .expect("drop membership");
}

/// An application of company A taken through every step to approval.
async fn decided_application(
    t: &TestDb,
    company: zhigang::ids::CompanyId,
    applicant: UserId,
) -> ApplicationId {
    let app = submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    loop {
        let live = live_tasks(&t.db, app).await;
        if live.is_empty() {
            break;
        }
        for (code, _) in live {
            let who = reviewer(&t.db, &code).await;
            approve(&t.db, app, &code, who).await;
        }
    }
    app
}

/// One row of the matrix: a method and path, and the expected outcome per role.
pub struct Row {
    pub method: &'static str,
    pub path: String,
    pub fields: Vec<(&'static str, String)>,
    pub expect: [Expect; 7],
}

fn get(path: String, expect: [Expect; 7]) -> Row {
    Row {
        method: "GET",
        path,
        fields: vec![],
        expect,
    }
}

fn post(path: String, fields: &[(&'static str, &str)], expect: [Expect; 7]) -> Row {
    Row {
        method: "POST",
        path,
        fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        expect,
    }
}

use Expect::{
    Allowed as A, BadRequest as B, Elsewhere as R, Forbidden as F, Login as L, NotFound as N,
    Ok as O, WrongCredentials as W,
};

/// The matrix: columns are [`ROLES`] in order —
/// anonymous, applicant A, applicant B, holder reviewer, other reviewer, org admin, system admin.
pub fn rows(o: &Objects) -> Vec<Row> {
    let app = o.app;
    let draft = o.draft;
    let decided = o.decided;
    let task = o.task;
    let att = o.attachment;
    vec![
        // Public pages.
        get("/".into(), [O, O, O, O, O, O, O]),
        // Signed in, the login and registration pages lead to the account.
        get("/login".into(), [O, R, R, R, R, R, R]),
        get("/register".into(), [O, R, R, R, R, R, R]),
        // The account, for everyone logged in.
        get("/account".into(), [L, O, O, O, O, O, O]),
        get("/account/notifications".into(), [L, O, O, O, O, O, O]),
        // The applicant's side: a company's own applications only.
        get("/applications".into(), [L, O, O, N, N, N, N]),
        get("/applications/new".into(), [L, O, O, O, O, O, O]),
        get(format!("/applications/{app}"), [L, O, N, O, N, O, O]),
        get(
            format!("/applications/{app}/attachments/{att}"),
            [L, O, N, O, N, O, O],
        ),
        get(format!("/applications/{draft}"), [L, O, N, N, N, N, O]),
        get(
            format!("/applications/{draft}/sections/company"),
            [L, O, N, N, N, N, N],
        ),
        get(
            format!("/applications/{draft}/check"),
            [L, O, N, N, N, N, N],
        ),
        // The decision letter: the company, the organizations that handled it, admins.
        get(
            format!("/applications/{decided}/decision"),
            [L, O, N, O, N, O, O],
        ),
        get(
            format!("/applications/{app}/withdraw"),
            [L, O, N, N, N, N, N],
        ),
        get("/company/members".into(), [L, O, O, N, N, N, N]),
        get("/company/documents".into(), [L, O, O, N, N, N, N]),
        // The workbench: the holding organization's reviewers (and admins) only.
        get("/inbox".into(), [L, N, N, O, O, O, N]),
        get(format!("/tasks/{task}"), [L, N, N, O, N, O, O]),
        get(format!("/tasks/{}", Uuid::now_v7()), [L, N, N, N, N, N, N]),
        // Reports: reviewers see their organization, system admins the city.
        get("/reports".into(), [L, N, N, O, O, O, O]),
        get(
            format!("/reports?org={}", o.other_org),
            [L, N, N, N, O, N, O],
        ),
        get(
            format!("/reports?org={}", o.holder_org),
            [L, N, N, O, N, O, O],
        ),
        // Reports' exports follow the dashboard; the monitoring catalogue is the city's.
        get("/reports/status.csv".into(), [L, N, N, O, O, O, O]),
        get(
            format!("/reports/overdue.csv?org={}", o.other_org),
            [L, N, N, N, O, N, O],
        ),
        get("/reports/catalogue".into(), [L, N, N, N, N, N, O]),
        get("/reports/catalogue.csv".into(), [L, N, N, N, N, N, O]),
        // System administration: system administrators only; nobody else learns it exists.
        get("/admin".into(), [L, N, N, N, N, N, O]),
        get("/admin/users".into(), [L, N, N, N, N, N, O]),
        get(
            format!("/admin/users/{}", o.holder_user),
            [L, N, N, N, N, N, O],
        ),
        get("/admin/orgs".into(), [L, N, N, N, N, N, O]),
        get(
            format!("/admin/orgs/{}", o.holder_org),
            [L, N, N, N, N, N, O],
        ),
        get("/admin/workflows".into(), [L, N, N, N, N, N, O]),
        get("/admin/calendar".into(), [L, N, N, N, N, N, O]),
        get("/admin/outbox".into(), [L, N, N, N, N, N, O]),
        get("/admin/audit".into(), [L, N, N, N, N, N, O]),
        get("/admin/audit/verify".into(), [L, N, N, N, N, N, O]),
        get("/admin/stuck".into(), [L, N, N, N, N, N, O]),
        post(
            format!("/admin/outbox/{}/retry", Uuid::now_v7()),
            &[],
            [L, N, N, N, N, N, N],
        ),
        post(
            format!("/admin/users/{}/active", o.member),
            &[("value", "true")],
            [L, N, N, N, N, N, A],
        ),
        // Organization administration: an org admin, of their own organization only.
        get("/org-admin".into(), [L, N, N, N, N, R, N]),
        get(
            format!("/org-admin/{}", o.holder_org),
            [L, N, N, N, N, O, N],
        ),
        get(format!("/org-admin/{}", o.other_org), [L, N, N, N, N, N, N]),
        post(
            format!(
                "/org-admin/{}/reviewers/{}/reactivate",
                o.holder_org, o.holder_user
            ),
            &[],
            [L, N, N, N, N, A, N],
        ),
        post(
            format!(
                "/org-admin/{}/reviewers/{}/reactivate",
                o.other_org, o.holder_user
            ),
            &[],
            [L, N, N, N, N, N, N],
        ),
        // Health, assets and the account pages reached from email links.
        get("/healthz".into(), [O, O, O, O, O, O, O]),
        get("/readyz".into(), [O, O, O, O, O, O, O]),
        get("/static/app.css".into(), [O, O, O, O, O, O, O]),
        get("/password/forgot".into(), [O, O, O, O, O, O, O]),
        get("/password/reset?token=nope".into(), [O, O, O, O, O, O, O]),
        get("/invitation?token=nope".into(), [O, O, O, O, O, O, O]),
        get("/org-invitation?token=nope".into(), [O, O, O, O, O, O, O]),
        get("/account/password".into(), [L, O, O, O, O, O, O]),
        get(
            format!("/applications/{app}/submitted"),
            [L, O, N, N, N, N, N],
        ),
        get(
            format!("/company/documents/file/{}", o.profile_doc),
            [L, O, N, N, N, N, N],
        ),
        get(
            format!("/admin/workflows/{}", o.definition),
            [L, N, N, N, N, N, O],
        ),
        get(
            format!("/admin/workflows/{}/dry-run", o.definition),
            [L, N, N, N, N, N, O],
        ),
        get(
            format!(
                "/org-admin/{}/reassign?from={}",
                o.holder_org, o.holder_user
            ),
            [L, N, N, N, N, O, N],
        ),
        get(
            format!("/org-admin/{}/reassign?from={}", o.other_org, o.holder_user),
            [L, N, N, N, N, N, N],
        ),
        get("/verify-email?token=nope".into(), [B, B, B, B, B, B, B]),
        // Forms anyone may post (their own session, their own account).
        post(
            "/login".into(),
            &[("email", "x@example.cn"), ("password", "wrong")],
            [W, W, W, W, W, W, W],
        ),
        post("/register".into(), &[], [A, A, A, A, A, A, A]),
        post(
            "/password/reset".into(),
            &[("token", "nope")],
            [A, A, A, A, A, A, A],
        ),
        post(
            "/invitation".into(),
            &[("token", "nope")],
            [A, A, A, A, A, A, A],
        ),
        post(
            "/org-invitation".into(),
            &[("token", "nope")],
            [A, A, A, A, A, A, A],
        ),
        post(
            "/locale".into(),
            &[("lang", "en"), ("next", "/")],
            [R, R, R, R, R, R, R],
        ),
        post(
            "/locale".into(),
            &[("lang", "zh-CN"), ("next", "/")],
            [R, R, R, R, R, R, R],
        ),
        post(
            "/password/forgot".into(),
            &[("email", "")],
            [A, A, A, A, A, A, A],
        ),
        post("/account/password".into(), &[], [L, A, A, A, A, A, A]),
        post("/account/notifications".into(), &[], [L, A, A, A, A, A, A]),
        // A company's own: new applications, documents, colleagues.
        post(
            "/applications/new".into(),
            &[("app_type", "yqyc")],
            [L, A, A, N, N, N, N],
        ),
        post(
            format!("/applications/{draft}/materials/business_licence/from-profile"),
            &[],
            [L, A, N, N, N, N, N],
        ),
        post(
            format!("/applications/{draft}/materials/business_licence"),
            &[("file", "@pdf")],
            [L, A, N, N, N, N, N],
        ),
        post(
            "/company/documents/business_licence".into(),
            &[("file", "@pdf")],
            [L, A, A, N, N, N, N],
        ),
        post(
            "/company/members/invite".into(),
            &[("name", ""), ("email", "")],
            [L, A, A, N, N, N, N],
        ),
        post(
            format!("/company/members/{}/reactivate", o.member),
            &[],
            [L, A, N, N, N, N, N],
        ),
        // Every other task action: the holding organization decides; a system admin may only
        // reassign (转办).
        post(format!("/tasks/{task}/release"), &[], [L, N, N, A, N, A, F]),
        post(
            format!("/tasks/{task}/return"),
            &[("item", "section:company"), ("comment", "")],
            [L, N, N, A, N, A, F],
        ),
        post(
            format!("/tasks/{task}/reject"),
            &[("reason", "")],
            [L, N, N, A, N, A, F],
        ),
        post(
            format!("/tasks/{task}/transfer"),
            &[("to", "not-a-user")],
            [L, N, N, A, N, A, A],
        ),
        post(
            format!("/tasks/{task}/delegate"),
            &[("to", "not-a-user")],
            [L, N, N, A, N, A, A],
        ),
        // 催办 is for others: the holding organization's own reviewer may not remind itself.
        post(format!("/tasks/{task}/remind"), &[], [L, N, N, F, N, A, A]),
        post(
            format!("/tasks/{task}/add_signer"),
            &[("org", "x"), ("reason", "")],
            [L, N, N, A, N, A, A],
        ),
        post(
            format!("/tasks/{task}/remove_signer"),
            &[("task", "x"), ("reason", "")],
            [L, N, N, A, N, A, A],
        ),
        // System administration's forms (sent empty or harmless: refused on their merits).
        post(
            "/admin/users/invite".into(),
            &[("email", "")],
            [L, N, N, N, N, N, A],
        ),
        post(
            format!("/admin/users/{}/roles", o.member),
            &[("org", ""), ("role", "")],
            [L, N, N, N, N, N, A],
        ),
        // The colleague holds no role there: nothing to revoke.
        post(
            format!("/admin/users/{}/roles/{}/revoke", o.member, o.holder_org),
            &[],
            [L, N, N, N, N, N, N],
        ),
        post(
            format!("/admin/users/{}/system-admin", o.member),
            &[("value", "true")],
            [L, N, N, N, N, N, A],
        ),
        post("/admin/orgs".into(), &[("code", "")], [L, N, N, N, N, N, A]),
        post(
            format!("/admin/orgs/{}", o.holder_org),
            &[("name_zh", "")],
            [L, N, N, N, N, N, A],
        ),
        post(
            "/admin/workflows".into(),
            &[("source", "")],
            [L, N, N, N, N, N, A],
        ),
        post(
            "/admin/workflows/file".into(),
            &[("file", "@toml")],
            [L, N, N, N, N, N, A],
        ),
        post(
            format!("/admin/workflows/{}/activate", Uuid::now_v7()),
            &[],
            [L, N, N, N, N, N, N],
        ),
        post(
            "/admin/calendar".into(),
            &[("date", "")],
            [L, N, N, N, N, N, A],
        ),
        post(
            format!("/admin/stuck/{task}/reassign"),
            &[("email", "")],
            [L, N, N, N, N, N, A],
        ),
        // Organization administration's forms.
        post(
            format!("/org-admin/{}/invite", o.holder_org),
            &[("email", "")],
            [L, N, N, N, N, A, N],
        ),
        post(
            format!("/org-admin/{}/invite", o.other_org),
            &[("email", "")],
            [L, N, N, N, N, N, N],
        ),
        post(
            format!("/org-admin/{}/reassign", o.holder_org),
            &[("from", "unclaimed"), ("to", "")],
            [L, N, N, N, N, A, N],
        ),
        post(
            format!(
                "/org-admin/{}/reviewers/{}/deactivate",
                o.holder_org, o.spare_reviewer
            ),
            &[],
            [L, N, N, N, N, A, N],
        ),
        // Actions on another company's objects and on tasks.
        post(
            format!("/applications/{draft}/sections/company"),
            &[("version", "1"), ("ai_field", "robots")],
            [L, A, N, N, N, N, N],
        ),
        post(
            format!("/applications/{draft}/submit"),
            &[],
            [L, A, N, N, N, N, N],
        ),
        post(
            format!("/applications/{decided}/rating"),
            &[("score", "5"), ("comment", "好")],
            [L, A, N, N, N, N, N],
        ),
        post(
            format!("/company/members/{}/deactivate", o.member),
            &[],
            [L, A, N, N, N, N, N],
        ),
        post(
            format!("/tasks/{task}/comment"),
            &[("text", "看过"), ("visibility", "internal")],
            [L, N, N, A, N, A, A],
        ),
        post(format!("/tasks/{task}/claim"), &[], [L, N, N, A, N, A, F]),
        post(
            format!("/tasks/{task}/approve"),
            &[("opinion", "同意")],
            [L, N, N, A, N, A, F],
        ),
        post(
            format!("/applications/{app}/withdraw"),
            &[("reason", "不再需要")],
            [L, A, N, N, N, N, N],
        ),
        // Last: signing out ends each session.
        post("/logout".into(), &[], [R, R, R, R, R, R, R]),
    ]
}

async fn send(s: &TestApp, row: &Row) -> (StatusCode, String) {
    let url = format!("{}{}", s.base, row.path);
    let resp = if row.method == "GET" {
        s.get(&row.path).await
    } else {
        // The CSRF token of the session, from a page every session can open.
        let token = csrf_of(&s.get("/").await.text().await.expect("body"));
        let file = row.fields.iter().find(|(_, v)| v.starts_with('@'));
        if let Some((name, kind)) = file {
            // A file upload: multipart, the token in the query string.
            let (bytes, filename): (&[u8], &str) = if kind == "@pdf" {
                (PDF, "doc.pdf")
            } else {
                (b"key = \"broken\"", "flow.toml")
            };
            let form = reqwest::multipart::Form::new().part(
                *name,
                reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(filename),
            );
            s.client
                .post(format!("{url}?_csrf={token}"))
                .multipart(form)
                .send()
                .await
                .expect("POST")
        } else {
            let mut form: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
            form.extend(row.fields.iter().map(|(k, v)| (*k, v.as_str())));
            s.client.post(url).form(&form).send().await.expect("POST")
        }
    };
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status(), location)
}

async fn history_count(t: &TestDb) -> u64 {
    history_event::Entity::find()
        .count(&t.db)
        .await
        .expect("count")
}

/// Runs every cell; collects every mismatch and fails once with all of them.
pub async fn check(t: &TestDb, w: &World, rows: Vec<Row>) {
    let mut failures = Vec::new();
    for row in &rows {
        // Refusals first (they must change nothing), then the allowed cells.
        let mut order: Vec<usize> = (0..ROLES.len()).collect();
        order.sort_by_key(|i| row.expect[*i] == Expect::Allowed);
        for i in order {
            let role = ROLES[i];
            let expect = row.expect[i];
            let before = history_count(t).await;
            let (status, location) = send(&w.sessions[&role], row).await;
            if !matches(expect, status, &location) {
                failures.push(format!(
                    "{} {} as {role:?}: expected {expect}, got {status} {location}",
                    row.method, row.path
                ));
            }
            if row.method == "POST" && expect != Expect::Allowed && history_count(t).await != before
            {
                failures.push(format!(
                    "{} {} as {role:?}: refused but the history changed",
                    row.method, row.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the access matrix's cells are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn every_route_for_every_role(t: &TestDb) {
    let w = world(t).await;
    let rows = rows(&w.objects);
    check(t, &w, rows).await;
}
db_test!(matrix, every_route_for_every_role);

/// The store refuses whoever may not act, whatever the web lets through: an applicant of
/// company B and a reviewer of another organization act on company A's application.
async fn the_engine_refuses_outsiders_too(t: &TestDb) {
    let (company_a, applicant_a) = company(&t.db).await;
    let (_b, applicant_b) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company_a, applicant_a, &["talent"]).await;
    let task = task_of(&t.db, app, "D-120116").await;
    let other = reviewer(&t.db, "D-120101").await;
    for who in [applicant_b, other] {
        for action in [
            Action::Claim { task },
            Action::Approve {
                task,
                opinion: "同意".into(),
            },
            Action::Withdraw { reason: None },
        ] {
            let r = store::execute(&t.db, app, who, action.clone()).await;
            assert!(
                matches!(r, Err(store::StoreError::Refused(_))),
                "{action:?} by an outsider: {r:?}"
            );
        }
    }
}
db_test!(engine_outsiders, the_engine_refuses_outsiders_too);
