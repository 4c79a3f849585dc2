//! Workflow definitions: the versions of each type, the diagram of each, uploading a new
//! version, activating one, and a dry run of migrating the applications in flight.

use std::collections::BTreeMap;

use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Form, Multipart, Path},
};
use sea_orm::{EntityTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{not_found, with_status};
use crate::admin::{self, UploadError};
use crate::web::{Ctx, State, i18n, internal, redirect};

/// The upload form: the TOML text.
#[derive(Deserialize, Serialize, Default)]
pub struct UploadForm {
    #[serde(default)]
    source: String,
}

async fn render_list(
    ctx: &Ctx,
    state: &State,
    form: &UploadForm,
    problems: &[Value],
    status: StatusCode,
) -> poem::Result<Response> {
    let rows = entity::workflow_definition::Entity::find()
        .order_by_asc(entity::workflow_definition::Column::Key)
        .order_by_desc(entity::workflow_definition::Column::Version)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in rows {
        by_key.entry(r.key.clone()).or_default().push(json!({
            "id": r.id, "version": r.version, "active": r.active,
            "checksum": r.checksum.get(..12).unwrap_or(&r.checksum),
            "created_at": r.created_at.format("%Y-%m-%d %H:%M").to_string(),
        }));
    }
    let types: Vec<Value> = by_key
        .into_iter()
        .map(|(k, v)| json!({ "key": k, "versions": v }))
        .collect();
    let resp = ctx.page(
        state,
        "pages/admin_workflows",
        "admin-workflows-title",
        json!({
            "types": types, "form": form, "problems": problems,
            "has_problems": !problems.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// Every version of every application type, and the upload form.
#[handler]
pub async fn list(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    admin_only!(ctx);
    render_list(&ctx, &state, &UploadForm::default(), &[], StatusCode::OK).await
}

/// Stores an uploaded definition as a new inactive version, or shows every problem with
/// its line, column and step.
#[handler]
pub async fn upload(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<UploadForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    store_upload(&ctx, &state, me, "upload.toml", form).await
}

/// Stores a definition uploaded as a file (multipart; the CSRF token rides in the query).
#[handler]
pub async fn upload_file(
    ctx: Ctx,
    state: Data<&State>,
    mut multipart: Multipart,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await? {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("upload.toml").to_string();
            file = Some((name, field.bytes().await?));
        }
    }
    let (name, bytes) = file.unwrap_or_default();
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => {
            let problems = vec![json!({ "message": i18n::t(ctx.lang, "admin-workflow-not-utf8") })];
            return render_list(
                &ctx,
                &state,
                &UploadForm::default(),
                &problems,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let name = crate::attachments::safe_filename(&name);
    store_upload(&ctx, &state, me, &name, UploadForm { source }).await
}

async fn store_upload(
    ctx: &Ctx,
    state: &State,
    me: Uuid,
    file: &str,
    form: UploadForm,
) -> poem::Result<Response> {
    let problems: Vec<Value> = match admin::upload_definition(&state.db, me, file, &form.source)
        .await
        .map_err(internal)?
    {
        Ok(id) => {
            ctx.session.flash("admin-flash-workflow-uploaded");
            return Ok(redirect(&format!("/admin/workflows/{id}")));
        }
        Err(UploadError::Invalid(errors)) => errors
            .0
            .iter()
            .map(|e| {
                json!({
                    "line": e.line, "column": e.column, "step": e.step,
                    "message": e.message, "text": e.to_string(),
                })
            })
            .collect(),
        Err(UploadError::Duplicate(key, version)) => vec![json!({
            "message": i18n::t_args(ctx.lang, "admin-workflow-duplicate",
                &[("key", key), ("version", version.to_string())]),
        })],
    };
    render_list(
        ctx,
        state,
        &form,
        &problems,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn render_version(
    ctx: &Ctx,
    state: &State,
    id: Uuid,
    impacts: Option<Vec<admin::Impact>>,
) -> poem::Result<Response> {
    let row = entity::workflow_definition::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let orgs = crate::store::load_orgs(&state.db).await.map_err(internal)?;
    let def = crate::store::definition_by_id(&state.db, id, &orgs)
        .await
        .map_err(internal)?;
    // Generated by workflow::svg, which escapes every text it draws.
    let diagram = crate::workflow::svg::render(&crate::workflow::svg::DiagramInput {
        definition: &def,
        orgs: &orgs,
        locale: ctx.lang,
        states: &BTreeMap::new(),
        form: None,
        company_district: None,
    });
    let dry = impacts.map(|all| {
        let affected: Vec<Value> = all
            .iter()
            .filter(|i| !i.changes.is_empty())
            .map(|i| {
                let changes: Vec<Value> = i
                    .changes
                    .iter()
                    .map(|c| {
                        json!({
                            "label": i18n::t(ctx.lang, &format!("admin-change-{}", c.code)),
                            "code": c.code, "detail": c.detail,
                        })
                    })
                    .collect();
                json!({
                    "application_id": i.application_id, "reference": i.reference,
                    "status": i.status, "step": i.step, "from_version": i.from_version,
                    "changes": changes,
                })
            })
            .collect();
        json!({
            "total": all.len(),
            "unaffected": all.len() - affected.len(),
            "affected": affected,
        })
    });
    ctx.page(
        state,
        "pages/admin_workflow",
        "admin-workflow-title",
        json!({
            "wf": { "id": row.id, "key": row.key, "version": row.version, "active": row.active,
                    "name": def.name.get(ctx.lang), "source": row.source },
            "diagram": diagram, "dry_run": dry,
        }),
    )
}

/// One version: its diagram and source, and the activate button.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>, Path(id): Path<String>) -> poem::Result<Response> {
    admin_only!(ctx);
    let id = super::parse_id(&id)?;
    render_version(&ctx, &state, id, None).await
}

/// What migrating the applications in flight onto this version would change; nothing is
/// written.
#[handler]
pub async fn dry_run(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    let id = super::parse_id(&id)?;
    let impacts = admin::migration_dry_run(&state.db, id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    render_version(&ctx, &state, id, Some(impacts)).await
}

/// Makes this version the active one of its type.
#[handler]
pub async fn activate(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    let id = super::parse_id(&id)?;
    entity::workflow_definition::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if admin::activate_definition(&state.db, me, id)
        .await
        .map_err(internal)?
    {
        ctx.session.flash("admin-flash-workflow-activated");
    } else {
        ctx.session.flash("admin-flash-workflow-already-active");
    }
    Ok(redirect(&format!("/admin/workflows/{id}")))
}
