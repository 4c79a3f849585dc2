//! The reviewer workbench: the inbox (to do, done by me, copied to me, the organization's
//! queue), the task page with everything about the application, and the actions. Every
//! action goes through the engine (`store::execute`); the page asks the engine which actions
//! are possible (`store::preview_many`) and shows its reasons for the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use entity::enums::{ApplicationStatus, OrgRole, TaskStatus};
use entity::{
    application, company, history_event, org_membership, submitted_version, task, user,
    workflow_definition,
};
use poem::{
    IntoResponse, Response, Route, get, handler,
    http::StatusCode,
    post,
    web::{Data, Path, Query},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{Calendar, local_date};
use crate::ids::{ApplicationId, OrgId, TaskId, UserId};
use crate::organizations::OrgDirectory;
use crate::settings::Settings;
use crate::store::{
    self, StoreError,
    inbox::{self, Cursor, Tab},
};
use crate::web::applications::{
    app_summary, delivery_log, diagram, display_value, material_rows, refusal_message, status_code,
    status_label,
};
use crate::web::{Ctx, State, i18n, internal, redirect};
use crate::workflow::definition::{Definition, StepKind};
use crate::workflow::engine::{Action, Assignee, ItemKind, Refusal, ReturnItem};

/// Adds the workbench's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
        .at("/inbox", get(inbox_page))
        .at("/tasks/:id", get(task_page))
        .at("/tasks/:id/:action", post(act))
}

fn not_found() -> poem::Error {
    poem::Error::from_status(StatusCode::NOT_FOUND)
}

/// The active definition of every application type (types are data: whatever is active).
async fn active_definitions(
    state: &State,
    config: &store::config::Config,
) -> poem::Result<BTreeMap<String, Arc<Definition>>> {
    let rows = workflow_definition::Entity::find()
        .filter(workflow_definition::Column::Active.eq(true))
        .order_by_asc(workflow_definition::Column::Key)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let mut out = BTreeMap::new();
    for r in rows {
        if let Ok(def) = config.definition(&state.db, r.id).await {
            out.insert(r.key.clone(), def);
        }
    }
    Ok(out)
}

/// How much of the promised time is left, in words and as a code the page marks (with
/// text, not colour alone).
fn due_info(
    calendar: &Calendar,
    today: chrono::NaiveDate,
    due: chrono::NaiveDate,
    lang: &str,
) -> Value {
    if due < today {
        let days = calendar.working_days_between(due, today).max(1);
        json!({ "code": "overdue", "label": i18n::t_args(lang, "review-overdue-by", &[("days", days.to_string())]) })
    } else if due == today {
        json!({ "code": "today", "label": i18n::t(lang, "review-due-today") })
    } else {
        let days = calendar.working_days_between(today, due);
        json!({ "code": "ok", "label": i18n::t_args(lang, "review-days-left", &[("days", days.to_string())]) })
    }
}

fn task_status_label(lang: &str, s: TaskStatus) -> String {
    let code = match s {
        TaskStatus::Open => "open",
        TaskStatus::Claimed => "claimed",
        TaskStatus::Approved => "approved",
        TaskStatus::Returned => "returned",
        TaskStatus::Rejected => "rejected",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Removed => "removed",
    };
    i18n::t(lang, &format!("review-task-{code}"))
}

