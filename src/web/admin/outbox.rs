//! The mail outbox: queued, failed and dead messages, with retry of dead ones.

use poem::{
    Response, handler,
    web::{Data, Path, Query},
};
use serde::Deserialize;
use serde_json::json;

use super::LIST_LIMIT;
use crate::admin::{self, OutboxFilter};
use crate::web::{Ctx, State, internal, redirect};

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    status: String,
}

/// Messages not yet delivered (or only those of one status).
#[handler]
pub async fn list(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<StatusQuery>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    let filter = OutboxFilter::parse(&q.status);
    let rows = admin::outbox_rows(&state.db, filter, LIST_LIMIT)
        .await
        .map_err(internal)?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let status = match (r.status, r.last_error.is_some()) {
                (entity::enums::OutboxStatus::Queued, false) => "queued",
                (entity::enums::OutboxStatus::Queued, true) => "failed",
                (entity::enums::OutboxStatus::Dead, _) => "dead",
                (entity::enums::OutboxStatus::Sent, _) => "sent",
            };
            json!({
                "id": r.id, "kind": r.kind, "to": r.recipient_email, "status": status,
                "dead": status == "dead", "attempts": r.attempts, "error": r.last_error,
                "created_at": r.created_at.format("%Y-%m-%d %H:%M").to_string(),
                "next_attempt_at": r.next_attempt_at.format("%Y-%m-%d %H:%M").to_string(),
            })
        })
        .collect();
    let filters: Vec<_> = ["", "queued", "failed", "dead", "sent"]
        .iter()
        .map(|f| json!({ "value": f, "current": *f == q.status.as_str() }))
        .collect();
    ctx.page(
        &state,
        "pages/admin_outbox",
        "admin-outbox-title",
        json!({ "rows": rows, "filters": filters, "status": q.status }),
    )
}

/// Puts a dead message back in the queue.
#[handler]
pub async fn retry(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    if <entity::outbox::Entity as sea_orm::EntityTrait>::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .is_none()
    {
        return Err(poem::Error::from_status(poem::http::StatusCode::NOT_FOUND));
    }
    // A second click (or a row that never died) changes nothing and says so.
    if admin::retry_mail(&state.db, me, id)
        .await
        .map_err(internal)?
    {
        ctx.session.flash("admin-flash-mail-retried");
    } else {
        ctx.session.flash("admin-flash-mail-not-dead");
    }
    Ok(redirect("/admin/outbox?status=dead"))
}
