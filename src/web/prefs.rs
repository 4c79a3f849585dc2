//! Notification preferences: which events mail the user, and the daily digest.
//!
//! `GET /account/notifications` shows every kind of email the user can receive with its
//! current mode; `POST` stores the choices in one transaction. Account and security
//! emails are shown as always on and a request to switch them off is refused (422);
//! the digest is offered to reviewers only, for new tasks only.

use std::collections::HashMap;

use entity::notification_preference::NotificationMode;
use poem::{
    IntoResponse, Response, Route, get, handler,
    http::StatusCode,
    web::{Data, Form},
};
use serde_json::{Value, json};

use crate::mail::prefs::{self, PrefError};
use crate::settings::Settings;
use crate::web::{Ctx, State, i18n, redirect};

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route.at("/account/notifications", get(show).post(save))
}

fn mode_name(m: NotificationMode) -> &'static str {
    match m {
        NotificationMode::Immediate => "immediate",
        NotificationMode::Digest => "digest",
        NotificationMode::Off => "off",
    }
}

fn parse_mode(s: &str) -> Option<NotificationMode> {
    match s {
        "immediate" => Some(NotificationMode::Immediate),
        "digest" => Some(NotificationMode::Digest),
        "off" => Some(NotificationMode::Off),
        _ => None,
    }
}

/// The kinds this user chooses for: applicant kinds for company members (and for users
/// who are neither), reviewer kinds for reviewers.
fn sections(ctx: &Ctx) -> Vec<(&'static str, &'static [&'static str])> {
    let mut out = Vec::new();
    if !ctx.roles.companies.is_empty() || !ctx.roles.is_reviewer() {
        out.push(("notify-section-applicant", prefs::APPLICANT_KINDS));
    }
    if ctx.roles.is_reviewer() {
        out.push(("notify-section-reviewer", prefs::REVIEWER_KINDS));
    }
    out
}

fn render(
    ctx: &Ctx,
    state: &State,
    chosen: &HashMap<String, NotificationMode>,
    errors: &[(String, &'static str)],
    status: StatusCode,
) -> poem::Result<Response> {
    let lang = ctx.lang;
    let reviewer = ctx.roles.is_reviewer();
    let sections: Vec<Value> = sections(ctx)
        .into_iter()
        .map(|(title, kinds)| {
            let rows: Vec<Value> = kinds
                .iter()
                .map(|k| {
                    let mode = chosen
                        .get(*k)
                        .copied()
                        .unwrap_or(NotificationMode::Immediate);
                    let digest = reviewer && prefs::DIGESTIBLE.contains(k);
                    json!({
                        "kind": k,
                        "mode": mode_name(mode),
                        "label": i18n::t(lang, &format!("mail-{k}")),
                        "digest_offered": digest,
                        "immediate": mode == NotificationMode::Immediate
                            || (mode == NotificationMode::Digest && !digest),
                        "digest": mode == NotificationMode::Digest && digest,
                        "off": mode == NotificationMode::Off,
                        "error": errors.iter().find(|(f, _)| f == k).map(|(_, m)| i18n::t(lang, m)),
                    })
                })
                .collect();
            json!({ "title": title, "rows": rows })
        })
        .collect();
    let always: Vec<Value> = prefs::ALWAYS_ON
        .iter()
        .map(|k| {
            json!({
                "kind": k,
                "label": i18n::t(lang, &format!("mail-{k}")),
                "error": errors.iter().find(|(f, _)| f == k).map(|(_, m)| i18n::t(lang, m)),
            })
        })
        .collect();
    let list: Vec<Value> = errors
        .iter()
        .map(|(f, m)| json!({ "field": format!("pref-{f}"), "message": i18n::t(lang, m) }))
        .collect();
    let resp = ctx.page(
        state,
        "pages/prefs",
        "notify-title",
        json!({
            "sections": sections,
            "always_on": always,
            "reviewer": reviewer,
            "errors": { "list": list },
            "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(resp.with_status(status).into_response())
}

/// The preferences page.
#[handler]
pub async fn show(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let chosen = prefs::modes_of(&state.db, user.user.id)
        .await
        .map_err(crate::web::internal)?;
    render(&ctx, &state, &chosen, &[], StatusCode::OK)
}

/// Stores the choices; refusals (an account email switched off, a digest where none is
/// offered, an unknown kind or mode) bring the form back with the typed values.
#[handler]
pub async fn save(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<HashMap<String, String>>,
) -> poem::Result<Response> {
    let Some(user) = &ctx.user else {
        return Ok(redirect("/login"));
    };
    let mut choices: Vec<(String, NotificationMode)> = Vec::new();
    let mut errors: Vec<(String, &'static str)> = Vec::new();
    let mut keys: Vec<&String> = form.keys().filter(|k| *k != "_csrf").collect();
    keys.sort();
    for key in keys {
        let value = &form[key];
        match parse_mode(value) {
            Some(mode) => choices.push((key.clone(), mode)),
            None => errors.push((key.clone(), "notify-error-mode")),
        }
    }
    let result = if errors.is_empty() {
        prefs::save(
            &state.db,
            user.user.id,
            &choices,
            ctx.roles.is_reviewer(),
            crate::store::now(),
        )
        .await
        .map_err(crate::web::internal)?
    } else {
        Ok(())
    };
    if let Err(refused) = result {
        errors.extend(refused.into_iter().map(|(k, e)| {
            let key = match e {
                PrefError::AlwaysOn => "notify-error-always-on",
                PrefError::DigestNotAllowed => "notify-error-digest",
                PrefError::UnknownKind => "notify-error-kind",
            };
            (k, key)
        }));
    }
    if !errors.is_empty() {
        // Back with what was typed, so nothing is lost.
        let mut chosen = prefs::modes_of(&state.db, user.user.id)
            .await
            .map_err(crate::web::internal)?;
        for (k, m) in &choices {
            chosen.insert(k.clone(), *m);
        }
        return render(
            &ctx,
            &state,
            &chosen,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    tracing::info!(user_id = %user.user.id, changes = choices.len(), "notification preferences saved");
    ctx.session.flash("notify-flash-saved");
    Ok(redirect("/account/notifications"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_form_names() {
        for m in [
            NotificationMode::Immediate,
            NotificationMode::Digest,
            NotificationMode::Off,
        ] {
            assert_eq!(parse_mode(mode_name(m)), Some(m));
        }
        assert_eq!(parse_mode("never"), None);
    }
}
