//! Notification preferences: which kinds of email mail a user, and how.
//!
//! Preferences apply at delivery (in the worker), not when the outbox row is written: the
//! row is the record of the event in every case, and the delivery log says what became of
//! it — sent, switched off by the recipient, or waiting for the daily digest. Account and
//! security emails are always sent, whatever is stored; the server also refuses to store
//! anything but `immediate` for them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::notification_preference::{self, NotificationMode};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};
use uuid::Uuid;

/// Account and security emails: always sent, never switched off.
pub const ALWAYS_ON: &[&str] = &[
    "verification",
    "password_reset",
    "password_changed",
    "invitation",
];

/// What an applicant company's members are mailed about.
pub const APPLICANT_KINDS: &[&str] = &[
    "submitted",
    "resubmitted",
    "returned",
    "approved",
    "rejected",
    "withdrawn",
    "message",
    "revision_due_soon",
];

/// What reviewers and org admins are mailed about.
pub const REVIEWER_KINDS: &[&str] = &[
    "task_arrived",
    "cc",
    "task_transferred",
    "task_delegated",
    "delegation_returned",
    "reminder",
    "task_due_soon",
    "task_due_today",
    "task_escalated",
    "signer_removed",
    "sibling_returned",
    "sibling_rejected",
    "low_rating",
];

/// The kinds a reviewer may take in the daily digest instead of one email each.
pub const DIGESTIBLE: &[&str] = &["task_arrived"];

/// The kind of the daily digest email itself (sent only to those who chose it).
pub const DIGEST_KIND: &str = "digest";

/// Whether `kind` is an account or security email.
pub fn is_always_on(kind: &str) -> bool {
    ALWAYS_ON.contains(&kind)
}

/// Whether a user may choose anything for `kind` (it is a kind they could be mailed and
/// not an account email).
pub fn is_choosable(kind: &str) -> bool {
    APPLICANT_KINDS.contains(&kind) || REVIEWER_KINDS.contains(&kind)
}

/// Why a preference was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefError {
    /// Account and security emails cannot be switched off or delayed.
    #[error("account and security emails are always sent")]
    AlwaysOn,
    /// The digest is for new tasks, and only for reviewers.
    #[error("the daily digest is only for reviewers' new tasks")]
    DigestNotAllowed,
    /// Not a kind of email the portal sends.
    #[error("unknown kind of email")]
    UnknownKind,
}

/// Checks one choice. `is_reviewer`: the user works tasks of some organization.
pub fn check(kind: &str, mode: NotificationMode, is_reviewer: bool) -> Result<(), PrefError> {
    if is_always_on(kind) {
        return match mode {
            NotificationMode::Immediate => Ok(()),
            NotificationMode::Digest | NotificationMode::Off => Err(PrefError::AlwaysOn),
        };
    }
    if !is_choosable(kind) {
        return Err(PrefError::UnknownKind);
    }
    match mode {
        NotificationMode::Immediate | NotificationMode::Off => Ok(()),
        NotificationMode::Digest if is_reviewer && DIGESTIBLE.contains(&kind) => Ok(()),
        NotificationMode::Digest => Err(PrefError::DigestNotAllowed),
    }
}

/// The stored choices of `user` (kinds without a row are immediate).
pub async fn modes_of<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
) -> Result<HashMap<String, NotificationMode>, DbErr> {
    Ok(notification_preference::Entity::find()
        .filter(notification_preference::Column::UserId.eq(user))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.kind, p.mode))
        .collect())
}

/// How an email of `kind` to `user` is to be delivered now. Account emails and the digest
/// itself are always immediate; a stored `digest` for a kind that cannot be digested
/// counts as immediate.
pub async fn effective_mode<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    kind: &str,
) -> Result<NotificationMode, DbErr> {
    if !is_stored_for(kind) {
        return Ok(NotificationMode::Immediate);
    }
    let stored = notification_preference::Entity::find()
        .filter(notification_preference::Column::UserId.eq(user))
        .filter(notification_preference::Column::Kind.eq(kind))
        .one(db)
        .await?
        .map(|p| p.mode);
    Ok(effective(kind, stored))
}

