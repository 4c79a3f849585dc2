//! The operations of `/api/v1`. Each one authenticates the token, then calls the same
//! store functions as the web pages; refusals become problems (see [`super::problem`]).

// The error is the response itself (a problem document); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use entity::enums::TaskStatus;
use entity::{application, attachment, company_member, history_event, task, user};
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi, SecurityScheme, Tags,
    auth::Bearer,
    param::{Header, Path, Query},
    payload::Json,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::problem::{ApiError, ApiResult, FieldProblem, Text, store_error};
use super::tokens;
use crate::ids::{ApplicationId, CompanyId, TaskId, UserId};
use crate::organizations::OrgDirectory;
use crate::store::{self, Target, inbox};
use crate::web::State;
use crate::workflow::definition::{Definition, FieldType};
use crate::workflow::engine::{Action, ItemKind, ReturnItem};

/// Groups of operations.
#[derive(Tags)]
enum Tag {
    /// The public directory and application types.
    Reference,
    /// A company's applications.
    Applications,
    /// A reviewer's tasks.
    Tasks,
}

/// A personal API token, created at `/account/tokens` (or by `zhigang admin create-token`).
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "zg_<64 hex digits>",
    checker = "check_token"
)]
pub struct Token(user::Model);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<user::Model> {
    let state = req
        .data::<State>()
        .ok_or_else(|| ApiError::internal("the API has no state"))?;
    tokens::authenticate(&state.db, &bearer.token)
        .await
        .map_err(|e| poem::Error::from(internal(e)))?
        .ok_or_else(|| ApiError::unauthorized().into())
}

fn internal(e: impl std::fmt::Display + 'static) -> ApiError {
    // An unreachable database is not the client's or the portal's fault: 503 with
    // Retry-After, as the web pages answer; the portal recovers by itself.
    if crate::web::unavailable(&e) {
        let _ = crate::web::internal(e);
        return ApiError::Unavailable(
            Json(super::problem::Problem {
                ty: format!("{}unavailable", super::problem::TYPE_BASE),
                title: "Service unavailable".into(),
                status: 503,
                detail: Some("The database cannot be reached just now; try again shortly.".into()),
                errors: None,
            }),
            Some(30),
        );
    }
    // Logged with a request id; the client sees a bare 500.
    let _ = crate::web::internal(e);
    ApiError::Internal(Json(super::problem::Problem {
        ty: format!("{}internal", super::problem::TYPE_BASE),
        title: "Internal error".into(),
        status: 500,
        detail: None,
        errors: None,
    }))
}

fn from_store(e: store::StoreError) -> ApiError {
    store_error(e).unwrap_or_else(internal)
}

/// An opaque cursor: the hex of the last row's key.
fn encode_cursor(key: &str) -> String {
    hex::encode(key)
}

fn decode_cursor(c: &str) -> Result<String, ApiError> {
    hex::decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::invalid("cursor", "not a cursor from a previous page"))
}

// ---------------------------------------------------------------------------------------
// Reference data

/// An organization of the directory.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Organization {
    id: Uuid,
    /// Its code (`D-120116`, `MIIT`, …).
    code: String,
    name_zh: String,
    name_en: String,
    /// `district`, `bureau` and so on.
    kind: String,
}

/// A page of organizations.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct OrganizationPage {
    items: Vec<Organization>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// A section of a form.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SectionInfo {
    id: String,
    name_zh: String,
    name_en: String,
}

/// A material (attachment) of an application type.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct MaterialInfo {
    id: String,
    name_zh: String,
    name_en: String,
    /// Whether the application can be submitted without it.
    required: bool,
}

/// An application type with its form.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ApplicationType {
    /// The key (`yqyc`, `ip_fast_track`, `platform_access`).
    key: String,
    name_zh: String,
    name_en: String,
    summary_zh: String,
    summary_en: String,
    /// The active definition's version.
    version: i32,
    sections: Vec<SectionInfo>,
    /// A JSON Schema (draft 2020-12) of the form data at submission.
    form_schema: Value,
    materials: Vec<MaterialInfo>,
}

/// The application types.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ApplicationTypeList {
    items: Vec<ApplicationType>,
}

