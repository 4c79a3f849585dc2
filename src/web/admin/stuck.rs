//! Stuck applications: tasks whose organization has nobody to work them, whose holder is
//! gone, or that are far past their promised date; with reassignment to a named reviewer.

use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Form, Path},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{StuckAfter, not_found, with_status};
use crate::admin::{self, ReassignError};
use crate::web::{Ctx, State, i18n, internal, redirect};

/// The reassign form.
#[derive(Deserialize, Serialize, Default)]
pub struct ReassignForm {
    #[serde(default)]
    email: String,
}

async fn render(
    ctx: &Ctx,
    state: &State,
    after: u32,
    failed: Option<(Uuid, &ReassignForm, String)>,
    status: StatusCode,
) -> poem::Result<Response> {
    let today = crate::calendar::local_date(crate::store::now());
    let tasks = admin::stuck_tasks(&state.db, after, today)
        .await
        .map_err(internal)?;
    let rows: Vec<_> = tasks
        .into_iter()
        .map(|t| {
            let (email, error) = match &failed {
                Some((id, f, msg)) if *id == t.task_id => (f.email.clone(), Some(msg.clone())),
                _ => (String::new(), None),
            };
            json!({ "t": t, "email": email, "error": error })
        })
        .collect();
    let resp = ctx.page(
        state,
        "pages/admin_stuck",
        "admin-stuck-title",
        json!({
            "rows": rows, "after": after,
            "has_errors": failed.is_some(),
            "errors": { "list": failed.as_ref().map(|(id, _, msg)| vec![json!({ "field": format!("email-{id}"), "message": msg })]).unwrap_or_default() },
        }),
    )?;
    Ok(with_status(resp, status))
}

/// The stuck tasks.
#[handler]
pub async fn list(
    ctx: Ctx,
    state: Data<&State>,
    after: Data<&StuckAfter>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    render(&ctx, &state, after.0.0, None, StatusCode::OK).await
}

/// Transfers a stuck task to the reviewer with the given email.
#[handler]
pub async fn reassign(
    ctx: Ctx,
    state: Data<&State>,
    after: Data<&StuckAfter>,
    Path(task): Path<String>,
    Form(form): Form<ReassignForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let task = super::parse_id(&task)?;
    let key = match admin::reassign(&state.db, me, task, &form.email)
        .await
        .map_err(internal)?
    {
        Ok(()) => {
            ctx.session.flash("admin-flash-reassigned");
            return Ok(redirect("/admin/stuck"));
        }
        Err(ReassignError::NotFound) => return Err(not_found()),
        Err(ReassignError::UnknownUser) => "error-admin-unknown-user".to_string(),
        Err(ReassignError::Refused(code)) => format!("refusal-{code}"),
    };
    let msg = i18n::t(ctx.lang, &key);
    render(
        &ctx,
        &state,
        after.0.0,
        Some((task, &form, msg)),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}
