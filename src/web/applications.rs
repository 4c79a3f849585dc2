//! The applicant's side: choose a type, fill the sections, attach materials, check the
//! answers, submit, follow the application, answer a return (补正), withdraw.

use std::collections::BTreeMap;

use entity::enums::{ApplicationStatus, TaskStatus};
use entity::{application, attachment, company_member, history_event, task};
use poem::{
    IntoResponse, Response, handler,
    http::{StatusCode, header},
    web::{Data, Multipart, Path, Query},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::FieldError;
use crate::forms::{self, SectionStatus};
use crate::ids::{ApplicationId, CompanyId, UserId};
use crate::organizations::OrgDirectory;
use crate::store::{self, StoreError};
use crate::web::{Ctx, State, field_errors, i18n, internal, redirect};
use crate::workflow::definition::{Definition, FieldType};
use crate::workflow::engine::{Action, ItemKind, Refusal, planned_route};

fn not_found() -> poem::Error {
    poem::Error::from_status(StatusCode::NOT_FOUND)
}

async fn company_of(state: &State, user: UserId) -> poem::Result<Option<CompanyId>> {
    Ok(company_member::Entity::find()
        .filter(company_member::Column::UserId.eq(user.0))
        .filter(company_member::Column::Active.eq(true))
        .one(&state.db)
        .await
        .map_err(internal)?
        .map(|m| CompanyId(m.company_id)))
}

/// The application, if the user may see it (404 otherwise: its existence is not revealed).
async fn load_visible(
    state: &State,
    user: UserId,
    id: Uuid,
) -> poem::Result<(application::Model, Definition, OrgDirectory)> {
    let app = application::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if !store::can_view(&state.db, &app, user)
        .await
        .map_err(internal)?
    {
        return Err(not_found());
    }
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    let def = store::definition_by_id(&state.db, app.definition_id, &orgs)
        .await
        .map_err(internal)?;
    Ok((app, def, orgs))
}

/// The application, if the user is an active member of its company: the pages that
/// prepare, submit, withdraw or rate an application are the applicant's alone. Anyone
/// else — reviewers and administrators included — is told it does not exist.
async fn load_own(
    state: &State,
    user: UserId,
    id: Uuid,
) -> poem::Result<(application::Model, Definition, OrgDirectory)> {
    let loaded = load_visible(state, user, id).await?;
    let member = company_member::Entity::find()
        .filter(company_member::Column::CompanyId.eq(loaded.0.company_id))
        .filter(company_member::Column::UserId.eq(user.0))
        .filter(company_member::Column::Active.eq(true))
        .one(&state.db)
        .await
        .map_err(internal)?
        .is_some();
    if member { Ok(loaded) } else { Err(not_found()) }
}

pub(crate) fn status_label(lang: &str, status: ApplicationStatus) -> String {
    let key = match status {
        ApplicationStatus::Draft => "status-draft",
        ApplicationStatus::Submitted => "status-submitted",
        ApplicationStatus::InReview => "status-in_review",
        ApplicationStatus::Returned => "status-returned",
        ApplicationStatus::Approved => "status-approved",
        ApplicationStatus::Rejected => "status-rejected",
        ApplicationStatus::Withdrawn => "status-withdrawn",
    };
    i18n::t(lang, key)
}

pub(crate) fn status_code(status: ApplicationStatus) -> &'static str {
    match status {
        ApplicationStatus::Draft => "draft",
        ApplicationStatus::Submitted => "submitted",
        ApplicationStatus::InReview => "in_review",
        ApplicationStatus::Returned => "returned",
        ApplicationStatus::Approved => "approved",
        ApplicationStatus::Rejected => "rejected",
        ApplicationStatus::Withdrawn => "withdrawn",
    }
}

