//! The web portal: server-rendered pages (handlebars), sessions, CSRF, translations,
//! security headers. Handlers read the request, call the domain, render a template.

pub mod accounts;
pub mod admin;
pub mod applications;
pub mod i18n;
pub mod org_admin;
pub mod prefs;
pub mod render;
pub mod reports;
pub mod review;
pub mod session;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use entity::user;
use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get,
    handler,
    http::{HeaderValue, StatusCode, header},
    middleware::SetHeader,
    post,
    web::{Data, Form, Html, Path},
};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ids::UserId;
use crate::passwords::Hasher;
use crate::settings::Settings;
use render::Templates;
use session::{Session, SessionConfig, SessionLayer};

/// Everything the handlers share.
pub struct AppState {
    /// Database pool.
    pub db: DatabaseConnection,
    /// Compiled templates.
    pub templates: Templates,
    /// Password hashing, bounded.
    pub hasher: Hasher,
    /// Public URL, for links in email.
    pub base_url: String,
    /// Where uploaded documents go.
    pub attachments: crate::attachments::AttachmentStore,
    /// Whether the client address comes from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded_for: bool,
    /// Login failures allowed before the throttle blocks.
    pub login_limits: crate::accounts::LoginLimits,
}

/// The client's address: the connection's peer, or behind a trusted reverse proxy the
/// last `X-Forwarded-For` hop (the one the proxy itself appended; earlier hops are
/// whatever the client claimed).
pub fn client_address(req: &Request, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok())
        })
        .flatten();
    match forwarded {
        Some(ip) => ip.to_string(),
        None => req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// Shared state handle.
pub type State = Arc<AppState>;

/// The current user, as pages show it.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The row.
    pub user: user::Model,
}

/// What a logged-in user may do beyond their own applications: the organizations where
/// they review or administer, their company, system administration. Read once per request
/// from the database, so a deactivated membership takes effect at once.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    /// Organizations where the user works tasks (as reviewer or org admin).
    pub reviewer_of: std::collections::BTreeSet<uuid::Uuid>,
    /// Organizations the user administers.
    pub admin_of: std::collections::BTreeSet<uuid::Uuid>,
    /// The companies where the user is an active member.
    pub companies: std::collections::BTreeSet<uuid::Uuid>,
    /// A system administrator.
    pub system_admin: bool,
}

impl Roles {
    /// The roles of `user`, read from the database (the web per request, the API per call).
    pub async fn load(db: &DatabaseConnection, user: uuid::Uuid) -> Result<Self, sea_orm::DbErr> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut roles = Roles::default();
        for m in entity::org_membership::Entity::find()
            .filter(entity::org_membership::Column::UserId.eq(user))
            .filter(entity::org_membership::Column::Active.eq(true))
            .all(db)
            .await?
        {
            roles.reviewer_of.insert(m.org_id);
            if m.role == entity::enums::OrgRole::OrgAdmin {
                roles.admin_of.insert(m.org_id);
            }
        }
        roles.companies = entity::company_member::Entity::find()
            .filter(entity::company_member::Column::UserId.eq(user))
            .filter(entity::company_member::Column::Active.eq(true))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.company_id)
            .collect();
        roles.system_admin = crate::db::find_unique(
            entity::system_admin::Entity::find()
                .filter(entity::system_admin::Column::UserId.eq(user)),
            db,
        )
        .await?
        .is_some();
        Ok(roles)
    }

    /// Works tasks of at least one organization.
    pub fn is_reviewer(&self) -> bool {
        !self.reviewer_of.is_empty()
    }
}

/// Per-request context: session, language, user.
pub struct Ctx {
    /// The session.
    pub session: Session,
    /// The language of this response.
    pub lang: &'static str,
    /// The logged-in user.
    pub user: Option<CurrentUser>,
    /// The user's roles (empty when nobody is logged in).
    pub roles: Roles,
    /// Tasks waiting in the user's to-do tab, counted up to [`crate::store::inbox::COUNT_CAP`] (for the
    /// navigation badge on every page: an exact count would cost O(queue) per page).
    pub inbox_count: crate::store::inbox::CappedCount,
    /// The request path (for the language switch's return).
    pub path: String,
    /// The client address (for login throttling).
    pub address: String,
}

