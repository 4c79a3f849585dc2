//! Test support: a fresh, migrated and seeded database per test — a SQLite file in a
//! temporary directory, or a uniquely named PostgreSQL database dropped afterwards — and
//! builders for companies, reviewers and applications.

use std::sync::Once;

use chrono::Utc;
use entity::enums::{CompanyRole, OrgRole};
use entity::{attachment, company, company_member, org_membership, organization};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;
use zhigang::ids::{ApplicationId, CompanyId, OrgId, UserId};
use zhigang::store;
use zhigang::workflow::engine::Action;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The PostgreSQL server used by the tests.
pub fn pg_admin_url() -> String {
    std::env::var("ZHIGANG_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Whether a missing PostgreSQL must fail the run (in CI nothing may be skipped).
pub fn pg_required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
        || std::env::var("ZHIGANG_TEST_REQUIRE_PG").is_ok_and(|v| v == "1")
}

static SKIP_NOTICE: Once = Once::new();

/// A database for one test.
pub struct TestDb {
    /// The pool.
    pub db: DatabaseConnection,
    /// Its URL (for starting the binary against it).
    pub url: String,
    /// The backend.
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh database, migrated with the real migrations and seeded; `None` when the
    /// backend is PostgreSQL and no server is reachable outside CI (the skip is printed).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                let db = zhigang::db::connect(&url, 10).await.expect("open sqlite");
                prepare(&db).await;
                Some(Self {
                    db,
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url();
                let admin = match zhigang::db::connect(&admin_url, 1).await {
                    Ok(a) => a,
                    Err(e) => {
                        if pg_required() {
                            panic!(
                                "PostgreSQL at {admin_url} is required in CI but unreachable: {e}"
                            );
                        }
                        SKIP_NOTICE.call_once(|| {
                            // Straight to stderr: the test harness hides eprintln! output
                            // of passing tests, and a skip must never be silent.
                            use std::io::Write;
                            let _ = writeln!(
                                std::io::stderr(),
                                "SKIPPED: PostgreSQL tests — no server at {admin_url} ({e}). \
                                 Start one or set ZHIGANG_TEST_PG_URL; CI never skips."
                            );
                        });
                        return None;
                    }
                };
                let name = format!("zhigang_test_{}", Uuid::now_v7().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                let db = zhigang::db::connect(&url, 60).await.expect("open postgres");
                prepare(&db).await;
                Some(Self {
                    db,
                    url,
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                })
            }
        }
    }
}

impl TestDb {
    /// A data directory (attachments, mail) private to this test.
    pub fn data_dir(&self) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("zhigang-test-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("data dir");
        dir
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async: use a private runtime on another thread.
            let admin_url = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(admin) = zhigang::db::connect(&admin_url, 1).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

async fn prepare(db: &DatabaseConnection) {
    zhigang::db::migrate(db).await.expect("migrate");
    zhigang::seed::all(db).await.expect("seed");
}

/// Runs a test body on SQLite and on PostgreSQL as two test cases.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = $crate::helpers::TestDb::new($crate::helpers::Backend::Sqlite)
                    .await
                    .expect("sqlite is always available");
                $body(&t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(t) =
                    $crate::helpers::TestDb::new($crate::helpers::Backend::Postgres).await
                {
                    $body(&t).await;
                }
            }
        }
    };
}

/// A fixed Argon2id hash: these users never log in, so the tests skip the hashing cost.
const NO_LOGIN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$invalidinvalidinvalidinvalidinvalidinvalid0";

/// Creates an active user.
pub async fn user(db: &DatabaseConnection, name: &str) -> UserId {
    let email = format!("{name}-{}@example.test", Uuid::now_v7().simple());
    UserId(
        zhigang::seed::create_user_row(db, &email, name, NO_LOGIN_HASH)
            .await
            .expect("create user"),
    )
}

/// The id of the organization with this code.
pub async fn org(db: &DatabaseConnection, code: &str) -> OrgId {
    OrgId(
        organization::Entity::find()
            .filter(organization::Column::Code.eq(code))
            .one(db)
            .await
            .expect("query organization")
            .unwrap_or_else(|| panic!("no organization {code}"))
            .id,
    )
}

/// Creates a user who reviews for the organization `code`.
pub async fn reviewer(db: &DatabaseConnection, code: &str) -> UserId {
    member_of(db, code, OrgRole::Reviewer).await
}