fn promised_days(def: &Definition) -> u32 {
    def.case_promised_days.unwrap_or_else(|| {
        planned_route(def, &json!({}))
            .iter()
            .map(|s| s.promised_days)
            .sum()
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
}

/// "My applications": the company's applications, newest first, filtered by status.
#[handler]
pub async fn list(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ListQuery>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let Some(company) = company_of(&state, user).await? else {
        return Err(not_found());
    };
    let mut query = application::Entity::find()
        .filter(application::Column::CompanyId.eq(company.0))
        .order_by_desc(application::Column::CreatedAt);
    let filter = ApplicationStatus::try_from_code(&q.status);
    if let Some(s) = filter {
        query = query.filter(application::Column::Status.eq(s));
    }
    let apps = query.all(&state.db).await.map_err(internal)?;
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    let mut defs: BTreeMap<Uuid, Definition> = BTreeMap::new();
    let mut rows = Vec::new();
    for a in apps {
        if let std::collections::btree_map::Entry::Vacant(slot) = defs.entry(a.definition_id) {
            let d = store::definition_by_id(&state.db, a.definition_id, &orgs)
                .await
                .map_err(internal)?;
            slot.insert(d);
        }
        let Some(def) = defs.get(&a.definition_id) else {
            continue;
        };
        let step = a
            .current_step
            .as_deref()
            .and_then(|s| def.step(s))
            .map(|s| s.name.get(ctx.lang).to_string());
        rows.push(json!({
            "id": a.id,
            "reference": a.reference,
            "type": def.name.get(ctx.lang),
            "status": status_label(ctx.lang, a.status),
            "status_code": status_code(a.status),
            "step": step,
            "promised": a.case_due.or(a.step_due).map(|d| d.to_string()),
        }));
    }
    let statuses: Vec<Value> = ApplicationStatus::ALL
        .iter()
        .map(|s| json!({ "code": status_code(*s), "label": status_label(ctx.lang, *s), "selected": filter == Some(*s) }))
        .collect();
    ctx.page(
        &state,
        "pages/apps_list",
        "apps-title",
        json!({ "apps": rows, "statuses": statuses }),
    )
}

/// Choose a type: who it is for, what it gives, the promised time.
#[handler]
pub async fn new_form(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    if ctx.user_id().is_none() {
        return Ok(redirect("/login"));
    }
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    let mut types = Vec::new();
    for key in ["yqyc", "ip_fast_track", "platform_access"] {
        if let Ok((_, def)) = store::active_definition(&state.db, key, &orgs).await {
            types.push(json!({
                "key": def.key,
                "name": def.name.get(ctx.lang),
                "summary": def.summary.get(ctx.lang),
                "days": promised_days(&def),
            }));
        }
    }
    ctx.page(
        &state,
        "pages/apps_new",
        "apps-new-title",
        json!({ "types": types }),
    )
}

#[derive(Deserialize)]
pub struct NewForm {
    #[serde(default)]
    app_type: String,
}

/// Creates a draft and opens its task list.
#[handler]
pub async fn create(
    ctx: Ctx,
    state: Data<&State>,
    poem::web::Form(form): poem::web::Form<NewForm>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let Some(company) = company_of(&state, user).await? else {
        return Err(not_found());
    };
    match store::create_draft(&state.db, company, user, &form.app_type, json!({})).await {
        Ok(id) => Ok(redirect(&format!("/applications/{id}"))),
        Err(StoreError::NotFound) => Err(poem::Error::from_status(StatusCode::BAD_REQUEST)),
        Err(e) => Err(internal(e)),
    }
}

fn flagged(app: &application::Model, kind: ItemKind) -> BTreeMap<String, String> {
    store::state_of(app, &[])
        .map(|s| {
            s.return_items
                .into_iter()
                .filter(|i| i.kind == kind)
                .map(|i| (i.id, i.note))
                .collect()
        })
        .unwrap_or_default()
}

async fn current_attachments(
    state: &State,
    app: Uuid,
) -> poem::Result<BTreeMap<String, attachment::Model>> {
    store::current_attachments(&state.db, app)
        .await
        .map_err(internal)
}

fn section_rows(def: &Definition, app: &application::Model, lang: &str) -> Vec<Value> {
    let flags = flagged(app, ItemKind::Section);
    def.sections
        .iter()
        .map(|s| {
            let status =
                forms::section_status(def, &s.id, &app.form_data, flags.contains_key(&s.id));
            let status_key = match status {
                SectionStatus::NotStarted => "section-not-started",
                SectionStatus::InProgress => "section-in-progress",
                SectionStatus::Complete => "section-complete",
                SectionStatus::NeedsFixing => "section-needs-fixing",
            };
            json!({
                "id": s.id,
                "name": s.name.get(lang),
                "status": i18n::t(lang, status_key),
                "status_code": status,
                "note": flags.get(&s.id),
                "editable": app.status == ApplicationStatus::Draft || flags.contains_key(&s.id),
            })
        })
        .collect()
}

pub(crate) fn material_rows(
    def: &Definition,
    app: &application::Model,
    current: &BTreeMap<String, attachment::Model>,
    lang: &str,
) -> Vec<Value> {
    let flags = flagged(app, ItemKind::Material);
    def.materials
        .iter()
        .map(|m| {
            let file = current.get(&m.id);
            json!({
                "id": m.id,
                "name": m.name.get(lang),
                "required": m.required,
                "file": file.map(|f| json!({ "id": f.id, "filename": f.filename, "size_kb": (f.size + 1023) / 1024 })),
                "note": flags.get(&m.id),
                "editable": app.status == ApplicationStatus::Draft || flags.contains_key(&m.id),
            })
        })
        .collect()
}

/// The application: a task list while it is a draft or returned; otherwise its progress.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>, Path(id): Path<Uuid>) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, orgs) = load_visible(&state, user, id).await?;
    let current = current_attachments(&state, app.id).await?;
    let sections = section_rows(&def, &app, ctx.lang);
    let mut materials = material_rows(&def, &app, &current, ctx.lang);
    // 一企一档: documents kept on the company profile can be attached without uploading.
    let profile = store::profile_documents(&state.db, app.company_id)
        .await
        .map_err(internal)?;
    for m in &mut materials {
        let doc = m["id"].as_str().and_then(|id| profile.get(id));
        if let Some(doc) = doc
            && m["editable"].as_bool().unwrap_or(false)
        {
            m["profile"] = json!({ "filename": doc.filename });
        }
    }
    let all_complete = sections.iter().all(|s| s["status_code"] == "complete")
        && materials
            .iter()
            .all(|m| !m["required"].as_bool().unwrap_or(false) || !m["file"].is_null());
    let returned = flagged(&app, ItemKind::Section)
        .into_iter()
        .chain(flagged(&app, ItemKind::Material))
        .count();
    let data = json!({
        "app": app_summary(&app, &def, ctx.lang),
        "sections": sections,
        "materials": materials,
        "ready": all_complete,
        "is_draft": app.status == ApplicationStatus::Draft,
        "is_returned": app.status == ApplicationStatus::Returned,
        "return_count": returned,
        "decided": matches!(app.status, ApplicationStatus::Approved | ApplicationStatus::Rejected),
        "can_withdraw": ctx.roles.companies.contains(&app.company_id) && matches!(app.status, ApplicationStatus::Submitted | ApplicationStatus::InReview | ApplicationStatus::Returned),
        "timeline": timeline(&state, &app, &def, &orgs, ctx.lang).await?,
        "diagram": diagram(&state, &app, &def, &orgs, ctx.lang).await?,
        "history": public_history(&state, &app, &orgs, ctx.lang).await?,
        "deliveries": delivery_log(&state, &app, user, ctx.lang).await?,
        "items": return_items(&app, &def, &orgs, ctx.lang),
    });
    ctx.page(&state, "pages/app_show", "app-title", data)
}

pub(crate) fn app_summary(app: &application::Model, def: &Definition, lang: &str) -> Value {
    json!({
        "id": app.id,
        "reference": app.reference,
        "type": def.name.get(lang),
        "status": status_label(lang, app.status),
        "status_code": status_code(app.status),
        "version": app.version,
        "step": app.current_step.as_deref().and_then(|s| def.step(s)).map(|s| s.name.get(lang).to_string()),
        "step_due": app.step_due.map(|d| d.to_string()),
        "case_due": app.case_due.map(|d| d.to_string()),
        "revision_due": app.revision_due.map(|d| d.to_string()),
        "submitted_at": app.submitted_at.map(|t| crate::calendar::local_date(t).to_string()),
        "decided_at": app.decided_at.map(|t| crate::calendar::local_date(t).to_string()),
    })
}

/// What the applicant must fix, each item with the organization that asks for it (a merged
/// return lists the items of several countersigning organizations at once).
pub(crate) fn return_items(
    app: &application::Model,
    def: &Definition,
    orgs: &OrgDirectory,
    lang: &str,
) -> Vec<Value> {
    /// A stored item: a [`crate::workflow::engine::ReturnItem`] plus who asked for it.
    #[derive(serde::Deserialize)]
    struct Item {
        kind: ItemKind,
        id: String,
        note: String,
        #[serde(default)]
        org: Option<Uuid>,
    }
    let items: Vec<Item> = app
        .return_items
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    items
        .into_iter()
        .map(|i| {
            let name = match i.kind {
                ItemKind::Section => def
                    .sections
                    .iter()
                    .find(|s| s.id == i.id)
                    .map(|s| s.name.get(lang).to_string()),
                ItemKind::Material => def
                    .materials
                    .iter()
                    .find(|m| m.id == i.id)
                    .map(|m| m.name.get(lang).to_string()),
            }
            .unwrap_or(i.id);
            let org = i
                .org
                .and_then(|o| orgs.by_id(o))
                .map(|o| o.name(lang).to_string());
            // The page shows the name: it carries the organization too.
            let label = match (&org, lang) {
                (Some(o), "en") => format!("{name} ({o})"),
                (Some(o), _) => format!("{name}({o})"),
                (None, _) => name.clone(),
            };
            json!({ "name": label, "item": name, "org": org, "note": i.note })
        })
        .collect()
}

/// The workflow drawn as SVG with the application's position: steps before the current
/// one done, the current one highlighted. The markup is generated by `workflow::svg`,
/// which escapes every text it draws.
pub(crate) async fn diagram(
    state: &State,
    app: &application::Model,
    def: &Definition,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<String> {
    use crate::workflow::svg::{self, DiagramInput, StepState};
    let route = planned_route(def, &app.form_data);
    let current = app.current_step.as_deref();
    let current_index = current.and_then(|c| route.iter().position(|s| s.id == c));
    let mut states = BTreeMap::new();
    for (i, step) in route.iter().enumerate() {
        let st = match (app.status, current_index) {
            (ApplicationStatus::Approved, _) => StepState::Done,
            (_, Some(c)) if i < c => StepState::Done,
            (_, Some(c)) if i == c => StepState::Current,
            _ => StepState::Upcoming,
        };
        states.insert(step.id.clone(), st);
    }
    let district = entity::company::Entity::find_by_id(app.company_id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .and_then(|c| orgs.by_id(c.district_org_id).map(|o| o.code.clone()));
    Ok(svg::render(&DiagramInput {
        definition: def,
        orgs,
        locale: lang,
        states: &states,
        form: Some(&app.form_data),
        company_district: district.as_deref(),
    }))
}

/// The route as the applicant sees it: done, current, still to come, with organizations
/// and dates.
async fn timeline(
    state: &State,
    app: &application::Model,
    def: &Definition,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<Vec<Value>> {
    let tasks = task::Entity::find()
        .filter(task::Column::ApplicationId.eq(app.id))
        .all(&state.db)
        .await
        .map_err(internal)?;
    let route = planned_route(def, &app.form_data);
    let current_index = app
        .current_step
        .as_deref()
        .and_then(|c| route.iter().position(|s| s.id == c));
    let org_name = |id: Uuid| orgs.name_of(id, lang);
    let mut out = Vec::new();
    for (i, step) in route.iter().enumerate() {
        let step_tasks: Vec<&task::Model> = tasks.iter().filter(|t| t.step_id == step.id).collect();
        let latest_round = step_tasks.iter().map(|t| t.round).max();
        let names: Vec<String> = step_tasks
            .iter()
            .filter(|t| {
                Some(t.round) == latest_round
                    && !matches!(t.status, TaskStatus::Cancelled | TaskStatus::Removed)
            })
            .map(|t| org_name(t.org_id))
            .collect();
        let state_key = match (app.status, current_index) {
            (ApplicationStatus::Approved, _) => "done",
            (_, Some(c)) if i < c => "done",
            (_, Some(c)) if i == c => "current",
            _ => "upcoming",
        };
        let finished = step_tasks
            .iter()
            .filter(|t| Some(t.round) == latest_round)
            .filter_map(|t| t.closed_at)
            .max()
            .map(|t| crate::calendar::local_date(t).to_string());
        out.push(json!({
            "name": step.name.get(lang),
            "orgs": names.join("、"),
            "state": state_key,
            "state_label": i18n::t(lang, &format!("timeline-{state_key}")),
            "date": if state_key == "done" { finished } else if state_key == "current" { app.step_due.map(|d| d.to_string()) } else { None },
            "days": step.promised_days,
        }));
    }
    Ok(out)
}

/// What was mailed about the application, to whom and when, and what failed: an
/// applicant sees the messages sent to them, reviewers and administrators all of them.
pub(crate) async fn delivery_log(
    state: &State,
    app: &application::Model,
    user: UserId,
    lang: &str,
) -> poem::Result<Vec<Value>> {
    let actor = store::actor_for(&state.db, user, app.company_id)
        .await
        .map_err(internal)?;
    let sees_all = actor.system_admin || !actor.reviewer_of.is_empty();
    let mut q = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::ApplicationId.eq(app.id))
        .order_by_asc(entity::outbox::Column::CreatedAt);
    if !sees_all {
        q = q.filter(entity::outbox::Column::RecipientUserId.eq(user.0));
    }
    let rows = q.all(&state.db).await.map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let switched_off = r.last_error.as_deref() == Some(crate::mail::queue::SWITCHED_OFF);
            let status = match r.status {
                entity::enums::OutboxStatus::Dead if switched_off => "delivery-switched-off",
                entity::enums::OutboxStatus::Sent => "delivery-sent",
                entity::enums::OutboxStatus::Dead => "delivery-failed",
                entity::enums::OutboxStatus::Queued if r.last_error.is_some() => "delivery-retrying",
                entity::enums::OutboxStatus::Queued => "delivery-queued",
            };
            json!({
                "when": crate::calendar::local_time(r.sent_at.unwrap_or(r.created_at)).format("%Y-%m-%d %H:%M").to_string(),
                "what": i18n::t(lang, &format!("mail-{}", r.kind)),
                "to": r.recipient_email,
                "status": i18n::t(lang, status),
                "failed": r.status == entity::enums::OutboxStatus::Dead && !switched_off,
                "error": if sees_all && !switched_off { r.last_error } else { None },
            })
        })
        .collect())
}

