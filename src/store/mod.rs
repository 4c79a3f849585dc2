//! Persistence: loads what the engine needs, and applies its transitions in one database
//! transaction guarded by the application's `version`.

pub mod config;
pub mod history;
pub mod inbox;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use entity::enums::{ApplicationStatus, OrgRole, OutboxStatus};
use entity::{
    application, application_copy, attachment, calendar_day, company, company_member,
    history_event, org_membership, organization, outbox, submitted_version, system_admin, task,
    user, workflow_definition,
};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{Calendar, CalendarEntry, DayKind, local_date};
use crate::ids::{ApplicationId, CompanyId, OrgId, TaskId, UserId};
use crate::organizations::{OrgDirectory, OrgInfo};
use crate::workflow::definition::Definition;
use crate::workflow::engine::{
    self, Action, Actor, AppState, Audience, Context, Refusal, ReturnItem, TaskState, Transition,
};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object (or not visible to the caller).
    #[error("not found")]
    NotFound,
    /// The engine refused the action.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Someone else changed the application first, and retrying did not get through.
    #[error("the application was changed by someone else; reload and try again")]
    Conflict,
    /// Input the store cannot accept.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Result type of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// The current time, truncated to microseconds: the precision both databases keep, so a
/// value reads back exactly as written (the history hash depends on it).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Every organization.
pub async fn load_orgs<C: ConnectionTrait>(db: &C) -> StoreResult<OrgDirectory> {
    let rows = organization::Entity::find().all(db).await?;
    Ok(OrgDirectory::new(rows.into_iter().map(|o| OrgInfo {
        id: o.id,
        code: o.code,
        name_zh: o.name_zh,
        name_en: o.name_en,
        kind: o.kind,
        supervisor_code: o.supervisor_code,
    })))
}

/// The working-day calendar as stored.
pub async fn load_calendar<C: ConnectionTrait>(db: &C) -> StoreResult<Calendar> {
    let rows = calendar_day::Entity::find().all(db).await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = DayKind::parse(&r.kind).map_err(|e| StoreError::Other(e.into()))?;
        entries.push(CalendarEntry {
            date: r.day,
            kind,
            name: r.name,
        });
    }
    Ok(Calendar::new(entries))
}

/// A stored definition version, parsed.
pub async fn definition_by_id<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    orgs: &OrgDirectory,
) -> StoreResult<Definition> {
    let row = workflow_definition::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    parse_stored(&row, orgs)
}

fn parse_stored(row: &workflow_definition::Model, orgs: &OrgDirectory) -> StoreResult<Definition> {
    let file = format!("{} v{}", row.key, row.version);
    Definition::parse(&file, &row.source, orgs)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("stored definition is invalid: {e}")))
}

/// The active version of an application type.
pub async fn active_definition<C: ConnectionTrait>(
    db: &C,
    key: &str,
    orgs: &OrgDirectory,
) -> StoreResult<(workflow_definition::Model, Definition)> {
    let row = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(key))
        .filter(workflow_definition::Column::Active.eq(true))
        .order_by_desc(workflow_definition::Column::Version)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    let def = parse_stored(&row, orgs)?;
    Ok((row, def))
}

/// Creates a draft application of the active version of `app_type` for a company.
pub async fn create_draft(
    db: &DatabaseConnection,
    company: CompanyId,
    user: UserId,
    app_type: &str,
    form: Value,
) -> StoreResult<ApplicationId> {
    if !form.is_object() {
        return Err(StoreError::Invalid(
            "the form data must be a JSON object".into(),
        ));
    }
    let member = company_member::Entity::find()
        .filter(company_member::Column::CompanyId.eq(company.0))
        .filter(company_member::Column::UserId.eq(user.0))
        .filter(company_member::Column::Active.eq(true))
        .one(db)
        .await?;
    if member.is_none() {
        return Err(StoreError::Refused(Refusal::NotPermitted));
    }
    let orgs = load_orgs(db).await?;
    let (row, _) = active_definition(db, app_type, &orgs).await?;
    let id = ApplicationId::new();
    let now = now();
    application::ActiveModel {
        id: Set(id.0),
        app_type: Set(app_type.to_string()),
        definition_id: Set(row.id),
        reference: Set(None),
        company_id: Set(company.0),
        created_by: Set(user.0),
        form_data: Set(form),
        status: Set(ApplicationStatus::Draft),
        current_step: Set(None),
        version: Set(0),
        round: Set(0),
        step_due: Set(None),
        case_due: Set(None),
        revision_due: Set(None),
        paused_step_days: Set(None),
        paused_case_days: Set(None),
        return_items: Set(None),
        submitted_at: Set(None),
        decided_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// Stores the answers of one section (`values`: field name to value, `null` to clear) if
/// `expected_version` is still current. A draft may change any section; a returned
/// application only the sections the reviewers flagged. Returns the new version.
pub async fn update_section(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    expected_version: i64,
    section: &str,
    values: serde_json::Map<String, Value>,
) -> StoreResult<i64> {
    let row = application::Entity::find_by_id(app.0)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    if !is_active_member(db, row.company_id, user).await? {
        return Err(StoreError::NotFound);
    }
    let editable = match row.status {
        ApplicationStatus::Draft => true,
        ApplicationStatus::Returned => {
            let state = state_of(&row, &[])?;
            state
                .return_items
                .iter()
                .any(|i| i.kind == engine::ItemKind::Section && i.id == section)
        }
        ApplicationStatus::Submitted
        | ApplicationStatus::InReview
        | ApplicationStatus::Approved
        | ApplicationStatus::Rejected
        | ApplicationStatus::Withdrawn => false,
    };
    if !editable {
        return Err(StoreError::Refused(Refusal::Locked));
    }
    let orgs = load_orgs(db).await?;
    let def = definition_by_id(db, row.definition_id, &orgs).await?;
    if !def.sections.iter().any(|s| s.id == section) {
        return Err(StoreError::NotFound);
    }
    let mut form = match row.form_data {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in values {
        // Only the section's own fields: a crafted request cannot write elsewhere.
        if !def
            .fields
            .iter()
            .any(|f| f.name == k && f.section == section)
        {
            return Err(StoreError::Invalid(format!(
                "\"{k}\" is not a field of section \"{section}\""
            )));
        }
        if v.is_null() {
            form.remove(&k);
        } else {
            form.insert(k, v);
        }
    }
    let res = application::Entity::update_many()
        .col_expr(
            application::Column::FormData,
            Expr::value(Value::Object(form)),
        )
        .col_expr(
            application::Column::Version,
            Expr::value(expected_version + 1),
        )
        .col_expr(application::Column::UpdatedAt, Expr::value(now()))
        .filter(application::Column::Id.eq(app.0))
        .filter(application::Column::Version.eq(expected_version))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(expected_version + 1)
}

async fn is_active_member<C: ConnectionTrait>(
    db: &C,
    company: Uuid,
    user: UserId,
) -> StoreResult<bool> {
    Ok(company_member::Entity::find()
        .filter(company_member::Column::CompanyId.eq(company))
        .filter(company_member::Column::UserId.eq(user.0))
        .filter(company_member::Column::Active.eq(true))
        .one(db)
        .await?
        .is_some())
}

/// The engine's view of a stored application and its current round's tasks.
pub fn state_of(app: &application::Model, tasks: &[task::Model]) -> StoreResult<AppState> {
    let return_items: Vec<ReturnItem> = match &app.return_items {
        Some(v) => serde_json::from_value(v.clone()).map_err(anyhow::Error::from)?,
        None => Vec::new(),
    };
    Ok(AppState {
        status: app.status,
        step: app.current_step.clone(),
        round: app.round,
        step_due: app.step_due,
        case_due: app.case_due,
        revision_due: app.revision_due,
        paused_step_days: app.paused_step_days.map(|d| d.max(0) as u32),
        paused_case_days: app.paused_case_days.map(|d| d.max(0) as u32),
        return_items,
        held_returns: Vec::new(),
        submitted_at: app.submitted_at,
        decided_at: app.decided_at,
        tasks: tasks
            .iter()
            .filter(|t| t.round == app.round)
            .map(task_state)
            .collect(),
    })
}

/// The engine's view of a stored application including the returns held in its round
/// (`held`: the `held_returns` column, see [`held_returns_of`]).
pub fn state_with_held(
    app: &application::Model,
    held: Option<&Value>,
    tasks: &[task::Model],
) -> StoreResult<AppState> {
    let mut state = state_of(app, tasks)?;
    if let Some(v) = held {
        state.held_returns = serde_json::from_value(v.clone()).map_err(anyhow::Error::from)?;
    }
    Ok(state)
}

/// The stored `held_returns` column of an application (`None` when nothing is held).
pub async fn held_returns_of<C: ConnectionTrait>(db: &C, app: Uuid) -> StoreResult<Option<Value>> {
    Ok(application::held_returns::Entity::find_by_id(app)
        .one(db)
        .await?
        .and_then(|m| m.held_returns))
}

/// The `return_items` column: each item with the organization that asked for it (an
/// `org` key that [`ReturnItem`] readers ignore), so the applicant's page can say who asks.
fn return_items_json(s: &AppState) -> StoreResult<Option<Value>> {
    if s.return_items.is_empty() {
        return Ok(None);
    }
    let attributed: usize = s.held_returns.iter().map(|h| h.items.len()).sum();
    if attributed != s.return_items.len() {
        return Ok(Some(
            serde_json::to_value(&s.return_items).map_err(anyhow::Error::from)?,
        ));
    }
    let items: Vec<Value> = s
        .held_returns
        .iter()
        .flat_map(|h| {
            h.items
                .iter()
                .map(|i| json!({ "kind": i.kind, "id": i.id, "note": i.note, "org": h.org }))
        })
        .collect();
    Ok(Some(Value::Array(items)))
}

/// A task row as the engine sees it.
pub fn task_state(t: &task::Model) -> TaskState {
    TaskState {
        id: TaskId(t.id),
        step: t.step_id.clone(),
        org: OrgId(t.org_id),
        round: t.round,
        status: t.status,
        claimant: t.claimant_id.map(UserId),
        delegated_by: t.delegated_by.map(UserId),
        acted_by: t.acted_by.map(UserId),
        due: t.due_date,
        opened_at: t.opened_at,
        closed_at: t.closed_at,
    }
}

/// The roles of `user` with respect to an application of `company`.
pub async fn actor_for<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
    company: Uuid,
) -> StoreResult<Actor> {
    let mut q = Query::select();
    role_columns(
        &mut q,
        db.get_database_backend(),
        user_id,
        Expr::val(company),
    );
    let row = db
        .query_one(&q)
        .await?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("a SELECT without FROM gave no row")))?;
    actor_from_row(user_id, &row)
}