async fn user_names(
    state: &State,
    ids: impl IntoIterator<Item = Uuid>,
) -> poem::Result<HashMap<Uuid, String>> {
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(&state.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The inbox's query string.
#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    tab: Option<String>,
    #[serde(rename = "type")]
    app_type: Option<String>,
    step: Option<String>,
    status: Option<String>,
    overdue: Option<String>,
    after: Option<String>,
}

/// The reviewer's inbox.
#[handler]
pub async fn inbox_page(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<InboxQuery>,
) -> poem::Result<Response> {
    let Some(me) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    if !ctx.roles.is_reviewer() {
        return Err(not_found());
    }
    let mut tab = Tab::parse(q.tab.as_deref());
    if tab == Tab::Organization && ctx.roles.admin_of.is_empty() {
        tab = Tab::Todo;
    }
    let status = match q.status.as_deref() {
        Some("open") => Some(TaskStatus::Open),
        Some("claimed") => Some(TaskStatus::Claimed),
        _ => None,
    };
    let today = local_date(store::now());
    let query = inbox::Query {
        user: me.0,
        orgs: ctx.roles.reviewer_of.clone(),
        admin_of: ctx.roles.admin_of.clone(),
        tab,
        app_type: nonempty(&q.app_type),
        step: nonempty(&q.step),
        status,
        overdue: q.overdue.as_deref() == Some("1"),
        today,
        after: q.after.as_deref().and_then(Cursor::decode),
        limit: 25,
    };
    let page = inbox::list(&state.db, &query).await.map_err(internal)?;
    let config = store::config::current(&state.db).await.map_err(internal)?;
    let (orgs, calendar) = (config.orgs.clone(), config.calendar.clone());
    let defs = active_definitions(&state, &config).await?;
    let mut by_id: HashMap<Uuid, Arc<Definition>> = HashMap::new();
    for row in &page.rows {
        if let std::collections::hash_map::Entry::Vacant(slot) = by_id.entry(row.app.definition_id)
        {
            let def = config
                .definition(&state.db, row.app.definition_id)
                .await
                .map_err(internal)?;
            slot.insert(def);
        }
    }
    let company_ids: BTreeSet<Uuid> = page.rows.iter().map(|r| r.app.company_id).collect();
    let companies: HashMap<Uuid, String> = company::Entity::find()
        .filter(company::Column::Id.is_in(company_ids))
        .all(&state.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let claimants: Vec<Uuid> = page
        .rows
        .iter()
        .filter_map(|r| r.task.as_ref().and_then(|t| t.claimant_id))
        .collect();
    let names = user_names(&state, claimants).await?;
    let lang = ctx.lang;
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            let def = by_id.get(&r.app.definition_id);
            let step_id = r
                .task
                .as_ref()
                .map(|t| t.step_id.as_str())
                .or(r.copy.as_ref().map(|c| c.step_id.as_str()))
                .unwrap_or_default();
            let step = def
                .and_then(|d| d.step(step_id))
                .map(|s| s.name.get(lang).to_string())
                .unwrap_or_else(|| step_id.to_string());
            let task = r.task.as_ref().map(|t| {
                let live = matches!(t.status, TaskStatus::Open | TaskStatus::Claimed);
                json!({
                    "id": t.id,
                    "org": orgs.name_of(t.org_id, lang),
                    "due": t.due_date.to_string(),
                    "due_info": if live { due_info(&calendar, today, t.due_date, lang) } else { Value::Null },
                    "status": task_status_label(lang, t.status),
                    "mine": t.claimant_id == Some(me.0),
                    "claimant": t.claimant_id.and_then(|c| names.get(&c).cloned()),
                    "closed": t.closed_at.map(|c| local_date(c).to_string()),
                })
            });
            json!({
                "app_id": r.app.id,
                "reference": r.app.reference,
                "company": companies.get(&r.app.company_id),
                "type": def.map(|d| d.name.get(lang).to_string()),
                "step": step,
                "app_status": status_label(lang, r.app.status),
                "app_status_code": status_code(r.app.status),
                "task": task,
                "copied": r.copy.as_ref().map(|c| local_date(c.created_at).to_string()),
            })
        })
        .collect();
    let base_filters = |after: Option<String>| {
        let mut parts = vec![format!("tab={}", tab.as_str())];
        for (k, v) in [
            ("type", nonempty(&q.app_type)),
            ("step", nonempty(&q.step)),
            ("status", nonempty(&q.status)),
            ("overdue", nonempty(&q.overdue)),
            ("after", after),
        ] {
            if let Some(v) = v {
                parts.push(format!(
                    "{k}={}",
                    form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                ));
            }
        }
        format!("/inbox?{}", parts.join("&"))
    };
    // Capped like the navigation badge: an exact count costs O(queue) (or O(history)).
    let count = |tab: Tab| {
        inbox::count_capped(
            &state.db,
            tab,
            me.0,
            &ctx.roles.reviewer_of,
            &ctx.roles.admin_of,
            inbox::COUNT_CAP,
        )
    };
    let done = count(Tab::Done).await.map_err(internal)?;
    let copied = count(Tab::Copied).await.map_err(internal)?;
    let mut tabs = vec![
        json!({ "key": "todo", "label": i18n::t(lang, "review-tab-todo"), "count": ctx.inbox_count.display(), "current": tab == Tab::Todo }),
        json!({ "key": "done", "label": i18n::t(lang, "review-tab-done"), "count": done.display(), "current": tab == Tab::Done }),
        json!({ "key": "copied", "label": i18n::t(lang, "review-tab-copied"), "count": copied.display(), "current": tab == Tab::Copied }),
    ];
    if !ctx.roles.admin_of.is_empty() {
        let org_count = count(Tab::Organization).await.map_err(internal)?;
        tabs.push(json!({ "key": "org", "label": i18n::t(lang, "review-tab-org"), "count": org_count.display(), "current": tab == Tab::Organization }));
    }
    let types: Vec<Value> = defs
        .values()
        .map(|d| json!({ "key": d.key, "name": d.name.get(lang), "selected": q.app_type.as_deref() == Some(d.key.as_str()) }))
        .collect();
    let mut steps: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    for d in defs.values() {
        if nonempty(&q.app_type).is_some_and(|t| t != d.key) {
            continue;
        }
        for s in &d.steps {
            if seen.insert(s.id.clone()) {
                steps.push(json!({ "id": s.id, "name": s.name.get(lang), "selected": q.step.as_deref() == Some(s.id.as_str()) }));
            }
        }
    }
    let data = json!({
        "tab": tab.as_str(),
        "tabs": tabs,
        "rows": rows,
        "is_copied": tab == Tab::Copied,
        "is_done": tab == Tab::Done,
        "types": types,
        "steps": steps,
        "filter": {
            "status": q.status,
            "overdue": q.overdue.as_deref() == Some("1"),
        },
        "first_page": q.after.as_deref().is_some().then(|| base_filters(None)),
        "next_page": page.next.as_ref().map(|c| base_filters(Some(c.encode()))),
    });
    ctx.page(&state, "pages/inbox", "review-inbox-title", data)
}

