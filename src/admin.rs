//! Administration: the domain behind the admin pages (see `web::admin` and
//! `web::org_admin`). Every administrative action is recorded with [`record`], in the same
//! transaction as the change it describes, in one hash chain that [`verify_chain`] checks.

use chrono::SecondsFormat;
use entity::admin_event;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryOrder,
    QuerySelect,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::history::GENESIS;

/// An administrative action to record.
#[derive(Debug, Clone)]
pub struct AdminAction<'a> {
    /// Who acted.
    pub actor: Uuid,
    /// The organization concerned, if any.
    pub org: Option<Uuid>,
    /// What was done, as a stable dotted name (`user.deactivate`, `workflow.activate`).
    pub action: &'a str,
    /// What it was done to (an email, an organization code, a definition key …).
    pub target: &'a str,
    /// Details (never a password or a token).
    pub details: Value,
}

fn chain_hash(prev: &str, m: &admin_event::Model) -> String {
    let mut h = Sha256::new();
    for part in [
        prev.to_string(),
        m.id.to_string(),
        m.seq.to_string(),
        m.actor_user_id.to_string(),
        m.org_id.map(|o| o.to_string()).unwrap_or_default(),
        m.action.clone(),
        m.target.clone(),
        m.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        m.details.clone(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends `a` to the administrative audit log. Call it inside the transaction that makes
/// the change, so that the record and the change commit or roll back together. Two
/// administrators acting at the same instant make one of the transactions fail on the
/// unique sequence number (the caller reports it and nothing is half-done).
pub async fn record<C: ConnectionTrait>(db: &C, a: AdminAction<'_>) -> Result<Uuid, DbErr> {
    // On PostgreSQL, concurrent administrators queue here instead of failing on the
    // sequence number: the lock (held to the end of the caller's transaction) lets readers
    // through and makes writers of the admin log take turns. SQLite has one writer anyway.
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "LOCK TABLE admin_events IN EXCLUSIVE MODE",
        ))
        .await?;
    }
    let last = admin_event::Entity::find()
        .order_by_desc(admin_event::Column::Seq)
        .limit(1)
        .one(db)
        .await?;
    let (seq, prev) = match last {
        Some(l) => (l.seq + 1, l.hash),
        None => (1, GENESIS.to_string()),
    };
    let now = crate::store::now();
    let mut m = admin_event::Model {
        id: Uuid::now_v7(),
        seq,
        actor_user_id: a.actor,
        org_id: a.org,
        action: a.action.to_string(),
        target: a.target.to_string(),
        details: a.details.to_string(),
        created_at: now,
        prev_hash: prev.clone(),
        hash: String::new(),
    };
    m.hash = chain_hash(&prev, &m);
    let id = m.id;
    admin_event::ActiveModel {
        id: Set(m.id),
        seq: Set(m.seq),
        actor_user_id: Set(m.actor_user_id),
        org_id: Set(m.org_id),
        action: Set(m.action),
        target: Set(m.target),
        details: Set(m.details),
        created_at: Set(m.created_at),
        prev_hash: Set(m.prev_hash),
        hash: Set(m.hash),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// Checks the administrative audit log's chain; returns the first broken event's sequence
/// number and id, or `None` when the chain is intact.
pub async fn verify_chain<C: ConnectionTrait>(db: &C) -> Result<Option<(i64, Uuid)>, DbErr> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    let mut after = 0i64;
    loop {
        use sea_orm::{ColumnTrait, QueryFilter};
        let page = admin_event::Entity::find()
            .filter(admin_event::Column::Seq.gt(after))
            .order_by_asc(admin_event::Column::Seq)
            .limit(1000)
            .all(db)
            .await?;
        if page.is_empty() {
            return Ok(None);
        }
        for e in page {
            if e.seq != expected_seq || e.prev_hash != prev || chain_hash(&prev, &e) != e.hash {
                return Ok(Some((e.seq, e.id)));
            }
            prev = e.hash.clone();
            expected_seq += 1;
            after = e.seq;
        }
    }
}

// ---- the system administrator's actions ------------------------------------------------
//
// Each function below checks its input, makes the change and records it with [`record`]
// in one transaction. The caller (the web layer) has already checked that `actor` is a
// system administrator.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, TimeZone};
use entity::enums::{ApplicationStatus, OrgKind, OrgRole, OutboxStatus, TaskStatus};
use entity::{
    application, calendar_day, history_event, org_membership, organization, outbox, system_admin,
    task, user, workflow_definition,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, QueryFilter, TransactionTrait};
use serde::Serialize;
use serde_json::json;

use crate::accounts::FieldError;
use crate::calendar::DayKind;
use crate::ids::{ApplicationId, TaskId, UserId};
use crate::store::{self, StoreError};
use crate::workflow::definition::{Definition, DefinitionErrors};
use crate::workflow::engine::{Action, Assignee, planned_route};

/// A form's problems, or the value.
pub type Checked<T> = Result<T, Vec<FieldError>>;

fn ferr(field: &str, message: &'static str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
    }
}

/// The stored hash of an account that has not chosen a password yet (the same marker
/// `accounts::invite_member` uses, so `accept_invitation` completes it).
const NO_PASSWORD: &str = "!invited";

/// Users whose email or name contains `q` (all users when `q` is empty), by email.
pub async fn search_users<C: ConnectionTrait>(
    db: &C,
    q: &str,
    limit: u64,
) -> Result<Vec<user::Model>, DbErr> {
    let q = q.trim();
    let mut find = user::Entity::find().order_by_asc(user::Column::Email);
    if !q.is_empty() {
        find = find.filter(
            Condition::any()
                .add(user::Column::Email.contains(q.to_lowercase()))
                .add(user::Column::Name.contains(q)),
        );
    }
    find.limit(limit).all(db).await
}