async fn email_verified<C: ConnectionTrait>(db: &C, user_id: UserId) -> StoreResult<bool> {
    Ok(user::Entity::find_by_id(user_id.0)
        .one(db)
        .await?
        .is_some_and(|u| u.email_verified_at.is_some()))
}

async fn review_orgs_of<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> StoreResult<BTreeSet<OrgId>> {
    let active = user::Entity::find_by_id(user_id.0)
        .one(db)
        .await?
        .is_some_and(|u| u.active);
    if !active {
        return Ok(BTreeSet::new());
    }
    Ok(org_membership::Entity::find()
        .filter(org_membership::Column::UserId.eq(user_id.0))
        .filter(org_membership::Column::Active.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|m| OrgId(m.org_id))
        .collect())
}

/// What [`execute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The application's new version.
    pub version: i64,
    /// Its status after the action.
    pub status: ApplicationStatus,
    /// Its reference number (allocated at first submission).
    pub reference: Option<String>,
    /// The history event written.
    pub event_id: Uuid,
}

/// How many times [`execute`] re-reads and re-decides after losing a race.
const MAX_ATTEMPTS: usize = 30;

/// Runs an action through the engine and applies the result atomically.
///
/// The state is read, the engine decides, and the result is written in one transaction
/// whose first statement updates the application `WHERE id = ? AND version = ?` (on
/// PostgreSQL, for actions that allocate no reference, one statement whose other writes
/// are conditional on that update). When another transaction got there first, nothing is
/// written and the action is decided again on the fresh state — so a second approval of the same task is refused as
/// already handled, while approvals of sibling countersign tasks both go through.
pub async fn execute(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    action: Action,
) -> StoreResult<Executed> {
    let applied = execute_inner(db, Target::Application(app), user, action, None, false).await?;
    Ok(applied.executed)
}

/// What [`execute_on`] did, with the application as it now stands, so the caller can show
/// it without reading it again.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The outcome.
    pub executed: Executed,
    /// The application as written.
    pub app: application::Model,
    /// Its tasks as written, all rounds.
    pub tasks: Vec<task::Model>,
    /// The current document of each material (as [`current_attachments`]).
    pub attachments: std::collections::BTreeMap<String, attachment::Model>,
    /// The organizations the decision was made with.
    pub orgs: Arc<OrgDirectory>,
}

/// Like [`execute`], on an application or on one of its tasks ([`Target`]), returning the
/// written state.
pub async fn execute_on(
    db: &DatabaseConnection,
    target: Target,
    user: UserId,
    action: Action,
) -> StoreResult<Applied> {
    execute_inner(db, target, user, action, None, true).await
}

/// Like [`execute`], and records the administrative action `record` in the admin audit log
/// ([`crate::admin::record`]) in the same transaction as the transition: both happen, or
/// neither (a reassignment from the admin pages is never applied unrecorded).
pub async fn execute_recorded(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    action: Action,
    record: crate::admin::AdminAction<'_>,
) -> StoreResult<Executed> {
    let target = Target::Application(app);
    let applied = execute_inner(db, target, user, action, Some(&record), false).await?;
    Ok(applied.executed)
}

fn needs_materials(action: &Action) -> bool {
    matches!(action, Action::Submit | Action::Resubmit { .. })
}

