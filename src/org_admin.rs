//! Organization administration: an org admin manages the reviewers of their organization
//! (invite by email, deactivate, reactivate), sees its workload and hands the tasks of an
//! absent colleague to another. Every change is recorded with [`crate::admin::record`] in
//! the transaction that makes it; reassignments go through the engine (its history event
//! is the record). The web pages are in `web::org_admin`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{OrgRole, TaskStatus};
use entity::{account_token, application, org_membership, organization, task, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::accounts::FieldError;
use crate::admin::{AdminAction, record};
use crate::ids::{ApplicationId, TaskId, UserId};
use crate::passwords::Hasher;
use crate::store::{self, StoreError};
use crate::workflow::engine::{Action, Assignee};

/// The token kind of an organization invitation (its own page sets name and password).
pub const INVITATION_TOKEN: &str = "org_invitation";
/// How long an invitation link stays valid.
const INVITATION_DAYS: i64 = 7;
/// The stored hash of an account whose owner has not chosen a password yet (the same
/// marker `accounts` uses: not a PHC string, so no password ever matches it).
const NO_PASSWORD: &str = "!invited";
/// Most tasks listed on the reassignment page at once.
pub const TASK_LIST_LIMIT: u64 = 500;

fn err(field: &str, message: &'static str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
    }
}

/// A reviewer of the organization, as the org admin's list shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Reviewer {
    /// The user.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Org admin (else reviewer).
    pub org_admin: bool,
    /// The membership is active and the account can sign in.
    pub active: bool,
    /// Has not accepted the invitation yet.
    pub pending: bool,
}

/// The reviewers (and org admins) of `org`, admins first, then by name.
pub async fn reviewers<C: ConnectionTrait>(db: &C, org: Uuid) -> Result<Vec<Reviewer>, DbErr> {
    let rows = org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(org))
        .all(db)
        .await?;
    let ids: BTreeSet<Uuid> = rows.iter().map(|m| m.user_id).collect();
    let users: BTreeMap<Uuid, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    // A user may hold two rows (reviewer and org admin): one line each person, with the
    // role of their active rows (or of any row, when none is active).
    let mut by_user: BTreeMap<Uuid, Reviewer> = BTreeMap::new();
    let mut admin_rows: BTreeMap<Uuid, (bool, bool)> = BTreeMap::new();
    for m in &rows {
        let Some(u) = users.get(&m.user_id) else {
            continue;
        };
        let live = m.active && u.active;
        let r = by_user.entry(u.id).or_insert_with(|| Reviewer {
            user_id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            org_admin: false,
            active: false,
            pending: u.password_hash == NO_PASSWORD,
        });
        r.active |= live;
        let (active_admin, any_admin) = admin_rows.entry(u.id).or_default();
        if m.role == OrgRole::OrgAdmin {
            *any_admin = true;
            *active_admin |= live;
        }
    }
    for r in by_user.values_mut() {
        let (active_admin, any_admin) = admin_rows.get(&r.user_id).copied().unwrap_or_default();
        r.org_admin = if r.active { active_admin } else { any_admin };
    }
    let mut out: Vec<Reviewer> = by_user.into_values().collect();
    out.sort_by(|a, b| {
        b.active
            .cmp(&a.active)
            .then(b.org_admin.cmp(&a.org_admin))
            .then(a.name.cmp(&b.name))
            .then(a.email.cmp(&b.email))
    });
    Ok(out)
}

/// The organization's row.
pub async fn organization<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
) -> Result<Option<organization::Model>, DbErr> {
    organization::Entity::find_by_id(org).one(db).await
}

/// What an org admin asks for when inviting.
#[derive(Debug, Clone)]
pub struct Invite<'a> {
    /// The org admin.
    pub admin: Uuid,
    /// Their organization.
    pub org: Uuid,
    /// The address typed.
    pub email: &'a str,
    /// Reviewer or org admin.
    pub role: OrgRole,
    /// The language of the invitation email (the admin's page language).
    pub locale: &'a str,
}

/// What an invitation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invited {
    /// A new account was created and the invitation email queued.
    NewUser(Uuid),
    /// The address belonged to an existing account, now a member of the organization.
    ExistingUser(Uuid),
}