/// What the reviewer typed, kept when an action is refused so nothing is lost.
#[derive(Debug, Default, Clone)]
struct Kept {
    opinion: String,
    reason: String,
    return_comment: String,
    return_items: BTreeMap<String, String>,
    comment: String,
    comment_internal: bool,
    signer_reason: String,
}

/// A message at the top of the task page and, for a mistake, the field it is about.
#[derive(Debug, Clone)]
struct Notice {
    conflict: bool,
    message: String,
    action: String,
}

/// A task the user may work on or look at: its organization is one of theirs, or they are a
/// system administrator. Anyone else is told it does not exist.
async fn visible_task(ctx: &Ctx, state: &State, id: Uuid) -> poem::Result<task::Model> {
    let t = task::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if ctx.roles.system_admin || ctx.roles.reviewer_of.contains(&t.org_id) {
        Ok(t)
    } else {
        Err(not_found())
    }
}

/// The task page.
#[handler]
pub async fn task_page(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<Uuid>,
) -> poem::Result<Response> {
    if ctx.user_id().is_none() {
        return Ok(redirect("/login"));
    }
    render_task(&ctx, &state, id, Kept::default(), None).await
}

async fn render_task(
    ctx: &Ctx,
    state: &State,
    id: Uuid,
    kept: Kept,
    notice: Option<Notice>,
) -> poem::Result<Response> {
    let me = ctx.user_id().ok_or_else(not_found)?;
    let t = visible_task(ctx, state, id).await?;
    let lang = ctx.lang;
    let app = application::Entity::find_by_id(t.application_id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let config = store::config::current(&state.db).await.map_err(internal)?;
    let (orgs, calendar) = (config.orgs.clone(), config.calendar.clone());
    let def = config
        .definition(&state.db, app.definition_id)
        .await
        .map_err(internal)?;
    let today = local_date(store::now());
    let company = company::Entity::find_by_id(app.company_id)
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let all_tasks = task::Entity::find()
        .filter(task::Column::ApplicationId.eq(app.id))
        .order_by_asc(task::Column::OpenedAt)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let live = matches!(t.status, TaskStatus::Open | TaskStatus::Claimed);
    let step = def.step(&t.step_id);

    // Colleagues of the task's organization, for 转办 and 委派.
    let colleague_ids: Vec<Uuid> = org_membership::Entity::find()
        .filter(org_membership::Column::OrgId.eq(t.org_id))
        .filter(org_membership::Column::Active.eq(true))
        .filter(org_membership::Column::Role.is_in([OrgRole::Reviewer, OrgRole::OrgAdmin]))
        .all(&state.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| m.user_id)
        .filter(|u| *u != me.0)
        .collect();
    let colleagues: Vec<user::Model> = if colleague_ids.is_empty() {
        vec![]
    } else {
        user::Entity::find()
            .filter(user::Column::Id.is_in(colleague_ids))
            .filter(user::Column::Active.eq(true))
            .order_by_asc(user::Column::Name)
            .all(&state.db)
            .await
            .map_err(internal)?
    };

    // The application's current step (where 催办, 加签 and 减签 apply — for the lead
    // organization that is a later step than its own task's).
    let current_step = app.current_step.clone().unwrap_or_default();
    let siblings: Vec<&task::Model> = all_tasks
        .iter()
        .filter(|s| {
            s.id != t.id
                && s.step_id == current_step
                && s.round == app.round
                && matches!(s.status, TaskStatus::Open | TaskStatus::Claimed)
        })
        .collect();
    let in_step: BTreeSet<Uuid> = all_tasks
        .iter()
        .filter(|s| {
            s.step_id == current_step
                && s.round == app.round
                && !matches!(s.status, TaskStatus::Cancelled | TaskStatus::Removed)
        })
        .map(|s| s.org_id)
        .collect();
    let countersign = matches!(
        def.step(&current_step).map(|s| &s.kind),
        Some(StepKind::Countersign { .. })
    );
    let mut candidates: Vec<(String, Uuid, String)> = if countersign {
        orgs.iter()
            .filter(|o| !in_step.contains(&o.id))
            .map(|o| (o.code.clone(), o.id, orgs.name_of(o.id, lang)))
            .collect()
    } else {
        vec![]
    };
    candidates.sort();

    // Ask the engine what is possible; placeholders stand in for text not typed yet.
    let task_id = TaskId(t.id);
    let first_section = def
        .sections
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let someone = colleagues.first().map(|u| UserId(u.id)).unwrap_or(me);
    let mut actions = vec![
        Action::Claim { task: task_id },
        Action::Release { task: task_id },
        Action::Approve {
            task: task_id,
            opinion: "·".into(),
        },
        Action::Return {
            task: task_id,
            items: vec![ReturnItem {
                kind: ItemKind::Section,
                id: first_section,
                note: "·".into(),
            }],
            comment: "·".into(),
        },
        Action::Reject {
            task: task_id,
            reason: "·".into(),
        },
        Action::Transfer {
            task: task_id,
            to: Assignee {
                user: someone,
                orgs: BTreeSet::new(),
            },
        },
        Action::Delegate {
            task: task_id,
            to: Assignee {
                user: someone,
                orgs: BTreeSet::new(),
            },
        },
        Action::Comment {
            text: "·".into(),
            internal: true,
        },
    ];
    let signer_candidate = candidates.first().map(|c| c.1);
    if let Some(org) = signer_candidate {
        actions.push(Action::AddSigner {
            org: OrgId(org),
            reason: "·".into(),
        });
    }
    for s in &siblings {
        actions.push(Action::RemoveSigner {
            task: TaskId(s.id),
            reason: "·".into(),
        });
        actions.push(Action::Remind { task: TaskId(s.id) });
    }
    if live {
        actions.push(Action::Remind { task: task_id });
    }
    let results = store::preview_many(&state.db, ApplicationId(app.id), me, &actions)
        .await
        .map_err(internal)?;
    let mut verdict: BTreeMap<&'static str, Result<(), String>> = BTreeMap::new();
    let mut removable = Vec::new();
    let mut remindable = Vec::new();
    for (action, result) in actions.iter().zip(results) {
        let r = result.map(|_| ()).map_err(|e| refusal_message(lang, &e));
        match action {
            Action::RemoveSigner { task, .. } => {
                if r.is_ok() {
                    removable.push(task.0);
                }
            }
            Action::Remind { task } => {
                if r.is_ok() {
                    remindable.push(task.0);
                }
            }
            other => {
                verdict.insert(other.kind().as_str(), r);
            }
        }
    }
    let allowed = |k: &str| verdict.get(k).is_some_and(|r| r.is_ok());
    let why_not = |k: &str| verdict.get(k).and_then(|r| r.clone().err());

    let people: Vec<Uuid> = all_tasks
        .iter()
        .flat_map(|x| [x.claimant_id, x.acted_by, x.delegated_by])
        .flatten()
        .collect();
    let names = user_names(state, people).await?;
    let tasks_view: Vec<Value> = all_tasks
        .iter()
        .filter(|x| x.round == app.round || x.id == t.id)
        .map(|x| {
            let is_live = matches!(x.status, TaskStatus::Open | TaskStatus::Claimed);
            json!({
                "id": x.id,
                "step": def.step(&x.step_id).map(|s| s.name.get(lang).to_string()),
                "org": orgs.name_of(x.org_id, lang),
                "status": task_status_label(lang, x.status),
                "claimant": x.claimant_id.and_then(|c| names.get(&c).cloned()),
                "due": x.due_date.to_string(),
                "due_info": if is_live { due_info(&calendar, today, x.due_date, lang) } else { Value::Null },
                "current": x.id == t.id,
                "removable": removable.contains(&x.id),
                "remindable": remindable.contains(&x.id),
            })
        })
        .collect();

    // The form by section, marking what changed since the returned version.
    let diff = resubmission_diff(state, &app, &def, &orgs, lang).await?;
    let changed_fields: BTreeSet<String> = diff
        .fields
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect();
    let sections: Vec<Value> = def
        .sections
        .iter()
        .map(|s| {
            let rows: Vec<Value> = def
                .fields
                .iter()
                .filter(|f| f.section == s.id)
                .map(|f| {
                    json!({
                        "label": f.label.get(lang),
                        "value": display_value(f, &app.form_data[&f.name], lang, &orgs),
                        "changed": changed_fields.contains(&f.name),
                    })
                })
                .collect();
            let checked = kept.return_items.contains_key(&format!("section:{}", s.id));
            json!({
                "id": s.id,
                "name": s.name.get(lang),
                "rows": rows,
                "item_key": format!("section:{}", s.id),
                "checked": checked,
                "note": kept.return_items.get(&format!("section:{}", s.id)),
            })
        })
        .collect();
    let current = store::current_attachments(&state.db, app.id)
        .await
        .map_err(internal)?;
    let mut materials = material_rows(&def, &app, &current, lang);
    for m in &mut materials {
        let key = format!("material:{}", m["id"].as_str().unwrap_or_default());
        m["checked"] = json!(kept.return_items.contains_key(&key));
        m["return_note"] = json!(kept.return_items.get(&key));
        m["item_key"] = json!(key);
    }

    let history = full_history(state, &app, &orgs, lang).await?;
    let earlier = earlier_applications(ctx, state, &app, &orgs, lang).await?;
    let due = if live {
        due_info(&calendar, today, t.due_date, lang)
    } else {
        Value::Null
    };
    // After a conflict the form the text was typed in may be gone (the task is closed):
    // the notice repeats every text typed, ready to copy.
    let mut typed: Vec<Value> = [
        ("review-opinion", &kept.opinion),
        ("review-reject-reason", &kept.reason),
        ("review-return-comment", &kept.return_comment),
        ("review-comment-text", &kept.comment),
        ("review-signer-reason", &kept.signer_reason),
    ]
    .iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| json!({ "label": i18n::t(lang, k), "text": v }))
    .collect();
    for (item, note) in &kept.return_items {
        if !note.trim().is_empty() {
            typed.push(json!({ "label": item, "text": note }));
        }
    }
    let notice_json = notice.as_ref().map(|n| {
        json!({ "conflict": n.conflict, "message": n.message, "action": n.action, "typed": typed })
    });
    let field_error = |action: &str| {
        notice
            .as_ref()
            .filter(|n| !n.conflict && n.action == action)
            .map(|n| n.message.clone())
    };
    let data = json!({
        "task": {
            "id": t.id,
            "step": step.map(|s| s.name.get(lang).to_string()),
            "org": orgs.name_of(t.org_id, lang),
            "status": task_status_label(lang, t.status),
            "live": live,
            "mine": t.claimant_id == Some(me.0),
            "claimant": t.claimant_id.and_then(|c| names.get(&c).cloned()),
            "delegated_by": t.delegated_by.and_then(|c| names.get(&c).cloned()),
            "due": t.due_date.to_string(),
            "due_info": due,
            "promised_days": step.map(|s| s.promised_days),
        },
        "app": app_summary(&app, &def, lang),
        "company": {
            "name": company.name,
            "uscc": company.uscc,
            "district": orgs.name_of(company.district_org_id, lang),
        },
        "earlier": earlier,
        "sections": sections,
        "materials": materials,
        "diff": {
            "shown": diff.shown,
            "fields": diff.fields,
            "materials": diff.materials,
            "round": app.round,
        },
        "tasks": tasks_view,
        "history": history,
        "diagram": diagram(state, &app, &def, &orgs, lang).await?,
        "deliveries": delivery_log(state, &app, me, lang).await?,
        "colleagues": colleagues.iter().map(|u| json!({ "id": u.id, "name": u.name, "email": u.email })).collect::<Vec<_>>(),
        "candidates": candidates.iter().map(|(code, id, name)| json!({ "id": id, "code": code, "name": name })).collect::<Vec<_>>(),
        "can": {
            "claim": allowed("claim"),
            "release": allowed("release"),
            "approve": allowed("approve"),
            "return": allowed("return"),
            "reject": allowed("reject"),
            "transfer": allowed("transfer") && !colleagues.is_empty(),
            "delegate": allowed("delegate") && !colleagues.is_empty(),
            "comment": allowed("comment"),
            "add_signer": allowed("add_signer"),
            "remove_signer": !removable.is_empty(),
            "decide": allowed("approve") || allowed("return") || allowed("reject"),
        },
        "why_not": {
            "claim": why_not("claim"),
            "decide": why_not("approve"),
            "transfer": if colleagues.is_empty() { Some(i18n::t(lang, "review-no-colleagues")) } else { why_not("transfer") },
        },
        "kept": {
            "opinion": kept.opinion,
            "reason": kept.reason,
            "return_comment": kept.return_comment,
            "comment": kept.comment,
            "comment_internal": kept.comment_internal,
            "signer_reason": kept.signer_reason,
        },
        "errors": {
            "approve": field_error("approve"),
            "return": field_error("return"),
            "reject": field_error("reject"),
            "comment": field_error("comment"),
            "signer": field_error("add_signer").or_else(|| field_error("remove_signer")),
            "transfer": field_error("transfer").or_else(|| field_error("delegate")),
        },
        "notice": notice_json,
    });
    let status = match &notice {
        Some(n) if n.conflict => StatusCode::CONFLICT,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let resp = ctx.page(state, "pages/task", "review-task-title", data)?;
    Ok(resp.with_status(status).into_response())
}

/// What changed between the version that was returned and the one resubmitted.
struct Diff {
    shown: bool,
    fields: Vec<Value>,
    materials: Vec<Value>,
}

async fn resubmission_diff(
    state: &State,
    app: &application::Model,
    def: &Definition,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<Diff> {
    let versions = submitted_version::Entity::find()
        .filter(submitted_version::Column::ApplicationId.eq(app.id))
        .order_by_desc(submitted_version::Column::Round)
        .order_by_desc(submitted_version::Column::CreatedAt)
        .limit(2)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let [new, old] = versions.as_slice() else {
        return Ok(Diff {
            shown: false,
            fields: vec![],
            materials: vec![],
        });
    };
    let fields = def
        .fields
        .iter()
        .filter(|f| old.form_data[&f.name] != new.form_data[&f.name])
        .map(|f| {
            json!({
                "name": f.name,
                "label": f.label.get(lang),
                "before": display_value(f, &old.form_data[&f.name], lang, orgs),
                "after": display_value(f, &new.form_data[&f.name], lang, orgs),
            })
        })
        .collect();
    let materials = def
        .materials
        .iter()
        .filter(|m| old.attachments[&m.id]["sha256"] != new.attachments[&m.id]["sha256"])
        .map(|m| {
            json!({
                "name": m.name.get(lang),
                "before": old.attachments[&m.id]["filename"],
                "after": new.attachments[&m.id]["filename"],
            })
        })
        .collect();
    Ok(Diff {
        shown: true,
        fields,
        materials,
    })
}

/// Every event of the application, internal notes and assignments included, with names.
async fn full_history(
    state: &State,
    app: &application::Model,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<Vec<Value>> {
    let events = history_event::Entity::find()
        .filter(history_event::Column::ApplicationId.eq(app.id))
        .order_by_asc(history_event::Column::Seq)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let names = user_names(state, events.iter().filter_map(|e| e.actor_user_id)).await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
            let d = &payload["details"];
            let text = ["opinion", "reason", "comment", "text", "note"]
                .iter()
                .find_map(|k| d[*k].as_str())
                .map(str::to_string);
            let items: Vec<String> = d["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            format!(
                                "{}:{}",
                                i["id"].as_str().unwrap_or_default(),
                                i["note"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "when": crate::calendar::local_time(e.created_at).format("%Y-%m-%d %H:%M").to_string(),
                "what": i18n::t(lang, &format!("event-{}", e.kind)),
                "who": e.actor_user_id.and_then(|u| names.get(&u).cloned()),
                "org": e.actor_org_id.map(|o| orgs.name_of(o, lang)),
                "internal": e.internal,
                "text": text,
                "items": items,
            })
        })
        .collect())
}