async fn execute_inner(
    db: &DatabaseConnection,
    target: Target,
    user: UserId,
    action: Action,
    record: Option<&crate::admin::AdminAction<'_>>,
    with_attachments: bool,
) -> StoreResult<Applied> {
    use tracing::Instrument as _;
    let span =
        tracing::info_span!("engine_action", target = ?target, action = action.kind().as_str());
    // Instrumented, not entered: a guard held across `.await` leaves the span current on
    // whichever thread the task last ran, and a span created there later names a parent
    // that may be gone (tracing's registry panics on it).
    async move {
        let mut action = action;
        if let Action::Transfer { to, .. } | Action::Delegate { to, .. } = &mut action {
            to.orgs = review_orgs_of(db, to.user).await?;
        }
        let with_attachments = with_attachments || needs_materials(&action);
        for attempt in 0..MAX_ATTEMPTS {
            match try_execute(db, target, user, &action, record, with_attachments).await {
                Err(StoreError::Conflict) => {
                    // Back off a little, with jitter, so racing writers spread out.
                    let ms = rand::random_range(1..=5u64) * (attempt as u64 + 1);
                    tokio::time::sleep(Duration::from_millis(ms.min(50))).await;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
    .instrument(span)
    .await
}

/// Which application an action is on: named, or through one of its tasks (the API's task
/// routes, which so need no separate read of the task).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The application.
    Application(ApplicationId),
    /// The application of this task; the caller must review for the task's organization,
    /// otherwise the task is [`StoreError::NotFound`].
    Task(TaskId),
}

/// Everything read before deciding.
struct Loaded {
    app: application::Model,
    /// Every task of the application, all rounds.
    tasks: Vec<task::Model>,
    state: AppState,
    def: Arc<Definition>,
    orgs: Arc<OrgDirectory>,
    calendar: Arc<Calendar>,
    district: Option<OrgId>,
    involved: BTreeSet<OrgId>,
    known_tasks: BTreeSet<TaskId>,
    missing: Vec<String>,
    /// The application's documents, oldest first (read when submitting, or when asked for).
    attachments: Vec<attachment::Model>,
    /// The last history event's sequence number and hash.
    last_event: Option<(i32, String)>,
    /// The acting user's roles for this application.
    actor: Actor,
}

/// The roles of `user` for an application of `company`, as four columns `active`,
/// `applicant`, `system_admin` and `memberships` (the active organization memberships as
/// `org role` pairs joined by commas), read in one statement with whatever else the caller
/// reads.
fn role_columns(
    q: &mut sea_orm::sea_query::SelectStatement,
    backend: sea_orm::DbBackend,
    user_id: UserId,
    company: impl Into<Expr>,
) {
    use sea_orm::sea_query::ExprTrait as _;
    let exists =
        |q: &mut sea_orm::sea_query::SelectStatement| Expr::exists(q.expr(Expr::val(1)).to_owned());
    q.expr_as(
        exists(
            Query::select()
                .from(user::Entity)
                .and_where(user::Column::Id.eq(user_id.0))
                .and_where(user::Column::Active.eq(true)),
        ),
        "active",
    )
    .expr_as(
        exists(
            Query::select()
                .from(company_member::Entity)
                .and_where(
                    Expr::col((company_member::Entity, company_member::Column::CompanyId))
                        .eq(company),
                )
                .and_where(company_member::Column::UserId.eq(user_id.0))
                .and_where(company_member::Column::Active.eq(true)),
        ),
        "applicant",
    )
    .expr_as(
        exists(
            Query::select()
                .from(system_admin::Entity)
                .and_where(system_admin::Column::UserId.eq(user_id.0)),
        ),
        "system_admin",
    );
    // Fixed SQL (no input in it); the user is a bound value. SQLite stores a UUID as 16
    // bytes, PostgreSQL as `uuid`.
    let pairs = match backend {
        sea_orm::DbBackend::Postgres => {
            r#"string_agg(CAST("org_id" AS text) || ' ' || "role", ',')"#
        }
        _ => {
            r#"group_concat(CASE typeof("org_id") WHEN 'blob' THEN hex("org_id") ELSE "org_id" END || ' ' || "role", ',')"#
        }
    };
    q.expr_as(
        Expr::SubQuery(
            None,
            Box::new(
                Query::select()
                    .expr(Expr::cust(pairs))
                    .from(org_membership::Entity)
                    .and_where(org_membership::Column::UserId.eq(user_id.0))
                    .and_where(org_membership::Column::Active.eq(true))
                    .to_owned()
                    .into(),
            ),
        ),
        "memberships",
    );
}

/// The actor from the columns of [`role_columns`].
fn actor_from_row(user_id: UserId, row: &sea_orm::QueryResult) -> StoreResult<Actor> {
    let mut actor = Actor {
        user: user_id,
        ..Actor::default()
    };
    if !row.try_get::<bool>("", "active")? {
        return Ok(actor);
    }
    actor.applicant = row.try_get("", "applicant")?;
    actor.system_admin = row.try_get("", "system_admin")?;
    let pairs: Option<String> = row.try_get("", "memberships")?;
    for pair in pairs.iter().flat_map(|p| p.split(',')) {
        let bad = || StoreError::Other(anyhow::anyhow!("unreadable membership {pair:?}"));
        let (org, role) = pair.split_once(' ').ok_or_else(bad)?;
        let org = OrgId(Uuid::parse_str(org).map_err(|_| bad())?);
        let role = <OrgRole as sea_orm::ActiveEnum>::try_from_value(&role.to_string())?;
        actor.reviewer_of.insert(org);
        if role == OrgRole::OrgAdmin {
            actor.admin_of.insert(org);
        }
    }
    Ok(actor)
}

/// The statement of [`load`]: a row per task of the application (at least one), each with
/// the application's columns and everything else read with it, and a row per document.
fn load_statement(
    backend: sea_orm::DbBackend,
    target: Target,
    user: UserId,
    with_attachments: bool,
) -> sea_orm::sea_query::WithQuery {
    use sea_orm::sea_query::{Alias, ExprTrait as _};
    let app_id = Expr::col((application::Entity, application::Column::Id));
    // The last event: its sequence number is the highest of the application's, found by
    // an aggregate rather than `ORDER BY … LIMIT 1`. SQLite looks at a bound LIMIT when it
    // plans, so it prepared the whole statement again every time it ran.
    let events = || {
        Query::select()
            .from(history_event::Entity)
            .and_where(
                Expr::col((history_event::Entity, history_event::Column::ApplicationId))
                    .eq(app_id.clone()),
            )
            .to_owned()
    };
    let subquery =
        |q: sea_orm::sea_query::SelectStatement| Expr::SubQuery(None, Box::new(q.into()));
    let last_seq = subquery(
        events()
            .expr(Expr::col(history_event::Column::Seq).max())
            .to_owned(),
    );
    let last_hash = subquery(
        events()
            .column(history_event::Column::Hash)
            .and_where(Expr::col(history_event::Column::Seq).eq(last_seq.clone()))
            .to_owned(),
    );
    let district = subquery(
        Query::select()
            .column(company::Column::DistrictOrgId)
            .from(company::Entity)
            .and_where(
                Expr::col((company::Entity, company::Column::Id)).eq(Expr::col((
                    application::Entity,
                    application::Column::CompanyId,
                ))),
            )
            .to_owned(),
    );
    let mut q = Query::select();
    q.columns(<application::Column as sea_orm::Iterable>::iter().map(|c| (application::Entity, c)))
        .expr_as(
            Expr::col((application::Entity, Alias::new("held_returns"))),
            "held_returns",
        )
        .expr_as(district, "district")
        .expr_as(last_seq, "last_seq")
        .expr_as(last_hash, "last_hash")
        .from(application::Entity);
    config::state_columns(&mut q);
    role_columns(
        &mut q,
        backend,
        user,
        Expr::col((application::Entity, application::Column::CompanyId)),
    );
    q.and_where(match target {
        Target::Application(a) => app_id.eq(a.0),
        Target::Task(t) => app_id.in_subquery(
            Query::select()
                .column(task::Column::ApplicationId)
                .from(task::Entity)
                .and_where(task::Column::Id.eq(t.0))
                .to_owned(),
        ),
    });
    // The names of the application row's columns, for the documents' rows below.
    let mut app_columns = Vec::new();
    q.exprs_mut_for_each(|e| {
        let name = match (&e.alias, &e.expr) {
            (Some(alias), _) => Some(alias.to_string()),
            (None, Expr::Column(c)) => c.column().map(|c| c.to_string()),
            _ => None,
        };
        app_columns.extend(name);
    });
    // The application's row is a materialized CTE: its subqueries run once, not once per
    // task and document row (the planner would otherwise pull the subquery up and run them
    // per output row).
    let a = Alias::new("a");
    fn name(prefix: &str, c: &impl sea_orm::IdenStatic) -> Alias {
        Alias::new(format!("{prefix}{}", c.as_str()))
    }
    // The application's row with its tasks (`t_` columns), one row each (one row with
    // empty task columns when it has none).
    let mut out = Query::select();
    out.column((a.clone(), sea_orm::sea_query::Asterisk));
    for c in <task::Column as sea_orm::Iterable>::iter() {
        out.expr_as(Expr::col((task::Entity, c)), name("t_", &c));
    }
    if with_attachments {
        for c in <attachment::Column as sea_orm::Iterable>::iter() {
            out.expr_as(Expr::cust("NULL"), name("d_", &c));
        }
    }
    out.from(a.clone()).join(
        sea_orm::sea_query::JoinType::LeftJoin,
        task::Entity,
        Expr::col((task::Entity, task::Column::ApplicationId))
            .equals((a.clone(), application::Column::Id)),
    );
    // And, when asked for, one row per document (`d_` columns) with the others empty:
    // the documents do not repeat the application's columns. Two branches, so that
    // PostgreSQL takes each column's type from the branch that has it.
    if with_attachments {
        let mut docs = Query::select();
        for c in &app_columns {
            docs.expr_as(Expr::cust("NULL"), Alias::new(c));
        }
        for c in <task::Column as sea_orm::Iterable>::iter() {
            docs.expr_as(Expr::cust("NULL"), name("t_", &c));
        }
        for c in <attachment::Column as sea_orm::Iterable>::iter() {
            docs.expr_as(Expr::col((attachment::Entity, c)), name("d_", &c));
        }
        docs.from(attachment::Entity).and_where(
            Expr::col((attachment::Entity, attachment::Column::ApplicationId)).eq(subquery(
                Query::select()
                    .column(application::Column::Id)
                    .from(a.clone())
                    .to_owned(),
            )),
        );
        out.union(sea_orm::sea_query::UnionType::All, docs);
    }
    let mut cte = sea_orm::sea_query::CommonTableExpression::new();
    cte.query(q).table_name(a).materialized(true);
    // Not `WithClause::new().cte(cte).to_owned()`: that would copy the application's query.
    let mut with = sea_orm::sea_query::WithClause::new();
    with.cte(cte);
    out.with(with)
}

/// Reads what deciding an action on `target` by `user` needs. The application, its held
/// returns, its company's district, its last history event, the user's roles and
/// memberships and the configuration generation come in one statement with the
/// application's tasks and (when asked for) documents ([`load_statement`]), so they are
/// one snapshot: the last event and the tasks read belong to the version read, and the
/// version-guarded write makes sure they are still the latest.
async fn load(
    db: &impl crate::db::Autocommit,
    target: Target,
    user: UserId,
    with_attachments: bool,
) -> StoreResult<Loaded> {
    let q = load_statement(db.get_database_backend(), target, user, with_attachments);
    let rows = db.query_all(&q).await?;
    // The application's columns are empty in the documents' rows.
    let mut row = None;
    for r in &rows {
        if r.try_get::<Option<Uuid>>("", "id")?.is_some() {
            row = Some(r);
            break;
        }
    }
    let row = row.ok_or(StoreError::NotFound)?;
    let mut tasks = Vec::with_capacity(rows.len());
    let mut attachments = Vec::new();
    for r in &rows {
        if r.try_get::<Option<Uuid>>("", "t_id")?.is_some() {
            tasks.push(<task::Model as sea_orm::FromQueryResult>::from_query_result(r, "t_")?);
        } else if with_attachments && r.try_get::<Option<Uuid>>("", "d_id")?.is_some() {
            attachments
                .push(<attachment::Model as sea_orm::FromQueryResult>::from_query_result(r, "d_")?);
        }
    }
    tasks.sort_by_key(|t| t.id);
    // Oldest first, as `attachments_of` reads them: the latest of a material wins.
    attachments.sort_by_key(|d| (d.created_at, d.id));
    let app = <application::Model as sea_orm::FromQueryResult>::from_query_result(row, "")?;
    let held: Option<Value> = row.try_get("", "held_returns")?;
    let district: Option<Uuid> = row.try_get("", "district")?;
    let last_seq: Option<i32> = row.try_get("", "last_seq")?;
    let last_hash: Option<String> = row.try_get("", "last_hash")?;
    let actor = actor_from_row(user, row)?;
    if let Target::Task(t) = target {
        // Only a reviewer of the task's organization learns that the task exists.
        let org = tasks.iter().find(|x| x.id == t.0).map(|x| OrgId(x.org_id));
        if !org.is_some_and(|o| actor.reviewer_of.contains(&o)) {
            return Err(StoreError::NotFound);
        }
    }
    let involved = tasks.iter().map(|t| OrgId(t.org_id)).collect();
    let known_tasks = tasks.iter().map(|t| TaskId(t.id)).collect();
    let state = state_with_held(&app, held.as_ref(), &tasks)?;
    let config = config::current_from(db, row).await?;
    let def = config.definition(db, app.definition_id).await?;
    let (orgs, calendar) = (config.orgs.clone(), config.calendar.clone());
    let present: BTreeSet<&str> = attachments
        .iter()
        .filter_map(|a| a.material.as_deref())
        .collect();
    let missing = def
        .materials
        .iter()
        .filter(|m| m.required && !present.contains(m.id.as_str()))
        .map(|m| m.id.clone())
        .collect();
    Ok(Loaded {
        app,
        tasks,
        state,
        def,
        orgs,
        calendar,
        district: district.map(OrgId),
        involved,
        known_tasks,
        missing,
        attachments,
        last_event: last_seq.zip(last_hash),
        actor,
    })
}

/// Decides an action on the stored state without writing anything (what the UI uses to
/// show which actions are possible, and why not).
pub async fn preview(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    action: &Action,
) -> StoreResult<Result<Transition, Refusal>> {
    let l = load(db, Target::Application(app), user, needs_materials(action)).await?;
    let ctx = context(&l, now());
    Ok(engine::decide(
        &ctx,
        &l.state,
        &l.actor,
        action,
        &mut Uuid::now_v7,
    ))
}

fn context(l: &Loaded, now: DateTime<Utc>) -> Context<'_> {
    Context {
        definition: &l.def,
        form: &l.app.form_data,
        company_district: l.district,
        orgs: &l.orgs,
        calendar: &l.calendar,
        now,
        missing_materials: &l.missing,
        involved_orgs: &l.involved,
        known_tasks: &l.known_tasks,
    }
}

async fn try_execute(
    db: &DatabaseConnection,
    target: Target,
    user: UserId,
    action: &Action,
    record: Option<&crate::admin::AdminAction<'_>>,
    with_attachments: bool,
) -> StoreResult<Applied> {
    // The reads, and on PostgreSQL the write, run on one connection: sqlx checks each
    // connection with a round trip when it goes back to the pool, once per statement
    // otherwise. It is given back before anything that takes a connection of its own.
    let conn = crate::db::Held::acquire(db).await?;
    let l = load(&conn, target, user, with_attachments).await?;
    let actor = &l.actor;
    let app = ApplicationId(l.app.id);
    if matches!(action, Action::Submit) && actor.applicant && !email_verified(&conn, user).await? {
        return Err(StoreError::Refused(Refusal::EmailNotVerified));
    }
    let now = now();
    let ctx = context(&l, now);
    let transition = engine::decide(&ctx, &l.state, actor, action, &mut Uuid::now_v7)
        .map_err(StoreError::Refused)?;
    let new_version = l.app.version + 1;
    let s = &transition.state;

    // Who is told, read before writing (a membership changed meanwhile is the same as one
    // changed a moment later).
    let told = notified_users(&conn, l.app.company_id, &transition).await?;
    let guard = application::Entity::update_many()
        .set(application::ActiveModel {
            id: NotSet,
            status: Set(s.status),
            current_step: Set(s.step.clone()),
            version: Set(new_version),
            round: Set(s.round),
            step_due: Set(s.step_due),
            case_due: Set(s.case_due),
            revision_due: Set(s.revision_due),
            paused_step_days: Set(s.paused_step_days.map(|d| d as i32)),
            paused_case_days: Set(s.paused_case_days.map(|d| d as i32)),
            return_items: Set(return_items_json(s)?),
            submitted_at: Set(s.submitted_at),
            decided_at: Set(s.decided_at),
            updated_at: Set(now),
            ..Default::default()
        })
        .filter(application::Column::Id.eq(app.0))
        .filter(application::Column::Version.eq(l.app.version));
    // The held returns live in the same row: set by the same UPDATE (PostgreSQL applies
    // only one of two updates of a row in one statement).
    let guard = if s.held_returns != l.state.held_returns {
        let held = if s.held_returns.is_empty() {
            None
        } else {
            Some(serde_json::to_value(&s.held_returns).map_err(anyhow::Error::from)?)
        };
        guard.col_expr(
            application::held_returns::Column::HeldReturns,
            Expr::val(held),
        )
    } else {
        guard
    };
    let guard = sea_orm::QueryTrait::into_query(guard);
    let mut reference = l.app.reference.clone();
    let allocate = reference.is_none() && s.submitted_at.is_some();
    let submits = matches!(action, Action::Submit | Action::Resubmit { .. });
    let record_event = |reference: &Option<String>| {
        transition_writes(&l, user, action, &transition, reference, &told, now)
    };
    let event_id;
    // The common case (no recorded admin action, no reference to allocate, no submission):
    // every write in one round trip, each conditional on the guarded update.
    let common = record.is_none() && !allocate && !submits;
    if common {
        let (writes, id) = record_event(&reference)?;
        event_id = id;
        let written = match db.get_database_backend() {
            // One statement instead of BEGIN, 3–6 writes and COMMIT.
            sea_orm::DbBackend::Postgres => apply_guarded(&conn, guard, writes).await?,
            // One batch of statements, committed together with the other transitions this
            // process writes at the moment (see `SqliteWriter`), on a connection of its own.
            _ => {
                drop(conn);
                apply_guarded_sqlite(db, guard, writes, id).await?
            }
        };
        if !written {
            return Err(StoreError::Conflict);
        }
    } else {
        drop(conn);
        let txn = db.begin().await?;
        // On SQLite, after the queued transitions of this process (see `SqliteWriter`).
        let _turn = match sqlite_writer(db) {
            Some(w) => Some(w.turn.clone().lock_owned().await),
            None => None,
        };
        // The guarded update comes first: on PostgreSQL it takes the row lock, on SQLite the
        // write lock, so everything below runs with the application to ourselves.
        if txn.execute(&guard).await?.rows_affected() == 0 {
            txn.rollback().await?;
            return Err(StoreError::Conflict);
        }
        if let Some(r) = record {
            crate::admin::record(&txn, r.clone()).await?;
        }
        if allocate {
            let r =
                allocate_reference(&txn, &l.def.reference_prefix, local_date(now).year()).await?;
            application::Entity::update_many()
                .col_expr(application::Column::Reference, Expr::value(r.clone()))
                .filter(application::Column::Id.eq(app.0))
                .exec(&txn)
                .await?;
            reference = Some(r);
        }
        if submits {
            record_submitted_version(&txn, &l.app, s.round, now).await?;
        }
        let (writes, id) = record_event(&reference)?;
        event_id = id;
        for w in writes {
            match w {
                Write::Insert(am) => txn.execute(&am.insert()).await?,
                Write::Update(u) => txn.execute(&*u).await?,
            };
        }
        txn.commit().await?;
    }
    tracing::info!(application_id = %app, reference = reference.as_deref().unwrap_or(""), version = new_version, status = ?s.status, "transition applied");
    let written = application::Model {
        status: s.status,
        current_step: s.step.clone(),
        version: new_version,
        round: s.round,
        step_due: s.step_due,
        case_due: s.case_due,
        revision_due: s.revision_due,
        paused_step_days: s.paused_step_days.map(|d| d as i32),
        paused_case_days: s.paused_case_days.map(|d| d as i32),
        return_items: return_items_json(s)?,
        submitted_at: s.submitted_at,
        decided_at: s.decided_at,
        updated_at: now,
        reference: reference.clone(),
        ..l.app.clone()
    };
    let mut tasks = l.tasks.clone();
    for t in &transition.updated {
        if let Some(row) = tasks.iter_mut().find(|r| r.id == t.id.0) {
            *row = task_model(app, t);
        }
    }
    tasks.extend(transition.opened.iter().map(|t| task_model(app, t)));
    Ok(Applied {
        executed: Executed {
            version: new_version,
            status: s.status,
            reference,
            event_id,
        },
        app: written,
        tasks,
        attachments: latest_per_material(l.attachments.clone()),
        orgs: l.orgs.clone(),
    })
}

/// One row to insert, taken from an active model's set values.
struct Row {
    table: sea_orm::sea_query::TableRef,
    columns: Vec<sea_orm::sea_query::DynIden>,
    values: Vec<sea_orm::Value>,
}

impl Row {
    fn of<A: ActiveModelTrait>(am: &A) -> Row {
        use sea_orm::{IdenStatic, Iterable};
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for c in <<A::Entity as EntityTrait>::Column as Iterable>::iter() {
            if let Some(v) = am.get(c).into_value() {
                columns.push(sea_orm::sea_query::IntoIden::into_iden(c.as_str()));
                values.push(v);
            }
        }
        Row {
            table: sea_orm::sea_query::IntoTableRef::into_table_ref(A::Entity::default()),
            columns,
            values,
        }
    }

    /// `INSERT … VALUES`.
    fn insert(self) -> sea_orm::sea_query::InsertStatement {
        let mut q = Query::insert();
        q.into_table(self.table)
            .columns(self.columns)
            .values_panic(self.values.into_iter().map(Expr::val));
        q
    }

    /// `INSERT … SELECT` of the values, shaped by `shape` (a `FROM` of the guard, a
    /// condition): nothing is inserted when the select yields no row.
    fn insert_select(
        self,
        shape: impl FnOnce(&mut sea_orm::sea_query::SelectStatement),
    ) -> sea_orm::sea_query::InsertStatement {
        let mut select = Query::select();
        select.exprs(self.values.into_iter().map(Expr::val));
        shape(&mut select);
        let mut q = Query::insert();
        q.into_table(self.table)
            .columns(self.columns)
            .select_from(select)
            .expect("as many values as columns");
        q
    }
}

/// A write of a transition, after the guarded update of the application.
enum Write {
    Insert(Row),
    Update(Box<sea_orm::sea_query::UpdateStatement>),
}

/// Everything a transition writes after the guarded update of the application: the
/// history event (first), tasks, copies and the outbox rows; and the event's id.
fn transition_writes(
    l: &Loaded,
    user: UserId,
    action: &Action,
    transition: &Transition,
    reference: &Option<String>,
    told: &HashMap<String, Vec<user::Model>>,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<Write>, Uuid)> {
    use sea_orm::QueryTrait;
    let app = ApplicationId(l.app.id);
    let s = &transition.state;
    let mut writes = Vec::new();
    for t in &transition.opened {
        writes.push(Write::Insert(Row::of(&task_row(app, t))));
    }
    for t in &transition.updated {
        let mut am = task_row(app, t);
        am.id = NotSet;
        writes.push(Write::Update(Box::new(
            task::Entity::update_many()
                .set(am)
                .filter(task::Column::Id.eq(t.id.0))
                .into_query(),
        )));
    }
    for n in &transition.notifications {
        if let ("cc", Audience::OrgReviewers(org)) = (n.kind.as_str(), &n.audience) {
            writes.push(Write::Insert(Row::of(&application_copy::ActiveModel {
                id: Set(Uuid::now_v7()),
                application_id: Set(app.0),
                org_id: Set(org.0),
                step_id: Set(n.data["step"].as_str().unwrap_or_default().to_string()),
                created_at: Set(now),
            })));
        }
    }

    // The last event was read with the version the guarded update matches: still the last.
    let (seq, prev_hash) = match &l.last_event {
        Some((seq, hash)) => (seq + 1, hash.clone()),
        None => (1, history::GENESIS.to_string()),
    };
    let payload = json!({
        "action": action,
        "details": transition.event.details,
        "version": l.app.version + 1,
        "reference": reference,
        "effects": {
            "state": effect_state(s),
            "opened": transition.opened,
            "updated": transition.updated,
        },
    });
    let payload = serde_json::to_string(&payload).map_err(anyhow::Error::from)?;
    let event_id = Uuid::now_v7();
    let kind = transition.event.kind.as_str();
    let actor_org = transition.event.actor_org.map(|o| o.0);
    let hash = history::chain_hash(
        &prev_hash,
        &history::EventContent {
            id: event_id,
            application_id: app.0,
            seq,
            kind,
            actor_user_id: Some(user.0),
            actor_org_id: actor_org,
            internal: transition.event.internal,
            payload: &payload,
            created_at: now,
        },
    );
    // The event comes first: SQLite's batch conditions it on the guard and everything
    // after it on the event (see `apply_guarded_sqlite`).
    writes.insert(
        0,
        Write::Insert(Row::of(&history_event::ActiveModel {
            id: Set(event_id),
            application_id: Set(app.0),
            seq: Set(seq),
            kind: Set(kind.to_string()),
            actor_user_id: Set(Some(user.0)),
            actor_org_id: Set(actor_org),
            internal: Set(transition.event.internal),
            payload: Set(payload),
            created_at: Set(now),
            prev_hash: Set(prev_hash),
            hash: Set(hash),
        })),
    );

    // The reference may have been allocated in this very transaction.
    let app_now = application::Model {
        reference: reference.clone(),
        ..l.app.clone()
    };
    for row in notification_rows(&app_now, transition, told, &l.orgs, now)? {
        writes.push(Write::Insert(Row::of(&row)));
    }
    Ok((writes, event_id))
}

/// Applies the guarded update and `writes` as one PostgreSQL statement: each write is a
/// data-modifying CTE that selects from (or tests) the guard's `RETURNING`, so when the
/// application's version moved, nothing at all is written. True when it was written.
async fn apply_guarded(
    db: &impl ConnectionTrait,
    mut guard: sea_orm::sea_query::UpdateStatement,
    writes: Vec<Write>,
) -> StoreResult<bool> {
    use sea_orm::sea_query::{Alias, Asterisk, CommonTableExpression, ExprTrait as _, WithClause};
    const GUARD: &str = "guard";
    guard.returning_col(application::Column::Id);
    let mut guard_cte = CommonTableExpression::new();
    guard_cte.query(guard).table_name(Alias::new(GUARD));
    let mut with = WithClause::new();
    with.cte(guard_cte);
    let guarded = Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(Alias::new(GUARD))
            .to_owned(),
    );
    for (i, w) in writes.into_iter().enumerate() {
        let mut cte = CommonTableExpression::new();
        cte.table_name(Alias::new(format!("w{i}")));
        match w {
            Write::Insert(row) => cte.query(row.insert_select(|q| {
                q.from(Alias::new(GUARD));
            })),
            Write::Update(mut u) => {
                u.and_where(guarded.clone());
                cte.query(*u)
            }
        };
        with.cte(cte);
    }
    let q = Query::select()
        .expr_as(Expr::col(Asterisk).count(), "n")
        .from(Alias::new(GUARD))
        .to_owned()
        .with(with);
    let row = db
        .query_one(&q)
        .await?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("a count gave no row")))?;
    Ok(row.try_get::<i64>("", "n")? == 1)
}

