//! The audit log: the applications' history events and the administrative log, searched
//! by reference, user, organization and date; and the verification of both hash chains.

use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Query},
};
use serde_json::json;

use super::{LIST_LIMIT, with_status};
use crate::admin::{self, AuditQuery};
use crate::web::{Ctx, State, field_errors, internal};

/// Searches both logs with the same criteria.
#[handler]
pub async fn search(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<AuditQuery>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    let history = admin::search_history(&state.db, &q, LIST_LIMIT)
        .await
        .map_err(internal)?;
    let admin_log = admin::search_admin_log(&state.db, &q, LIST_LIMIT)
        .await
        .map_err(internal)?;
    let (history, admin_log, errors) = match (history, admin_log) {
        (Ok(h), Ok(a)) => (h, a, Vec::new()),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Vec::new(), e),
    };
    let history: Vec<_> = history
        .into_iter()
        .map(|r| {
            json!({
                "application_id": r.event.application_id, "reference": r.reference,
                "seq": r.event.seq, "kind": r.event.kind, "internal": r.event.internal,
                "actor": r.actor_email, "org": r.org_code,
                "at": r.event.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
        })
        .collect();
    let admin_log: Vec<_> = admin_log
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.event.seq, "action": r.event.action, "target": r.event.target,
                "actor": r.actor_email, "details": r.event.details,
                "at": r.event.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let resp = ctx.page(
        &state,
        "pages/admin_audit",
        "admin-audit-title",
        json!({
            "q": q, "history": history, "admin_log": admin_log,
            "errors": field_errors(ctx.lang, &errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// Recomputes every application's history chain and replay (as `zhigang audit verify`)
/// and the administrative chain, and shows the result. Reads only.
#[handler]
pub async fn verify(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    admin_only!(ctx);
    let report = crate::audit::verify(&state.db).await.map_err(internal)?;
    let admin_chain = admin::verify_chain(&state.db).await.map_err(internal)?;
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    let ok = problems.is_empty() && admin_chain.is_none();
    ctx.page(
        &state,
        "pages/admin_verify",
        "admin-verify-title",
        json!({
            "ok": ok,
            "applications": report.applications,
            "events": report.events,
            "problems": problems,
            "admin_broken": admin_chain.map(|(seq, id)| json!({ "seq": seq, "id": id })),
        }),
    )
}
