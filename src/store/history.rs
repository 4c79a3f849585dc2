//! The append-only, hash-chained history of an application.
//!
//! Each event stores `hash = SHA-256(prev_hash ‖ content)`, where the content covers every
//! column of the event; the first event's `prev_hash` is [`GENESIS`]. Editing, deleting or
//! reordering an event breaks the chain from that event on.

use chrono::{DateTime, SecondsFormat, Utc};
use entity::history_event;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `prev_hash` of an application's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of an event that the hash covers.
pub struct EventContent<'a> {
    /// Event id.
    pub id: Uuid,
    /// Application.
    pub application_id: Uuid,
    /// Position in the application's history, from 1.
    pub seq: i32,
    /// Kind.
    pub kind: &'a str,
    /// Acting user.
    pub actor_user_id: Option<Uuid>,
    /// The organization the user acted for.
    pub actor_org_id: Option<Uuid>,
    /// Reviewers only.
    pub internal: bool,
    /// JSON text, hashed as stored.
    pub payload: &'a str,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn opt(id: Option<Uuid>) -> String {
    id.map(|u| u.to_string()).unwrap_or_default()
}

/// The chain hash of an event given the previous event's hash.
pub fn chain_hash(prev_hash: &str, e: &EventContent<'_>) -> String {
    let mut h = Sha256::new();
    // Length-prefix every part so that no two different events serialize alike.
    for part in [
        prev_hash.to_string(),
        e.id.to_string(),
        e.application_id.to_string(),
        e.seq.to_string(),
        e.kind.to_string(),
        opt(e.actor_user_id),
        opt(e.actor_org_id),
        e.internal.to_string(),
        e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        e.payload.to_string(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The hash a stored event should have, given the previous hash.
pub fn expected_hash(prev_hash: &str, m: &history_event::Model) -> String {
    chain_hash(
        prev_hash,
        &EventContent {
            id: m.id,
            application_id: m.application_id,
            seq: m.seq,
            kind: &m.kind,
            actor_user_id: m.actor_user_id,
            actor_org_id: m.actor_org_id,
            internal: m.internal,
            payload: &m.payload,
            created_at: m.created_at,
        },
    )
}