/// Whether a stored choice can matter for `kind` (not an account email, not the digest).
fn is_stored_for(kind: &str) -> bool {
    !is_always_on(kind) && kind != DIGEST_KIND
}

/// How an email of `kind` is delivered, given the recipient's stored choice for it (see
/// [`effective_mode`]).
pub fn effective(kind: &str, stored: Option<NotificationMode>) -> NotificationMode {
    if !is_stored_for(kind) {
        return NotificationMode::Immediate;
    }
    match stored {
        Some(NotificationMode::Digest) if !DIGESTIBLE.contains(&kind) => {
            NotificationMode::Immediate
        }
        Some(m) => m,
        None => NotificationMode::Immediate,
    }
}

/// The stored choices of several recipients at once, for the kinds given: what
/// [`effective_mode`] reads, for a whole batch of rows in one statement. Each entry is
/// (user, kind); a kind for which a choice cannot matter is not read.
pub async fn stored_modes<C: ConnectionTrait>(
    db: &C,
    wanted: &[(Uuid, &str)],
) -> Result<HashMap<(Uuid, String), NotificationMode>, DbErr> {
    let mut users: Vec<Uuid> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for (user, kind) in wanted.iter().filter(|(_, k)| is_stored_for(k)) {
        if !users.contains(user) {
            users.push(*user);
        }
        if !kinds.iter().any(|k| k == kind) {
            kinds.push((*kind).to_string());
        }
    }
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(notification_preference::Entity::find()
        .filter(notification_preference::Column::UserId.is_in(users))
        .filter(notification_preference::Column::Kind.is_in(kinds))
        .all(db)
        .await?
        .into_iter()
        .map(|p| ((p.user_id, p.kind), p.mode))
        .collect())
}

/// Stores `choices` of `user` in one transaction, after checking every one of them;
/// nothing is stored when any is refused (the refusals are returned by kind).
pub async fn save(
    db: &DatabaseConnection,
    user: Uuid,
    choices: &[(String, NotificationMode)],
    is_reviewer: bool,
    now: DateTime<Utc>,
) -> Result<Result<(), Vec<(String, PrefError)>>, DbErr> {
    let refused: Vec<(String, PrefError)> = choices
        .iter()
        .filter_map(|(k, m)| check(k, *m, is_reviewer).err().map(|e| (k.clone(), e)))
        .collect();
    if !refused.is_empty() {
        return Ok(Err(refused));
    }
    let txn = db.begin().await?;
    for (kind, mode) in choices {
        if is_always_on(kind) {
            continue;
        }
        notification_preference::Entity::insert(notification_preference::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user),
            kind: Set(kind.clone()),
            mode: Set(*mode),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                notification_preference::Column::UserId,
                notification_preference::Column::Kind,
            ])
            .update_columns([
                notification_preference::Column::Mode,
                notification_preference::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_mail_cannot_be_switched_off_and_the_digest_is_for_reviewers_new_tasks() {
        use NotificationMode::*;
        for k in ALWAYS_ON {
            assert_eq!(check(k, Off, true), Err(PrefError::AlwaysOn));
            assert_eq!(check(k, Digest, true), Err(PrefError::AlwaysOn));
            assert_eq!(check(k, Immediate, false), Ok(()));
        }
        assert_eq!(check("task_arrived", Digest, true), Ok(()));
        assert_eq!(
            check("task_arrived", Digest, false),
            Err(PrefError::DigestNotAllowed)
        );
        assert_eq!(
            check("approved", Digest, true),
            Err(PrefError::DigestNotAllowed)
        );
        assert_eq!(check("approved", Off, false), Ok(()));
        assert_eq!(check("nonsense", Off, false), Err(PrefError::UnknownKind));
    }

    #[test]
    fn every_kind_with_a_template_is_classified_once() {
        for kind in super::super::render::kinds() {
            let n = [ALWAYS_ON, APPLICANT_KINDS, REVIEWER_KINDS]
                .iter()
                .filter(|l| l.contains(&kind))
                .count()
                + usize::from(kind == DIGEST_KIND);
            assert_eq!(n, 1, "{kind}");
        }
    }
}