/// The company's other applications; a link where the reviewer may open them.
async fn earlier_applications(
    ctx: &Ctx,
    state: &State,
    app: &application::Model,
    orgs: &OrgDirectory,
    lang: &str,
) -> poem::Result<Vec<Value>> {
    let others = application::Entity::find()
        .filter(application::Column::CompanyId.eq(app.company_id))
        .filter(application::Column::Id.ne(app.id))
        .filter(application::Column::Status.ne(ApplicationStatus::Draft))
        .order_by_desc(application::Column::CreatedAt)
        .limit(20)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let ids: Vec<Uuid> = others.iter().map(|a| a.id).collect();
    let visible: BTreeSet<Uuid> = if ctx.roles.system_admin {
        ids.iter().copied().collect()
    } else if ids.is_empty() {
        BTreeSet::new()
    } else {
        task::Entity::find()
            .filter(task::Column::ApplicationId.is_in(ids))
            .filter(task::Column::OrgId.is_in(ctx.roles.reviewer_of.iter().copied()))
            .all(&state.db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|t| t.application_id)
            .collect()
    };
    let mut out = Vec::new();
    for a in others {
        let def = store::definition_by_id(&state.db, a.definition_id, orgs)
            .await
            .map_err(internal)?;
        out.push(json!({
            "id": a.id,
            "reference": a.reference,
            "type": def.name.get(lang),
            "status": status_label(lang, a.status),
            "submitted": a.submitted_at.map(|t| local_date(t).to_string()),
            "visible": visible.contains(&a.id),
        }));
    }
    Ok(out)
}