/// Invites a reviewer by email: a new address gets an account without a password and an
/// email with a link to choose their name and password; an existing account is added to
/// the organization at once. One transaction with its audit record.
pub async fn invite(
    db: &DatabaseConnection,
    inv: Invite<'_>,
) -> Result<Result<Invited, Vec<FieldError>>, anyhow::Error> {
    let mut errors = Vec::new();
    let Some(email) = crate::accounts::required_email("email", inv.email, &mut errors) else {
        return Ok(Err(errors));
    };
    let Some(org) = organization(db, inv.org).await? else {
        return Err(anyhow::anyhow!("organization {} vanished", inv.org));
    };
    let admin = user::Entity::find_by_id(inv.admin)
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("admin vanished"))?;
    let txn = db.begin().await?;
    match invite_in(&txn, &inv, &email, &org, &admin).await {
        Ok(Ok(outcome)) => {
            txn.commit().await?;
            Ok(Ok(outcome))
        }
        Ok(Err(errors)) => {
            txn.rollback().await?;
            Ok(Err(errors))
        }
        // Two admins inviting the same address at once: the second meets the unique
        // index on the email or on the membership, and is told as for any repeat.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(Err(vec![err("email", "orgadmin-error-already-member")]))
        }
        Err(e) => Err(e.into()),
    }
}

async fn invite_in(
    txn: &sea_orm::DatabaseTransaction,
    inv: &Invite<'_>,
    email: &str,
    org: &organization::Model,
    admin: &user::Model,
) -> Result<Result<Invited, Vec<FieldError>>, DbErr> {
    let email = email.to_string();
    let now = store::now();
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(txn)
        .await?;
    let outcome = match existing {
        Some(u) => {
            let memberships = org_membership::Entity::find()
                .filter(org_membership::Column::OrgId.eq(inv.org))
                .filter(org_membership::Column::UserId.eq(u.id))
                .all(txn)
                .await?;
            if memberships.iter().any(|m| m.active) {
                return Ok(Err(vec![err("email", "orgadmin-error-already-member")]));
            }
            if !memberships.is_empty() {
                return Ok(Err(vec![err("email", "orgadmin-error-inactive-member")]));
            }
            add_membership(txn, inv.org, u.id, inv.role, now).await?;
            Invited::ExistingUser(u.id)
        }
        None => {
            let id = Uuid::now_v7();
            let local = email.split('@').next().unwrap_or_default().to_string();
            let u = user::ActiveModel {
                id: Set(id),
                email: Set(email.clone()),
                name: Set(local),
                password_hash: Set(NO_PASSWORD.to_string()),
                locale: Set(inv.locale.to_string()),
                active: Set(true),
                email_verified_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            add_membership(txn, inv.org, id, inv.role, now).await?;
            let expires = now + Duration::days(INVITATION_DAYS);
            let token = crate::accounts::issue_token(
                txn,
                id,
                INVITATION_TOKEN,
                Duration::days(INVITATION_DAYS),
            )
            .await?;
            let org_name = if inv.locale.starts_with("en") {
                org.name_en.clone()
            } else {
                org.name_zh.clone()
            };
            // A path: the mail composer puts the portal's base URL in front of it.
            crate::accounts::queue_account_mail(
                txn,
                "invitation",
                &u,
                json!({
                    "link": format!("/org-invitation?token={token}"),
                    "inviter": admin.name,
                    "inviter_org": org_name,
                    "expires": expires,
                }),
            )
            .await?;
            Invited::NewUser(id)
        }
    };
    record(
        txn,
        AdminAction {
            actor: inv.admin,
            org: Some(inv.org),
            action: match outcome {
                Invited::NewUser(_) => "org.reviewer.invite",
                Invited::ExistingUser(_) => "org.reviewer.add",
            },
            target: &email,
            details: json!({
                "user": match outcome { Invited::NewUser(u) | Invited::ExistingUser(u) => u },
                "role": match inv.role { OrgRole::Reviewer => "reviewer", OrgRole::OrgAdmin => "org_admin" },
            }),
        },
    )
    .await?;
    Ok(Ok(outcome))
}

async fn add_membership<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
    user: Uuid,
    role: OrgRole,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org),
        user_id: Set(user),
        role: Set(role),
        active: Set(true),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Why a membership could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipError {
    /// The user is not a member of the organization.
    NotFound,
    /// The organization would be left without an active org admin.
    LastAdmin,
}

