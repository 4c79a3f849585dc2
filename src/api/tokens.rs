//! Personal API tokens: created on the web or by the CLI, shown once, stored as the
//! SHA-256 of the secret, named, with an optional expiry, revocable, listed with their
//! last use. A token carries exactly its user's rights.

use chrono::{DateTime, Duration, Utc};
use entity::{api_token, user};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store;

/// Every token starts with this, so secret scanners and people can recognise it.
pub const TOKEN_PREFIX: &str = "zg_";
/// The longest name of a token.
pub const NAME_MAX: usize = 100;
/// The longest lifetime of a token, in days.
pub const EXPIRES_DAYS_MAX: i64 = 3650;

/// Why a token could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The name is empty or longer than [`NAME_MAX`].
    Name,
    /// The lifetime is not between 1 and [`EXPIRES_DAYS_MAX`] days.
    Expiry,
}

/// A new token: the stored row and the secret, which is never stored nor shown again.
pub struct NewToken {
    /// The stored row.
    pub row: api_token::Model,
    /// The secret (`zg_` + 64 hex digits).
    pub secret: String,
}

/// SHA-256 hex of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Creates a token for `user_id`, valid for `expires_days` days (None: until revoked).
pub async fn create<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    name: &str,
    expires_days: Option<i64>,
) -> Result<Result<NewToken, TokenError>, DbErr> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Ok(Err(TokenError::Name));
    }
    if let Some(d) = expires_days
        && !(1..=EXPIRES_DAYS_MAX).contains(&d)
    {
        return Ok(Err(TokenError::Expiry));
    }
    let now = store::now();
    let secret = random_secret();
    let row = api_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        name: Set(name.to_string()),
        token_hash: Set(hash(&secret)),
        prefix: Set(secret.chars().take(TOKEN_PREFIX.len() + 6).collect()),
        created_at: Set(now),
        expires_at: Set(expires_days.map(|d| now + Duration::days(d))),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(Ok(NewToken { row, secret }))
}

/// The user's tokens, newest first (revoked ones included, marked).
pub async fn list<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
) -> Result<Vec<api_token::Model>, DbErr> {
    api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .order_by_desc(api_token::Column::CreatedAt)
        .all(db)
        .await
}

/// Revokes the user's token `id`; false when the user has no such token.
pub async fn revoke<C: ConnectionTrait>(db: &C, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let Some(row) = api_token::Entity::find_by_id(id)
        .filter(api_token::Column::UserId.eq(user_id))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    if row.revoked_at.is_none() {
        let mut am: api_token::ActiveModel = row.into();
        am.revoked_at = Set(Some(store::now()));
        am.update(db).await?;
    }
    Ok(true)
}

/// Whether a token row may be used at `now`.
pub fn usable(row: &api_token::Model, now: DateTime<Utc>) -> bool {
    row.revoked_at.is_none() && row.expires_at.is_none_or(|e| e > now)
}

/// The active user a secret belongs to, if the token is known, not revoked, not
/// expired; records the use.
pub async fn authenticate<C: ConnectionTrait>(
    db: &C,
    secret: &str,
) -> Result<Option<user::Model>, DbErr> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    // The token and its user in one statement (every API call starts here).
    let owner = api_token::Entity::belongs_to(user::Entity)
        .from(api_token::Column::UserId)
        .to(user::Column::Id)
        .into();
    // `all`, not `one`: the hash is unique, and `one` adds a bound `LIMIT`, for which SQLite
    // prepares the statement again every time it runs.
    let Some((row, Some(u))) = api_token::Entity::find()
        .select_also(user::Entity)
        .join(JoinType::InnerJoin, owner)
        .filter(api_token::Column::TokenHash.eq(hash(secret)))
        .all(db)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let now = store::now();
    if !usable(&row, now) || !u.active {
        return Ok(None);
    }
    // Record the use at most once a minute per token, to spare the database.
    if row
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(60))
    {
        let mut am: api_token::ActiveModel = row.into();
        am.last_used_at = Set(Some(now));
        am.update(db).await?;
    }
    Ok(Some(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = random_secret();
        let b = random_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("zg_"));
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash(&a).len(), 64);
    }
}