/// On SQLite, this process's writer of transitions to the database file, shared by every
/// transition written through the same file. `None` on PostgreSQL, and for a database
/// that is not a file on disk (an in-memory name is not unique to one database, and
/// transitions grouped under it could be written to the wrong one).
fn sqlite_writer(db: &DatabaseConnection) -> Option<Arc<SqliteWriter>> {
    use std::sync::{LazyLock, Mutex};
    type Writers = Mutex<HashMap<std::path::PathBuf, Option<Arc<SqliteWriter>>>>;
    static WRITERS: LazyLock<Writers> = LazyLock::new(Writers::default);
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return None;
    }
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    WRITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(file)
        .or_insert_with_key(|file| file.is_file().then(Arc::default))
        .clone()
}

/// Group commit of transitions on SQLite. SQLite lets one writer at a time in; the others
/// wait in its busy handler, which sleeps from 1 up to 100 ms between tries and so leaves
/// the database idle after the writer finished. Instead, a transition queues its batch of
/// statements and waits for the turn; whoever gets the turn writes every queued batch in
/// one transaction (one BEGIN and one COMMIT for all of them) and tells each its result.
/// It only orders and groups this process's writes: correctness still rests on each
/// batch's version guard and SQLite's lock. A group holds at most [`MAX_GROUP`]
/// transitions, oldest first, so one transaction (and, when one batch fails, the rewriting
/// of the others one by one) stays bounded however many requests arrive at once.
#[derive(Default)]
struct SqliteWriter {
    turn: Arc<tokio::sync::Mutex<()>>,
    queue: std::sync::Mutex<std::collections::VecDeque<SqliteJob>>,
    /// Groups written so far (one transaction each).
    groups: std::sync::atomic::AtomicU64,
}