impl<'a> FromRequest<'a> for Ctx {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let session = req
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        let state = req
            .data::<State>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        let user = match session.user_id() {
            Some(id) => crate::db::find_unique(user::Entity::find_by_id(id.0), &state.db)
                .await
                .map_err(crate::web::internal)?
                .filter(|u| u.active)
                .map(|user| CurrentUser { user }),
            None => None,
        };
        let roles = match &user {
            Some(u) => Roles::load(&state.db, u.user.id)
                .await
                .map_err(crate::web::internal)?,
            None => Roles::default(),
        };
        let inbox_count = match &user {
            Some(u) if roles.is_reviewer() => crate::store::inbox::count_todo(
                &state.db,
                u.user.id,
                &roles.reviewer_of,
                crate::store::inbox::COUNT_CAP,
            )
            .await
            .map_err(crate::web::internal)?,
            _ => Default::default(),
        };
        let accept = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let chosen = session
            .locale()
            .or_else(|| user.as_ref().map(|u| u.user.locale.clone()));
        let lang = chosen
            .as_deref()
            .and_then(i18n::supported)
            .unwrap_or_else(|| i18n::negotiate(accept));
        let address = client_address(req, state.trust_forwarded_for);
        Ok(Ctx {
            session,
            lang,
            user,
            roles,
            inbox_count,
            path: req.uri().path().to_string(),
            address,
        })
    }
}

impl Ctx {
    /// The logged-in user's id.
    pub fn user_id(&self) -> Option<UserId> {
        self.user.as_ref().map(|u| UserId(u.user.id))
    }

    /// Renders a page with the common context (language, user, CSRF token, flash).
    pub fn page(
        &self,
        state: &AppState,
        template: &str,
        title_key: &str,
        mut data: Value,
    ) -> poem::Result<Response> {
        let other = if self.lang == "en" { "zh-CN" } else { "en" };
        let base = json!({
            "lang": self.lang,
            "other_lang": other,
            "title": i18n::t(self.lang, title_key),
            "csrf": self.session.csrf_token(),
            "path": self.path,
            "flash": self.session.take_flash(),
            "user": self.user.as_ref().map(|u| json!({ "name": u.user.name, "email": u.user.email })),
            "nav": {
                "applicant": !self.roles.companies.is_empty(),
                "reviewer": self.roles.is_reviewer(),
                "inbox_count": self.inbox_count.display(),
                "org_admin": !self.roles.admin_of.is_empty(),
                "system_admin": self.roles.system_admin,
                "reports": self.roles.is_reviewer() || self.roles.system_admin,
            },
        });
        if let (Value::Object(d), Value::Object(b)) = (&mut data, base) {
            for (k, v) in b {
                d.entry(k).or_insert(v);
            }
        }
        let html = state.templates.render(template, &data).map_err(|e| {
            tracing::error!(error = %e, template, "rendering failed");
            poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR)
        })?;
        Ok(Html(html)
            .with_header(header::CACHE_CONTROL, "no-store")
            .into_response())
    }
}

/// A form's problems, shaped for the templates: the summary list and a map by field.
pub fn field_errors(lang: &str, errors: &[crate::accounts::FieldError]) -> Value {
    form_errors(
        lang,
        errors
            .iter()
            .map(|e| (e.field.as_str(), format!("error-{}", e.message))),
    )
}

/// The summary list and the map by field (first message of each field) of a form's
/// problems, each given as (field, message key).
pub fn form_errors<'a>(lang: &str, errors: impl IntoIterator<Item = (&'a str, String)>) -> Value {
    let list: Vec<Value> = errors
        .into_iter()
        .map(|(field, key)| json!({ "field": field, "message": i18n::t(lang, &key) }))
        .collect();
    let mut by_field = serde_json::Map::new();
    for e in &list {
        if let Some(f) = e["field"].as_str() {
            by_field
                .entry(f.to_string())
                .or_insert(e["message"].clone());
        }
    }
    json!({ "list": list, "by_field": by_field })
}