/// Deactivates (or reactivates) every membership of `member` in `org`. The account itself
/// stays as it is (it may belong to other organizations); the roles are read on every
/// request, so a deactivated reviewer loses the organization's work at once. The
/// organization always keeps at least one active org admin.
pub async fn set_active(
    db: &DatabaseConnection,
    admin: Uuid,
    org: Uuid,
    member: Uuid,
    active: bool,
) -> Result<Result<(), MembershipError>, anyhow::Error> {
    let txn = db.begin().await?;
    // Changes to one organization's memberships take turns (PostgreSQL locks the row;
    // SQLite has one writer at a time anyway): two admins deactivating each other at
    // the same moment cannot both pass the last-admin check.
    organization::Entity::find_by_id(org)
        .lock_exclusive()
        .one(&txn)
        .await?;
    let rows = org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(org))
        .filter(org_membership::Column::UserId.eq(member))
        .all(&txn)
        .await?;
    let Some(target) = user::Entity::find_by_id(member).one(&txn).await? else {
        return Ok(Err(MembershipError::NotFound));
    };
    if rows.is_empty() {
        return Ok(Err(MembershipError::NotFound));
    }
    if !active && rows.iter().any(|m| m.role == OrgRole::OrgAdmin && m.active) {
        let other_admins = org_membership::Entity::find()
            .filter(org_membership::Column::OrgId.eq(org))
            .filter(org_membership::Column::Role.eq(OrgRole::OrgAdmin))
            .filter(org_membership::Column::Active.eq(true))
            .filter(org_membership::Column::UserId.ne(member))
            .count(&txn)
            .await?;
        if other_admins == 0 {
            return Ok(Err(MembershipError::LastAdmin));
        }
    }
    org_membership::Entity::update_many()
        .col_expr(org_membership::Column::Active, Expr::value(active))
        .filter(org_membership::Column::OrgId.eq(org))
        .filter(org_membership::Column::UserId.eq(member))
        .exec(&txn)
        .await?;
    record(
        &txn,
        AdminAction {
            actor: admin,
            org: Some(org),
            action: if active {
                "org.reviewer.reactivate"
            } else {
                "org.reviewer.deactivate"
            },
            target: &target.email,
            details: json!({ "user": member }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(()))
}

/// A reviewer's share of the organization's live tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Tasks open (claimed by the reviewer, or unclaimed).
    pub open: i64,
    /// Of which past their promised date.
    pub overdue: i64,
}

/// The organization's workload, counted by aggregate queries on the tasks index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// Claimed tasks per claimant.
    pub by_claimant: BTreeMap<Uuid, Load>,
    /// Open tasks nobody has claimed.
    pub unclaimed: Load,
}

async fn claimed_counts<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
    overdue_before: Option<NaiveDate>,
) -> Result<Vec<(Option<Uuid>, i64)>, DbErr> {
    let mut q = task::Entity::find()
        .select_only()
        .column(task::Column::ClaimantId)
        .column_as(task::Column::Id.count(), "n")
        .filter(task::Column::OrgId.eq(org))
        .filter(task::Column::Status.eq(TaskStatus::Claimed));
    if let Some(d) = overdue_before {
        q = q.filter(task::Column::DueDate.lt(d));
    }
    q.group_by(task::Column::ClaimantId)
        .into_tuple::<(Option<Uuid>, i64)>()
        .all(db)
        .await
}

/// Counts the open and overdue tasks of `org` per reviewer, and the unclaimed ones.
/// A task is overdue when its promised date is before `today` (the local date).
pub async fn workload<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
    today: NaiveDate,
) -> Result<Workload, DbErr> {
    let mut w = Workload::default();
    for (claimant, n) in claimed_counts(db, org, None).await? {
        if let Some(c) = claimant {
            w.by_claimant.entry(c).or_default().open = n;
        }
    }
    for (claimant, n) in claimed_counts(db, org, Some(today)).await? {
        if let Some(c) = claimant {
            w.by_claimant.entry(c).or_default().overdue = n;
        }
    }
    let open = || {
        task::Entity::find()
            .filter(task::Column::OrgId.eq(org))
            .filter(task::Column::Status.eq(TaskStatus::Open))
    };
    w.unclaimed.open = i64::try_from(open().count(db).await?).unwrap_or(i64::MAX);
    w.unclaimed.overdue = i64::try_from(
        open()
            .filter(task::Column::DueDate.lt(today))
            .count(db)
            .await?,
    )
    .unwrap_or(i64::MAX);
    Ok(w)
}

