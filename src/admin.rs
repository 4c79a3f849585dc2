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