/// The history the applicant may see (internal notes and assignments left out).
async fn public_history(
    state: &State,
    app: &application::Model,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<Vec<Value>> {
    let events = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.id))
        .filter(history_event::Column::Internal.eq(false))
        .order_by_asc(history_event::Column::Seq)
        .all(&state.db)
        .await
        .map_err(internal)?;
    Ok(events
        .into_iter()
        .map(|e| {
            let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
            let d = &payload["details"];
            let text = ["opinion", "reason", "comment", "text", "note"]
                .iter()
                .find_map(|k| d[*k].as_str())
                .map(str::to_string);
            json!({
                "when": crate::calendar::local_time(e.created_at).format("%Y-%m-%d %H:%M").to_string(),
                "what": i18n::t(lang, &format!("event-{}", e.kind)),
                "org": e.actor_org_id.and_then(|o| orgs.by_id(o)).map(|o| o.name(lang).to_string()),
                "text": text,
            })
        })
        .collect())
}

fn field_rows(
    def: &Definition,
    section: &str,
    values: &Value,
    lang: &str,
    orgs: &OrgDirectory,
    errors: &Value,
) -> Vec<Value> {
    def.fields
        .iter()
        .filter(|f| f.section == section)
        .map(|f| {
            let v = &values[&f.name];
            let selected: Vec<String> = match v {
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                Value::String(s) => vec![s.clone()],
                _ => vec![],
            };
            let options: Vec<Value> = match f.field_type {
                FieldType::Organization => {
                    let mut choices: Vec<_> = orgs
                        .iter()
                        .filter(|o| Some(o.kind) == f.organization_kind)
                        .map(|o| (o.code.clone(), o.name(lang).to_string()))
                        .collect();
                    choices.sort();
                    choices.into_iter()
                        .map(|(code, name)| json!({ "value": code, "label": name, "selected": selected.contains(&code) }))
                        .collect()
                }
                _ => f
                    .options
                    .iter()
                    .map(|o| json!({ "value": o, "label": f.option_label(o, lang), "selected": selected.contains(o) }))
                    .collect(),
            };
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            json!({
                "name": f.name,
                "label": f.label.get(lang),
                "required": f.required,
                "kind": match f.field_type {
                    FieldType::Text => "text",
                    FieldType::LongText => "long_text",
                    FieldType::Number => "number",
                    FieldType::Boolean => "boolean",
                    FieldType::Date => "date",
                    FieldType::Choice => "choice",
                    FieldType::MultiChoice => "multi_choice",
                    FieldType::Organization => "select",
                },
                "value": text,
                "checked": v.as_bool().unwrap_or(false),
                "options": options,
                "error": errors["by_field"][&f.name],
            })
        })
        .collect()
}