/// Reads a posted form as pairs (check boxes repeat their name).
fn pairs(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// One action on a task, posted from the task page.
#[handler]
pub async fn act(
    ctx: Ctx,
    state: Data<&State>,
    Path((id, action)): Path<(Uuid, String)>,
    body: String,
) -> poem::Result<Response> {
    let Some(me) = ctx.user_id() else {
        return Ok(redirect("/login"));
    };
    let t = visible_task(&ctx, &state, id).await?;
    let form = pairs(&body);
    let mut kept = Kept::default();
    let task = TaskId(t.id);
    let parse_user = |name: &str| Uuid::parse_str(field(&form, name)).ok().map(UserId);
    let parsed: Result<Action, &'static str> = match action.as_str() {
        "claim" => Ok(Action::Claim { task }),
        "release" => Ok(Action::Release { task }),
        "approve" => {
            kept.opinion = field(&form, "opinion").to_string();
            Ok(Action::Approve {
                task,
                opinion: kept.opinion.clone(),
            })
        }
        "reject" => {
            kept.reason = field(&form, "reason").to_string();
            Ok(Action::Reject {
                task,
                reason: kept.reason.clone(),
            })
        }
        "return" => {
            kept.return_comment = field(&form, "comment").to_string();
            let mut items = Vec::new();
            for (k, v) in &form {
                if k != "item" {
                    continue;
                }
                let note = field(&form, &format!("note:{v}")).to_string();
                kept.return_items.insert(v.clone(), note.clone());
                let (kind, item) = match v.split_once(':') {
                    Some(("section", id)) => (ItemKind::Section, id),
                    Some(("material", id)) => (ItemKind::Material, id),
                    _ => continue,
                };
                items.push(ReturnItem {
                    kind,
                    id: item.to_string(),
                    note,
                });
            }
            Ok(Action::Return {
                task,
                items,
                comment: kept.return_comment.clone(),
            })
        }
        "transfer" | "delegate" => match parse_user("to") {
            Some(user) => {
                let to = Assignee {
                    user,
                    orgs: BTreeSet::new(),
                };
                Ok(if action == "transfer" {
                    Action::Transfer { task, to }
                } else {
                    Action::Delegate { task, to }
                })
            }
            None => Err("review-choose-colleague"),
        },
        "comment" => {
            kept.comment = field(&form, "text").to_string();
            kept.comment_internal = field(&form, "visibility") != "applicant";
            Ok(Action::Comment {
                text: kept.comment.clone(),
                internal: kept.comment_internal,
            })
        }
        "remind" => match Uuid::parse_str(field(&form, "task")) {
            Ok(other) => Ok(Action::Remind {
                task: TaskId(other),
            }),
            Err(_) => Ok(Action::Remind { task }),
        },
        "add_signer" => {
            kept.signer_reason = field(&form, "reason").to_string();
            match Uuid::parse_str(field(&form, "org")) {
                Ok(org) => Ok(Action::AddSigner {
                    org: OrgId(org),
                    reason: kept.signer_reason.clone(),
                }),
                Err(_) => Err("review-choose-org"),
            }
        }
        "remove_signer" => {
            kept.signer_reason = field(&form, "reason").to_string();
            match Uuid::parse_str(field(&form, "task")) {
                Ok(other) => Ok(Action::RemoveSigner {
                    task: TaskId(other),
                    reason: kept.signer_reason.clone(),
                }),
                Err(_) => Err("review-choose-org"),
            }
        }
        _ => return Err(not_found()),
    };
    let action_key = action.clone();
    let act = match parsed {
        Ok(a) => a,
        Err(key) => {
            let notice = Notice {
                conflict: false,
                message: i18n::t(ctx.lang, key),
                action: action_key,
            };
            return render_task(&ctx, &state, id, kept, Some(notice)).await;
        }
    };
    let decision = matches!(
        act,
        Action::Approve { .. } | Action::Return { .. } | Action::Reject { .. }
    );
    match store::execute(&state.db, ApplicationId(t.application_id), me, act).await {
        Ok(_) => {
            ctx.session.flash(&format!("review-done-{action_key}"));
            if decision {
                Ok(redirect("/inbox"))
            } else {
                Ok(redirect(&format!("/tasks/{id}")))
            }
        }
        Err(StoreError::Refused(Refusal::NotPermitted)) => {
            Err(poem::Error::from_status(StatusCode::FORBIDDEN))
        }
        Err(StoreError::Refused(r)) => {
            // The page carries the version the reviewer saw: a refusal after the
            // application changed under them is someone else acting first.
            let seen: Option<i64> = field(&form, "version").parse().ok();
            let now = application::Entity::find_by_id(t.application_id)
                .one(&state.db)
                .await
                .map_err(internal)?
                .map(|a| a.version);
            let moved = seen.is_some() && now.is_some() && seen != now;
            let conflict = moved || r.is_conflict() || r == Refusal::AlreadyClaimed;
            let message = if conflict {
                format!(
                    "{} {}",
                    i18n::t(ctx.lang, "review-conflict"),
                    refusal_message(ctx.lang, &r)
                )
            } else {
                refusal_message(ctx.lang, &r)
            };
            let notice = Notice {
                conflict,
                message,
                action: action_key,
            };
            render_task(&ctx, &state, id, kept, Some(notice)).await
        }
        Err(StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(internal(e)),
    }
}