/// The most transitions [`SqliteWriter`] writes in one transaction.
const MAX_GROUP: usize = 32;

impl SqliteWriter {
    /// Queues `job` and waits until it is written, by whoever has the turn: each holder of
    /// the turn writes the oldest queued jobs (at most [`MAX_GROUP`]) in one transaction, and
    /// gives the turn back when they are written. A job that did not fit in that group is
    /// written by the next holder, possibly its own request.
    async fn submit(
        &self,
        db: &DatabaseConnection,
        sql: String,
        values: Vec<sea_orm::Value>,
    ) -> StoreResult<bool> {
        use tokio::sync::oneshot::error::TryRecvError;
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(SqliteJob { sql, values, done });
        loop {
            let turn = self.turn.clone().lock_owned().await;
            // A holder answers every job it took before it gives the turn back.
            match result.try_recv() {
                // Written by whoever had the turn before.
                Ok(r) => return r,
                Err(TryRecvError::Closed) => return Err(lost()),
                Err(TryRecvError::Empty) => {}
            }
            let jobs: Vec<SqliteJob> = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = queue.len().min(MAX_GROUP);
                queue.drain(..n).collect()
            };
            if jobs.is_empty() {
                // Not answered, yet not queued: only a lost answer leaves it so.
                return Err(lost());
            }
            self.groups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Written on a task of its own, so the others' results arrive even if this
            // request is cancelled meanwhile; the turn is held until all are written.
            let db = db.clone();
            tokio::spawn(async move {
                write_jobs(db, jobs).await;
                drop(turn);
            });
        }
    }
}

fn lost() -> StoreError {
    StoreError::Other(anyhow::anyhow!("a transition's write was lost"))
}

/// One transition's statements, ending in a `SELECT` of whether its event was written.
struct SqliteJob {
    sql: String,
    values: Vec<sea_orm::Value>,
    done: tokio::sync::oneshot::Sender<StoreResult<bool>>,
}

