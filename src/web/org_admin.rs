//! Organization administration: an org admin's reviewers (invite, deactivate, reactivate),
//! their workload, and reassigning the tasks of an absent colleague.
//!
//! Every page is under `/org-admin/{org}`; an org admin only ever reaches the organizations
//! they administer (any other organization is a 404, whatever else the user may be).

use entity::enums::OrgRole;
use poem::{
    IntoResponse, Response, Route, get, handler,
    http::StatusCode,
    web::{Data, Form, Path, Query},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{self, FieldError};
use crate::org_admin::{self as domain, AcceptError, Holder, Invite, Invited, MembershipError};
use crate::settings::Settings;
use crate::web::{Ctx, State, i18n, redirect};

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
        .at("/org-admin", get(index))
        .at("/org-admin/:org", get(overview))
        .at("/org-admin/:org/invite", poem::post(invite))
        .at(
            "/org-admin/:org/reviewers/:user/deactivate",
            poem::post(deactivate),
        )
        .at(
            "/org-admin/:org/reviewers/:user/reactivate",
            poem::post(reactivate),
        )
        .at(
            "/org-admin/:org/reassign",
            get(reassign_form).post(reassign),
        )
        .at(
            "/org-invitation",
            get(invitation_form).post(accept_invitation),
        )
}

/// Why a request does not reach an organization's administration.
enum Refused {
    /// Nobody is signed in.
    Login,
    /// Not an organization this user administers.
    NotFound,
}