/// What a section page shows.
struct SectionView<'a> {
    app: &'a application::Model,
    def: &'a Definition,
    orgs: &'a OrgDirectory,
    section: &'a str,
    values: &'a Value,
    errors: &'a [FieldError],
    conflict: bool,
    status: StatusCode,
}

async fn render_section(ctx: &Ctx, state: &State, v: SectionView<'_>) -> poem::Result<Response> {
    let SectionView {
        app,
        def,
        orgs,
        section,
        values,
        errors,
        conflict,
        status,
    } = v;
    let Some(s) = def.sections.iter().find(|s| s.id == section) else {
        return Err(not_found());
    };
    let errs = field_errors(ctx.lang, errors);
    let data = json!({
        "app": app_summary(app, def, ctx.lang),
        "section": { "id": s.id, "name": s.name.get(ctx.lang) },
        "fields": field_rows(def, section, values, ctx.lang, orgs, &errs),
        "errors": errs,
        "has_errors": !errors.is_empty(),
        "conflict": conflict,
        "note": flagged(app, ItemKind::Section).get(section),
    });
    let resp = ctx.page(state, "pages/app_section", "app-section-title", data)?;
    Ok(resp.with_status(status).into_response())
}

/// A section's form.
#[handler]
pub async fn section_form(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, section)): Path<(Uuid, String)>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, orgs) = load_own(&state, user, id).await?;
    let values = app.form_data.clone();
    render_section(
        &ctx,
        &state,
        SectionView {
            app: &app,
            def: &def,
            orgs: &orgs,
            section: &section,
            values: &values,
            errors: &[],
            conflict: false,
            status: StatusCode::OK,
        },
    )
    .await
}