/// When each reviewer last acted for `org` (the newest history event they recorded for
/// it), by one aggregate query over the history's (organization, user, time) index.
pub async fn last_activity<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
) -> Result<BTreeMap<Uuid, chrono::DateTime<chrono::Utc>>, DbErr> {
    use entity::history_event;
    let rows: Vec<(Option<Uuid>, Option<chrono::DateTime<chrono::Utc>>)> =
        history_event::Entity::find()
            .select_only()
            .column(history_event::Column::ActorUserId)
            .column_as(history_event::Column::CreatedAt.max(), "last")
            .filter(history_event::Column::ActorOrgId.eq(org))
            .group_by(history_event::Column::ActorUserId)
            .into_tuple()
            .all(db)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(u, t)| Some((u?, t?)))
        .collect())
}

/// Whose tasks to list for reassignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Tasks claimed by this user.
    User(Uuid),
    /// Open tasks nobody has claimed.
    Unclaimed,
}

/// A live task of the organization, as the reassignment page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    /// The task.
    pub task_id: Uuid,
    /// Its application.
    pub application_id: Uuid,
    /// The application's reference number.
    pub reference: Option<String>,
    /// The application type's name.
    pub type_name: String,
    /// The workflow step's name.
    pub step_name: String,
    /// The promised date.
    pub due: NaiveDate,
    /// Past the promised date.
    pub overdue: bool,
}

/// The live tasks of `org` held by `holder`, earliest promised date first (at most
/// [`TASK_LIST_LIMIT`]), with the names of their type and step in `lang`.
pub async fn tasks_of<C: ConnectionTrait>(
    db: &C,
    org: Uuid,
    holder: Holder,
    today: NaiveDate,
    lang: &str,
) -> Result<Vec<TaskRow>, StoreError> {
    let q = task::Entity::find().filter(task::Column::OrgId.eq(org));
    let q = match holder {
        Holder::User(u) => q
            .filter(task::Column::Status.eq(TaskStatus::Claimed))
            .filter(task::Column::ClaimantId.eq(u)),
        Holder::Unclaimed => q.filter(task::Column::Status.eq(TaskStatus::Open)),
    };
    let tasks = q
        .order_by_asc(task::Column::DueDate)
        .order_by_asc(task::Column::Id)
        .limit(TASK_LIST_LIMIT)
        .all(db)
        .await?;
    let app_ids: BTreeSet<Uuid> = tasks.iter().map(|t| t.application_id).collect();
    let apps: BTreeMap<Uuid, application::Model> = application::Entity::find()
        .filter(application::Column::Id.is_in(app_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    // A handful of definition versions at most: each parsed once.
    let orgs = store::load_orgs(db).await?;
    let mut defs = BTreeMap::new();
    for def_id in apps.values().map(|a| a.definition_id) {
        if let std::collections::btree_map::Entry::Vacant(e) = defs.entry(def_id) {
            e.insert(store::definition_by_id(db, def_id, &orgs).await?);
        }
    }
    Ok(tasks
        .into_iter()
        .map(|t| {
            let app = apps.get(&t.application_id);
            let def = app.and_then(|a| defs.get(&a.definition_id));
            TaskRow {
                task_id: t.id,
                application_id: t.application_id,
                reference: app.and_then(|a| a.reference.clone()),
                type_name: def
                    .map(|d| d.name.get(lang).to_string())
                    .unwrap_or_default(),
                step_name: def
                    .and_then(|d| d.step(&t.step_id))
                    .map_or_else(|| t.step_id.clone(), |s| s.name.get(lang).to_string()),
                due: t.due_date,
                overdue: t.due_date < today,
            }
        })
        .collect())
}

/// Which tasks to reassign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These tasks (each must belong to the organization).
    Tasks(Vec<Uuid>),
    /// Every task the user has claimed in the organization.
    AllOf(Uuid),
}

/// What happened to one task.
#[derive(Debug, Clone, Serialize)]
pub struct Reassigned {
    /// The task.
    pub task_id: Uuid,
    /// The application's reference number.
    pub reference: Option<String>,
    /// `None` when it was transferred; else the message key of the reason.
    pub refusal: Option<String>,
}

/// Why a reassignment could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignError {
    /// A selected task is not one of the organization's.
    UnknownTask,
}