#[handler]
async fn home(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    ctx.page(&state, "pages/home", "home-title", json!({}))
}

#[derive(Deserialize)]
struct LocaleForm {
    lang: String,
    #[serde(default)]
    next: String,
}

/// Switches the language and remembers it (on the account too, when logged in).
#[handler]
async fn set_locale(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<LocaleForm>,
) -> poem::Result<Response> {
    let lang = i18n::supported(&form.lang).unwrap_or(i18n::SUPPORTED[0]);
    ctx.session.set_locale(lang);
    if let Some(u) = &ctx.user {
        let mut am: user::ActiveModel = u.user.clone().into();
        am.locale = sea_orm::ActiveValue::Set(lang.to_string());
        sea_orm::ActiveModelTrait::update(am, &state.db)
            .await
            .map_err(crate::web::internal)?;
    }
    // Only a local path: never redirect to another site.
    let next = if form.next.starts_with('/') && !form.next.starts_with("//") {
        form.next
    } else {
        "/".to_string()
    };
    Ok(redirect(&next))
}

/// Whether a database error means the database cannot be reached (down, restarting, the
/// network or the pool exhausted) rather than a fault of the request.
pub fn database_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(s)) | DbErr::Exec(RuntimeErr::SqlxError(s)) => {
            matches!(
                s.as_ref(),
                Sqlx::Io(_)
                    | Sqlx::Tls(_)
                    | Sqlx::Protocol(_)
                    | Sqlx::PoolTimedOut
                    | Sqlx::PoolClosed
                    | Sqlx::WorkerCrashed
            )
        }
        _ => false,
    }
}

/// Whether an error passed to [`internal`] is, underneath, an unreachable database.
pub(crate) fn unavailable(e: &dyn std::any::Any) -> bool {
    if let Some(db) = e.downcast_ref::<sea_orm::DbErr>() {
        return database_unreachable(db);
    }
    if let Some(crate::store::StoreError::Db(db)) = e.downcast_ref::<crate::store::StoreError>() {
        return database_unreachable(db);
    }
    if let Some(a) = e.downcast_ref::<anyhow::Error>() {
        return a
            .chain()
            .filter_map(|c| c.downcast_ref::<sea_orm::DbErr>())
            .any(database_unreachable);
    }
    false
}

/// A 500 for an unexpected failure; the cause is logged with a request id, never shown.
/// When the database cannot be reached it is a 503 instead (the friendly "try again
/// shortly" page, `Retry-After: 30`): the portal recovers by itself when it returns.
pub fn internal<E: std::fmt::Display + 'static>(e: E) -> poem::Error {
    let id = uuid::Uuid::now_v7();
    if unavailable(&e) {
        tracing::warn!(request_id = %id, error = %e, "database unavailable");
        let resp = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(header::RETRY_AFTER, "30")
            .body(format!("service unavailable {id}"));
        return poem::Error::from_response(resp);
    }
    tracing::error!(request_id = %id, error = %e, "internal error");
    poem::Error::from_string(
        format!("internal error {id}"),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

/// A 303 See Other to `to` (after a POST, the browser GETs the next page).
pub fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

#[handler]
fn static_asset(Path(name): Path<String>) -> Response {
    match render::asset(&name) {
        Some((bytes, mime)) => Response::builder()
            .header(header::CONTENT_TYPE, mime)
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .body(bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(state: Data<&State>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Whether text carries a NUL character, raw or percent-encoded.
fn carries_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0) || bytes.windows(3).any(|w| w == b"%00")
}

/// Refuses (400) a request whose query string or form body carries a NUL character: no
/// page takes one, and PostgreSQL's text cannot store it (it would be a 500 there and a
/// silently truncated value elsewhere).
struct RefuseNul<E>(E);

impl<E: Endpoint> Endpoint for RefuseNul<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let bad_request = || poem::Error::from_status(StatusCode::BAD_REQUEST);
        if req.uri().query().is_some_and(|q| carries_nul(q.as_bytes())) {
            return Err(bad_request());
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let bytes = req
                .take_body()
                .into_bytes_limit(session::MAX_FORM_BODY)
                .await?;
            if carries_nul(&bytes) {
                return Err(bad_request());
            }
            req.set_body(bytes);
        }
        self.0.call(req).await.map(IntoResponse::into_response)
    }
}

/// An upload route's size limit (poem's `SizeLimit`: over it, or without a length, 413
/// or 411), which first reads and discards a body over the limit, up to twice the limit:
/// a browser still sending the file then gets the "too large" page, not a broken
/// connection. A body declared larger than that is refused at once, unread.
fn upload_limit<E: Endpoint + 'static>(
    ep: E,
    limit: usize,
) -> poem::endpoint::BoxEndpoint<'static> {
    DrainOversized {
        inner: ep.with(poem::middleware::SizeLimit::new(limit)),
        limit,
    }
    .boxed()
}

