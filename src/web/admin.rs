//! System administration: organizations, users and roles, workflow definitions, the
//! holiday calendar, the mail outbox, the audit log, stuck applications.
//!
//! The whole area is for system administrators only: anyone else signed in is told it does
//! not exist (404), and a visitor who is not signed in is sent to the login page. Every
//! change goes through `crate::admin`, which records it in the administrative audit chain
//! in the same transaction.

use poem::{IntoResponse, Response, Route, get, handler, http::StatusCode, web::Data};
use serde_json::json;
use uuid::Uuid;

use crate::settings::Settings;
use crate::web::{Ctx, State, internal, redirect};

/// The administrator's user id, or the response that refuses the request: the login
/// page for a visitor, 404 for anyone who is not a system administrator.
fn guard(ctx: &Ctx) -> Result<Uuid, Box<Response>> {
    match &ctx.user {
        None => Err(Box::new(redirect("/login"))),
        Some(u) if ctx.roles.system_admin => Ok(u.user.id),
        Some(_) => Err(Box::new(StatusCode::NOT_FOUND.into_response())),
    }
}

/// Evaluates to the administrator's id, or returns the refusal from the handler.
macro_rules! admin_only {
    ($ctx:expr) => {
        match $crate::web::admin::guard(&$ctx) {
            Ok(id) => id,
            Err(resp) => return Ok(*resp),
        }
    };
}

mod audit;
mod calendar;
mod orgs;
mod outbox;
mod stuck;
mod users;
mod workflows;

/// How many rows a list shows at most.
const LIST_LIMIT: u64 = 200;

fn not_found() -> poem::Error {
    poem::Error::from_status(StatusCode::NOT_FOUND)
}

/// An id from the path, parsed after the guard so that a malformed one is a 404 like any
/// other object that does not exist.
fn parse_id(s: &str) -> poem::Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| not_found())
}

/// A page rendered with a status (422 for a form with mistakes).
fn with_status(resp: Response, status: StatusCode) -> Response {
    resp.with_status(status).into_response()
}

/// The working days a step may be past its promised date before it shows as stuck.
#[derive(Clone, Copy)]
struct StuckAfter(u32);

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, settings: &Settings) -> Route {
    use poem::EndpointExt;
    route
        .at("/admin", get(dashboard))
        .at("/admin/users", get(users::list))
        .at("/admin/users/invite", poem::post(users::invite))
        .at("/admin/users/:id", get(users::show))
        .at("/admin/users/:id/roles", poem::post(users::grant_role))
        .at(
            "/admin/users/:id/roles/:org/revoke",
            poem::post(users::revoke_role),
        )
        .at(
            "/admin/users/:id/system-admin",
            poem::post(users::system_admin),
        )
        .at("/admin/users/:id/active", poem::post(users::active))
        .at("/admin/orgs", get(orgs::list).post(orgs::create))
        .at("/admin/orgs/:id", get(orgs::show).post(orgs::update))
        .at(
            "/admin/workflows",
            get(workflows::list).post(workflows::upload),
        )
        .at(
            "/admin/workflows/file",
            poem::post(workflows::upload_file).with(poem::middleware::SizeLimit::new(1024 * 1024)),
        )
        .at("/admin/workflows/:id", get(workflows::show))
        .at("/admin/workflows/:id/dry-run", get(workflows::dry_run))
        .at(
            "/admin/workflows/:id/activate",
            poem::post(workflows::activate),
        )
        .at("/admin/calendar", get(calendar::show).post(calendar::set))
        .at("/admin/outbox", get(outbox::list))
        .at("/admin/outbox/:id/retry", poem::post(outbox::retry))
        .at("/admin/audit", get(audit::search))
        .at("/admin/audit/verify", get(audit::verify))
        .at(
            "/admin/stuck",
            get(stuck::list).data(StuckAfter(settings.stuck_after_working_days)),
        )
        .at(
            "/admin/stuck/:task/reassign",
            poem::post(stuck::reassign).data(StuckAfter(settings.stuck_after_working_days)),
        )
}

/// The administration dashboard: links to every page, with counts that need attention.
#[handler]
async fn dashboard(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    admin_only!(ctx);
    use entity::enums::OutboxStatus;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let dead = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Status.eq(OutboxStatus::Dead))
        .count(&state.db)
        .await
        .map_err(internal)?;
    let users = entity::user::Entity::find()
        .count(&state.db)
        .await
        .map_err(internal)?;
    let orgs = entity::organization::Entity::find()
        .count(&state.db)
        .await
        .map_err(internal)?;
    ctx.page(
        &state,
        "pages/admin",
        "admin-title",
        json!({ "dead_mail": dead, "users": users, "orgs": orgs }),
    )
}