/// Saves a section: every field's problem comes back with what was typed; a concurrent
/// change elsewhere is reported without losing the input.
#[handler]
pub async fn section_save(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, section)): Path<(Uuid, String)>,
    body: String,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, orgs) = load_own(&state, user, id).await?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let version: i64 = pairs
        .iter()
        .find(|(k, _)| k == "version")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(-1);
    let (parsed, errors) = forms::parse_section(&def, &section, &pairs, &orgs);
    // What was typed, for re-display (multi-choices as lists).
    let mut typed = serde_json::Map::new();
    for f in def.fields.iter().filter(|f| f.section == section) {
        let vals: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == f.name)
            .map(|(_, v)| v.as_str())
            .collect();
        let v = match f.field_type {
            FieldType::MultiChoice => json!(vals),
            FieldType::Boolean => json!(vals.first() == Some(&"true")),
            _ => json!(vals.first().copied().unwrap_or("")),
        };
        typed.insert(f.name.clone(), v);
    }
    let typed = Value::Object(typed);
    if !errors.is_empty() {
        return render_section(
            &ctx,
            &state,
            SectionView {
                app: &app,
                def: &def,
                orgs: &orgs,
                section: &section,
                values: &typed,
                errors: &errors,
                conflict: false,
                status: StatusCode::UNPROCESSABLE_ENTITY,
            },
        )
        .await;
    }
    match store::update_section(
        &state.db,
        ApplicationId(id),
        user,
        version,
        &section,
        parsed,
    )
    .await
    {
        Ok(_) => Ok(redirect(&format!("/applications/{id}"))),
        Err(StoreError::Conflict) => {
            let (app, def, orgs) = load_own(&state, user, id).await?;
            render_section(
                &ctx,
                &state,
                SectionView {
                    app: &app,
                    def: &def,
                    orgs: &orgs,
                    section: &section,
                    values: &typed,
                    errors: &[],
                    conflict: true,
                    status: StatusCode::CONFLICT,
                },
            )
            .await
        }
        Err(StoreError::Refused(Refusal::Locked)) => {
            Err(poem::Error::from_status(StatusCode::FORBIDDEN))
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(internal(e)),
    }
}