/// One organization role of a user, for the user's page.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    /// The organization.
    pub org_id: Uuid,
    /// Its code.
    pub org_code: String,
    /// Its Chinese name.
    pub org_name_zh: String,
    /// Its English name.
    pub org_name_en: String,
    /// `reviewer` or `org_admin`.
    pub role: String,
    /// Whether the role is in force.
    pub active: bool,
}

/// A user's organization roles (active and revoked).
pub async fn roles_of<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<Vec<RoleRow>, DbErr> {
    let ms = org_membership::Entity::find()
        .filter(org_membership::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let mut out = Vec::new();
    for m in ms {
        if let Some(o) = organization::Entity::find_by_id(m.org_id).one(db).await? {
            out.push(RoleRow {
                org_id: o.id,
                org_code: o.code,
                org_name_zh: o.name_zh,
                org_name_en: o.name_en,
                role: match m.role {
                    OrgRole::Reviewer => "reviewer".into(),
                    OrgRole::OrgAdmin => "org_admin".into(),
                },
                active: m.active,
            });
        }
    }
    out.sort_by(|a, b| a.org_code.cmp(&b.org_code));
    Ok(out)
}

/// Whether `user_id` is a system administrator.
pub async fn is_system_admin<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<bool, DbErr> {
    Ok(system_admin::Entity::find()
        .filter(system_admin::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .is_some())
}

/// Parses `reviewer` / `org_admin`.
pub fn parse_org_role(s: &str) -> Option<OrgRole> {
    match s {
        "reviewer" => Some(OrgRole::Reviewer),
        "org_admin" => Some(OrgRole::OrgAdmin),
        _ => None,
    }
}

async fn org_by_code<C: ConnectionTrait>(
    db: &C,
    code: &str,
) -> Result<Option<organization::Model>, DbErr> {
    organization::Entity::find()
        .filter(organization::Column::Code.eq(code.trim()))
        .one(db)
        .await
}

/// Gives `user_id` the role `role` in the organization `org_code` (a revoked role is
/// reinstated; a reviewer can be made org admin and back).
pub async fn grant_org_role(
    db: &DatabaseConnection,
    actor: Uuid,
    user_id: Uuid,
    org_code: &str,
    role: &str,
) -> anyhow::Result<Checked<()>> {
    let mut errors = Vec::new();
    let org = org_by_code(db, org_code).await?;
    if org.is_none() {
        errors.push(ferr("org_code", "admin-unknown-org"));
    }
    let role = parse_org_role(role);
    if role.is_none() {
        errors.push(ferr("role", "admin-unknown-role"));
    }
    let (Some(org), Some(role)) = (org, role) else {
        return Ok(Err(errors));
    };
    let Some(u) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(Err(vec![ferr("org_code", "admin-unknown-user")]));
    };
    let txn = db.begin().await?;
    let existing = org_membership::Entity::find()
        .filter(org_membership::Column::UserId.eq(user_id))
        .filter(org_membership::Column::OrgId.eq(org.id))
        .one(&txn)
        .await?;
    match existing {
        Some(m) => {
            org_membership::Entity::update_many()
                .col_expr(org_membership::Column::Role, Expr::value(role))
                .col_expr(org_membership::Column::Active, Expr::value(true))
                .filter(org_membership::Column::Id.eq(m.id))
                .exec(&txn)
                .await?;
        }
        None => {
            org_membership::ActiveModel {
                id: Set(Uuid::now_v7()),
                org_id: Set(org.id),
                user_id: Set(user_id),
                role: Set(role),
                active: Set(true),
                created_at: Set(crate::store::now()),
            }
            .insert(&txn)
            .await?;
        }
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: Some(org.id),
            action: "org_role.grant",
            target: &u.email,
            details: json!({ "user": user_id, "org": org.code, "role": role }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(()))
}

/// Revokes `user_id`'s role in the organization `org_id`. Returns false when there was
/// no role in force.
pub async fn revoke_org_role(
    db: &DatabaseConnection,
    actor: Uuid,
    user_id: Uuid,
    org_id: Uuid,
) -> anyhow::Result<bool> {
    let Some(u) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(false);
    };
    let txn = db.begin().await?;
    let res = org_membership::Entity::update_many()
        .col_expr(org_membership::Column::Active, Expr::value(false))
        .filter(org_membership::Column::UserId.eq(user_id))
        .filter(org_membership::Column::OrgId.eq(org_id))
        .filter(org_membership::Column::Active.eq(true))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let code = organization::Entity::find_by_id(org_id)
        .one(&txn)
        .await?
        .map(|o| o.code)
        .unwrap_or_default();
    record(
        &txn,
        AdminAction {
            actor,
            org: Some(org_id),
            action: "org_role.revoke",
            target: &u.email,
            details: json!({ "user": user_id, "org": code }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Makes `user_id` a system administrator (`grant`) or takes the right away. An
/// administrator cannot take it from themselves (so the portal always keeps one).
/// Returns false when nothing changed or the change is refused.
pub async fn set_system_admin(
    db: &DatabaseConnection,
    actor: Uuid,
    user_id: Uuid,
    grant: bool,
) -> anyhow::Result<bool> {
    if !grant && actor == user_id {
        return Ok(false);
    }
    let Some(u) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(false);
    };
    let txn = db.begin().await?;
    let current = is_system_admin(&txn, user_id).await?;
    if current == grant {
        txn.rollback().await?;
        return Ok(false);
    }
    if grant {
        system_admin::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            created_at: Set(crate::store::now()),
        }
        .insert(&txn)
        .await?;
    } else {
        system_admin::Entity::delete_many()
            .filter(system_admin::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: if grant {
                "system_admin.grant"
            } else {
                "system_admin.revoke"
            },
            target: &u.email,
            details: json!({ "user": user_id }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Deactivates (every session ends at once) or reactivates a user. An administrator
/// cannot deactivate themselves (false); asking for the state a user is already in changes nothing.
pub async fn set_user_active(
    db: &DatabaseConnection,
    actor: Uuid,
    user_id: Uuid,
    active: bool,
) -> anyhow::Result<bool> {
    if !active && actor == user_id {
        return Ok(false);
    }
    let Some(u) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(false);
    };
    let txn = db.begin().await?;
    let res = user::Entity::update_many()
        .col_expr(user::Column::Active, Expr::value(active))
        .col_expr(user::Column::UpdatedAt, Expr::value(crate::store::now()))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::Active.eq(!active))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        // Already as asked (a second click): nothing changes, nothing to record.
        txn.rollback().await?;
        return Ok(true);
    }
    if !active {
        entity::session::Entity::delete_many()
            .filter(entity::session::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: if active {
                "user.reactivate"
            } else {
                "user.deactivate"
            },
            target: &u.email,
            details: json!({ "user": user_id }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Creates an account for a reviewer (or org admin) of `org_code` and emails them an
/// invitation link (valid 7 days) to choose a password — the same invitation as a
/// company's, so `/invitation` completes it.
#[allow(clippy::too_many_arguments)]
pub async fn invite_org_member(
    db: &DatabaseConnection,
    actor: Uuid,
    email: &str,
    name: &str,
    org_code: &str,
    role: &str,
    locale: &str,
    base_url: &str,
) -> anyhow::Result<Checked<Uuid>> {
    let mut errors = Vec::new();
    let name = name.trim();
    if name.is_empty() {
        errors.push(ferr("name", "required"));
    }
    let email = crate::accounts::required_email("email", email, &mut errors);
    if let Some(e) = &email
        && user::Entity::find()
            .filter(user::Column::Email.eq(e.as_str()))
            .one(db)
            .await?
            .is_some()
    {
        errors.push(ferr("email", "admin-user-exists"));
    }
    let org = org_by_code(db, org_code).await?;
    if org.is_none() {
        errors.push(ferr("org_code", "admin-unknown-org"));
    }
    let role = parse_org_role(role);
    if role.is_none() {
        errors.push(ferr("role", "admin-unknown-role"));
    }
    let (Some(email), Some(org), Some(role), true) = (email, org, role, errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let txn = db.begin().await?;
    let now = crate::store::now();
    let id = Uuid::now_v7();
    let u = user::ActiveModel {
        id: Set(id),
        email: Set(email.clone()),
        name: Set(name.to_string()),
        password_hash: Set(NO_PASSWORD.to_string()),
        locale: Set(locale.to_string()),
        active: Set(true),
        email_verified_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org.id),
        user_id: Set(id),
        role: Set(role),
        active: Set(true),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let token =
        crate::accounts::issue_token(&txn, id, "invitation", chrono::Duration::days(7)).await?;
    let link = format!(
        "{}/invitation?token={token}",
        base_url.trim_end_matches('/')
    );
    let org_name = if locale.starts_with("en") {
        org.name_en.clone()
    } else {
        org.name_zh.clone()
    };
    crate::accounts::queue_account_mail(
        &txn,
        "invitation",
        &u,
        json!({ "link": link, "company": org_name }),
    )
    .await?;
    record(
        &txn,
        AdminAction {
            actor,
            org: Some(org.id),
            action: "user.invite",
            target: &email,
            details: json!({ "user": id, "org": org.code, "role": role }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(id))
}

// ---- organizations ---------------------------------------------------------------------

/// What the organization forms send.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct OrgForm {
    /// Stable code (`TJ-MIIT`, `D-120116`); only on creation.
    #[serde(default)]
    pub code: String,
    /// Chinese name.
    #[serde(default)]
    pub name_zh: String,
    /// English name.
    #[serde(default)]
    pub name_en: String,
    /// `city_bureau`, `district`, `platform_operator`, `coordination_mechanism`.
    #[serde(default)]
    pub kind: String,
    /// Code of the supervising bureau (platform operators).
    #[serde(default)]
    pub supervisor_code: String,
    /// `on` when active (a checkbox).
    #[serde(default)]
    pub active: Option<String>,
}

/// Parses an organization kind as stored.
pub fn parse_org_kind(s: &str) -> Option<OrgKind> {
    match s {
        "city_bureau" => Some(OrgKind::CityBureau),
        "district" => Some(OrgKind::District),
        "platform_operator" => Some(OrgKind::PlatformOperator),
        "coordination_mechanism" => Some(OrgKind::CoordinationMechanism),
        _ => None,
    }
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

async fn check_org_names<C: ConnectionTrait>(
    db: &C,
    f: &OrgForm,
    errors: &mut Vec<FieldError>,
) -> Result<Option<String>, DbErr> {
    if f.name_zh.trim().is_empty() {
        errors.push(ferr("name_zh", "required"));
    }
    if f.name_en.trim().is_empty() {
        errors.push(ferr("name_en", "required"));
    }
    let sup = f.supervisor_code.trim();
    if sup.is_empty() {
        return Ok(None);
    }
    if org_by_code(db, sup).await?.is_none() {
        errors.push(ferr("supervisor_code", "admin-unknown-org"));
    }
    Ok(Some(sup.to_string()))
}

/// Adds an organization.
pub async fn create_org(
    db: &DatabaseConnection,
    actor: Uuid,
    f: &OrgForm,
) -> anyhow::Result<Checked<Uuid>> {
    let mut errors = Vec::new();
    let code = f.code.trim().to_string();
    if code.is_empty() {
        errors.push(ferr("code", "required"));
    } else if !valid_code(&code) {
        errors.push(ferr("code", "admin-code-invalid"));
    } else if org_by_code(db, &code).await?.is_some() {
        errors.push(ferr("code", "admin-code-taken"));
    }
    let kind = parse_org_kind(&f.kind);
    if kind.is_none() {
        errors.push(ferr("kind", "admin-kind-invalid"));
    }
    let sup = check_org_names(db, f, &mut errors).await?;
    let (Some(kind), true) = (kind, errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let txn = db.begin().await?;
    let sort = organization::Entity::find()
        .order_by_desc(organization::Column::SortOrder)
        .one(&txn)
        .await?
        .map_or(1, |o| o.sort_order + 1);
    let id = Uuid::now_v7();
    let inserted = organization::ActiveModel {
        id: Set(id),
        code: Set(code.clone()),
        name_zh: Set(f.name_zh.trim().to_string()),
        name_en: Set(f.name_en.trim().to_string()),
        kind: Set(kind),
        supervisor_code: Set(sup.clone()),
        active: Set(true),
        sort_order: Set(sort),
        created_at: Set(crate::store::now()),
    }
    .insert(&txn)
    .await;
    if let Err(e) = inserted {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            return Ok(Err(vec![ferr("code", "admin-code-taken")]));
        }
        return Err(e.into());
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: Some(id),
            action: "org.create",
            target: &code,
            details: json!({
                "name_zh": f.name_zh.trim(), "name_en": f.name_en.trim(),
                "kind": f.kind, "supervisor": sup,
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(id))
}

/// Changes an organization's names, supervisor and active flag (its code and kind stay:
/// workflow definitions refer to the code). `None` when there is no such organization.
pub async fn update_org(
    db: &DatabaseConnection,
    actor: Uuid,
    id: Uuid,
    f: &OrgForm,
) -> anyhow::Result<Option<Checked<()>>> {
    let Some(before) = organization::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let mut errors = Vec::new();
    let sup = check_org_names(db, f, &mut errors).await?;
    if sup.as_deref() == Some(before.code.as_str()) {
        errors.push(ferr("supervisor_code", "admin-unknown-org"));
    }
    if !errors.is_empty() {
        return Ok(Some(Err(errors)));
    }
    let active = f.active.is_some();
    let txn = db.begin().await?;
    organization::Entity::update_many()
        .col_expr(
            organization::Column::NameZh,
            Expr::value(f.name_zh.trim().to_string()),
        )
        .col_expr(
            organization::Column::NameEn,
            Expr::value(f.name_en.trim().to_string()),
        )
        .col_expr(
            organization::Column::SupervisorCode,
            Expr::value(sup.clone()),
        )
        .col_expr(organization::Column::Active, Expr::value(active))
        .filter(organization::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    record(
        &txn,
        AdminAction {
            actor,
            org: Some(id),
            action: "org.update",
            target: &before.code,
            details: json!({
                "before": { "name_zh": before.name_zh, "name_en": before.name_en,
                            "supervisor": before.supervisor_code, "active": before.active },
                "after": { "name_zh": f.name_zh.trim(), "name_en": f.name_en.trim(),
                           "supervisor": sup, "active": active },
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Some(Ok(())))
}

// ---- calendar ----------------------------------------------------------------------------

/// What the calendar form sends.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct DayForm {
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub day: String,
    /// `holiday`, `workday` or `normal` (remove the override: the Monday–Friday rule).
    #[serde(default)]
    pub kind: String,
    /// The reason shown next to deadlines (国庆节, 国庆节调休).
    #[serde(default)]
    pub name: String,
}

/// Sets (or removes, with kind `normal`) the calendar override of one day. Deadlines
/// already computed stay; new ones use the calendar as changed.
pub async fn set_calendar_day(
    db: &DatabaseConnection,
    actor: Uuid,
    f: &DayForm,
) -> anyhow::Result<Checked<NaiveDate>> {
    let mut errors = Vec::new();
    let day = NaiveDate::parse_from_str(f.day.trim(), "%Y-%m-%d").ok();
    if day.is_none() {
        errors.push(ferr(
            "day",
            if f.day.trim().is_empty() {
                "required"
            } else {
                "admin-date-invalid"
            },
        ));
    }
    let kind = match f.kind.as_str() {
        "normal" => Some(None),
        k => DayKind::parse(k).ok().map(Some),
    };
    if kind.is_none() {
        errors.push(ferr("kind", "admin-day-kind-invalid"));
    }
    let name = f.name.trim();
    if matches!(kind, Some(Some(_))) && name.is_empty() {
        errors.push(ferr("name", "required"));
    }
    if name.chars().count() > 100 {
        errors.push(ferr("name", "admin-too-long"));
    }
    let (Some(day), Some(kind), true) = (day, kind, errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let txn = db.begin().await?;
    let before = calendar_day::Entity::find()
        .filter(calendar_day::Column::Day.eq(day))
        .one(&txn)
        .await?;
    calendar_day::Entity::delete_many()
        .filter(calendar_day::Column::Day.eq(day))
        .exec(&txn)
        .await?;
    if let Some(k) = kind {
        calendar_day::ActiveModel {
            id: Set(Uuid::now_v7()),
            day: Set(day),
            kind: Set(k.as_str().to_string()),
            name: Set(name.to_string()),
            created_at: Set(crate::store::now()),
        }
        .insert(&txn)
        .await?;
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: "calendar.set",
            target: &day.to_string(),
            details: json!({
                "before": before.map(|b| json!({ "kind": b.kind, "name": b.name })),
                "after": kind.map(|k| json!({ "kind": k.as_str(), "name": name })),
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(day))
}

// ---- mail outbox ---------------------------------------------------------------------------

/// Which outbox rows to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Waiting, never failed.
    Queued,
    /// Waiting after a failed attempt (`last_error` set).
    Failed,
    /// Given up on.
    Dead,
    /// Delivered.
    Sent,
}

impl OutboxFilter {
    /// Parses `queued`, `failed`, `dead`, `sent`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "failed" => Some(Self::Failed),
            "dead" => Some(Self::Dead),
            "sent" => Some(Self::Sent),
            _ => None,
        }
    }
}

/// Outbox rows matching `filter` (all undelivered ones when `None`), newest first.
pub async fn outbox_rows<C: ConnectionTrait>(
    db: &C,
    filter: Option<OutboxFilter>,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    let mut q = outbox::Entity::find().order_by_desc(outbox::Column::CreatedAt);
    q = match filter {
        None => q.filter(outbox::Column::Status.ne(OutboxStatus::Sent)),
        Some(OutboxFilter::Queued) => q
            .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
            .filter(outbox::Column::LastError.is_null()),
        Some(OutboxFilter::Failed) => q
            .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
            .filter(outbox::Column::LastError.is_not_null()),
        Some(OutboxFilter::Dead) => q.filter(outbox::Column::Status.eq(OutboxStatus::Dead)),
        Some(OutboxFilter::Sent) => q.filter(outbox::Column::Status.eq(OutboxStatus::Sent)),
    };
    q.limit(limit).all(db).await
}

/// Puts a dead message back in the queue (see `mail::queue::retry_dead`). Returns false
/// when the message is not dead (already retried, or never died).
pub async fn retry_mail(db: &DatabaseConnection, actor: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let txn = db.begin().await?;
    let Some(row) = outbox::Entity::find_by_id(id).one(&txn).await? else {
        txn.rollback().await?;
        return Ok(false);
    };
    if !crate::mail::queue::retry_dead(&txn, id, crate::store::now()).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: "mail.retry",
            target: &row.recipient_email,
            details: json!({ "outbox": id, "kind": row.kind, "attempts": row.attempts, "last_error": row.last_error }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

// ---- workflow definitions --------------------------------------------------------------------

/// Why an upload was not stored.
#[derive(Debug)]
pub enum UploadError {
    /// The definition does not validate.
    Invalid(DefinitionErrors),
    /// The same text is already stored as this version of the key.
    Duplicate(String, i32),
}

/// Stores an uploaded definition as a new, inactive version of its type: it runs only
/// once activated. Returns the new row's id.
pub async fn upload_definition(
    db: &DatabaseConnection,
    actor: Uuid,
    file: &str,
    source: &str,
) -> anyhow::Result<Result<Uuid, UploadError>> {
    let orgs = store::load_orgs(db).await?;
    let def = match Definition::parse(file, source, &orgs) {
        Ok(d) => d,
        Err(e) => return Ok(Err(UploadError::Invalid(e))),
    };
    let checksum = Definition::checksum(source);
    let txn = db.begin().await?;
    let versions = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(def.key.as_str()))
        .order_by_desc(workflow_definition::Column::Version)
        .all(&txn)
        .await?;
    if let Some(same) = versions.iter().find(|v| v.checksum == checksum) {
        let v = same.version;
        txn.rollback().await?;
        return Ok(Err(UploadError::Duplicate(def.key, v)));
    }
    let version = versions.first().map_or(1, |v| v.version + 1);
    let id = Uuid::now_v7();
    workflow_definition::ActiveModel {
        id: Set(id),
        key: Set(def.key.clone()),
        version: Set(version),
        source: Set(source.to_string()),
        checksum: Set(checksum.clone()),
        active: Set(false),
        created_at: Set(crate::store::now()),
    }
    .insert(&txn)
    .await?;
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: "workflow.upload",
            target: &def.key,
            details: json!({ "definition": id, "version": version, "checksum": checksum }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(id))
}

/// Makes a stored version the active one of its type: new applications start on it;
/// applications in flight keep the version they started with. Returns false when there
/// is no such version or it is already active.
pub async fn activate_definition(
    db: &DatabaseConnection,
    actor: Uuid,
    id: Uuid,
) -> anyhow::Result<bool> {
    let txn = db.begin().await?;
    let Some(row) = workflow_definition::Entity::find_by_id(id)
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        return Ok(false);
    };
    if row.active {
        txn.rollback().await?;
        return Ok(false);
    }
    let previous = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(row.key.as_str()))
        .filter(workflow_definition::Column::Active.eq(true))
        .one(&txn)
        .await?
        .map(|p| p.version);
    workflow_definition::Entity::update_many()
        .col_expr(workflow_definition::Column::Active, Expr::value(false))
        .filter(workflow_definition::Column::Key.eq(row.key.as_str()))
        .exec(&txn)
        .await?;
    workflow_definition::Entity::update_many()
        .col_expr(workflow_definition::Column::Active, Expr::value(true))
        .filter(workflow_definition::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    record(
        &txn,
        AdminAction {
            actor,
            org: None,
            action: "workflow.activate",
            target: &row.key,
            details: json!({ "definition": id, "version": row.version, "previous_version": previous }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// How a migration to another version would touch one application in flight.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    /// The application.
    pub application_id: Uuid,
    /// Its reference number.
    pub reference: Option<String>,
    /// Its status code.
    pub status: String,
    /// Its current step.
    pub step: Option<String>,
    /// The version it runs on now.
    pub from_version: i32,
    /// What would change, as message keys with a detail (`step-missing`,
    /// `participants-changed`, …); empty when nothing would.
    pub changes: Vec<Change>,
}

/// One change a migration would make for an application.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `step-missing`, `participants-changed`, `promised-days-changed`, `route-changed`,
    /// `fields-missing`, `materials-missing`.
    pub code: &'static str,
    /// The step, fields or materials concerned.
    pub detail: String,
}

fn compare(old: &Definition, new: &Definition, app: &application::Model) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(step_id) = &app.current_step {
        match (old.step(step_id), new.step(step_id)) {
            (_, None) => out.push(Change {
                code: "step-missing",
                detail: step_id.clone(),
            }),
            (Some(o), Some(n)) => {
                if o.kind != n.kind || o.cc != n.cc {
                    out.push(Change {
                        code: "participants-changed",
                        detail: step_id.clone(),
                    });
                }
                if o.promised_days != n.promised_days {
                    out.push(Change {
                        code: "promised-days-changed",
                        detail: format!("{step_id}: {} → {}", o.promised_days, n.promised_days),
                    });
                }
            }
            (None, Some(_)) => {}
        }
    }
    let route = |d: &Definition| -> Vec<String> {
        planned_route(d, &app.form_data)
            .iter()
            .map(|s| s.id.clone())
            .collect()
    };
    let (ro, rn) = (route(old), route(new));
    // What is still ahead of the current step.
    let ahead = |r: &[String]| -> Vec<String> {
        match app
            .current_step
            .as_ref()
            .and_then(|c| r.iter().position(|s| s == c))
        {
            Some(i) => r[i + 1..].to_vec(),
            None => r.to_vec(),
        }
    };
    if ahead(&ro) != ahead(&rn) {
        out.push(Change {
            code: "route-changed",
            detail: format!("{} → {}", ahead(&ro).join(" → "), ahead(&rn).join(" → ")),
        });
    }
    let form = app.form_data.as_object();
    let missing_fields: Vec<String> = new
        .fields
        .iter()
        .filter(|f| f.required && form.is_none_or(|m| m.get(&f.name).is_none_or(|v| v.is_null())))
        .map(|f| f.name.clone())
        .collect();
    if !missing_fields.is_empty() {
        out.push(Change {
            code: "fields-missing",
            detail: missing_fields.join(", "),
        });
    }
    let old_materials: BTreeSet<&str> = old.materials.iter().map(|m| m.id.as_str()).collect();
    let new_required: Vec<String> = new
        .materials
        .iter()
        .filter(|m| m.required && !old_materials.contains(m.id.as_str()))
        .map(|m| m.id.clone())
        .collect();
    if !new_required.is_empty() {
        out.push(Change {
            code: "materials-missing",
            detail: new_required.join(", "),
        });
    }
    out
}

/// A dry run of migrating every application in flight (submitted, in review, returned)
/// of the version's type onto version `id`: what would change for each. Nothing is written.
/// `None` when there is no such version.
pub async fn migration_dry_run(
    db: &DatabaseConnection,
    id: Uuid,
) -> anyhow::Result<Option<Vec<Impact>>> {
    let Some(row) = workflow_definition::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let orgs = store::load_orgs(db).await?;
    let new = store::definition_by_id(db, id, &orgs).await?;
    let versions: HashMap<Uuid, i32> = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(row.key.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.id, v.version))
        .collect();
    let mut defs: HashMap<Uuid, Definition> = HashMap::new();
    let mut out = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = application::Entity::find()
            .filter(application::Column::AppType.eq(row.key.as_str()))
            .filter(application::Column::DefinitionId.ne(id))
            .filter(application::Column::Status.is_in([
                ApplicationStatus::Submitted,
                ApplicationStatus::InReview,
                ApplicationStatus::Returned,
            ]))
            .order_by_asc(application::Column::Id)
            .limit(500);
        if let Some(a) = after {
            q = q.filter(application::Column::Id.gt(a));
        }
        let apps = q.all(db).await?;
        let Some(last) = apps.last() else { break };
        after = Some(last.id);
        for app in apps {
            if let std::collections::hash_map::Entry::Vacant(slot) = defs.entry(app.definition_id) {
                slot.insert(store::definition_by_id(db, app.definition_id, &orgs).await?);
            }
            let Some(old) = defs.get(&app.definition_id) else {
                continue;
            };
            let changes = compare(old, &new, &app);
            out.push(Impact {
                application_id: app.id,
                reference: app.reference.clone(),
                status: sea_orm::ActiveEnum::to_value(&app.status),
                step: app.current_step.clone(),
                from_version: versions.get(&app.definition_id).copied().unwrap_or(0),
                changes,
            });
        }
    }
    Ok(Some(out))
}

// ---- stuck applications -------------------------------------------------------------------------

/// Why a task is stuck.
#[derive(Debug, Clone, Serialize)]
pub struct StuckTask {
    /// The task.
    pub task_id: Uuid,
    /// Its application.
    pub application_id: Uuid,
    /// The application's reference number.
    pub reference: Option<String>,
    /// The step.
    pub step: String,
    /// The organization holding the task.
    pub org_id: Uuid,
    /// Its code.
    pub org_code: String,
    /// When the step was promised.
    pub due: NaiveDate,
    /// Working days past the promised date (0 when not overdue).
    pub overdue_days: u32,
    /// The organization has no active reviewer.
    pub no_reviewer: bool,
    /// Held by a reviewer who is no longer active (or no longer in the organization).
    pub holder_gone: bool,
    /// Overdue by more than the configured number of working days.
    pub overdue: bool,
    /// The holder's email, if claimed.
    pub holder: Option<String>,
}

/// Live tasks that nobody will work on without help: the organization has no active
/// reviewer, the holder is gone, or the step is more than `after_days` working days past
/// its promised date.
pub async fn stuck_tasks(
    db: &DatabaseConnection,
    after_days: u32,
    today: NaiveDate,
) -> anyhow::Result<Vec<StuckTask>> {
    let calendar = store::load_calendar(db).await?;
    let orgs = store::load_orgs(db).await?;
    let memberships = org_membership::Entity::find()
        .filter(org_membership::Column::Active.eq(true))
        .all(db)
        .await?;
    // Only the users who hold a role: not every applicant account.
    let members: BTreeSet<Uuid> = memberships.iter().map(|m| m.user_id).collect();
    let active_users: BTreeSet<Uuid> = if members.is_empty() {
        BTreeSet::new()
    } else {
        user::Entity::find()
            .filter(user::Column::Id.is_in(members))
            .filter(user::Column::Active.eq(true))
            .all(db)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect()
    };
    let mut staffed: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    for m in memberships {
        if active_users.contains(&m.user_id) {
            staffed.entry(m.org_id).or_default().insert(m.user_id);
        }
    }
    let tasks = task::Entity::find()
        .filter(task::Column::Status.is_in([TaskStatus::Open, TaskStatus::Claimed]))
        .order_by_asc(task::Column::DueDate)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for t in tasks {
        let members = staffed.get(&t.org_id);
        let no_reviewer = members.is_none_or(|m| m.is_empty());
        let holder_gone = t.status == TaskStatus::Claimed
            && t.claimant_id
                .is_none_or(|c| !members.is_some_and(|m| m.contains(&c)));
        let overdue_days = if today > t.due_date {
            calendar.working_days_between(t.due_date, today)
        } else {
            0
        };
        let overdue = overdue_days > after_days;
        if !(no_reviewer || holder_gone || overdue) {
            continue;
        }
        let app = application::Entity::find_by_id(t.application_id)
            .one(db)
            .await?;
        let holder = match t.claimant_id {
            Some(c) => user::Entity::find_by_id(c).one(db).await?.map(|u| u.email),
            None => None,
        };
        out.push(StuckTask {
            task_id: t.id,
            application_id: t.application_id,
            reference: app.and_then(|a| a.reference),
            step: t.step_id.clone(),
            org_id: t.org_id,
            org_code: orgs
                .by_id(t.org_id)
                .map(|o| o.code.clone())
                .unwrap_or_default(),
            due: t.due_date,
            overdue_days,
            no_reviewer,
            holder_gone,
            overdue,
            holder,
        });
    }
    Ok(out)
}

/// Why a reassignment did not happen.
#[derive(Debug)]
pub enum ReassignError {
    /// No such task.
    NotFound,
    /// No user with that email.
    UnknownUser,
    /// The engine refused (its refusal code: `not-a-colleague`, `task-closed`, …).
    Refused(&'static str),
}

/// Transfers (转办) a live task to the reviewer with `email`, through the engine, so the
/// application's history, the notification and the audit chain say what happened.
///
/// The engine writes its history event in its own transaction; the administrative record
/// follows right after it (the store offers no way to add a row to the engine's
/// transaction), so a crash in between leaves the history event without its admin twin.
pub async fn reassign(
    db: &DatabaseConnection,
    actor: Uuid,
    task_id: Uuid,
    email: &str,
) -> anyhow::Result<Result<(), ReassignError>> {
    let Some(t) = task::Entity::find_by_id(task_id).one(db).await? else {
        return Ok(Err(ReassignError::NotFound));
    };
    let Some(to) = crate::accounts::parse_email(email) else {
        return Ok(Err(ReassignError::UnknownUser));
    };
    let Some(to) = user::Entity::find()
        .filter(user::Column::Email.eq(to.as_str()))
        .one(db)
        .await?
    else {
        return Ok(Err(ReassignError::UnknownUser));
    };
    let action = Action::Transfer {
        task: TaskId(task_id),
        to: Assignee {
            user: UserId(to.id),
            orgs: BTreeSet::new(),
        },
    };
    // The transfer and its administrative record commit together, or neither does.
    let recorded = AdminAction {
        actor,
        org: Some(t.org_id),
        action: "task.reassign",
        target: &to.email,
        details: json!({
            "task": task_id, "application": t.application_id,
            "from": t.claimant_id, "to": to.id,
        }),
    };
    match store::execute_recorded(
        db,
        ApplicationId(t.application_id),
        UserId(actor),
        action,
        recorded,
    )
    .await
    {
        Ok(_) => Ok(Ok(())),
        Err(StoreError::Refused(r)) => Ok(Err(ReassignError::Refused(r.code()))),
        Err(StoreError::NotFound) => Ok(Err(ReassignError::NotFound)),
        Err(e) => Err(anyhow::anyhow!(e)),
    }
}

// ---- audit log ---------------------------------------------------------------------------------

/// What the audit search asks for; every criterion optional.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct AuditQuery {
    /// Part of a reference number.
    #[serde(default)]
    pub reference: String,
    /// The acting user's email.
    #[serde(default)]
    pub user: String,
    /// The acting organization's code.
    #[serde(default)]
    pub org: String,
    /// First day (local), `YYYY-MM-DD`.
    #[serde(default)]
    pub from: String,
    /// Last day (local), `YYYY-MM-DD`.
    #[serde(default)]
    pub to: String,
}

/// One history event as the audit page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// The event.
    pub event: history_event::Model,
    /// The application's reference number.
    pub reference: Option<String>,
    /// Who acted.
    pub actor_email: Option<String>,
    /// For which organization.
    pub org_code: Option<String>,
}

/// One administrative event as the audit page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AdminRow {
    /// The event.
    pub event: admin_event::Model,
    /// Who acted.
    pub actor_email: Option<String>,
}

fn local_start(day: NaiveDate) -> Option<chrono::DateTime<chrono::Utc>> {
    let tz = crate::calendar::local_time(chrono::Utc::now())
        .offset()
        .to_owned();
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .single()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// The date range of a query as UTC instants `[from, to)`; problems by field.
fn date_range(
    q: &AuditQuery,
    errors: &mut Vec<FieldError>,
) -> (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
) {
    let mut parse = |field: &str, s: &str| -> Option<NaiveDate> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        if d.is_none() {
            errors.push(ferr(field, "admin-date-invalid"));
        }
        d
    };
    let from = parse("from", &q.from).and_then(local_start);
    let to = parse("to", &q.to)
        .and_then(|d| d.succ_opt())
        .and_then(local_start);
    (from, to)
}

async fn user_id_by_email<C: ConnectionTrait>(db: &C, email: &str) -> Result<Option<Uuid>, DbErr> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?
        .map(|u| u.id))
}

async fn emails<C: ConnectionTrait>(
    db: &C,
    ids: BTreeSet<Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect())
}

/// Searches the applications' history events, newest first (at most `limit`). An
/// unknown user or organization matches nothing.
pub async fn search_history(
    db: &DatabaseConnection,
    q: &AuditQuery,
    limit: u64,
) -> anyhow::Result<Checked<Vec<HistoryRow>>> {
    let mut errors = Vec::new();
    let (from, to) = date_range(q, &mut errors);
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut find = history_event::Entity::find()
        .order_by_desc(history_event::Column::CreatedAt)
        .order_by_desc(history_event::Column::Seq);
    if !q.reference.trim().is_empty() {
        let apps: Vec<Uuid> = application::Entity::find()
            .filter(application::Column::Reference.contains(q.reference.trim().to_uppercase()))
            .limit(1000)
            .all(db)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        find = find.filter(history_event::Column::ApplicationId.is_in(apps));
    }
    if !q.user.trim().is_empty() {
        let id = user_id_by_email(db, &q.user).await?.unwrap_or(Uuid::nil());
        find = find.filter(history_event::Column::ActorUserId.eq(id));
    }
    if !q.org.trim().is_empty() {
        let id = org_by_code(db, &q.org).await?.map_or(Uuid::nil(), |o| o.id);
        find = find.filter(history_event::Column::ActorOrgId.eq(id));
    }
    if let Some(f) = from {
        find = find.filter(history_event::Column::CreatedAt.gte(f));
    }
    if let Some(t) = to {
        find = find.filter(history_event::Column::CreatedAt.lt(t));
    }
    let events = find.limit(limit).all(db).await?;
    let app_ids: BTreeSet<Uuid> = events.iter().map(|e| e.application_id).collect();
    let refs: HashMap<Uuid, Option<String>> = if app_ids.is_empty() {
        HashMap::new()
    } else {
        application::Entity::find()
            .filter(application::Column::Id.is_in(app_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|a| (a.id, a.reference))
            .collect()
    };
    let users = emails(db, events.iter().filter_map(|e| e.actor_user_id).collect()).await?;
    let orgs = store::load_orgs(db).await?;
    Ok(Ok(events
        .into_iter()
        .map(|e| HistoryRow {
            reference: refs.get(&e.application_id).cloned().flatten(),
            actor_email: e.actor_user_id.and_then(|u| users.get(&u).cloned()),
            org_code: e
                .actor_org_id
                .and_then(|o| orgs.by_id(o).map(|o| o.code.clone())),
            event: e,
        })
        .collect()))
}

/// Searches the administrative log, newest first: by acting user, organization concerned
/// and date (the reference criterion does not apply).
pub async fn search_admin_log(
    db: &DatabaseConnection,
    q: &AuditQuery,
    limit: u64,
) -> anyhow::Result<Checked<Vec<AdminRow>>> {
    let mut errors = Vec::new();
    let (from, to) = date_range(q, &mut errors);
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut find = admin_event::Entity::find().order_by_desc(admin_event::Column::Seq);
    if !q.user.trim().is_empty() {
        let id = user_id_by_email(db, &q.user).await?.unwrap_or(Uuid::nil());
        find = find.filter(admin_event::Column::ActorUserId.eq(id));
    }
    if !q.org.trim().is_empty() {
        let id = org_by_code(db, &q.org).await?.map_or(Uuid::nil(), |o| o.id);
        find = find.filter(admin_event::Column::OrgId.eq(id));
    }
    if let Some(f) = from {
        find = find.filter(admin_event::Column::CreatedAt.gte(f));
    }
    if let Some(t) = to {
        find = find.filter(admin_event::Column::CreatedAt.lt(t));
    }
    let events = find.limit(limit).all(db).await?;
    let users = emails(db, events.iter().map(|e| e.actor_user_id).collect()).await?;
    Ok(Ok(events
        .into_iter()
        .map(|e| AdminRow {
            actor_email: users.get(&e.actor_user_id).cloned(),
            event: e,
        })
        .collect()))
}