/// The JSON Schema (draft 2020-12) of a definition's form.
pub fn form_schema(def: &Definition, orgs: &OrgDirectory) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in &def.fields {
        let mut s = match f.field_type {
            FieldType::Text => {
                serde_json::json!({
                    "type": "string", "minLength": 1, "maxLength": crate::forms::MAX_TEXT,
                    "pattern": super::problem::TEXT_PATTERN,
                })
            }
            FieldType::LongText => {
                serde_json::json!({
                    "type": "string", "minLength": 1, "maxLength": crate::forms::MAX_LONG_TEXT,
                    "pattern": super::problem::TEXT_PATTERN,
                })
            }
            FieldType::Number => {
                serde_json::json!({ "type": "integer", "minimum": 0, "maximum": crate::forms::MAX_NUMBER })
            }
            // A required yes/no is a commitment: it must be given as yes.
            FieldType::Boolean if f.required => {
                serde_json::json!({ "type": "boolean", "const": true })
            }
            FieldType::Boolean => serde_json::json!({ "type": "boolean" }),
            FieldType::Date => serde_json::json!({ "type": "string", "format": "date" }),
            FieldType::Choice => serde_json::json!({ "type": "string", "enum": f.options }),
            FieldType::MultiChoice => serde_json::json!({
                "type": "array", "items": { "type": "string", "enum": f.options }, "uniqueItems": true
            }),
            FieldType::Organization => {
                let codes: Vec<&str> = orgs
                    .iter()
                    .filter(|o| Some(o.kind) == f.organization_kind)
                    .map(|o| o.code.as_str())
                    .collect();
                serde_json::json!({ "type": "string", "enum": codes })
            }
        };
        if let Value::Object(m) = &mut s {
            m.insert("title".into(), Value::String(f.label.zh.clone()));
            m.insert(
                "description".into(),
                Value::String(format!("{} (section {})", f.label.en, f.section)),
            );
        }
        if f.required {
            required.push(Value::String(f.name.clone()));
        }
        props.insert(f.name.clone(), s);
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": def.name.zh,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// Checks and normalizes form values against the definition (the API's equivalent of the
/// web's form parsing): every key a field, every value of its field's type.
fn check_values(
    def: &Definition,
    orgs: &OrgDirectory,
    values: &BTreeMap<String, Value>,
    prefix: &str,
) -> Result<Map<String, Value>, Vec<FieldProblem>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (k, v) in values {
        let problem = |m: &str| FieldProblem {
            field: format!("{prefix}{k}"),
            message: m.into(),
        };
        let Some(f) = def.fields.iter().find(|f| &f.name == k) else {
            errors.push(problem("not a field of this form"));
            continue;
        };
        if v.is_null() {
            out.insert(k.clone(), Value::Null);
            continue;
        }
        let ok = match f.field_type {
            FieldType::Text | FieldType::LongText => {
                let max = if f.field_type == FieldType::Text {
                    crate::forms::MAX_TEXT
                } else {
                    crate::forms::MAX_LONG_TEXT
                };
                v.as_str().is_some_and(|s| {
                    !s.trim().is_empty()
                        && s.chars().count() <= max
                        && super::problem::is_clean_text(s)
                })
            }
            FieldType::Number => v
                .as_i64()
                .is_some_and(|n| (0..=crate::forms::MAX_NUMBER).contains(&n)),
            FieldType::Boolean => v.is_boolean(),
            FieldType::Date => v
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            FieldType::Choice => v.as_str().is_some_and(|s| f.options.iter().any(|o| o == s)),
            FieldType::MultiChoice => v.as_array().is_some_and(|a| {
                let mut seen = BTreeSet::new();
                a.iter().all(|x| {
                    x.as_str()
                        .is_some_and(|s| f.options.iter().any(|o| o == s) && seen.insert(s))
                })
            }),
            FieldType::Organization => v.as_str().is_some_and(|s| {
                orgs.by_code(s)
                    .is_some_and(|o| Some(o.kind) == f.organization_kind)
            }),
        };
        if ok {
            out.insert(k.clone(), v.clone());
        } else {
            errors.push(problem(
                "not a valid value for this field (see form_schema)",
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------
// Applications

/// An application's status.
#[derive(Enum)]
#[oai(rename_all = "snake_case")]
enum AppStatus {
    Draft,
    Submitted,
    InReview,
    Returned,
    Approved,
    Rejected,
    Withdrawn,
}

fn app_status(s: entity::enums::ApplicationStatus) -> AppStatus {
    use entity::enums::ApplicationStatus as S;
    match s {
        S::Draft => AppStatus::Draft,
        S::Submitted => AppStatus::Submitted,
        S::InReview => AppStatus::InReview,
        S::Returned => AppStatus::Returned,
        S::Approved => AppStatus::Approved,
        S::Rejected => AppStatus::Rejected,
        S::Withdrawn => AppStatus::Withdrawn,
    }
}

/// An uploaded document of an application.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AttachmentInfo {
    id: Uuid,
    material: Option<String>,
    filename: String,
    content_type: String,
    size: i64,
    created_at: DateTime<Utc>,
}

/// An item the reviewers asked to fix.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ReturnItemInfo {
    /// `section` or `material`.
    kind: String,
    id: String,
    note: String,
}

/// An application.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Application {
    id: Uuid,
    /// The application type's key.
    #[oai(rename = "type")]
    app_type: String,
    /// The reference number, allocated at first submission.
    reference: Option<String>,
    company_id: Uuid,
    status: AppStatus,
    /// The current step of the workflow.
    current_step: Option<String>,
    /// Send this back in `PATCH` (optimistic concurrency).
    version: i64,
    /// The form data.
    form: Value,
    /// What to fix, when the application was returned.
    return_items: Vec<ReturnItemInfo>,
    /// The current document of each material.
    attachments: Vec<AttachmentInfo>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    decided_at: Option<DateTime<Utc>>,
}

/// A page of applications.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ApplicationPage {
    items: Vec<Application>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// A new draft.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct NewApplication {
    /// The application type's key (see `GET /application-types`).
    #[oai(rename = "type", validator(min_length = 1, max_length = 64))]
    app_type: Text,
    /// The company, when the caller belongs to several (default: their company).
    company_id: Option<Uuid>,
    /// Initial form data (any fields, checked against the type's `form_schema`).
    form: Option<BTreeMap<String, Value>>,
}

/// Changes to one section of the form.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct FormChange {
    /// The application's `version` as last read.
    #[oai(validator(minimum(value = "0")))]
    version: i64,
    /// Field name to new value (`null` clears it); all fields of one section.
    values: BTreeMap<String, Value>,
}