/// Uploads a material (multipart; the CSRF token travels in the query string).
#[handler]
pub async fn upload(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, material)): Path<(Uuid, String)>,
    mut multipart: Multipart,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let _ = load_own(&state, user, id).await?;
    let (name, bytes) = uploaded_file(&mut multipart).await?;
    let back = format!("/applications/{id}");
    let stored = match put_document(&ctx, &state, bytes).await {
        Ok(s) => s,
        Err(status) => return Ok(redirect(&back).with_status(status).into_response()),
    };
    match store::attach(
        &state.db,
        ApplicationId(id),
        user,
        &material,
        &name,
        &stored,
    )
    .await
    {
        Ok(_) => {
            ctx.session.flash("flash-upload-done");
            Ok(redirect(&format!("/applications/{id}")))
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(StoreError::Refused(_)) => Err(poem::Error::from_status(StatusCode::FORBIDDEN)),
        Err(e) => Err(internal(e)),
    }
}

/// Downloads an attachment, always as a download, only for those who may see the
/// application.
#[handler]
pub async fn download(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, attachment_id)): Path<(Uuid, Uuid)>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let _ = load_visible(&state, user, id).await?;
    let att = attachment::Entity::find_by_id(attachment_id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .filter(|a| a.application_id == Some(id))
        .ok_or_else(not_found)?;
    send_document(&state, att).await
}

/// Check your answers.
#[handler]
pub async fn check(ctx: Ctx, state: Data<&State>, Path(id): Path<Uuid>) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    check_page(&ctx, &state, user, id, None).await
}

/// The check-your-answers page, with the engine's refusal when a submission failed.
async fn check_page(
    ctx: &Ctx,
    state: &State,
    user: UserId,
    id: Uuid,
    refusal: Option<&Refusal>,
) -> poem::Result<Response> {
    let (app, def, orgs) = load_own(state, user, id).await?;
    let current = current_attachments(state, app.id).await?;
    let sections: Vec<Value> = def
        .sections
        .iter()
        .map(|s| {
            let rows: Vec<Value> = def
                .fields
                .iter()
                .filter(|f| f.section == s.id)
                .map(|f| json!({ "label": f.label.get(ctx.lang), "value": display_value(f, &app.form_data[&f.name], ctx.lang, &orgs) }))
                .collect();
            json!({ "id": s.id, "name": s.name.get(ctx.lang), "rows": rows })
        })
        .collect();
    let data = json!({
        "app": app_summary(&app, &def, ctx.lang),
        "sections": sections,
        "materials": material_rows(&def, &app, &current, ctx.lang),
        "error": refusal.map(|r| refusal_message(ctx.lang, r)),
    });
    let resp = ctx.page(state, "pages/app_check", "app-check-title", data)?;
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(resp.with_status(status).into_response())
}

pub(crate) fn display_value(
    f: &crate::workflow::definition::Field,
    v: &Value,
    lang: &str,
    orgs: &OrgDirectory,
) -> String {
    match (f.field_type, v) {
        (_, Value::Null) => String::new(),
        (FieldType::Boolean, Value::Bool(b)) => i18n::t(lang, if *b { "yes" } else { "no" }),
        (FieldType::Choice, Value::String(s)) => f.option_label(s, lang).to_string(),
        (FieldType::MultiChoice, Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(|s| f.option_label(s, lang).to_string())
            .collect::<Vec<_>>()
            .join("、"),
        (FieldType::Organization, Value::String(code)) => orgs
            .by_code(code)
            .map(|o| o.name(lang).to_string())
            .unwrap_or_else(|| code.clone()),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

pub(crate) fn refusal_message(lang: &str, r: &Refusal) -> String {
    let base = i18n::t(lang, &format!("refusal-{}", r.code()));
    match r {
        Refusal::FormIncomplete(items) | Refusal::MaterialsMissing(items) => {
            format!("{base}({})", items.join(", "))
        }
        _ => base,
    }
}

/// Submits (or resubmits) the application through the engine.
#[handler]
pub async fn submit(ctx: Ctx, state: Data<&State>, Path(id): Path<Uuid>) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, _, _) = load_own(&state, user, id).await?;
    let action = if app.status == ApplicationStatus::Returned {
        Action::Resubmit { note: None }
    } else {
        Action::Submit
    };
    match store::execute(&state.db, ApplicationId(id), user, action).await {
        Ok(_) => Ok(redirect(&format!("/applications/{id}/submitted"))),
        Err(StoreError::Refused(r)) => check_page(&ctx, &state, user, id, Some(&r)).await,
        Err(StoreError::NotFound) => Err(not_found()),
        Err(StoreError::Conflict) => Ok(redirect(&format!("/applications/{id}"))),
        Err(e) => Err(internal(e)),
    }
}

/// The confirmation: reference number, what happens next, the promised time; printable.
#[handler]
pub async fn submitted(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, _) = load_own(&state, user, id).await?;
    if app.reference.is_none() {
        return Ok(redirect(&format!("/applications/{id}")));
    }
    let data = json!({
        "app": app_summary(&app, &def, ctx.lang),
        "days": promised_days(&def),
    });
    ctx.page(&state, "pages/app_submitted", "app-submitted-title", data)
}

