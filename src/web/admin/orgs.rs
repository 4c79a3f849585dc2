//! Organizations: the list, adding one, editing names, supervisor and active flag.

use entity::enums::OrgKind;
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Form, Path},
};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{not_found, with_status};
use crate::accounts::FieldError;
use crate::admin::{self, OrgForm};
use crate::web::{Ctx, State, field_errors, internal, redirect};

const KINDS: [&str; 4] = [
    "city_bureau",
    "district",
    "platform_operator",
    "coordination_mechanism",
];

fn kind_code(k: OrgKind) -> &'static str {
    match k {
        OrgKind::CityBureau => KINDS[0],
        OrgKind::District => KINDS[1],
        OrgKind::PlatformOperator => KINDS[2],
        OrgKind::CoordinationMechanism => KINDS[3],
    }
}

fn row(o: &entity::organization::Model) -> Value {
    json!({
        "id": o.id, "code": o.code, "name_zh": o.name_zh, "name_en": o.name_en,
        "kind": kind_code(o.kind), "supervisor_code": o.supervisor_code, "active": o.active,
    })
}

async fn render_list(
    ctx: &Ctx,
    state: &State,
    form: &OrgForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let orgs: Vec<Value> = entity::organization::Entity::find()
        .order_by_asc(entity::organization::Column::SortOrder)
        .order_by_asc(entity::organization::Column::Code)
        .all(&state.db)
        .await
        .map_err(internal)?
        .iter()
        .map(row)
        .collect();
    let resp = ctx.page(
        state,
        "pages/admin_orgs",
        "admin-orgs-title",
        json!({
            "orgs": orgs, "kinds": KINDS, "form": form,
            "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// Every organization, and the form to add one.
#[handler]
pub async fn list(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    admin_only!(ctx);
    render_list(&ctx, &state, &OrgForm::default(), &[], StatusCode::OK).await
}

/// Adds an organization.
#[handler]
pub async fn create(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<OrgForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    match admin::create_org(&state.db, me, &form)
        .await
        .map_err(internal)?
    {
        Ok(_) => {
            ctx.session.flash("admin-flash-org-created");
            Ok(redirect("/admin/orgs"))
        }
        Err(errors) => {
            render_list(
                &ctx,
                &state,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn render_org(
    ctx: &Ctx,
    state: &State,
    id: Uuid,
    form: Option<&OrgForm>,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let o = entity::organization::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let form = match form {
        Some(f) => json!(f),
        None => json!({
            "name_zh": o.name_zh, "name_en": o.name_en,
            "supervisor_code": o.supervisor_code.clone().unwrap_or_default(),
            "active": if o.active { Some("on") } else { None },
        }),
    };
    let resp = ctx.page(
        state,
        "pages/admin_org",
        "admin-org-title",
        json!({
            "org": row(&o), "form": form,
            "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// One organization's edit form.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>, Path(id): Path<String>) -> poem::Result<Response> {
    admin_only!(ctx);
    let id = super::parse_id(&id)?;
    render_org(&ctx, &state, id, None, &[], StatusCode::OK).await
}

/// Saves an organization's names, supervisor and active flag.
#[handler]
pub async fn update(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<OrgForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    match admin::update_org(&state.db, me, id, &form)
        .await
        .map_err(internal)?
    {
        None => Err(not_found()),
        Some(Ok(())) => {
            ctx.session.flash("admin-flash-org-saved");
            Ok(redirect("/admin/orgs"))
        }
        Some(Err(errors)) => {
            render_org(
                &ctx,
                &state,
                id,
                Some(&form),
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