/// A note sent with a resubmission.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ResubmitBody {
    #[oai(validator(max_length = 2000))]
    note: Option<Text>,
}

/// The reason of a withdrawal.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct WithdrawBody {
    #[oai(validator(max_length = 2000))]
    reason: Option<Text>,
}

/// An event of an application's history.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HistoryEvent {
    id: Uuid,
    /// Position in the history, from 1.
    seq: i32,
    kind: String,
    actor_user_id: Option<Uuid>,
    actor_org_id: Option<Uuid>,
    /// Visible to reviewers only.
    internal: bool,
    /// The event's details.
    payload: Value,
    created_at: DateTime<Utc>,
}

/// An application's history, oldest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HistoryList {
    items: Vec<HistoryEvent>,
}

#[derive(ApiResponse)]
enum CreatedApplication {
    /// The draft was created.
    #[oai(status = 201)]
    Created(Json<Application>, #[oai(header = "Location")] String),
}

async fn application_view(
    db: &sea_orm::DatabaseConnection,
    row: application::Model,
) -> Result<Application, ApiError> {
    let attachments = store::current_attachments(db, row.id)
        .await
        .map_err(from_store)?;
    Ok(stored_view(row, attachments))
}

/// The API's view of an application with the current document of each material.
fn stored_view(
    row: application::Model,
    attachments: std::collections::BTreeMap<String, attachment::Model>,
) -> Application {
    let attachments = attachments
        .into_values()
        .map(|a: attachment::Model| AttachmentInfo {
            id: a.id,
            material: a.material,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            created_at: a.created_at,
        })
        .collect();
    let return_items: Vec<ReturnItem> = row
        .return_items
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    Application {
        id: row.id,
        app_type: row.app_type,
        reference: row.reference,
        company_id: row.company_id,
        status: app_status(row.status),
        current_step: row.current_step,
        version: row.version,
        form: row.form_data,
        return_items: return_items
            .into_iter()
            .map(|i| ReturnItemInfo {
                kind: match i.kind {
                    ItemKind::Section => "section".into(),
                    ItemKind::Material => "material".into(),
                },
                id: i.id,
                note: i.note,
            })
            .collect(),
        attachments,
        created_at: row.created_at,
        updated_at: row.updated_at,
        submitted_at: row.submitted_at,
        decided_at: row.decided_at,
    }
}

/// The application if the user may see it (the web's rule); otherwise 404.
async fn visible_application(
    db: &sea_orm::DatabaseConnection,
    id: Uuid,
    user: Uuid,
) -> Result<application::Model, ApiError> {
    let row = application::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(internal)?
        .ok_or_else(ApiError::not_found)?;
    if !store::can_view(db, &row, UserId(user))
        .await
        .map_err(from_store)?
    {
        return Err(ApiError::not_found());
    }
    Ok(row)
}

async fn companies_of(db: &sea_orm::DatabaseConnection, user: Uuid) -> Result<Vec<Uuid>, ApiError> {
    Ok(company_member::Entity::find()
        .filter(company_member::Column::UserId.eq(user))
        .filter(company_member::Column::Active.eq(true))
        .all(db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| m.company_id)
        .collect())
}

async fn act(state: &State, user: Uuid, id: Uuid, action: Action) -> ApiResult<Json<Application>> {
    visible_application(&state.db, id, user).await?;
    let target = Target::Application(ApplicationId(id));
    let done = store::execute_on(&state.db, target, UserId(user), action)
        .await
        .map_err(from_store)?;
    Ok(Json(stored_view(done.app, done.attachments)))
}

// ---------------------------------------------------------------------------------------
// Tasks

/// A task's status.
#[derive(Enum)]
#[oai(rename_all = "snake_case")]
enum TaskState {
    Open,
    Claimed,
    Approved,
    Returned,
    Rejected,
    Cancelled,
    Removed,
}

fn task_status(s: TaskStatus) -> TaskState {
    match s {
        TaskStatus::Open => TaskState::Open,
        TaskStatus::Claimed => TaskState::Claimed,
        TaskStatus::Approved => TaskState::Approved,
        TaskStatus::Returned => TaskState::Returned,
        TaskStatus::Rejected => TaskState::Rejected,
        TaskStatus::Cancelled => TaskState::Cancelled,
        TaskStatus::Removed => TaskState::Removed,
    }
}

/// A review task.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TaskInfo {
    id: Uuid,
    application_id: Uuid,
    application_type: String,
    application_reference: Option<String>,
    /// The workflow step.
    step: String,
    /// The organization whose task it is.
    org_id: Uuid,
    org_code: String,
    status: TaskState,
    claimant_id: Option<Uuid>,
    round: i32,
    /// The promised date (YYYY-MM-DD).
    due_date: chrono::NaiveDate,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// A page of tasks.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TaskPage {
    items: Vec<TaskInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// A task with its application.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TaskDetail {
    task: TaskInfo,
    application: Application,
}