/// Writes `jobs` together; when that fails (one batch's error rolls back all of them),
/// each on its own, so one transition's error is reported to that transition only.
async fn write_jobs(db: DatabaseConnection, jobs: Vec<SqliteJob>) {
    if jobs.len() > 1 {
        match write_together(&db, &jobs).await {
            Ok(written) => {
                for (job, ok) in jobs.into_iter().zip(written) {
                    let _ = job.done.send(Ok(ok));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, transitions = jobs.len(), "writing transitions together failed; writing them one by one");
            }
        }
    }
    for job in jobs {
        let result = write_together(&db, std::slice::from_ref(&job))
            .await
            .map(|written| written.first().copied().unwrap_or(false));
        let _ = job.done.send(result);
    }
}

/// One transaction of every job's statements; whether each one's event was written.
async fn write_together(db: &DatabaseConnection, jobs: &[SqliteJob]) -> StoreResult<Vec<bool>> {
    let sql: String = jobs.iter().map(|j| j.sql.as_str()).collect();
    let values: Vec<sea_orm::Value> = jobs.iter().flat_map(|j| j.values.clone()).collect();
    let txn = db.begin().await?;
    let written = async {
        let rows = txn
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        if rows.len() != jobs.len() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "{} transitions written together answered {} rows",
                jobs.len(),
                rows.len()
            )));
        }
        Ok(rows
            .iter()
            .map(|r| r.try_get_by_index::<bool>(0))
            .collect::<Result<Vec<_>, _>>()?)
    }
    .await;
    match written {
        Ok(written) => {
            txn.commit().await?;
            Ok(written)
        }
        Err(e) => {
            // Before the next attempt takes SQLite's lock.
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// Applies the guarded update and `writes` (the history event `event` first) on SQLite, in
/// a transaction shared with whatever other transitions this process writes at the same
/// moment ([`SqliteWriter`]). SQLite has no data-modifying CTEs, so the event is inserted
/// only when the guard changed a row (`changes() = 1` right after it) and every later
/// write only when the event is there: when the application's version moved, nothing at
/// all is written. True when it was written.
async fn apply_guarded_sqlite(
    db: &DatabaseConnection,
    guard: sea_orm::sea_query::UpdateStatement,
    writes: Vec<Write>,
    event: Uuid,
) -> StoreResult<bool> {
    use sea_orm::sea_query::{QueryStatementWriter, SqliteQueryBuilder};
    fn push(sql: &mut String, values: &mut Vec<sea_orm::Value>, q: &impl QueryStatementWriter) {
        let (text, v) = q.build(SqliteQueryBuilder);
        sql.push_str(&text);
        sql.push_str(";\n");
        values.extend(v.0);
    }
    let (mut sql, mut values) = (String::new(), Vec::new());
    push(&mut sql, &mut values, &guard);
    let event_written = Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(history_event::Entity)
            .and_where(history_event::Column::Id.eq(event))
            .to_owned(),
    );
    for (i, w) in writes.into_iter().enumerate() {
        let condition = if i == 0 {
            Expr::cust("changes() = 1")
        } else {
            event_written.clone()
        };
        match w {
            Write::Insert(row) => push(
                &mut sql,
                &mut values,
                &row.insert_select(|q| {
                    q.and_where(condition);
                }),
            ),
            Write::Update(mut u) => {
                u.and_where(condition);
                push(&mut sql, &mut values, &*u)
            }
        }
    }
    push(
        &mut sql,
        &mut values,
        &Query::select().expr(event_written).to_owned(),
    );
    match sqlite_writer(db) {
        Some(writer) => writer.submit(db, sql, values).await,
        // Not grouped: written alone.
        None => {
            let (done, result) = tokio::sync::oneshot::channel();
            write_jobs(db.clone(), vec![SqliteJob { sql, values, done }]).await;
            result.await.map_err(|_| lost())?
        }
    }
}

/// The current document of each material of an application: the latest upload.
pub async fn current_attachments<C: ConnectionTrait>(
    db: &C,
    app: Uuid,
) -> StoreResult<std::collections::BTreeMap<String, attachment::Model>> {
    Ok(latest_per_material(attachments_of(db, app).await?))
}

/// The documents of an application, oldest first.
async fn attachments_of<C: ConnectionTrait>(
    db: &C,
    app: Uuid,
) -> StoreResult<Vec<attachment::Model>> {
    Ok(attachment::Entity::find()
        .filter(attachment::Column::ApplicationId.eq(app))
        .order_by_asc(attachment::Column::CreatedAt)
        .order_by_asc(attachment::Column::Id)
        .all(db)
        .await?)
}

/// The latest of `rows` (oldest first) for each material.
fn latest_per_material(
    rows: Vec<attachment::Model>,
) -> std::collections::BTreeMap<String, attachment::Model> {
    rows.into_iter()
        .filter_map(|a| a.material.clone().map(|m| (m, a)))
        .collect()
}

/// Keeps the form and the current materials as they are submitted in `round`, so a later
/// resubmission can be compared with the version that was returned.
async fn record_submitted_version<C: ConnectionTrait>(
    db: &C,
    app: &application::Model,
    round: i32,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let docs: serde_json::Map<String, Value> = current_attachments(db, app.id)
        .await?
        .into_iter()
        .map(|(m, a)| {
            (
                m,
                json!({ "id": a.id, "filename": a.filename, "sha256": a.sha256 }),
            )
        })
        .collect();
    submitted_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        application_id: Set(app.id),
        round: Set(round),
        form_data: Set(app.form_data.clone()),
        attachments: Set(Value::Object(docs)),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Decides several actions on one read of the stored state, without writing anything:
/// what the task page uses to offer each action or say why it is not possible.
pub async fn preview_many(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    actions: &[Action],
) -> StoreResult<Vec<Result<Transition, Refusal>>> {
    let l = load(
        db,
        Target::Application(app),
        user,
        actions.iter().any(needs_materials),
    )
    .await?;
    let actor = &l.actor;
    let ctx = context(&l, now());
    let mut out = Vec::with_capacity(actions.len());
    for action in actions {
        let mut action = action.clone();
        if let Action::Transfer { to, .. } | Action::Delegate { to, .. } = &mut action {
            to.orgs = review_orgs_of(db, to.user).await?;
        }
        out.push(engine::decide(
            &ctx,
            &l.state,
            actor,
            &action,
            &mut Uuid::now_v7,
        ));
    }
    Ok(out)
}

/// The part of the state the history records after each event (replayed by the audit).
pub fn effect_state(s: &AppState) -> Value {
    let mut v = json!({
        "status": s.status,
        "step": s.step,
        "round": s.round,
        "step_due": s.step_due,
        "case_due": s.case_due,
        "revision_due": s.revision_due,
        "paused_step_days": s.paused_step_days,
        "paused_case_days": s.paused_case_days,
    });
    // Only when something is held, so the events written before held returns existed
    // replay unchanged.
    if !s.held_returns.is_empty()
        && let Value::Object(m) = &mut v
    {
        m.insert("held_returns".into(), json!(s.held_returns));
    }
    v
}

fn task_model(app: ApplicationId, t: &TaskState) -> task::Model {
    task::Model {
        id: t.id.0,
        application_id: app.0,
        step_id: t.step.clone(),
        org_id: t.org.0,
        round: t.round,
        status: t.status,
        claimant_id: t.claimant.map(|u| u.0),
        delegated_by: t.delegated_by.map(|u| u.0),
        acted_by: t.acted_by.map(|u| u.0),
        due_date: t.due,
        opened_at: t.opened_at,
        closed_at: t.closed_at,
    }
}

fn task_row(app: ApplicationId, t: &TaskState) -> task::ActiveModel {
    sea_orm::IntoActiveModel::into_active_model(task_model(app, t)).reset_all()
}

/// Allocates the next reference number of `prefix` in `year` (e.g. `YQYC-2026-000123`).
/// Runs inside the caller's transaction; the counter row's update serializes allocators on
/// both databases, so numbers are unique and gap-free among committed submissions.
pub async fn allocate_reference<C: ConnectionTrait>(
    db: &C,
    prefix: &str,
    year: i32,
) -> StoreResult<String> {
    // Scoped here: ExprTrait's min/max would shadow the integer methods elsewhere.
    use sea_orm::sea_query::ExprTrait;
    let insert = Query::insert()
        .into_table("reference_counters")
        .columns(["id", "prefix", "year", "last_value"])
        .values_panic([
            Uuid::now_v7().into(),
            prefix.into(),
            year.into(),
            0i64.into(),
        ])
        .on_conflict(
            OnConflict::columns(["prefix", "year"])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    db.execute(&insert).await?;
    let update = Query::update()
        .table("reference_counters")
        .value("last_value", Expr::col("last_value").add(1))
        .and_where(Expr::col("prefix").eq(prefix))
        .and_where(Expr::col("year").eq(year))
        .returning_col("last_value")
        .to_owned();
    let row = db
        .query_one(&update)
        .await?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("reference counter vanished")))?;
    let n: i64 = row.try_get("", "last_value")?;
    Ok(format!("{prefix}-{year}-{n:06}"))
}

/// The users each notification of `transition` goes to, by audience: one statement for all
/// audiences, each user once with a column per audience saying whether it is in it.
async fn notified_users<C: ConnectionTrait>(
    db: &C,
    company: Uuid,
    transition: &Transition,
) -> StoreResult<HashMap<String, Vec<user::Model>>> {
    use sea_orm::QueryTrait as _;
    use sea_orm::sea_query::Condition;
    let mut keys = Vec::new();
    let mut conditions = Vec::new();
    for n in &transition.notifications {
        let key = serde_json::to_string(&n.audience).map_err(anyhow::Error::from)?;
        if !keys.contains(&key) {
            keys.push(key);
            conditions.push(audience_condition(company, &n.audience));
        }
    }
    // An audience nobody is in has no entry (`notification_rows` writes no row for it).
    let mut told: HashMap<String, Vec<user::Model>> = HashMap::new();
    if keys.is_empty() {
        return Ok(told);
    }
    let mut q = user::Entity::find()
        .filter(
            conditions
                .iter()
                .cloned()
                .fold(Condition::any(), Condition::add),
        )
        .filter(user::Column::Active.eq(true))
        .order_by_asc(user::Column::Email)
        .into_query();
    for (i, c) in conditions.into_iter().enumerate() {
        // Whether the user is in audience `i`.
        q.expr_as(c, format!("in_{i}"));
    }
    for row in db.query_all(&q).await? {
        let u = <user::Model as sea_orm::FromQueryResult>::from_query_result(&row, "")?;
        for (i, key) in keys.iter().enumerate() {
            if row.try_get::<bool>("", &format!("in_{i}"))? {
                told.entry(key.clone()).or_default().push(u.clone());
            }
        }
    }
    Ok(told)
}

/// The outbox rows of `transition`'s notifications, one per recipient.
fn notification_rows(
    app: &application::Model,
    transition: &Transition,
    told: &HashMap<String, Vec<user::Model>>,
    orgs: &OrgDirectory,
    now: DateTime<Utc>,
) -> StoreResult<Vec<outbox::ActiveModel>> {
    let mut rows = Vec::new();
    for n in &transition.notifications {
        let key = serde_json::to_string(&n.audience).map_err(anyhow::Error::from)?;
        for u in told.get(&key).into_iter().flatten() {
            let data = localized(&n.kind, &n.data, orgs, &u.locale);
            rows.push(outbox_row(&n.kind, Some(app), u, data, now));
        }
    }
    Ok(rows)
}

/// A merged return (一次性告知) names, in the recipient's language, the organization that
/// asks for each item and each organization's comment: the mail shows every item's note
/// and one comment, so they carry the names.
fn localized(kind: &str, data: &Value, orgs: &OrgDirectory, locale: &str) -> Value {
    let Some(comments) = data.get("comments").and_then(Value::as_array) else {
        return data.clone();
    };
    if kind != "returned" || comments.len() < 2 {
        return data.clone();
    }
    let name = |org: &Value| {
        org.as_str()
            .and_then(|o| Uuid::parse_str(o).ok())
            .map(|o| orgs.name_of(o, locale))
            .unwrap_or_default()
    };
    let mut out = data.clone();
    if let Some(items) = out.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            let who = item.get("org").map(&name).unwrap_or_default();
            let note = item.get("note").and_then(Value::as_str).unwrap_or_default();
            item["note"] = json!(format!("[{who}] {note}"));
        }
    }
    let comment: Vec<String> = comments
        .iter()
        .map(|c| {
            let who = c.get("org").map(&name).unwrap_or_default();
            let text = c.get("comment").and_then(Value::as_str).unwrap_or_default();
            format!("[{who}] {text}")
        })
        .collect();
    out["comment"] = json!(comment.join("\n"));
    out
}

