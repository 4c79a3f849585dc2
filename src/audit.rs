//! Audit of the history: recomputes every application's hash chain, and replays the
//! recorded effects to check that the stored state is what the history says it is.

use std::collections::BTreeMap;

use entity::{application, history_event, task};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{self, StoreResult, history};

/// One problem found by the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The application.
    pub application_id: Uuid,
    /// Its reference number, when it has one.
    pub reference: Option<String>,
    /// The event concerned (sequence number and id), if any.
    pub event: Option<(i32, Uuid)>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "application {} ({})",
            self.application_id,
            self.reference.as_deref().unwrap_or("no reference")
        )?;
        if let Some((seq, id)) = self.event {
            write!(f, " event #{seq} {id}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Summary of a full audit.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Applications checked.
    pub applications: usize,
    /// Events checked.
    pub events: usize,
    /// Everything that did not match.
    pub problems: Vec<Problem>,
}

const PAGE: u64 = 500;

/// Checks every application's chain and replay, a page of applications at a time so the
/// memory used does not grow with the database.
pub async fn verify(db: &DatabaseConnection) -> StoreResult<Report> {
    let mut report = Report::default();
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = application::Entity::find()
            .order_by_asc(application::Column::Id)
            .limit(PAGE);
        if let Some(a) = after {
            q = q.filter(application::Column::Id.gt(a));
        }
        let apps = q.all(db).await?;
        let Some(last) = apps.last() else { break };
        after = Some(last.id);
        for app in &apps {
            report.applications += 1;
            let events = history_event::Entity::find()
                .filter(history_event::Column::ApplicationId.eq(app.id))
                .order_by_asc(history_event::Column::Seq)
                .all(db)
                .await?;
            report.events += events.len();
            check_chain(app, &events, &mut report.problems);
            let tasks = task::Entity::find()
                .filter(task::Column::ApplicationId.eq(app.id))
                .all(db)
                .await?;
            let held = store::held_returns_of(db, app.id).await?;
            check_replay(app, held.as_ref(), &events, &tasks, &mut report.problems)?;
        }
    }
    Ok(report)
}

fn problem(app: &application::Model, event: Option<&history_event::Model>, msg: String) -> Problem {
    Problem {
        application_id: app.id,
        reference: app.reference.clone(),
        event: event.map(|e| (e.seq, e.id)),
        message: msg,
    }
}

/// Checks sequence numbers, links and hashes of one application's events.
pub fn check_chain(
    app: &application::Model,
    events: &[history_event::Model],
    out: &mut Vec<Problem>,
) {
    let mut prev = history::GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if e.seq != expected_seq {
            out.push(problem(
                app,
                Some(e),
                format!(
                    "sequence number {} where {expected_seq} was expected (an event is missing)",
                    e.seq
                ),
            ));
        }
        if e.prev_hash != prev {
            out.push(problem(
                app,
                Some(e),
                "does not link to the previous event (prev_hash differs)".into(),
            ));
        }
        let expected = history::expected_hash(&e.prev_hash, e);
        if e.hash != expected {
            out.push(problem(
                app,
                Some(e),
                "content was changed after it was written (hash differs)".into(),
            ));
        }
        prev = e.hash.clone();
    }
}

/// Folds the effects recorded in the history and compares the result with the stored
/// application (with its `held_returns` column) and tasks.
pub fn check_replay(
    app: &application::Model,
    held: Option<&Value>,
    events: &[history_event::Model],
    tasks: &[task::Model],
    out: &mut Vec<Problem>,
) -> StoreResult<()> {
    let mut state: Option<Value> = None;
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    for e in events {
        let payload: Value = match serde_json::from_str(&e.payload) {
            Ok(p) => p,
            Err(err) => {
                out.push(problem(app, Some(e), format!("payload is not JSON: {err}")));
                return Ok(());
            }
        };
        let effects = &payload["effects"];
        state = Some(effects["state"].clone());
        for t in effects["opened"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(effects["updated"].as_array().into_iter().flatten())
        {
            let id = t["id"].as_str().unwrap_or_default().to_string();
            replayed.insert(id, t.clone());
        }
    }
    let current = store::state_with_held(app, held, tasks)?;
    let stored = store::effect_state(&current);
    match state {
        None if events.is_empty() && app.status == entity::enums::ApplicationStatus::Draft => {}
        None => out.push(problem(
            app,
            None,
            "has no history but is not a draft".into(),
        )),
        Some(s) if s != stored => out.push(problem(
            app,
            None,
            format!("stored state {stored} differs from the replayed history {s}"),
        )),
        Some(_) => {}
    }
    if tasks.len() != replayed.len() {
        out.push(problem(
            app,
            None,
            format!(
                "{} tasks stored, {} in the history",
                tasks.len(),
                replayed.len()
            ),
        ));
    }
    for t in tasks {
        let stored = serde_json::to_value(store::task_state(t)).map_err(anyhow::Error::from)?;
        match replayed.get(&t.id.to_string()) {
            Some(r) if *r == stored => {}
            Some(r) => out.push(problem(
                app,
                None,
                format!("task {} stored as {stored} but the history says {r}", t.id),
            )),
            None => out.push(problem(
                app,
                None,
                format!("task {} is not in the history", t.id),
            )),
        }
    }
    Ok(())
}