/// Transfers the selected tasks of `org` to `to`, each through the engine (转办) as the
/// org admin: each is one transaction with its history event, and a task the engine
/// refuses keeps its holder and reports the reason.
pub async fn reassign(
    db: &DatabaseConnection,
    admin: Uuid,
    org: Uuid,
    selection: Selection,
    to: Uuid,
) -> Result<Result<Vec<Reassigned>, ReassignError>, anyhow::Error> {
    let tasks = match &selection {
        Selection::Tasks(ids) => {
            let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
            let found = task::Entity::find()
                .filter(task::Column::Id.is_in(unique.iter().copied()))
                .filter(task::Column::OrgId.eq(org))
                .all(db)
                .await?;
            if found.len() != unique.len() {
                return Ok(Err(ReassignError::UnknownTask));
            }
            found
        }
        Selection::AllOf(u) => {
            task::Entity::find()
                .filter(task::Column::OrgId.eq(org))
                .filter(task::Column::Status.eq(TaskStatus::Claimed))
                .filter(task::Column::ClaimantId.eq(*u))
                .order_by_asc(task::Column::DueDate)
                .all(db)
                .await?
        }
    };
    let app_ids: BTreeSet<Uuid> = tasks.iter().map(|t| t.application_id).collect();
    let refs: BTreeMap<Uuid, Option<String>> = application::Entity::find()
        .filter(application::Column::Id.is_in(app_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.reference))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let action = Action::Transfer {
            task: TaskId(t.id),
            to: Assignee {
                user: UserId(to),
                orgs: Default::default(),
            },
        };
        // The transfer and its administrative record commit together, or neither does.
        let target = to.to_string();
        let recorded = crate::admin::AdminAction {
            actor: admin,
            org: Some(org),
            action: "org.task.reassign",
            target: &target,
            details: serde_json::json!({
                "task": t.id, "application": t.application_id, "from": t.claimant_id, "to": to,
            }),
        };
        let refusal = match store::execute_recorded(
            db,
            ApplicationId(t.application_id),
            UserId(admin),
            action,
            recorded,
        )
        .await
        {
            Ok(_) => None,
            Err(StoreError::Refused(r)) => Some(format!("refusal-{}", r.code())),
            Err(StoreError::Conflict) => Some("orgadmin-reassign-conflict".to_string()),
            Err(StoreError::NotFound) => Some("refusal-unknown-task".to_string()),
            Err(e) => return Err(anyhow::anyhow!(e)),
        };
        tracing::info!(task_id = %t.id, org_id = %org, refused = refusal.is_some(), "org admin reassigned a task");
        out.push(Reassigned {
            task_id: t.id,
            reference: refs.get(&t.application_id).cloned().flatten(),
            refusal,
        });
    }
    Ok(Ok(out))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why an invitation link was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// Unknown, already used, or of another kind.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// The invited reviewer sets their name and password with the link from the invitation;
/// the link is used once, the email counts as verified. Returns the user.
pub async fn accept_invitation(
    db: &DatabaseConnection,
    hasher: &Hasher,
    token: &str,
    name: &str,
    password: &str,
) -> Result<Result<Uuid, AcceptError>, anyhow::Error> {
    // Hash first, outside the transaction (Argon2 is slow).
    let hash = hasher.hash(password.to_string()).await?;
    let txn = db.begin().await?;
    let now = store::now();
    let Some(row) = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(token_hash(token)))
        .filter(account_token::Column::Kind.eq(INVITATION_TOKEN))
        .one(&txn)
        .await?
    else {
        return Ok(Err(AcceptError::Invalid));
    };
    if row.used_at.is_some() {
        return Ok(Err(AcceptError::Invalid));
    }
    if row.expires_at <= now {
        return Ok(Err(AcceptError::Expired));
    }
    // Used once even when the link is opened twice at the same moment.
    let used = account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(account_token::Column::Id.eq(row.id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if used.rows_affected == 0 {
        return Ok(Err(AcceptError::Invalid));
    }
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value(name.trim().to_string()))
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(Some(now)))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(row.user_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Ok(row.user_id))
}