struct DrainOversized<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for DrainOversized<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(len) = declared
            && len > self.limit
            && len <= self.limit.saturating_mul(2)
        {
            let mut body = req.take_body().into_async_read();
            // A client that stops sending ends the copy; the answer is the same.
            let _ = tokio::io::copy(&mut body, &mut tokio::io::sink()).await;
            return Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Renders error pages for error responses that carry no page of their own.
struct ErrorPages<E> {
    inner: E,
    state: State,
}

impl<E: Endpoint> Endpoint for ErrorPages<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let accept = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => {
                if e.status().is_server_error() {
                    let id = uuid::Uuid::now_v7();
                    tracing::error!(request_id = %id, error = %e, "request failed");
                }
                e.into_response()
            }
        };
        let status = resp.status();
        let is_html = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if !(status.is_client_error() || status.is_server_error()) || is_html {
            return Ok(resp);
        }
        let lang = i18n::negotiate(accept.as_deref());
        let key = match status.as_u16() {
            403 => "error-forbidden",
            404 => "error-not-found",
            413 => "error-too-large",
            429 => "error-too-many",
            503 => "error-unavailable",
            s if s >= 500 => "error-internal",
            _ => "error-bad-request",
        };
        let data = json!({
            "lang": lang,
            "other_lang": if lang == "en" { "zh-CN" } else { "en" },
            "title": i18n::t(lang, key),
            "status": status.as_u16(),
            "csrf": "",
            "path": "/",
            "flash": null,
            "user": null,
            "message_key": key,
        });
        match self.state.templates.render("pages/error", &data) {
            Ok(html) => {
                let mut out = Html(html).with_status(status).into_response();
                for (k, v) in resp.headers() {
                    if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                        out.headers_mut().insert(k.clone(), v.clone());
                    }
                }
                Ok(out)
            }
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                Ok(resp)
            }
        }
    }
}