/// Creates a user with `role` in the organization `code`.
pub async fn member_of(db: &DatabaseConnection, code: &str, role: OrgRole) -> UserId {
    let u = user(db, &format!("{code}-{role:?}")).await;
    let o = org(db, code).await;
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(o.0),
        user_id: Set(u.0),
        role: Set(role),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .expect("membership");
    u
}

/// A company in 滨海新区 with one member (its admin).
pub async fn company(db: &DatabaseConnection) -> (CompanyId, UserId) {
    let district = org(db, "D-120116").await;
    let id = CompanyId::new();
    // A unique, valid USCC per company: random first 17 characters plus the check digit.
    let first17: String = format!("91120116MA{:07}", rand::random_range(0..10_000_000u32));
    let check = zhigang::uscc::check_char(&first17).expect("valid prefix");
    company::ActiveModel {
        id: Set(id.0),
        uscc: Set(format!("{first17}{check}")),
        name: Set("天津智能测试科技有限公司".into()),
        district_org_id: Set(district.0),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .expect("company");
    let u = user(db, "applicant").await;
    company_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(id.0),
        user_id: Set(u.0),
        role: Set(CompanyRole::Admin),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .expect("member");
    (id, u)
}

/// A complete 一企一策 form; `support` lists the support requested.
pub fn yqyc_form(support: &[&str]) -> Value {
    json!({
        "ai_field": "robots",
        "revenue": 120_000_000,
        "rd_spend": 18_000_000,
        "headcount": 320,
        "patents": 41,
        "support_requested": support,
        "amount_requested": 5_000_000,
        "plan_description": "扩大服务机器人产线,建设智能制造示范车间。",
    })
}

/// Records the required materials of a definition as attached to an application.
pub async fn attach_materials(
    db: &DatabaseConnection,
    app: ApplicationId,
    company: CompanyId,
    by: UserId,
    materials: &[&str],
) {
    for m in materials {
        attachment::ActiveModel {
            id: Set(Uuid::now_v7()),
            company_id: Set(company.0),
            application_id: Set(Some(app.0)),
            uploaded_by: Set(by.0),
            material: Set(Some((*m).to_string())),
            filename: Set(format!("{m}.pdf")),
            content_type: Set("application/pdf".into()),
            size: Set(1024),
            sha256: Set("0".repeat(64)),
            storage_key: Set(format!("test/{m}")),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await
        .expect("attachment");
    }
}

/// Creates and submits a 一企一策 application; returns its id.
pub async fn submitted_yqyc(
    db: &DatabaseConnection,
    company: CompanyId,
    applicant: UserId,
    support: &[&str],
) -> ApplicationId {
    let app = store::create_draft(db, company, applicant, "yqyc", yqyc_form(support))
        .await
        .expect("draft");
    attach_materials(
        db,
        app,
        company,
        applicant,
        &["business_licence", "financial_statements", "plan_document"],
    )
    .await;
    store::execute(db, app, applicant, Action::Submit)
        .await
        .expect("submit");
    app
}

/// The live (open or claimed) tasks of an application, as (org code, task id).
pub async fn live_tasks(
    db: &DatabaseConnection,
    app: ApplicationId,
) -> Vec<(String, zhigang::ids::TaskId)> {
    use entity::enums::TaskStatus;
    let orgs = store::load_orgs(db).await.expect("orgs");
    let mut out: Vec<_> = entity::task::Entity::find()
        .filter(entity::task::Column::ApplicationId.eq(app.0))
        .filter(entity::task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed]))
        .all(db)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| {
            let code = orgs
                .by_id(t.org_id)
                .map(|o| o.code.clone())
                .unwrap_or_default();
            (code, zhigang::ids::TaskId(t.id))
        })
        .collect();
    out.sort();
    out
}

/// The live task of the organization `code`.
pub async fn task_of(
    db: &DatabaseConnection,
    app: ApplicationId,
    code: &str,
) -> zhigang::ids::TaskId {
    live_tasks(db, app)
        .await
        .into_iter()
        .find(|(c, _)| c == code)
        .unwrap_or_else(|| panic!("no live task for {code}"))
        .1
}

/// Approves the live task of `code` as `who`.
pub async fn approve(db: &DatabaseConnection, app: ApplicationId, code: &str, who: UserId) {
    let task = task_of(db, app, code).await;
    store::execute(
        db,
        app,
        who,
        Action::Approve {
            task,
            opinion: format!("{code} 同意"),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("approve as {code}: {e}"));
}

/// A port that was free a moment ago (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}