/// Which list of the inbox.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum TaskTab {
    /// Open tasks of the caller's organizations and tasks they claimed.
    Todo,
    /// Tasks the caller acted on.
    Done,
    /// Every live task of the organizations the caller administers.
    Org,
}

/// Only open or only claimed tasks.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum TaskFilter {
    Open,
    Claimed,
}

/// What the reviewer decides.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum DecisionAction {
    Approve,
    Return,
    Reject,
}

/// `section` or `material`.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum ItemKindArg {
    Section,
    Material,
}

/// One thing to fix.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct DecisionItem {
    kind: ItemKindArg,
    #[oai(validator(min_length = 1, max_length = 64))]
    id: Text,
    #[oai(validator(max_length = 2000))]
    note: Option<Text>,
}

/// A decision on a claimed task.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct Decision {
    action: DecisionAction,
    /// The opinion (approve), what is needed (return) or the reason (reject).
    #[oai(validator(max_length = 5000))]
    comment: Text,
    /// For `return`: every section or material to fix.
    #[oai(validator(max_items = 100))]
    items: Option<Vec<DecisionItem>>,
}

async fn org_codes(
    db: &sea_orm::DatabaseConnection,
) -> Result<std::sync::Arc<OrgDirectory>, ApiError> {
    Ok(store::config::current(db)
        .await
        .map_err(from_store)?
        .orgs
        .clone())
}

fn task_view(t: task::Model, app: &application::Model, orgs: &OrgDirectory) -> TaskInfo {
    TaskInfo {
        id: t.id,
        application_id: t.application_id,
        application_type: app.app_type.clone(),
        application_reference: app.reference.clone(),
        step: t.step_id,
        org_id: t.org_id,
        org_code: orgs
            .by_id(t.org_id)
            .map(|o| o.code.clone())
            .unwrap_or_default(),
        status: task_status(t.status),
        claimant_id: t.claimant_id,
        round: t.round,
        due_date: t.due_date,
        opened_at: t.opened_at,
        closed_at: t.closed_at,
    }
}

/// The organizations where the user reviews, and those they administer (the same roles
/// the web reads).
async fn review_orgs(
    db: &sea_orm::DatabaseConnection,
    user: Uuid,
) -> Result<(BTreeSet<Uuid>, BTreeSet<Uuid>), ApiError> {
    let roles = crate::web::Roles::load(db, user).await.map_err(internal)?;
    Ok((roles.reviewer_of, roles.admin_of))
}

/// The task and its application, if the user reviews for the task's organization and may
/// see the application; otherwise 404.
async fn visible_task(
    db: &sea_orm::DatabaseConnection,
    id: Uuid,
    user: Uuid,
) -> Result<(task::Model, application::Model), ApiError> {
    let t = task::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(internal)?
        .ok_or_else(ApiError::not_found)?;
    let (orgs, _) = review_orgs(db, user).await?;
    if !orgs.contains(&t.org_id) {
        return Err(ApiError::not_found());
    }
    let app = visible_application(db, t.application_id, user).await?;
    Ok((t, app))
}

async fn task_act(
    state: &State,
    user: Uuid,
    id: Uuid,
    action: Action,
) -> ApiResult<Json<TaskDetail>> {
    // The same rule as `visible_task`: a task of another organization is not found.
    let done = store::execute_on(&state.db, Target::Task(TaskId(id)), UserId(user), action)
        .await
        .map_err(from_store)?;
    let t = done
        .tasks
        .iter()
        .find(|t| t.id == id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(TaskDetail {
        task: task_view(t, &done.app, &done.orgs),
        application: stored_view(done.app, done.attachments),
    }))
}

/// A document for one material of an application.
#[derive(poem_openapi::Multipart)]
#[oai(deny_unknown_fields)]
struct UploadForm {
    /// The material's id (see the type's `materials`).
    #[oai(validator(max_length = 64))]
    material: String,
    /// The document (PDF or image; at most the portal's size limit).
    file: poem_openapi::types::multipart::Upload,
}

#[derive(ApiResponse)]
enum CreatedAttachment {
    /// The document is attached (it replaces an earlier one of the same material).
    #[oai(status = 201)]
    Created(Json<AttachmentInfo>),
}

#[derive(ApiResponse)]
enum Download {
    /// The document, always as a download.
    #[oai(status = 200)]
    Ok(poem_openapi::payload::Attachment<Vec<u8>>),
}

// ---------------------------------------------------------------------------------------
// Company registration

