//! Registration, login, logout, email verification.

use entity::enums::OrgKind;
use entity::{company, company_member, organization};
use poem::{
    IntoResponse, Response, handler,
    http::{StatusCode, header},
    web::{Data, Form, Query},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::{self, FieldError, LoginError, RegistrationForm, TokenError};
use crate::web::{Ctx, State, field_errors, i18n, redirect};

async fn districts(state: &State, lang: &str) -> poem::Result<Vec<Value>> {
    let rows = organization::Entity::find()
        .filter(organization::Column::Kind.eq(OrgKind::District))
        .filter(organization::Column::Active.eq(true))
        .order_by_asc(organization::Column::SortOrder)
        .all(&state.db)
        .await
        .map_err(crate::web::internal)?;
    Ok(rows
        .into_iter()
        .map(|o| {
            json!({
                "code": o.code,
                "name": if lang == "en" { o.name_en } else { o.name_zh },
            })
        })
        .collect())
}

async fn render_register(
    ctx: &Ctx,
    state: &State,
    form: &RegistrationForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let mut districts = districts(state, ctx.lang).await?;
    for d in &mut districts {
        let selected = d["code"].as_str() == Some(form.district.as_str());
        d["selected"] = json!(selected);
    }
    let resp = ctx.page(
        state,
        "pages/register",
        "register-title",
        json!({
            "form": form,
            "errors": field_errors(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
            "districts": districts,
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The registration form.
#[handler]
pub async fn register_form(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    if ctx.user.is_some() {
        return Ok(redirect("/account"));
    }
    render_register(
        &ctx,
        &state,
        &RegistrationForm::default(),
        &[],
        StatusCode::OK,
    )
    .await
}

/// Registers a company; on mistakes the form comes back with every message and the input.
#[handler]
pub async fn register(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<RegistrationForm>,
) -> poem::Result<Response> {
    let reg = match form.validate(&state.db).await {
        Ok(r) => r,
        Err(errors) => {
            return render_register(
                &ctx,
                &state,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match accounts::register(&state.db, &state.hasher, reg, ctx.lang, &state.base_url).await {
        Ok(user) => {
            ctx.session.login(user);
            ctx.session.flash("flash-registered");
            Ok(redirect("/account"))
        }
        Err(accounts::RegisterError::Invalid(errors)) => {
            render_register(
                &ctx,
                &state,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(accounts::RegisterError::Other(e)) => Err(crate::web::internal(e)),
    }
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
}

fn render_login(
    ctx: &Ctx,
    state: &State,
    form: &LoginForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let resp = ctx.page(
        state,
        "pages/login",
        "login-title",
        json!({
            "form": form,
            "errors": field_errors(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    reset: Option<String>,
}

/// The login form (after a password reset, with a notice).
#[handler]
pub async fn login_form(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<LoginQuery>,
) -> poem::Result<Response> {
    if ctx.user.is_some() {
        return Ok(redirect("/account"));
    }
    if q.reset.is_some() {
        ctx.session.flash("flash-password-reset");
    }
    render_login(&ctx, &state, &LoginForm::default(), &[], StatusCode::OK)
}

/// Logs in. The message is the same whether the account exists or not; repeated failures
/// slow down per account and per address (429 with the time to try again).
#[handler]
pub async fn login(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<LoginForm>,
) -> poem::Result<Response> {
    let mut errors = Vec::new();
    if form.email.trim().is_empty() {
        errors.push(FieldError {
            field: "email".into(),
            message: "required",
        });
    }
    if form.password.is_empty() {
        errors.push(FieldError {
            field: "password".into(),
            message: "required",
        });
    }
    if !errors.is_empty() {
        return render_login(
            &ctx,
            &state,
            &form,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let outcome = accounts::authenticate(
        &state.db,
        &state.hasher,
        state.login_limits,
        &form.email,
        &form.password,
        &ctx.address,
    )
    .await
    .map_err(crate::web::internal)?;
    match outcome {
        Ok(user) => {
            ctx.session.login(user);
            Ok(redirect("/account"))
        }
        Err(LoginError::Invalid) => {
            let errors = [FieldError {
                field: "email".into(),
                message: "login-invalid",
            }];
            render_login(&ctx, &state, &form, &errors, StatusCode::UNAUTHORIZED)
        }
        Err(LoginError::Throttled(until)) => {
            let wait = (until - crate::store::now()).num_seconds().max(1);
            let minutes = (wait + 59) / 60;
            let resp = ctx.page(
                &state,
                "pages/throttled",
                "throttled-title",
                json!({ "minutes": minutes }),
            )?;
            Ok(resp
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .with_header(header::RETRY_AFTER, wait.to_string())
                .into_response())
        }
    }
}

/// Logs out: the session ends on the server.
#[handler]
pub async fn logout(ctx: Ctx) -> Response {
    ctx.session.logout();
    redirect("/")
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The link from the verification email.
#[handler]
pub async fn verify_email(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    let outcome = accounts::verify_email(&state.db, &q.token)
        .await
        .map_err(crate::web::internal)?;
    let (key, status) = match outcome {
        Ok(_) => ("verify-done", StatusCode::OK),
        Err(TokenError::Expired) => ("verify-expired", StatusCode::BAD_REQUEST),
        Err(TokenError::Invalid) => ("verify-invalid", StatusCode::BAD_REQUEST),
    };
    let resp = ctx.page(
        &state,
        "pages/message",
        "verify-title",
        json!({ "message": i18n::t(ctx.lang, key) }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The signed-in home: who you are, your company, whether your email is verified.
#[handler]
pub async fn account(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let membership = company_member::Entity::find()
        .filter(company_member::Column::UserId.eq(user.user.id))
        .filter(company_member::Column::Active.eq(true))
        .one(&state.db)
        .await
        .map_err(crate::web::internal)?;
    let company = match membership {
        Some(m) => company::Entity::find_by_id(m.company_id)
            .one(&state.db)
            .await
            .map_err(crate::web::internal)?
            .map(|c| json!({ "name": c.name, "uscc": c.uscc, "role": m.role })),
        None => None,
    };
    ctx.page(
        &state,
        "pages/account",
        "account-title",
        json!({
            "company": company,
            "verified": user.user.email_verified_at.is_some(),
        }),
    )
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// Asks for the email address to send a reset link to.
#[handler]
pub async fn forgot_form(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    ctx.page(
        &state,
        "pages/forgot",
        "forgot-title",
        json!({ "form": ForgotForm::default(), "sent": false }),
    )
}

/// Sends a reset link when the account exists; the answer is the same either way.
#[handler]
pub async fn forgot(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<ForgotForm>,
) -> poem::Result<Response> {
    accounts::request_password_reset(&state.db, &form.email, &state.base_url)
        .await
        .map_err(crate::web::internal)?;
    ctx.page(
        &state,
        "pages/forgot",
        "forgot-title",
        json!({ "form": form, "sent": true }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn render_reset(
    ctx: &Ctx,
    state: &State,
    token: &str,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let resp = ctx.page(
        state,
        "pages/reset",
        "reset-title",
        json!({
            "token": token,
            "errors": field_errors(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The form behind the reset link.
#[handler]
pub async fn reset_form(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    render_reset(&ctx, &state, &q.token, &[], StatusCode::OK)
}

/// Sets the new password if the link is still valid; the link works once.
#[handler]
pub async fn reset(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<ResetForm>,
) -> poem::Result<Response> {
    let mut errors = Vec::new();
    errors.extend(accounts::new_password_errors(
        &form.password,
        &form.password_confirm,
        &[],
    ));
    if !errors.is_empty() {
        // The token is only consumed once the new password is acceptable.
        return render_reset(
            &ctx,
            &state,
            &form.token,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let user = match accounts::consume_token(&state.db, "password_reset", &form.token)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(u) => u,
        Err(e) => {
            let key = if e == TokenError::Expired {
                "reset-expired"
            } else {
                "reset-invalid"
            };
            let resp = ctx.page(
                &state,
                "pages/message",
                "reset-title",
                json!({ "message": i18n::t(ctx.lang, key) }),
            )?;
            return Ok(resp.with_status(StatusCode::BAD_REQUEST).into_response());
        }
    };
    accounts::set_password(
        &state.db,
        &state.hasher,
        user,
        &form.password,
        &state.base_url,
    )
    .await
    .map_err(crate::web::internal)?;
    ctx.session.logout();
    Ok(redirect("/login?reset=1"))
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn render_change(
    ctx: &Ctx,
    state: &State,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let resp = ctx.page(
        state,
        "pages/password",
        "password-title",
        json!({ "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty() }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The change-password form.
#[handler]
pub async fn change_form(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    if ctx.user.is_none() {
        return Ok(redirect("/login"));
    }
    render_change(&ctx, &state, &[], StatusCode::OK)
}

/// Changes the password (the current one is required); other sessions end.
#[handler]
pub async fn change(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<ChangeForm>,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let mut errors = Vec::new();
    let ok = state
        .hasher
        .verify(form.current.clone(), user.user.password_hash.clone())
        .await
        .map_err(crate::web::internal)?;
    if !ok {
        errors.push(FieldError {
            field: "current".into(),
            message: "password-current-wrong",
        });
    }
    let inputs = [user.user.email.as_str(), user.user.name.as_str()];
    errors.extend(accounts::new_password_errors(
        &form.password,
        &form.password_confirm,
        &inputs,
    ));
    if !errors.is_empty() {
        return render_change(&ctx, &state, &errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    accounts::set_password(
        &state.db,
        &state.hasher,
        user.user.id,
        &form.password,
        &state.base_url,
    )
    .await
    .map_err(crate::web::internal)?;
    // This browser stays signed in, with a new session id.
    ctx.session.login(crate::ids::UserId(user.user.id));
    ctx.session.flash("flash-password-changed");
    Ok(redirect("/account"))
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct InviteForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

async fn render_members(
    ctx: &Ctx,
    state: &State,
    form: &InviteForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let Some((company, admin)) = accounts::membership(&state.db, user.user.id)
        .await
        .map_err(crate::web::internal)?
    else {
        return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
    };
    let people = accounts::members(&state.db, company)
        .await
        .map_err(crate::web::internal)?;
    let rows: Vec<Value> = people
        .iter()
        .map(|m| {
            json!({
                "id": m.user_id,
                "name": m.name,
                "email": m.email,
                "admin": m.admin,
                "active": m.active,
                "pending": m.pending,
                "is_me": m.user_id == user.user.id,
            })
        })
        .collect();
    let resp = ctx.page(
        state,
        "pages/members",
        "members-title",
        json!({
            "members": rows,
            "is_admin": admin,
            "form": form,
            "errors": field_errors(ctx.lang, errors),
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The company's members; the company admin invites and deactivates colleagues here.
#[handler]
pub async fn members(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    render_members(&ctx, &state, &InviteForm::default(), &[], StatusCode::OK).await
}

/// Invites a colleague by email.
#[handler]
pub async fn invite(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<InviteForm>,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    // Without a company the members area does not exist for the user.
    if ctx.roles.companies.is_empty() {
        return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
    }
    match accounts::invite_member(
        &state.db,
        user.user.id,
        &form.email,
        &form.name,
        ctx.lang,
        &state.base_url,
    )
    .await
    .map_err(crate::web::internal)?
    {
        Ok(_) => {
            ctx.session.flash("flash-invited");
            Ok(redirect("/company/members"))
        }
        Err(errors) if errors.iter().any(|e| e.message == "not-company-admin") => {
            Err(poem::Error::from_status(StatusCode::FORBIDDEN))
        }
        Err(errors) => {
            render_members(
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

async fn set_active(
    ctx: &Ctx,
    state: &State,
    member: uuid::Uuid,
    active: bool,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    // A colleague of another company (or no company) is not known here: 404. A colleague
    // the user may see but not change (not the company admin, or themselves): 403.
    let not_found = || poem::Error::from_status(StatusCode::NOT_FOUND);
    let Some((company, is_admin)) = accounts::membership(&state.db, user.user.id)
        .await
        .map_err(crate::web::internal)?
    else {
        return Err(not_found());
    };
    let colleague = entity::company_member::Entity::find()
        .filter(entity::company_member::Column::CompanyId.eq(company))
        .filter(entity::company_member::Column::UserId.eq(member))
        .one(&state.db)
        .await
        .map_err(crate::web::internal)?;
    if colleague.is_none() {
        return Err(not_found());
    }
    if !is_admin || member == user.user.id {
        return Err(poem::Error::from_status(StatusCode::FORBIDDEN));
    }
    if accounts::set_member_active(&state.db, user.user.id, member, active)
        .await
        .map_err(crate::web::internal)?
    {
        ctx.session.flash(if active {
            "flash-member-reactivated"
        } else {
            "flash-member-deactivated"
        });
        Ok(redirect("/company/members"))
    } else {
        Err(poem::Error::from_status(StatusCode::FORBIDDEN))
    }
}

/// Deactivates a colleague (company admin only).
#[handler]
pub async fn deactivate(
    ctx: Ctx,
    state: Data<&State>,
    poem::web::Path(member): poem::web::Path<uuid::Uuid>,
) -> poem::Result<Response> {
    set_active(&ctx, &state, member, false).await
}

/// Reactivates a colleague (company admin only).
#[handler]
pub async fn reactivate(
    ctx: Ctx,
    state: Data<&State>,
    poem::web::Path(member): poem::web::Path<uuid::Uuid>,
) -> poem::Result<Response> {
    set_active(&ctx, &state, member, true).await
}

/// The link from an invitation: choose a password.
#[handler]
pub async fn invitation_form(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    ctx.page(
        &state,
        "pages/invitation",
        "invitation-title",
        json!({ "token": q.token, "errors": field_errors(ctx.lang, &[]), "has_errors": false }),
    )
}

/// Accepts an invitation: sets the password and signs in.
#[handler]
pub async fn accept_invitation(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<ResetForm>,
) -> poem::Result<Response> {
    let mut errors = Vec::new();
    errors.extend(accounts::new_password_errors(
        &form.password,
        &form.password_confirm,
        &[],
    ));
    if !errors.is_empty() {
        let resp = ctx.page(
            &state,
            "pages/invitation",
            "invitation-title",
            json!({ "token": form.token, "errors": field_errors(ctx.lang, &errors), "has_errors": true }),
        )?;
        return Ok(resp
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)
            .into_response());
    }
    match accounts::accept_invitation(&state.db, &state.hasher, &form.token, &form.password)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(user) => {
            ctx.session.login(crate::ids::UserId(user));
            Ok(redirect("/applications"))
        }
        Err(e) => {
            let key = if e == TokenError::Expired {
                "invitation-expired"
            } else {
                "invitation-invalid"
            };
            let resp = ctx.page(
                &state,
                "pages/message",
                "invitation-title",
                json!({ "message": i18n::t(ctx.lang, key) }),
            )?;
            Ok(resp.with_status(StatusCode::BAD_REQUEST).into_response())
        }
    }
}