/// Asks for confirmation before withdrawing.
#[handler]
pub async fn withdraw_form(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, _) = load_own(&state, user, id).await?;
    ctx.page(
        &state,
        "pages/app_withdraw",
        "app-withdraw-title",
        json!({ "app": app_summary(&app, &def, ctx.lang) }),
    )
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    #[serde(default)]
    reason: String,
}

/// Withdraws the application (before a decision).
#[handler]
pub async fn withdraw(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
    poem::web::Form(form): poem::web::Form<WithdrawForm>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let _ = load_own(&state, user, id).await?;
    let reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
    match store::execute(
        &state.db,
        ApplicationId(id),
        user,
        Action::Withdraw { reason },
    )
    .await
    {
        Ok(_) => {
            ctx.session.flash("flash-withdrawn");
            Ok(redirect(&format!("/applications/{id}")))
        }
        Err(StoreError::Refused(_)) => {
            ctx.session.flash("flash-withdraw-refused");
            Ok(redirect(&format!("/applications/{id}")))
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(internal(e)),
    }
}

/// The decision letter: print-friendly, with every reviewing organization's opinion and,
/// when rejected, the reasons; and the company's rating (好差评).
#[handler]
pub async fn decision(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let (app, def, orgs) = load_visible(&state, user, id).await?;
    if !matches!(
        app.status,
        ApplicationStatus::Approved | ApplicationStatus::Rejected
    ) {
        return Ok(redirect(&format!("/applications/{id}")));
    }
    let company = entity::company::Entity::find_by_id(app.company_id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let history = public_history(&state, &app, &orgs, ctx.lang).await?;
    let opinions: Vec<Value> = history
        .into_iter()
        .filter(|h| h["text"].is_string() && h["org"].is_string())
        .collect();
    let rating = entity::rating::Entity::find()
        .filter(entity::rating::Column::ApplicationId.eq(app.id))
        .one(&state.db)
        .await
        .map_err(internal)?;
    let is_member = store::actor_for(&state.db, user, app.company_id)
        .await
        .map_err(internal)?
        .applicant;
    let data = json!({
        "app": app_summary(&app, &def, ctx.lang),
        "approved": app.status == ApplicationStatus::Approved,
        "company": { "name": company.name, "uscc": company.uscc },
        "opinions": opinions,
        "rating": rating.map(|r| json!({ "score": r.score, "comment": r.comment })),
        "can_rate": is_member,
        "scores": [5, 4, 3, 2, 1],
    });
    ctx.page(&state, "pages/app_decision", "decision-title", data)
}

#[derive(Deserialize)]
pub struct RatingForm {
    #[serde(default)]
    score: String,
    #[serde(default)]
    comment: String,
}

/// Records the company's rating of a decided application.
#[handler]
pub async fn rate(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
    poem::web::Form(form): poem::web::Form<RatingForm>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let _ = load_own(&state, user, id).await?;
    let Ok(score) = form.score.parse::<i32>() else {
        ctx.session.flash("flash-rating-choose");
        return Ok(redirect(&format!("/applications/{id}/decision")));
    };
    match store::rate(&state.db, ApplicationId(id), user, score, &form.comment).await {
        Ok(()) => {
            ctx.session.flash("flash-rated");
            Ok(redirect(&format!("/applications/{id}/decision")))
        }
        Err(StoreError::Invalid(_)) => {
            ctx.session.flash("flash-rating-choose");
            Ok(redirect(&format!("/applications/{id}/decision")))
        }
        Err(StoreError::Conflict) => {
            ctx.session.flash("flash-rating-exists");
            Ok(redirect(&format!("/applications/{id}/decision")))
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(StoreError::Refused(_)) => Err(poem::Error::from_status(StatusCode::FORBIDDEN)),
        Err(e) => Err(internal(e)),
    }
}

/// Attaches the company profile's document for a material (一企一档).
#[handler]
pub async fn from_profile(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, material)): Path<(Uuid, String)>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let _ = load_own(&state, user, id).await?;
    match store::attach_from_profile(&state.db, ApplicationId(id), user, &material).await {
        Ok(_) => {
            ctx.session.flash("flash-upload-done");
            Ok(redirect(&format!("/applications/{id}")))
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(StoreError::Refused(_)) => Err(poem::Error::from_status(StatusCode::FORBIDDEN)),
        Err(e) => Err(internal(e)),
    }
}

/// The materials any active application type asks for, by id, with their names.
async fn profile_materials(state: &State, lang: &str) -> poem::Result<Vec<(String, String)>> {
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    let mut out: Vec<(String, String)> = Vec::new();
    for key in ["yqyc", "ip_fast_track", "platform_access"] {
        if let Ok((_, def)) = store::active_definition(&state.db, key, &orgs).await {
            for m in &def.materials {
                if !out.iter().any(|(id, _)| *id == m.id) {
                    out.push((m.id.clone(), m.name.get(lang).to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// The company profile's documents (一企一档): kept once, attached to any application.
#[handler]
pub async fn documents(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let Some(company) = company_of(&state, user).await? else {
        return Err(not_found());
    };
    let docs = store::profile_documents(&state.db, company.0)
        .await
        .map_err(internal)?;
    let rows: Vec<Value> = profile_materials(&state, ctx.lang)
        .await?
        .into_iter()
        .map(|(id, name)| {
            let doc = docs.get(&id);
            json!({
                "id": id,
                "name": name,
                "file": doc.map(|d| json!({ "id": d.id, "filename": d.filename, "size_kb": (d.size + 1023) / 1024 })),
            })
        })
        .collect();
    ctx.page(
        &state,
        "pages/documents",
        "documents-title",
        json!({ "materials": rows }),
    )
}

/// Uploads a document to the company profile.
#[handler]
pub async fn document_upload(
    ctx: Ctx,
    state: Data<&State>,
    Path(material): Path<String>,
    mut multipart: Multipart,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let Some(company) = company_of(&state, user).await? else {
        return Err(not_found());
    };
    if !profile_materials(&state, ctx.lang)
        .await?
        .iter()
        .any(|(id, _)| *id == material)
    {
        return Err(not_found());
    }
    let (name, bytes) = uploaded_file(&mut multipart).await?;
    let stored = match put_document(&ctx, &state, bytes).await {
        Ok(s) => s,
        Err(status) => {
            return Ok(redirect("/company/documents")
                .with_status(status)
                .into_response());
        }
    };
    store::attach_to_profile(&state.db, company, user, &material, &name, &stored)
        .await
        .map_err(internal)?;
    ctx.session.flash("flash-upload-done");
    Ok(redirect("/company/documents"))
}

/// Downloads a profile document (members of the company only), always as a download.
#[handler]
pub async fn document_download(
    ctx: Ctx,
    state: Data<&State>,
    Path(doc): Path<Uuid>,
) -> poem::Result<Response> {
    let Some(user) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let Some(company) = company_of(&state, user).await? else {
        return Err(not_found());
    };
    let att = attachment::Entity::find_by_id(doc)
        .one(&state.db)
        .await
        .map_err(internal)?
        .filter(|a| a.company_id == company.0 && a.application_id.is_none())
        .ok_or_else(not_found)?;
    send_document(&state, att).await
}

/// The `file` field of an upload form: its name and bytes.
async fn uploaded_file(multipart: &mut Multipart) -> poem::Result<(String, Vec<u8>)> {
    let mut file = None;
    while let Some(field) = multipart.next_field().await? {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("document").to_string();
            file = Some((name, field.bytes().await?));
        }
    }
    file.ok_or_else(|| poem::Error::from_status(StatusCode::BAD_REQUEST))
}

/// Stores an uploaded document; on refusal, flashes why and returns the status of the
/// redirect back to the form (413 when too large).
async fn put_document(
    ctx: &Ctx,
    state: &State,
    bytes: Vec<u8>,
) -> Result<crate::attachments::Stored, StatusCode> {
    use crate::attachments::UploadError;
    match state.attachments.put(bytes.into()).await {
        Ok(stored) => Ok(stored),
        Err(UploadError::TooLarge) => {
            ctx.session.flash("flash-upload-too-large");
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(UploadError::Empty | UploadError::TypeNotAccepted) => {
            ctx.session.flash("flash-upload-type");
            Err(StatusCode::SEE_OTHER)
        }
        Err(UploadError::Storage(e)) => {
            tracing::error!(error = %e, "attachment store failed");
            ctx.session.flash("flash-upload-failed");
            Err(StatusCode::SEE_OTHER)
        }
    }
}

/// A stored document sent as a download (never rendered inline), with its name encoded.
async fn send_document(state: &State, att: attachment::Model) -> poem::Result<Response> {
    let bytes = state
        .attachments
        .get(&att.storage_key)
        .await
        .map_err(internal)?;
    let encoded: String = form_urlencoded::byte_serialize(att.filename.as_bytes()).collect();
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, att.content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"download\"; filename*=UTF-8''{encoded}"),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(bytes.to_vec()))
}
