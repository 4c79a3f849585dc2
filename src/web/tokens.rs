//! Personal API tokens on the web: `GET /account/tokens` lists the user's tokens with
//! their last use and expiry; `POST` creates one and shows its secret once; `POST
//! /account/tokens/:id/revoke` revokes one. Another user's token is a 404.

use poem::{
    IntoResponse, Response, Route, get, handler,
    http::StatusCode,
    post,
    web::{Data, Form, Path},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::tokens::{self, TokenError};
use crate::settings::Settings;
use crate::web::{Ctx, State, i18n, redirect};

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
        .at("/account/tokens", get(show).post(create))
        .at("/account/tokens/:id/revoke", post(revoke))
}

/// The lifetimes offered, in days (empty: until revoked).
const LIFETIMES: [&str; 5] = ["30", "90", "180", "365", ""];

/// The form to create a token.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_days: String,
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(t.format("%Y-%m-%d %H:%M UTC").to_string())
    })
}

async fn render(
    ctx: &Ctx,
    state: &State,
    form: &TokenForm,
    errors: &[(&str, &str)],
    secret: Option<&str>,
    status: StatusCode,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let now = crate::store::now();
    let rows: Vec<Value> = tokens::list(&state.db, user.user.id)
        .await
        .map_err(crate::web::internal)?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": time(Some(t.created_at)),
                "expires_at": time(t.expires_at),
                "last_used_at": time(t.last_used_at),
                "revoked": t.revoked_at.is_some(),
                "expired": t.revoked_at.is_none() && !tokens::usable(&t, now),
            })
        })
        .collect();
    let error_list =
        crate::web::form_errors(ctx.lang, errors.iter().map(|(f, k)| (*f, k.to_string())));
    let chosen = if form.expires_days.is_empty() && errors.is_empty() && secret.is_none() {
        "90"
    } else {
        form.expires_days.as_str()
    };
    let lifetimes: Vec<Value> = LIFETIMES
        .iter()
        .map(|d| {
            json!({
                "value": d,
                "label": if d.is_empty() {
                    i18n::t(ctx.lang, "api-tokens-never")
                } else {
                    i18n::t(ctx.lang, &format!("api-tokens-days-{d}"))
                },
                "selected": *d == chosen,
            })
        })
        .collect();
    let page = ctx.page(
        state,
        "pages/tokens",
        "api-tokens-title",
        json!({
            "tokens": rows,
            "secret": secret,
            "form": { "name": form.name },
            "lifetimes": lifetimes,
            "has_errors": !errors.is_empty(),
            "errors": error_list,
        }),
    )?;
    Ok(page.with_status(status).into_response())
}

/// The user's tokens and the form to create one.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    render(
        &ctx,
        &state,
        &TokenForm::default(),
        &[],
        None,
        StatusCode::OK,
    )
    .await
}

/// Creates a token and shows its secret, once.
#[handler]
pub async fn create(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<TokenForm>,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let days = match form.expires_days.trim() {
        "" => Some(None),
        d => d.parse::<i64>().ok().map(Some),
    };
    let Some(days) = days else {
        return render(
            &ctx,
            &state,
            &form,
            &[("expires_days", "api-tokens-error-expiry")],
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    match tokens::create(&state.db, user.user.id, &form.name, days)
        .await
        .map_err(crate::web::internal)?
    {
        Ok(new) => {
            tracing::info!(user = %user.user.id, token = %new.row.id, "API token created");
            render(
                &ctx,
                &state,
                &TokenForm::default(),
                &[],
                Some(&new.secret),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let err = match e {
                TokenError::Name => ("name", "api-tokens-error-name"),
                TokenError::Expiry => ("expires_days", "api-tokens-error-expiry"),
            };
            render(
                &ctx,
                &state,
                &form,
                &[err],
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// Revokes one of the user's tokens.
#[handler]
pub async fn revoke(
    ctx: Ctx,
    state: Data<&State>,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let not_found = || poem::Error::from_status(StatusCode::NOT_FOUND);
    let id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !tokens::revoke(&state.db, user.user.id, id)
        .await
        .map_err(crate::web::internal)?
    {
        return Err(not_found());
    }
    ctx.session.flash("api-tokens-flash-revoked");
    Ok(redirect("/account/tokens"))
}