impl Refused {
    fn response(self) -> Response {
        match self {
            Refused::Login => redirect("/login"),
            Refused::NotFound => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

/// The org admin's user id, when `org` is one of the organizations they administer; a
/// visitor is sent to sign in, anyone else gets a 404 (the organization's administration
/// is not theirs to know about).
fn gate(ctx: &Ctx, org: Uuid) -> Result<Uuid, Refused> {
    let Some(u) = &ctx.user else {
        return Err(Refused::Login);
    };
    if !ctx.roles.admin_of.contains(&org) {
        return Err(Refused::NotFound);
    }
    Ok(u.user.id)
}

macro_rules! gate {
    ($ctx:expr, $org:expr) => {
        match gate(&$ctx, $org) {
            Ok(u) => u,
            Err(refused) => return Ok(refused.response()),
        }
    };
}

/// Form problems for the templates; our own messages are full keys (`orgadmin-…`), the
/// shared ones are `error-…` keys of the main catalog.
fn errors_json(lang: &str, errors: &[FieldError]) -> Value {
    crate::web::form_errors(
        lang,
        errors.iter().map(|e| {
            let key = if e.message.starts_with("orgadmin-") {
                e.message.to_string()
            } else {
                format!("error-{}", e.message)
            };
            (e.field.as_str(), key)
        }),
    )
}

fn today() -> chrono::NaiveDate {
    crate::calendar::local_date(crate::store::now())
}

async fn org_name(state: &State, lang: &str, org: Uuid) -> poem::Result<String> {
    let o = domain::organization(&state.db, org)
        .await
        .map_err(crate::web::internal)?
        .ok_or_else(|| poem::Error::from_status(StatusCode::NOT_FOUND))?;
    Ok(if lang == "en" { o.name_en } else { o.name_zh })
}

/// `/org-admin`: the organization to administer (straight to it when there is one).
#[handler]
async fn index(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    if ctx.user.is_none() {
        return Ok(redirect("/login"));
    }
    let orgs: Vec<Uuid> = ctx.roles.admin_of.iter().copied().collect();
    match orgs.as_slice() {
        // Like every area page a user has no part in (/admin, /inbox): not found.
        [] => Err(poem::Error::from_status(StatusCode::NOT_FOUND)),
        [only] => Ok(redirect(&format!("/org-admin/{only}"))),
        many => {
            let mut list = Vec::new();
            for o in many {
                list.push(json!({ "id": o, "name": org_name(&state, ctx.lang, *o).await? }));
            }
            ctx.page(
                &state,
                "pages/org_admin_choose",
                "orgadmin-title",
                json!({ "orgs": list }),
            )
        }
    }
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn render_overview(
    ctx: &Ctx,
    state: &State,
    org: Uuid,
    form: &InviteForm,
    errors: &[FieldError],
    notice: Option<&str>,
    status: StatusCode,
) -> poem::Result<Response> {
    let me = ctx.user_id().map(|u| u.0);
    let db = &state.db;
    let people = domain::reviewers(db, org)
        .await
        .map_err(crate::web::internal)?;
    let load = domain::workload(db, org, today())
        .await
        .map_err(crate::web::internal)?;
    let last = domain::last_activity(db, org)
        .await
        .map_err(crate::web::internal)?;
    let active_admins = people.iter().filter(|r| r.active && r.org_admin).count();
    let rows: Vec<Value> = people
        .iter()
        .map(|r| {
            let l = load
                .by_claimant
                .get(&r.user_id)
                .copied()
                .unwrap_or_default();
            // The last active admin is offered no button to lock the organization out
            // (the server refuses it anyway).
            let last_admin = r.active && r.org_admin && active_admins == 1;
            json!({
                "id": r.user_id,
                "name": r.name,
                "email": r.email,
                "org_admin": r.org_admin,
                "active": r.active,
                "pending": r.pending,
                "is_me": Some(r.user_id) == me,
                "can_toggle": !last_admin,
                "open": l.open,
                "overdue": l.overdue,
                "last_activity": last.get(&r.user_id).map(|t| crate::calendar::local_time(*t).format("%Y-%m-%d %H:%M").to_string()),
            })
        })
        .collect();
    let others: Vec<Value> = ctx
        .roles
        .admin_of
        .iter()
        .filter(|o| **o != org)
        .map(|o| json!({ "id": o }))
        .collect();
    let resp = ctx.page(
        state,
        "pages/org_admin",
        "orgadmin-title",
        json!({
            "org": { "id": org, "name": org_name(state, ctx.lang, org).await? },
            "several": !others.is_empty(),
            "reviewers": rows,
            "unclaimed": load.unclaimed,
            "form": form,
            "role_admin": form.role == "org_admin",
            "errors": errors_json(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
            "notice": notice,
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The organization's reviewers with their workload, and the invitation form.
#[handler]
async fn overview(ctx: Ctx, state: Data<&State>, Path(org): Path<Uuid>) -> poem::Result<Response> {
    gate!(ctx, org);
    render_overview(
        &ctx,
        &state,
        org,
        &InviteForm::default(),
        &[],
        None,
        StatusCode::OK,
    )
    .await
}

/// Invites a reviewer by email (or adds an existing account to the organization).
#[handler]
async fn invite(
    ctx: Ctx,
    state: Data<&State>,
    Path(org): Path<Uuid>,
    Form(form): Form<InviteForm>,
) -> poem::Result<Response> {
    let admin = gate!(ctx, org);
    let role = match form.role.as_str() {
        "" | "reviewer" => Some(OrgRole::Reviewer),
        "org_admin" => Some(OrgRole::OrgAdmin),
        _ => None,
    };
    let outcome = match role {
        None => Err(vec![FieldError {
            field: "role".into(),
            message: "orgadmin-error-role",
        }]),
        Some(role) => domain::invite(
            &state.db,
            Invite {
                admin,
                org,
                email: &form.email,
                role,
                locale: ctx.lang,
            },
        )
        .await
        .map_err(crate::web::internal)?,
    };
    match outcome {
        Ok(done) => {
            ctx.session.flash(match done {
                Invited::NewUser(_) => "orgadmin-flash-invited",
                Invited::ExistingUser(_) => "orgadmin-flash-added",
            });
            Ok(redirect(&format!("/org-admin/{org}")))
        }
        Err(errors) => {
            render_overview(
                &ctx,
                &state,
                org,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn set_active(
    ctx: Ctx,
    state: &State,
    org: Uuid,
    member: Uuid,
    active: bool,
) -> poem::Result<Response> {
    let admin = gate!(ctx, org);
    match domain::set_active(&state.db, admin, org, member, active)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(()) => {
            ctx.session.flash(if active {
                "orgadmin-flash-reactivated"
            } else {
                "orgadmin-flash-deactivated"
            });
            Ok(redirect(&format!("/org-admin/{org}")))
        }
        Err(MembershipError::NotFound) => Err(poem::Error::from_status(StatusCode::NOT_FOUND)),
        Err(MembershipError::LastAdmin) => {
            render_overview(
                &ctx,
                state,
                org,
                &InviteForm::default(),
                &[],
                Some("orgadmin-last-admin"),
                StatusCode::FORBIDDEN,
            )
            .await
        }
    }
}

/// Deactivates a reviewer's membership.
#[handler]
async fn deactivate(
    ctx: Ctx,
    state: Data<&State>,
    Path((org, member)): Path<(Uuid, Uuid)>,
) -> poem::Result<Response> {
    set_active(ctx, &state, org, member, false).await
}

/// Reactivates a reviewer's membership.
#[handler]
async fn reactivate(
    ctx: Ctx,
    state: Data<&State>,
    Path((org, member)): Path<(Uuid, Uuid)>,
) -> poem::Result<Response> {
    set_active(ctx, &state, org, member, true).await
}

#[derive(Debug, Default, Deserialize)]
struct FromQuery {
    #[serde(default)]
    from: String,
}

fn parse_holder(from: &str) -> Option<Holder> {
    if from == "unclaimed" {
        Some(Holder::Unclaimed)
    } else {
        Uuid::parse_str(from).ok().map(Holder::User)
    }
}

struct Typed<'a> {
    tasks: &'a [String],
    all: bool,
    to: &'a str,
}

#[allow(clippy::too_many_arguments)]
async fn render_reassign(
    ctx: &Ctx,
    state: &State,
    org: Uuid,
    holder: Holder,
    typed: &Typed<'_>,
    errors: &[FieldError],
    results: Option<Vec<Value>>,
    status: StatusCode,
) -> poem::Result<Response> {
    let me = ctx.user_id().map(|u| u.0);
    let db = &state.db;
    let people = domain::reviewers(db, org)
        .await
        .map_err(crate::web::internal)?;
    let holder_row = match holder {
        Holder::User(u) => Some(
            people
                .iter()
                .find(|r| r.user_id == u)
                .ok_or_else(|| poem::Error::from_status(StatusCode::NOT_FOUND))?,
        ),
        Holder::Unclaimed => None,
    };
    let tasks = domain::tasks_of(db, org, holder, today(), ctx.lang)
        .await
        .map_err(crate::web::internal)?;
    let task_rows: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.task_id,
                "application_id": t.application_id,
                "reference": t.reference,
                "type_name": t.type_name,
                "step_name": t.step_name,
                "due": t.due.to_string(),
                "overdue": t.overdue,
                "checked": typed.tasks.iter().any(|s| s == &t.task_id.to_string()),
            })
        })
        .collect();
    let colleagues: Vec<Value> = people
        .iter()
        .filter(|r| {
            r.active && Some(r.user_id) != me && holder_row.is_none_or(|h| h.user_id != r.user_id)
        })
        .map(|r| {
            json!({
                "id": r.user_id,
                "name": r.name,
                "email": r.email,
                "selected": typed.to == r.user_id.to_string(),
            })
        })
        .collect();
    let resp = ctx.page(
        state,
        "pages/org_admin_reassign",
        "orgadmin-reassign-title",
        json!({
            "org": { "id": org, "name": org_name(state, ctx.lang, org).await? },
            "from": match holder { Holder::User(u) => u.to_string(), Holder::Unclaimed => "unclaimed".into() },
            "holder": holder_row.map(|h| json!({ "name": h.name, "email": h.email, "active": h.active })),
            "tasks": task_rows,
            "all": typed.all,
            "colleagues": colleagues,
            "results": results,
            "errors": errors_json(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The live tasks of one reviewer (or the unclaimed ones), to hand to a colleague.
#[handler]
async fn reassign_form(
    ctx: Ctx,
    state: Data<&State>,
    Path(org): Path<Uuid>,
    Query(q): Query<FromQuery>,
) -> poem::Result<Response> {
    gate!(ctx, org);
    let Some(holder) = parse_holder(&q.from) else {
        return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
    };
    let typed = Typed {
        tasks: &[],
        all: false,
        to: "",
    };
    render_reassign(&ctx, &state, org, holder, &typed, &[], None, StatusCode::OK).await
}

/// Transfers the chosen tasks (or all of the reviewer's) to a colleague, each through the
/// engine; the tasks it refuses are listed with its reasons.
#[handler]
async fn reassign(
    ctx: Ctx,
    state: Data<&State>,
    Path(org): Path<Uuid>,
    body: String,
) -> poem::Result<Response> {
    let admin = gate!(ctx, org);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let value = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let Some(holder) = parse_holder(value("from")) else {
        return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
    };
    let tasks: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "task")
        .map(|(_, v)| v.clone())
        .collect();
    let all = value("all") == "1" && matches!(holder, Holder::User(_));
    let to = value("to");
    let typed = Typed {
        tasks: &tasks,
        all,
        to,
    };
    let mut errors = Vec::new();
    let colleague = Uuid::parse_str(to).ok();
    let known = match colleague {
        Some(c) => domain::reviewers(&state.db, org)
            .await
            .map_err(crate::web::internal)?
            .iter()
            .any(|r| r.user_id == c && r.active),
        None => false,
    };
    if !known {
        errors.push(FieldError {
            field: "to".into(),
            message: "orgadmin-error-choose-colleague",
        });
    }
    let selection = match holder {
        Holder::User(u) if all => Some(domain::Selection::AllOf(u)),
        _ if tasks.is_empty() => {
            errors.push(FieldError {
                field: "tasks".into(),
                message: "orgadmin-error-choose-tasks",
            });
            None
        }
        _ => {
            let mut ids = Vec::new();
            for t in &tasks {
                ids.push(
                    Uuid::parse_str(t)
                        .map_err(|_| poem::Error::from_status(StatusCode::NOT_FOUND))?,
                );
            }
            Some(domain::Selection::Tasks(ids))
        }
    };
    let (Some(selection), Some(to_user), true) = (selection, colleague, errors.is_empty()) else {
        return render_reassign(
            &ctx,
            &state,
            org,
            holder,
            &typed,
            &errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let done = match domain::reassign(&state.db, admin, org, selection, to_user)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(done) => done,
        Err(domain::ReassignError::UnknownTask) => {
            return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
        }
    };
    if done.iter().all(|r| r.refusal.is_none()) {
        ctx.session.flash("orgadmin-flash-reassigned");
        let from = value("from");
        return Ok(redirect(&format!("/org-admin/{org}/reassign?from={from}")));
    }
    let results: Vec<Value> = done
        .iter()
        .map(|r| {
            json!({
                "task_id": r.task_id,
                "reference": r.reference,
                "done": r.refusal.is_none(),
                "reason": r.refusal.as_deref().map(|k| i18n::t(ctx.lang, k)),
            })
        })
        .collect();
    let typed = Typed {
        tasks: &[],
        all: false,
        to: "",
    };
    render_reassign(
        &ctx,
        &state,
        org,
        holder,
        &typed,
        &[],
        Some(results),
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Default, Deserialize)]
struct AcceptForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn render_invitation(
    ctx: &Ctx,
    state: &State,
    token: &str,
    name: &str,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let resp = ctx.page(
        state,
        "pages/org_admin_invitation",
        "orgadmin-invitation-title",
        json!({
            "token": token,
            "name": name,
            "errors": errors_json(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The link from a reviewer's invitation: choose a name and a password.
#[handler]
async fn invitation_form(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    render_invitation(&ctx, &state, &q.token, "", &[], StatusCode::OK)
}

/// Accepts the invitation: sets name and password, signs in, opens the inbox.
#[handler]
async fn accept_invitation(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<AcceptForm>,
) -> poem::Result<Response> {
    let name = form.name.trim();
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(FieldError {
            field: "name".into(),
            message: "required",
        });
    } else if name.chars().count() > 100 {
        errors.push(FieldError {
            field: "name".into(),
            message: "too-long",
        });
    }
    errors.extend(accounts::new_password_errors(
        &form.password,
        &form.password_confirm,
        &[name],
    ));
    if !errors.is_empty() {
        return render_invitation(
            &ctx,
            &state,
            &form.token,
            &form.name,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    match domain::accept_invitation(&state.db, &state.hasher, &form.token, name, &form.password)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(user) => {
            ctx.session.login(crate::ids::UserId(user));
            Ok(redirect("/inbox"))
        }
        Err(e) => {
            let key = match e {
                AcceptError::Expired => "orgadmin-invitation-expired",
                AcceptError::Invalid => "orgadmin-invitation-invalid",
            };
            let resp = ctx.page(
                &state,
                "pages/message",
                "orgadmin-invitation-title",
                json!({ "message": i18n::t(ctx.lang, key) }),
            )?;
            Ok(resp.with_status(StatusCode::BAD_REQUEST).into_response())
        }
    }
}
