//! Users and their roles: search, organization roles, system administrators,
//! deactivation, reviewer accounts created by invitation.

use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Form, Path, Query},
};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{LIST_LIMIT, not_found, with_status};
use crate::accounts::FieldError;
use crate::admin;
use crate::web::{Ctx, State, field_errors, internal, redirect};

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// The invitation form.
#[derive(Deserialize, Serialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    org_code: String,
    #[serde(default)]
    role: String,
}

async fn render_list(
    ctx: &Ctx,
    state: &State,
    q: &str,
    form: &InviteForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let rows = admin::search_users(&state.db, q, LIST_LIMIT)
        .await
        .map_err(internal)?;
    let users: Vec<_> = rows
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id, "email": u.email, "name": u.name, "active": u.active,
                "pending": u.password_hash == "!invited",
            })
        })
        .collect();
    let resp = ctx.page(
        state,
        "pages/admin_users",
        "admin-users-title",
        json!({
            "q": q, "users": users, "form": form,
            "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// Users, searched by email or name.
#[handler]
pub async fn list(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<SearchQuery>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    render_list(
        &ctx,
        &state,
        &q.q,
        &InviteForm::default(),
        &[],
        StatusCode::OK,
    )
    .await
}

/// Creates a reviewer's account and emails them the invitation.
#[handler]
pub async fn invite(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<InviteForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    match admin::invite_org_member(
        &state.db,
        me,
        &form.email,
        &form.name,
        &form.org_code,
        &form.role,
        ctx.lang,
        &state.base_url,
    )
    .await
    .map_err(internal)?
    {
        Ok(id) => {
            ctx.session.flash("admin-flash-invited");
            Ok(redirect(&format!("/admin/users/{id}")))
        }
        Err(errors) => {
            render_list(
                &ctx,
                &state,
                "",
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The grant form.
#[derive(Deserialize, Serialize, Default)]
pub struct RoleForm {
    #[serde(default)]
    org_code: String,
    #[serde(default)]
    role: String,
}

async fn render_user(
    ctx: &Ctx,
    state: &State,
    id: Uuid,
    form: &RoleForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let u = entity::user::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let roles = admin::roles_of(&state.db, id).await.map_err(internal)?;
    let sysadmin = admin::is_system_admin(&state.db, id)
        .await
        .map_err(internal)?;
    let orgs = crate::store::load_orgs(&state.db).await.map_err(internal)?;
    let mut sorted: Vec<_> = orgs.iter().collect();
    sorted.sort_by(|a, b| a.code.cmp(&b.code));
    let org_options: Vec<_> = sorted
        .into_iter()
        .map(|o| {
            json!({ "code": o.code, "name": if ctx.lang == "en" { &o.name_en } else { &o.name_zh } })
        })
        .collect();
    let is_me = ctx.user.as_ref().is_some_and(|me| me.user.id == id);
    let resp = ctx.page(
        state,
        "pages/admin_user",
        "admin-user-title",
        json!({
            "u": { "id": u.id, "email": u.email, "name": u.name, "active": u.active,
                   "pending": u.password_hash == "!invited" },
            "roles": roles, "system_admin": sysadmin, "is_me": is_me, "orgs": org_options,
            "form": form, "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// One user: roles, system administration, active flag.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>, Path(id): Path<String>) -> poem::Result<Response> {
    admin_only!(ctx);
    let id = super::parse_id(&id)?;
    render_user(&ctx, &state, id, &RoleForm::default(), &[], StatusCode::OK).await
}

/// Grants a role in an organization.
#[handler]
pub async fn grant_role(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    match admin::grant_org_role(&state.db, me, id, &form.org_code, &form.role)
        .await
        .map_err(internal)?
    {
        Ok(()) => {
            ctx.session.flash("admin-flash-role-granted");
            Ok(redirect(&format!("/admin/users/{id}")))
        }
        Err(errors) => {
            render_user(
                &ctx,
                &state,
                id,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// Revokes a role in an organization.
#[handler]
pub async fn revoke_role(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, org)): Path<(String, String)>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let (id, org) = (super::parse_id(&id)?, super::parse_id(&org)?);
    if !admin::revoke_org_role(&state.db, me, id, org)
        .await
        .map_err(internal)?
    {
        return Err(not_found());
    }
    ctx.session.flash("admin-flash-role-revoked");
    Ok(redirect(&format!("/admin/users/{id}")))
}

/// 404 unless the user exists.
async fn exists(state: &State, id: Uuid) -> poem::Result<()> {
    entity::user::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .map(|_| ())
        .ok_or_else(not_found)
}

#[derive(Deserialize)]
pub struct FlagForm {
    /// `true` or `false` (absent: `false`, so a malformed request from a non-administrator
    /// still gets the area's 404 rather than a parse error).
    #[serde(default)]
    value: String,
}

/// Grants or revokes system administration.
#[handler]
pub async fn system_admin(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<FlagForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    let grant = form.value == "true";
    exists(&state, id).await?;
    if !admin::set_system_admin(&state.db, me, id, grant)
        .await
        .map_err(internal)?
    {
        return Err(poem::Error::from_status(StatusCode::FORBIDDEN));
    }
    ctx.session.flash(if grant {
        "admin-flash-sysadmin-granted"
    } else {
        "admin-flash-sysadmin-revoked"
    });
    Ok(redirect(&format!("/admin/users/{id}")))
}

/// Deactivates or reactivates a user.
#[handler]
pub async fn active(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<FlagForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    let active = form.value == "true";
    exists(&state, id).await?;
    if !admin::set_user_active(&state.db, me, id, active)
        .await
        .map_err(internal)?
    {
        return Err(poem::Error::from_status(StatusCode::FORBIDDEN));
    }
    ctx.session.flash(if active {
        "admin-flash-user-reactivated"
    } else {
        "admin-flash-user-deactivated"
    });
    Ok(redirect(&format!("/admin/users/{id}")))
}