/// A queued outbox row for `to`: the one shape every notification takes, whoever writes
/// it (the engine's transitions, timers, account emails, ratings). `application` carries
/// the application's reference and type into the payload when there is one.
pub fn outbox_row(
    kind: &str,
    application: Option<&application::Model>,
    to: &user::Model,
    data: Value,
    now: DateTime<Utc>,
) -> outbox::ActiveModel {
    let id = Uuid::now_v7();
    let payload = match application {
        Some(app) => json!({
            "reference": app.reference,
            "app_type": app.app_type,
            "application_id": app.id,
            "data": data,
        }),
        None => json!({ "name": to.name, "data": data }),
    };
    outbox::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_string()),
        application_id: Set(application.map(|a| a.id)),
        recipient_user_id: Set(Some(to.id)),
        recipient_email: Set(to.email.clone()),
        locale: Set(to.locale.clone()),
        payload: Set(payload),
        status: Set(OutboxStatus::Queued),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_error: Set(None),
        message_id: Set(format!("{id}@zhigang")),
        created_at: Set(now),
        sent_at: Set(None),
    }
}

/// Which users are in `audience`, as a condition on the users table.
fn audience_condition(company: Uuid, audience: &Audience) -> sea_orm::sea_query::SimpleExpr {
    match audience {
        Audience::CompanyMembers => user::Column::Id.in_subquery(
            Query::select()
                .column(company_member::Column::UserId)
                .from(company_member::Entity)
                .and_where(company_member::Column::CompanyId.eq(company))
                .and_where(company_member::Column::Active.eq(true))
                .to_owned(),
        ),
        Audience::OrgReviewers(org) => user::Column::Id.in_subquery(
            Query::select()
                .column(org_membership::Column::UserId)
                .from(org_membership::Entity)
                .and_where(org_membership::Column::OrgId.eq(org.0))
                .and_where(org_membership::Column::Active.eq(true))
                .to_owned(),
        ),
        Audience::User(u) => user::Column::Id.eq(u.0),
    }
}

/// Whether `user` may see the application: a member of its company, a reviewer of an
/// organization that has (or had) a task on it or was copied on it, or a system administrator. Everyone else
/// is told it does not exist.
pub async fn can_view<C: ConnectionTrait>(
    db: &C,
    app: &application::Model,
    user: UserId,
) -> StoreResult<bool> {
    let actor = actor_for(db, user, app.company_id).await?;
    if actor.applicant || actor.system_admin {
        return Ok(true);
    }
    if actor.reviewer_of.is_empty() {
        return Ok(false);
    }
    let orgs: Vec<Uuid> = actor.reviewer_of.iter().map(|o| o.0).collect();
    if task::Entity::find()
        .filter(task::Column::ApplicationId.eq(app.id))
        .filter(task::Column::OrgId.is_in(orgs.clone()))
        .one(db)
        .await?
        .is_some()
    {
        return Ok(true);
    }
    // Organizations copied (抄送) on a step may read the application too.
    Ok(application_copy::Entity::find()
        .filter(application_copy::Column::ApplicationId.eq(app.id))
        .filter(application_copy::Column::OrgId.is_in(orgs))
        .one(db)
        .await?
        .is_some())
}

/// The stored document an attachment row points at.
struct Document {
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
}

impl Document {
    fn uploaded(filename: &str, stored: &crate::attachments::Stored) -> StoreResult<Self> {
        Ok(Self {
            filename: crate::attachments::safe_filename(filename),
            content_type: stored.content_type.to_string(),
            size: i64::try_from(stored.size).map_err(anyhow::Error::from)?,
            sha256: stored.sha256.clone(),
            storage_key: stored.key.clone(),
        })
    }

    fn copy_of(a: &attachment::Model) -> Self {
        Self {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            storage_key: a.storage_key.clone(),
        }
    }
}