/// A company's registration (the same rules as the web form).
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct NewCompany {
    /// The company's registered name.
    #[oai(validator(min_length = 1, max_length = 200))]
    company_name: Text,
    /// 统一社会信用代码 (18 characters).
    #[oai(validator(min_length = 18, max_length = 18))]
    uscc: Text,
    /// The district's organization code (e.g. `D-120116`).
    #[oai(validator(min_length = 1, max_length = 32))]
    district: Text,
    /// The contact person (the first user).
    #[oai(validator(min_length = 1, max_length = 100))]
    contact_name: Text,
    /// The contact's email: the login, verified by a link sent there.
    #[oai(validator(min_length = 3, max_length = 254))]
    email: Text,
    /// The password (12 to 128 characters, not guessable).
    #[oai(validator(min_length = 12, max_length = 128))]
    password: Text,
}

/// A registered company.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RegisteredCompany {
    /// The new user (the company's administrator).
    user_id: Uuid,
    /// A verification email was sent to this address.
    email: String,
}

#[derive(ApiResponse)]
enum CreatedCompany {
    /// Registered; the verification email is on its way. Create an API token on the web
    /// (`/account/tokens`) after logging in.
    #[oai(status = 201)]
    Created(Json<RegisteredCompany>),
}

fn field_problems(errors: Vec<crate::accounts::FieldError>) -> ApiError {
    ApiError::validation(
        errors
            .into_iter()
            .map(|e| FieldProblem {
                field: e.field,
                message: crate::web::i18n::t("en", &format!("error-{}", e.message)),
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------

/// The operations.
pub struct Api;

#[OpenApi(tag = "Tag::Reference")]
impl Api {
    /// The public directory of organizations.
    #[oai(path = "/organizations", method = "get", tag = "Tag::Reference")]
    async fn organizations(
        &self,
        state: Data<&State>,
        /// Where the page starts (`next_cursor` of the previous page).
        #[oai(validator(max_length = 200))]
        cursor: Query<Option<String>>,
        /// Rows per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<OrganizationPage>> {
        let after = match cursor.0.as_deref() {
            Some(c) => Some(decode_cursor(c)?),
            None => None,
        };
        let limit = limit.0.unwrap_or(50) as usize;
        let mut rows = entity::organization::Entity::find()
            .order_by_asc(entity::organization::Column::Code)
            .all(&state.db)
            .await
            .map_err(internal)?;
        rows.retain(|o| after.as_ref().is_none_or(|a| o.code.as_str() > a.as_str()));
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|o| encode_cursor(&o.code))
        } else {
            None
        };
        Ok(Json(OrganizationPage {
            items: rows
                .into_iter()
                .map(|o| Organization {
                    id: o.id,
                    code: o.code,
                    name_zh: o.name_zh,
                    name_en: o.name_en,
                    kind: serde_json::to_value(o.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                })
                .collect(),
            next_cursor,
        }))
    }

    /// Registers a company and its first user (public; the same rules and verification
    /// email as the web's registration form).
    #[oai(path = "/companies", method = "post", tag = "Tag::Reference")]
    async fn register_company(
        &self,
        state: Data<&State>,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        body: Json<NewCompany>,
    ) -> ApiResult<CreatedCompany> {
        let b = body.0;
        let form = crate::accounts::RegistrationForm {
            company_name: b.company_name.0,
            uscc: b.uscc.0,
            district: b.district.0,
            contact_name: b.contact_name.0,
            email: b.email.0,
            password: b.password.0.clone(),
            password_confirm: b.password.0,
        };
        let reg = form.validate(&state.db).await.map_err(field_problems)?;
        match crate::accounts::register(&state.db, &state.hasher, reg, "zh-CN", &state.base_url)
            .await
        {
            Ok(user) => Ok(CreatedCompany::Created(Json(RegisteredCompany {
                user_id: user.0,
                email: form.email.trim().to_lowercase(),
            }))),
            Err(crate::accounts::RegisterError::Invalid(errors)) => Err(field_problems(errors)),
            Err(crate::accounts::RegisterError::Other(e)) => Err(internal(e)),
        }
    }

    /// The application types, each with a JSON Schema of its form and its materials.
    #[oai(path = "/application-types", method = "get", tag = "Tag::Reference")]
    async fn application_types(&self, state: Data<&State>) -> ApiResult<Json<ApplicationTypeList>> {
        let orgs = org_codes(&state.db).await?;
        let rows = entity::workflow_definition::Entity::find()
            .filter(entity::workflow_definition::Column::Active.eq(true))
            .order_by_asc(entity::workflow_definition::Column::Key)
            .all(&state.db)
            .await
            .map_err(internal)?;
        let mut items = Vec::new();
        for row in rows {
            let def = store::definition_by_id(&state.db, row.id, &orgs)
                .await
                .map_err(from_store)?;
            items.push(ApplicationType {
                key: def.key.clone(),
                name_zh: def.name.zh.clone(),
                name_en: def.name.en.clone(),
                summary_zh: def.summary.zh.clone(),
                summary_en: def.summary.en.clone(),
                version: row.version,
                sections: def
                    .sections
                    .iter()
                    .map(|s| SectionInfo {
                        id: s.id.clone(),
                        name_zh: s.name.zh.clone(),
                        name_en: s.name.en.clone(),
                    })
                    .collect(),
                form_schema: form_schema(&def, &orgs),
                materials: def
                    .materials
                    .iter()
                    .map(|m| MaterialInfo {
                        id: m.id.clone(),
                        name_zh: m.name.zh.clone(),
                        name_en: m.name.en.clone(),
                        required: m.required,
                    })
                    .collect(),
            });
        }
        Ok(Json(ApplicationTypeList { items }))
    }

    /// The applications of the caller's companies, newest first.
    #[oai(path = "/applications", method = "get", tag = "Tag::Applications")]
    async fn list_applications(
        &self,
        state: Data<&State>,
        auth: Token,
        /// Where the page starts (`next_cursor` of the previous page).
        #[oai(validator(max_length = 200))]
        cursor: Query<Option<String>>,
        /// Rows per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<ApplicationPage>> {
        let companies = companies_of(&state.db, auth.0.id).await?;
        let limit = limit.0.unwrap_or(50);
        let mut q = application::Entity::find()
            .filter(application::Column::CompanyId.is_in(companies))
            .order_by_desc(application::Column::Id)
            .limit(limit + 1);
        if let Some(c) = cursor.0.as_deref() {
            let after = decode_cursor(c)?;
            let after = Uuid::parse_str(&after)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor from a previous page"))?;
            q = q.filter(application::Column::Id.lt(after));
        }
        let mut rows = q.all(&state.db).await.map_err(internal)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|a| encode_cursor(&a.id.to_string()))
        } else {
            None
        };
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(application_view(&state.db, r).await?);
        }
        Ok(Json(ApplicationPage { items, next_cursor }))
    }

    /// Creates a draft application for the caller's company.
    #[oai(path = "/applications", method = "post", tag = "Tag::Applications")]
    async fn create_application(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        body: Json<NewApplication>,
    ) -> ApiResult<CreatedApplication> {
        let user = auth.0.id;
        let companies = companies_of(&state.db, user).await?;
        let company = match body.0.company_id {
            Some(c) if companies.contains(&c) => c,
            Some(_) => return Err(ApiError::invalid("company_id", "not one of your companies")),
            None => match companies.as_slice() {
                [c] => *c,
                [] => {
                    return Err(ApiError::forbidden(
                        "only members of a company file applications",
                    ));
                }
                _ => {
                    return Err(ApiError::invalid(
                        "company_id",
                        "required: you belong to several companies",
                    ));
                }
            },
        };
        let orgs = org_codes(&state.db).await?;
        let key = body.0.app_type.as_str();
        let def = match store::active_definition(&state.db, key, &orgs).await {
            Ok((_, def)) => def,
            Err(store::StoreError::NotFound) => {
                return Err(ApiError::invalid("type", "no such application type"));
            }
            Err(e) => return Err(from_store(e)),
        };
        let form = match &body.0.form {
            Some(m) => check_values(&def, &orgs, m, "form.").map_err(ApiError::validation)?,
            None => Map::new(),
        };
        let form: Map<String, Value> = form.into_iter().filter(|(_, v)| !v.is_null()).collect();
        let id = store::create_draft(
            &state.db,
            CompanyId(company),
            UserId(user),
            key,
            Value::Object(form),
        )
        .await
        .map_err(from_store)?;
        let row = visible_application(&state.db, id.0, user).await?;
        Ok(CreatedApplication::Created(
            Json(application_view(&state.db, row).await?),
            format!("/api/v1/applications/{}", id.0),
        ))
    }

    /// One application (its company's members, and reviewers of its organizations).
    #[oai(path = "/applications/:id", method = "get", tag = "Tag::Applications")]
    async fn get_application(
        &self,
        state: Data<&State>,
        auth: Token,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Application>> {
        let row = visible_application(&state.db, id.0, auth.0.id).await?;
        Ok(Json(application_view(&state.db, row).await?))
    }

    /// Changes fields of one section: any section of a draft, or a section the reviewers
    /// flagged on a returned application.
    #[oai(
        path = "/applications/:id",
        method = "patch",
        tag = "Tag::Applications"
    )]
    async fn patch_application(
        &self,
        state: Data<&State>,
        auth: Token,
        id: Path<Uuid>,
        body: Json<FormChange>,
    ) -> ApiResult<Json<Application>> {
        let user = auth.0.id;
        let row = visible_application(&state.db, id.0, user).await?;
        let orgs = org_codes(&state.db).await?;
        let def = store::definition_by_id(&state.db, row.definition_id, &orgs)
            .await
            .map_err(from_store)?;
        let values =
            check_values(&def, &orgs, &body.0.values, "values.").map_err(ApiError::validation)?;
        let sections: BTreeSet<&str> = values
            .keys()
            .filter_map(|k| def.fields.iter().find(|f| &f.name == k))
            .map(|f| f.section.as_str())
            .collect();
        let section = match sections.into_iter().collect::<Vec<_>>().as_slice() {
            [s] => s.to_string(),
            [] => return Err(ApiError::invalid("values", "change at least one field")),
            _ => {
                return Err(ApiError::invalid(
                    "values",
                    "change the fields of one section per request",
                ));
            }
        };
        store::update_section(
            &state.db,
            ApplicationId(id.0),
            UserId(user),
            body.0.version,
            &section,
            values,
        )
        .await
        .map_err(from_store)?;
        let row = visible_application(&state.db, id.0, user).await?;
        Ok(Json(application_view(&state.db, row).await?))
    }

    /// Uploads the document of one material (multipart: `material`, `file`) to a draft,
    /// or to a material the reviewers flagged on a returned application.
    #[oai(
        path = "/applications/:id/attachments",
        method = "post",
        tag = "Tag::Applications"
    )]
    async fn upload(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
        form: UploadForm,
    ) -> ApiResult<CreatedAttachment> {
        use crate::attachments::UploadError;
        let user = auth.0.id;
        visible_application(&state.db, id.0, user).await?;
        let name = crate::attachments::safe_filename(form.file.file_name().unwrap_or("document"));
        let bytes = form.file.into_vec().await.map_err(internal)?;
        let stored = match state.attachments.put(bytes.into()).await {
            Ok(s) => s,
            Err(UploadError::TooLarge) => return Err(ApiError::invalid("file", "too large")),
            Err(UploadError::Empty | UploadError::TypeNotAccepted) => {
                return Err(ApiError::invalid("file", "empty, or not a PDF or image"));
            }
            Err(UploadError::Storage(e)) => return Err(internal(e)),
        };
        let att = store::attach(
            &state.db,
            ApplicationId(id.0),
            UserId(user),
            &form.material,
            &name,
            &stored,
        )
        .await
        .map_err(from_store)?;
        let a = attachment::Entity::find_by_id(att)
            .one(&state.db)
            .await
            .map_err(internal)?
            .ok_or_else(ApiError::not_found)?;
        Ok(CreatedAttachment::Created(Json(AttachmentInfo {
            id: a.id,
            material: a.material,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            created_at: a.created_at,
        })))
    }

    /// Downloads a document of an application.
    #[oai(
        path = "/applications/:id/attachments/:attachment_id",
        method = "get",
        tag = "Tag::Applications"
    )]
    async fn download(
        &self,
        state: Data<&State>,
        auth: Token,
        id: Path<Uuid>,
        attachment_id: Path<Uuid>,
    ) -> ApiResult<Download> {
        visible_application(&state.db, id.0, auth.0.id).await?;
        let att = attachment::Entity::find_by_id(attachment_id.0)
            .one(&state.db)
            .await
            .map_err(internal)?
            .filter(|a| a.application_id == Some(id.0))
            .ok_or_else(ApiError::not_found)?;
        let bytes = state
            .attachments
            .get(&att.storage_key)
            .await
            .map_err(internal)?;
        Ok(Download::Ok(
            poem_openapi::payload::Attachment::new(bytes.to_vec()).filename(att.filename),
        ))
    }

    /// Submits a draft.
    #[oai(
        path = "/applications/:id/submit",
        method = "post",
        tag = "Tag::Applications"
    )]
    async fn submit(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Application>> {
        act(&state, auth.0.id, id.0, Action::Submit).await
    }

    /// Resubmits a returned application after the fixes.
    #[oai(
        path = "/applications/:id/resubmit",
        method = "post",
        tag = "Tag::Applications"
    )]
    async fn resubmit(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
        body: Json<ResubmitBody>,
    ) -> ApiResult<Json<Application>> {
        let note = body.0.note.map(|t| t.0).filter(|s| !s.trim().is_empty());
        act(&state, auth.0.id, id.0, Action::Resubmit { note }).await
    }

    /// Withdraws an application before a decision.
    #[oai(
        path = "/applications/:id/withdraw",
        method = "post",
        tag = "Tag::Applications"
    )]
    async fn withdraw(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
        body: Json<WithdrawBody>,
    ) -> ApiResult<Json<Application>> {
        let reason = body.0.reason.map(|t| t.0).filter(|s| !s.trim().is_empty());
        act(&state, auth.0.id, id.0, Action::Withdraw { reason }).await
    }

    /// The application's history, oldest first (internal notes only for reviewers).
    #[oai(
        path = "/applications/:id/history",
        method = "get",
        tag = "Tag::Applications"
    )]
    async fn history(
        &self,
        state: Data<&State>,
        auth: Token,
        id: Path<Uuid>,
    ) -> ApiResult<Json<HistoryList>> {
        let user = auth.0.id;
        let row = visible_application(&state.db, id.0, user).await?;
        let applicant = companies_of(&state.db, user)
            .await?
            .contains(&row.company_id);
        let mut q = history_event::Entity::find()
            .filter(history_event::Column::ApplicationId.eq(row.id))
            .order_by_asc(history_event::Column::Seq);
        if applicant {
            q = q.filter(history_event::Column::Internal.eq(false));
        }
        let items = q
            .all(&state.db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|e| HistoryEvent {
                id: e.id,
                seq: e.seq,
                kind: e.kind,
                actor_user_id: e.actor_user_id,
                actor_org_id: e.actor_org_id,
                internal: e.internal,
                payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
                created_at: e.created_at,
            })
            .collect();
        Ok(Json(HistoryList { items }))
    }

    /// The caller's inbox, with the same tabs and filters as the web's.
    #[oai(path = "/tasks", method = "get", tag = "Tag::Tasks")]
    #[allow(clippy::too_many_arguments)]
    async fn tasks(
        &self,
        state: Data<&State>,
        auth: Token,
        /// Which list (default `todo`).
        tab: Query<Option<TaskTab>>,
        /// Only this application type.
        #[oai(
            name = "type",
            validator(max_length = 64, pattern = "^[A-Za-z0-9_-]*$")
        )]
        app_type: Query<Option<String>>,
        /// Only open or only claimed tasks.
        status: Query<Option<TaskFilter>>,
        /// Only tasks past their promised date.
        overdue: Query<Option<bool>>,
        /// Where the page starts (`next_cursor` of the previous page).
        #[oai(validator(max_length = 200))]
        cursor: Query<Option<String>>,
        /// Rows per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<TaskPage>> {
        let user = auth.0.id;
        let (orgs, admin_of) = review_orgs(&state.db, user).await?;
        let after =
            match cursor.0.as_deref() {
                Some(c) => Some(inbox::Cursor::decode(c).ok_or_else(|| {
                    ApiError::invalid("cursor", "not a cursor from a previous page")
                })?),
                None => None,
            };
        let q = inbox::Query {
            user,
            orgs,
            admin_of,
            tab: match tab.0.unwrap_or(TaskTab::Todo) {
                TaskTab::Todo => inbox::Tab::Todo,
                TaskTab::Done => inbox::Tab::Done,
                TaskTab::Org => inbox::Tab::Organization,
            },
            app_type: app_type.0.filter(|s| !s.is_empty()),
            step: None,
            status: status.0.map(|s| match s {
                TaskFilter::Open => TaskStatus::Open,
                TaskFilter::Claimed => TaskStatus::Claimed,
            }),
            overdue: overdue.0.unwrap_or(false),
            today: crate::calendar::local_date(store::now()),
            after,
            limit: limit.0.unwrap_or(50),
        };
        let page = inbox::list(&state.db, &q).await.map_err(internal)?;
        let dir = org_codes(&state.db).await?;
        Ok(Json(TaskPage {
            items: page
                .rows
                .into_iter()
                .filter_map(|r| r.task.map(|t| task_view(t, &r.app, &dir)))
                .collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }))
    }

    /// One task of the caller's organizations, with its application.
    #[oai(path = "/tasks/:id", method = "get", tag = "Tag::Tasks")]
    async fn get_task(
        &self,
        state: Data<&State>,
        auth: Token,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TaskDetail>> {
        let (t, app) = visible_task(&state.db, id.0, auth.0.id).await?;
        let orgs = org_codes(&state.db).await?;
        Ok(Json(TaskDetail {
            task: task_view(t, &app, &orgs),
            application: application_view(&state.db, app).await?,
        }))
    }

    /// Takes an open task.
    #[oai(path = "/tasks/:id/claim", method = "post", tag = "Tag::Tasks")]
    async fn claim(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TaskDetail>> {
        task_act(
            &state,
            auth.0.id,
            id.0,
            Action::Claim { task: TaskId(id.0) },
        )
        .await
    }

    /// Gives a claimed task back to the organization's queue.
    #[oai(path = "/tasks/:id/release", method = "post", tag = "Tag::Tasks")]
    async fn release(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TaskDetail>> {
        task_act(
            &state,
            auth.0.id,
            id.0,
            Action::Release { task: TaskId(id.0) },
        )
        .await
    }

    /// Decides a claimed task: approve, return for revision (with the items to fix) or
    /// reject.
    #[oai(path = "/tasks/:id/decision", method = "post", tag = "Tag::Tasks")]
    async fn decision(
        &self,
        state: Data<&State>,
        auth: Token,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        id: Path<Uuid>,
        body: Json<Decision>,
    ) -> ApiResult<Json<TaskDetail>> {
        let task = TaskId(id.0);
        let comment = body.0.comment.0.trim().to_string();
        let action = match body.0.action {
            DecisionAction::Approve => Action::Approve {
                task,
                opinion: comment,
            },
            DecisionAction::Reject => Action::Reject {
                task,
                reason: comment,
            },
            DecisionAction::Return => Action::Return {
                task,
                comment,
                items: body
                    .0
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| ReturnItem {
                        kind: match i.kind {
                            ItemKindArg::Section => ItemKind::Section,
                            ItemKindArg::Material => ItemKind::Material,
                        },
                        id: i.id.0,
                        note: i.note.map(|n| n.0).unwrap_or_default(),
                    })
                    .collect(),
            },
        };
        task_act(&state, auth.0.id, id.0, action).await
    }
}
