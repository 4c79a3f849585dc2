//! Reference data loaded at start-up: organizations, the holiday calendar, the built-in
//! workflow definitions, and the first system administrator.

use chrono::Utc;
use entity::{calendar_day, organization, system_admin, user, workflow_definition};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use crate::calendar;
use crate::organizations::{OrgDirectory, seed_organizations};
use crate::passwords;
use crate::store;
use crate::workflow::definition::{Definition, DefinitionErrors};

/// Inserts the seed organizations that are missing (by code). Rows that exist are left as
/// administrators edited them.
pub async fn organizations(db: &DatabaseConnection) -> anyhow::Result<()> {
    let existing: Vec<String> = organization::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|o| o.code)
        .collect();
    for (i, s) in seed_organizations()?.into_iter().enumerate() {
        if existing.contains(&s.code) {
            continue;
        }
        organization::ActiveModel {
            id: Set(Uuid::now_v7()),
            code: Set(s.code),
            name_zh: Set(s.name_zh),
            name_en: Set(s.name_en),
            kind: Set(s.kind),
            supervisor_code: Set(s.supervisor),
            active: Set(true),
            sort_order: Set(i32::try_from(i)?),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Inserts the built-in calendar rows whose dates are missing.
pub async fn calendar(db: &DatabaseConnection) -> anyhow::Result<()> {
    let existing: Vec<chrono::NaiveDate> = calendar_day::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|d| d.day)
        .collect();
    for e in calendar::builtin_entries()? {
        if existing.contains(&e.date) {
            continue;
        }
        calendar_day::ActiveModel {
            id: Set(Uuid::now_v7()),
            day: Set(e.date),
            kind: Set(e.kind.as_str().to_string()),
            name: Set(e.name),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Result of loading one definition source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The same text is already stored as this version.
    Unchanged(i32),
    /// Stored as a new, active version; applications in flight keep theirs.
    NewVersion(i32),
}

/// Stores a definition source as a new active version unless the same text is already
/// stored. Earlier versions stay, deactivated, for the applications that run on them.
pub async fn load_definition(
    db: &DatabaseConnection,
    file: &str,
    source: &str,
    orgs: &OrgDirectory,
) -> anyhow::Result<Result<Loaded, DefinitionErrors>> {
    let def = match Definition::parse(file, source, orgs) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let checksum = Definition::checksum(source);
    let txn = db.begin().await?;
    let versions = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Key.eq(def.key.as_str()))
        .order_by_desc(workflow_definition::Column::Version)
        .all(&txn)
        .await?;
    if let Some(same) = versions.iter().find(|v| v.checksum == checksum) {
        let version = same.version;
        txn.commit().await?;
        return Ok(Ok(Loaded::Unchanged(version)));
    }
    let version = versions.first().map_or(1, |v| v.version + 1);
    workflow_definition::Entity::update_many()
        .col_expr(
            workflow_definition::Column::Active,
            sea_orm::sea_query::Expr::value(false),
        )
        .filter(workflow_definition::Column::Key.eq(def.key.as_str()))
        .exec(&txn)
        .await?;
    workflow_definition::ActiveModel {
        id: Set(Uuid::now_v7()),
        key: Set(def.key.clone()),
        version: Set(version),
        source: Set(source.to_string()),
        checksum: Set(checksum),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Ok(Loaded::NewVersion(version)))
}

/// Loads the built-in definitions (see [`crate::workflow::definition::BUILTIN`]).
pub async fn definitions(db: &DatabaseConnection) -> anyhow::Result<()> {
    let orgs = store::load_orgs(db).await?;
    for (file, source) in crate::workflow::definition::BUILTIN {
        match load_definition(db, file, source, &orgs).await? {
            Ok(Loaded::NewVersion(v)) => {
                tracing::info!(
                    file,
                    version = v,
                    "workflow definition loaded as a new version"
                )
            }
            Ok(Loaded::Unchanged(_)) => {}
            Err(e) => anyhow::bail!("built-in definition is invalid:\n{e}"),
        }
    }
    Ok(())
}

/// All reference data, in order.
pub async fn all(db: &DatabaseConnection) -> anyhow::Result<()> {
    organizations(db).await?;
    calendar(db).await?;
    definitions(db).await?;
    Ok(())
}

/// On the first start with an empty database: creates a system administrator with a
/// random password, returned so the caller can print it once (never logged).
pub async fn first_admin(db: &DatabaseConnection) -> anyhow::Result<Option<(String, String)>> {
    if system_admin::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let email = "admin@localhost".to_string();
    if user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let password = passwords::generate();
    let hash = passwords::Hasher::default().hash(password.clone()).await?;
    let txn = db.begin().await?;
    let id = create_user_row(&txn, &email, "系统管理员", &hash).await?;
    system_admin::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(id),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some((email, password)))
}

/// Inserts a user row (active, verified, zh-CN) and returns its id.
pub async fn create_user_row<C: ConnectionTrait>(
    db: &C,
    email: &str,
    name: &str,
    password_hash: &str,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    user::ActiveModel {
        id: Set(id),
        email: Set(email.to_lowercase()),
        name: Set(name.to_string()),
        password_hash: Set(password_hash.to_string()),
        locale: Set("zh-CN".to_string()),
        active: Set(true),
        email_verified_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(id)
}