/// Records `doc` as `material` of a company's profile (`application` = `None`) or of an
/// application.
async fn insert_attachment(
    db: &DatabaseConnection,
    company: Uuid,
    application: Option<Uuid>,
    user: UserId,
    material: &str,
    doc: Document,
) -> StoreResult<Uuid> {
    let id = Uuid::now_v7();
    attachment::ActiveModel {
        id: Set(id),
        company_id: Set(company),
        application_id: Set(application),
        uploaded_by: Set(user.0),
        material: Set(Some(material.to_string())),
        filename: Set(doc.filename),
        content_type: Set(doc.content_type),
        size: Set(doc.size),
        sha256: Set(doc.sha256),
        storage_key: Set(doc.storage_key),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// The application, if `user` may change its `material` now: a draft may attach any
/// material of its type; a returned application only the materials the reviewers flagged.
async fn material_editable(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    material: &str,
) -> StoreResult<application::Model> {
    let row = application::Entity::find_by_id(app.0)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    if !is_active_member(db, row.company_id, user).await? {
        return Err(StoreError::NotFound);
    }
    let orgs = load_orgs(db).await?;
    let def = definition_by_id(db, row.definition_id, &orgs).await?;
    if !def.materials.iter().any(|m| m.id == material) {
        return Err(StoreError::NotFound);
    }
    let editable = match row.status {
        ApplicationStatus::Draft => true,
        ApplicationStatus::Returned => state_of(&row, &[])?
            .return_items
            .iter()
            .any(|i| i.kind == engine::ItemKind::Material && i.id == material),
        ApplicationStatus::Submitted
        | ApplicationStatus::InReview
        | ApplicationStatus::Approved
        | ApplicationStatus::Rejected
        | ApplicationStatus::Withdrawn => false,
    };
    if !editable {
        return Err(StoreError::Refused(Refusal::Locked));
    }
    Ok(row)
}

/// Records an uploaded document as the application's `material`. Earlier uploads stay (the
/// latest per material is the current one), so reviewers can compare.
pub async fn attach(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    material: &str,
    filename: &str,
    stored: &crate::attachments::Stored,
) -> StoreResult<Uuid> {
    let row = material_editable(db, app, user, material).await?;
    insert_attachment(
        db,
        row.company_id,
        Some(app.0),
        user,
        material,
        Document::uploaded(filename, stored)?,
    )
    .await
}

/// Keeps a document on the company's profile (一企一档): any active member may add one,
/// the latest per material is the current one.
pub async fn attach_to_profile(
    db: &DatabaseConnection,
    company: CompanyId,
    user: UserId,
    material: &str,
    filename: &str,
    stored: &crate::attachments::Stored,
) -> StoreResult<Uuid> {
    if !is_active_member(db, company.0, user).await? {
        return Err(StoreError::NotFound);
    }
    insert_attachment(
        db,
        company.0,
        None,
        user,
        material,
        Document::uploaded(filename, stored)?,
    )
    .await
}

/// The company profile's current document per material.
pub async fn profile_documents<C: ConnectionTrait>(
    db: &C,
    company: Uuid,
) -> StoreResult<std::collections::BTreeMap<String, attachment::Model>> {
    let rows = attachment::Entity::find()
        .filter(attachment::Column::CompanyId.eq(company))
        .filter(attachment::Column::ApplicationId.is_null())
        .order_by_asc(attachment::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|a| a.material.clone().map(|m| (m, a)))
        .collect())
}

/// Attaches the company profile's current document for `material` to the application
/// without uploading it again (一企一档).
pub async fn attach_from_profile(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    material: &str,
) -> StoreResult<Uuid> {
    let row = material_editable(db, app, user, material).await?;
    let profile = profile_documents(db, row.company_id).await?;
    let doc = profile.get(material).ok_or(StoreError::NotFound)?;
    insert_attachment(
        db,
        row.company_id,
        Some(app.0),
        user,
        material,
        Document::copy_of(doc),
    )
    .await
}

/// Records the company's rating (好差评) of a decided application: 1 to 5 and a comment,
/// once per application. A rating of 1 or 2 is flagged and mailed to the admins of the
/// organization that decided.
pub async fn rate(
    db: &DatabaseConnection,
    app: ApplicationId,
    user: UserId,
    score: i32,
    comment: &str,
) -> StoreResult<()> {
    let row = application::Entity::find_by_id(app.0)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    if !is_active_member(db, row.company_id, user).await? {
        return Err(StoreError::NotFound);
    }
    match row.status {
        ApplicationStatus::Approved | ApplicationStatus::Rejected => {}
        ApplicationStatus::Draft
        | ApplicationStatus::Submitted
        | ApplicationStatus::InReview
        | ApplicationStatus::Returned
        | ApplicationStatus::Withdrawn => return Err(StoreError::Refused(Refusal::Locked)),
    }
    if !(1..=5).contains(&score) || comment.chars().count() > engine::MAX_TEXT {
        return Err(StoreError::Invalid(
            "a rating is 1 to 5 with a comment of at most 5000 characters".into(),
        ));
    }
    // The organization whose decision closed the case.
    let deciding = task::Entity::find()
        .filter(task::Column::ApplicationId.eq(app.0))
        .filter(task::Column::Status.is_in([
            entity::enums::TaskStatus::Approved,
            entity::enums::TaskStatus::Rejected,
        ]))
        .order_by_desc(task::Column::ClosedAt)
        .one(db)
        .await?;
    let flagged = score <= 2;
    let now = now();
    let txn = db.begin().await?;
    let inserted = entity::rating::ActiveModel {
        id: Set(Uuid::now_v7()),
        application_id: Set(app.0),
        company_id: Set(row.company_id),
        user_id: Set(user.0),
        org_id: Set(deciding.as_ref().map(|t| t.org_id)),
        score: Set(score),
        comment: Set(comment.trim().to_string()),
        flagged: Set(flagged),
        created_at: Set(now),
    }
    .insert(&txn)
    .await;
    if let Err(e) = inserted {
        return Err(match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict,
            _ => StoreError::Db(e),
        });
    }
    if let (true, Some(t)) = (flagged, &deciding) {
        let admins: Vec<Uuid> = org_membership::Entity::find()
            .filter(org_membership::Column::OrgId.eq(t.org_id))
            .filter(org_membership::Column::Role.eq(OrgRole::OrgAdmin))
            .filter(org_membership::Column::Active.eq(true))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        let users = if admins.is_empty() {
            Vec::new()
        } else {
            user::Entity::find()
                .filter(user::Column::Id.is_in(admins))
                .filter(user::Column::Active.eq(true))
                .all(&txn)
                .await?
        };
        for u in users {
            let data =
                json!({ "task": t.id, "text": format!("{score}/5"), "comment": comment.trim() });
            outbox_row("low_rating", Some(&row), &u, data, now)
                .insert(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(sql: &str) -> (SqliteJob, tokio::sync::oneshot::Receiver<StoreResult<bool>>) {
        let (done, result) = tokio::sync::oneshot::channel();
        let sql = sql.to_string();
        (
            SqliteJob {
                sql,
                values: Vec::new(),
                done,
            },
            result,
        )
    }

    async fn rows_in_t(db: &DatabaseConnection) -> i64 {
        db.query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT COUNT(*) FROM t",
        ))
        .await
        .expect("counted")
        .expect("a row")
        .try_get_by_index(0)
        .expect("a number")
    }

    /// Transitions are grouped per database file only: never under an in-memory name, which
    /// several databases share.
    #[tokio::test]
    async fn group_commit_is_per_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        let a = crate::db::connect(&url("a.db"), 2).await.expect("opened");
        let a_again = crate::db::connect(&url("a.db"), 2).await.expect("opened");
        let b = crate::db::connect(&url("b.db"), 2).await.expect("opened");
        let (a, a_again, b) = (
            sqlite_writer(&a).expect("a writer for a file"),
            sqlite_writer(&a_again).expect("a writer for a file"),
            sqlite_writer(&b).expect("a writer for a file"),
        );
        assert!(Arc::ptr_eq(&a, &a_again));
        assert!(!Arc::ptr_eq(&a, &b));
        let memory = crate::db::connect("sqlite::memory:", 1)
            .await
            .expect("opened");
        assert!(sqlite_writer(&memory).is_none());
    }

    /// A database file with an empty table `t` (id, v), and its directory.
    async fn table_t() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = crate::db::connect(&url, 4).await.expect("opened");
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .await
            .expect("table created");
        (dir, db)
    }

    /// A group holds at most `MAX_GROUP` transitions, oldest first; a transition queued
    /// beyond it is written by a later holder of the turn, and every one is answered.
    #[tokio::test]
    async fn group_commit_caps_the_group() {
        let (_dir, db) = table_t().await;
        let writer = Arc::new(SqliteWriter::default());
        let queued = 2 * MAX_GROUP + 6;
        // Everything queues while the turn is taken, as behind a long write.
        let turn = writer.turn.clone().lock_owned().await;
        let submitted: Vec<_> = (1..=queued)
            .map(|i| {
                let (writer, db) = (writer.clone(), db.clone());
                let sql = format!("INSERT INTO t (id, v) VALUES ({i}, 'x'); SELECT 1;");
                tokio::spawn(async move { writer.submit(&db, sql, Vec::new()).await })
            })
            .collect();
        while writer.queue.lock().expect("the queue").len() < queued {
            tokio::task::yield_now().await;
        }
        drop(turn);
        for s in submitted {
            assert!(s.await.expect("joined").expect("written"));
        }
        assert_eq!(rows_in_t(&db).await, queued as i64);
        // MAX_GROUP + MAX_GROUP + 6.
        assert_eq!(writer.groups.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert!(writer.queue.lock().expect("the queue").is_empty());
    }

    /// SQLite's group commit: batches written together each get their own answer, and when
    /// one batch fails, the others are still written and only that one gets the error.
    #[tokio::test]
    async fn group_commit_answers_each_transition() {
        let (_dir, db) = table_t().await;

        // Together: one written, one whose guard held nothing back.
        let (a, a_done) = job("INSERT INTO t (id, v) VALUES (1, 'a'); SELECT 1;");
        let (b, b_done) = job("INSERT INTO t (id, v) SELECT 2, 'b' WHERE 0; SELECT 0;");
        write_jobs(db.clone(), vec![a, b]).await;
        assert!(a_done.await.expect("answered").expect("written"));
        assert!(!b_done.await.expect("answered").expect("written"));
        assert_eq!(rows_in_t(&db).await, 1);

        // One batch violates a constraint: the group is rolled back and each written alone.
        let (c, c_done) = job("INSERT INTO t (id, v) VALUES (3, 'c'); SELECT 1;");
        let (bad, bad_done) = job("INSERT INTO t (id, v) VALUES (4, NULL); SELECT 1;");
        let (d, d_done) = job("INSERT INTO t (id, v) VALUES (5, 'd'); SELECT 1;");
        write_jobs(db.clone(), vec![c, bad, d]).await;
        assert!(c_done.await.expect("answered").expect("written"));
        assert!(bad_done.await.expect("answered").is_err());
        assert!(d_done.await.expect("answered").expect("written"));
        assert_eq!(rows_in_t(&db).await, 3);
    }
}