/// Security headers on every response.
fn security_headers(hsts: bool) -> SetHeader {
    let mut h = SetHeader::new()
        .overriding(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        )
        .overriding("x-content-type-options", "nosniff")
        .overriding("referrer-policy", "same-origin")
        .overriding("x-frame-options", "DENY")
        .overriding("cross-origin-opener-policy", "same-origin")
        .overriding(
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        );
    if hsts {
        h = h.overriding(
            "strict-transport-security",
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    h
}

/// Builds the whole web application.
pub fn app(
    db: DatabaseConnection,
    settings: &Settings,
) -> anyhow::Result<poem::endpoint::BoxEndpoint<'static, Response>> {
    let secure = settings.base_url.starts_with("https://");
    let state: State = Arc::new(AppState {
        db: db.clone(),
        templates: Templates::load()?,
        hasher: Hasher::default(),
        base_url: settings.base_url.trim_end_matches('/').to_string(),
        attachments: crate::attachments::AttachmentStore::from_settings(settings)?,
        trust_forwarded_for: settings.trust_forwarded_for,
        login_limits: settings.login_limits(),
    });
    let session = SessionLayer::new(
        db,
        SessionConfig {
            idle: Duration::from_secs(settings.session_idle_minutes * 60),
            absolute: Duration::from_secs(settings.session_absolute_hours * 3600),
            secure,
        },
    );
    let pages = Route::new()
        .at("/", get(home))
        .at("/locale", post(set_locale))
        .at(
            "/register",
            get(accounts::register_form).post(accounts::register),
        )
        .at("/login", get(accounts::login_form).post(accounts::login))
        .at("/logout", post(accounts::logout))
        .at("/verify-email", get(accounts::verify_email))
        .at("/account", get(accounts::account))
        .at(
            "/account/password",
            get(accounts::change_form).post(accounts::change),
        )
        .at(
            "/password/forgot",
            get(accounts::forgot_form).post(accounts::forgot),
        )
        .at(
            "/password/reset",
            get(accounts::reset_form).post(accounts::reset),
        )
        .at("/company/members", get(accounts::members))
        .at("/company/members/invite", post(accounts::invite))
        .at(
            "/company/members/:id/deactivate",
            post(accounts::deactivate),
        )
        .at(
            "/company/members/:id/reactivate",
            post(accounts::reactivate),
        )
        .at(
            "/invitation",
            get(accounts::invitation_form).post(accounts::accept_invitation),
        )
        .at("/applications", get(applications::list))
        .at(
            "/applications/new",
            get(applications::new_form).post(applications::create),
        )
        .at("/applications/:id", get(applications::show))
        .at(
            "/applications/:id/sections/:section",
            get(applications::section_form).post(applications::section_save),
        )
        .at(
            "/applications/:id/materials/:material",
            upload_limit(
                post(applications::upload),
                settings.attachment_max_mb * 1024 * 1024 + 64 * 1024,
            ),
        )
        .at(
            "/applications/:id/attachments/:attachment",
            get(applications::download),
        )
        .at("/applications/:id/check", get(applications::check))
        .at(
            "/applications/:id/materials/:material/from-profile",
            post(applications::from_profile),
        )
        .at("/company/documents", get(applications::documents))
        .at(
            "/company/documents/:material",
            upload_limit(
                post(applications::document_upload),
                settings.attachment_max_mb * 1024 * 1024 + 64 * 1024,
            ),
        )
        .at(
            "/company/documents/file/:doc",
            get(applications::document_download),
        )
        .at("/applications/:id/decision", get(applications::decision))
        .at("/applications/:id/rating", post(applications::rate))
        .at("/applications/:id/submit", post(applications::submit))
        .at("/applications/:id/submitted", get(applications::submitted))
        .at(
            "/applications/:id/withdraw",
            get(applications::withdraw_form).post(applications::withdraw),
        );
    // Each area mounts its own pages.
    let pages = review::mount(pages, settings);
    let pages = admin::mount(pages, settings);
    let pages = org_admin::mount(pages, settings);
    let pages = reports::mount(pages, settings);
    let pages = tokens::mount(pages, settings);
    let pages = prefs::mount(pages, settings).with(session);
    let routes = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/static/:name", get(static_asset))
        .nest("/", pages)
        .data(state.clone());
    let with_errors = ErrorPages {
        inner: RefuseNul(routes),
        state: state.clone(),
    };
    // The JSON API: outside the session layer (no cookies, no CSRF) and outside the HTML
    // error pages (its errors are problem documents).
    let with_api = Route::new()
        .nest(
            "/api",
            crate::api::endpoint(
                state,
                settings.attachment_max_mb * 1024 * 1024 + 64 * 1024,
                settings.api_requests_per_minute,
            ),
        )
        .nest("/", with_errors);
    Ok(with_api
        .with(security_headers(secure))
        .map_to_response()
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_the_proxy_only_when_trusted() {
        let req = Request::builder()
            .header("x-forwarded-for", "203.0.113.7, 198.51.100.20")
            .finish();
        assert_eq!(
            client_address(&req, true),
            "198.51.100.20",
            "the proxy's own hop"
        );
        assert_eq!(
            client_address(&req, false),
            "unknown",
            "the peer, not the header"
        );
        let forged = Request::builder()
            .header("x-forwarded-for", "not an address")
            .finish();
        assert_eq!(client_address(&forged, true), "unknown");
        assert!(!carries_nul(b"name=%2500"));
        assert!(carries_nul(b"name=a%00b"));
    }
}
