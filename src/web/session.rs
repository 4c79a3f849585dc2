//! Server-side sessions in the database (so several instances share them), with the
//! CSRF check of every state-changing request.
//!
//! The cookie carries a random token; the database keeps only its SHA-256. Sessions end
//! after an idle timeout and an absolute lifetime; the token is replaced at login
//! (no session fixation) and the row deleted at logout.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::session;
use poem::{
    Body, Endpoint, IntoResponse, Middleware, Request, Response, http::Method, http::StatusCode,
    http::header,
};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::UserId;
use crate::store;

/// Name of the session cookie.
pub const COOKIE: &str = "zg_session";
/// Form field (or query parameter, for multipart forms) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// Header carrying the CSRF token (for scripts).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest urlencoded body the CSRF check reads.
pub(crate) const MAX_FORM_BODY: usize = 1024 * 1024;

/// Deletes the sessions whose end has passed at `now` (`expires_at` holds the earlier of
/// the idle and the absolute end); returns how many.
pub async fn sweep_expired<C: sea_orm::ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    Ok(session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected)
}
/// How often an active session's `last_seen_at` is written.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Session lifetimes and cookie flags.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after login, whatever the activity.
    pub absolute: Duration,
    /// Cookie only over HTTPS.
    pub secure: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Data {
    csrf: String,
    locale: Option<String>,
    flash: Option<String>,
}

#[derive(Debug)]
struct State {
    row_id: Option<Uuid>,
    token: String,
    user_id: Option<Uuid>,
    data: Data,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    dirty: bool,
    renew: bool,
    destroy: bool,
    needed: bool,
}

/// The current request's session.
#[derive(Clone, Debug)]
pub struct Session(Arc<Mutex<State>>);

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Session {
    fn fresh(now: DateTime<Utc>) -> Self {
        Session(Arc::new(Mutex::new(State {
            row_id: None,
            token: random_token(),
            user_id: None,
            data: Data {
                csrf: random_token(),
                ..Data::default()
            },
            created_at: now,
            last_seen_at: now,
            dirty: false,
            renew: false,
            destroy: false,
            needed: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another handler panicked mid-request; the data is
        // still consistent (every write is a single assignment).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The logged-in user, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.lock().user_id.map(UserId)
    }

    /// The CSRF token for forms on this page (the session is kept from now on).
    pub fn csrf_token(&self) -> String {
        let mut s = self.lock();
        s.needed = true;
        s.data.csrf.clone()
    }

    /// Logs `user` in: a new session id and a new CSRF token.
    pub fn login(&self, user: UserId) {
        let mut s = self.lock();
        s.user_id = Some(user.0);
        s.renew = true;
        s.data.csrf = random_token();
        s.created_at = store::now();
        s.dirty = true;
    }

    /// Ends the session on the server.
    pub fn logout(&self) {
        self.lock().destroy = true;
    }

    /// The language chosen in this session.
    pub fn locale(&self) -> Option<String> {
        self.lock().data.locale.clone()
    }

    /// Remembers the chosen language.
    pub fn set_locale(&self, locale: &str) {
        let mut s = self.lock();
        s.data.locale = Some(locale.to_string());
        s.dirty = true;
        s.needed = true;
    }

    /// Sets a one-time message shown on the next page.
    pub fn flash(&self, key: &str) {
        let mut s = self.lock();
        s.data.flash = Some(key.to_string());
        s.dirty = true;
        s.needed = true;
    }

    /// Takes the one-time message.
    pub fn take_flash(&self) -> Option<String> {
        let mut s = self.lock();
        let f = s.data.flash.take();
        if f.is_some() {
            s.dirty = true;
        }
        f
    }
}

/// Loads the session, checks CSRF on state-changing requests, and saves the session.
pub struct SessionLayer {
    db: DatabaseConnection,
    config: SessionConfig,
}

impl SessionLayer {
    /// A layer storing sessions in `db`.
    pub fn new(db: DatabaseConnection, config: SessionConfig) -> Self {
        Self { db, config }
    }
}

impl<E: Endpoint> Middleware<E> for SessionLayer {
    type Output = SessionEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SessionEndpoint {
            inner: ep,
            db: self.db.clone(),
            config: self.config.clone(),
        }
    }
}

/// See [`SessionLayer`].
pub struct SessionEndpoint<E> {
    inner: E,
    db: DatabaseConnection,
    config: SessionConfig,
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl<E: Endpoint> SessionEndpoint<E> {
    async fn load(&self, req: &Request) -> Session {
        let now = store::now();
        let Some(token) = cookie_value(req, COOKIE) else {
            return Session::fresh(now);
        };
        let found = crate::db::find_unique(
            session::Entity::find().filter(session::Column::TokenHash.eq(hash_token(&token))),
            &self.db,
        )
        .await;
        let row = match found {
            Ok(Some(row)) => row,
            Ok(None) => return Session::fresh(now),
            Err(e) => {
                tracing::warn!(error = %e, "session lookup failed");
                return Session::fresh(now);
            }
        };
        let absolute_end = row.created_at
            + chrono::Duration::from_std(self.config.absolute)
                .unwrap_or(chrono::Duration::hours(12));
        if now >= row.expires_at || now >= absolute_end {
            // Expired: remove it; the visitor starts over as anonymous.
            let _ = session::Entity::delete_by_id(row.id).exec(&self.db).await;
            return Session::fresh(now);
        }
        let data: Data = serde_json::from_value(row.data).unwrap_or_default();
        Session(Arc::new(Mutex::new(State {
            row_id: Some(row.id),
            token,
            user_id: row.user_id,
            data,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            dirty: false,
            renew: false,
            destroy: false,
            needed: true,
        })))
    }

    /// The CSRF token the request carries: header, query parameter or urlencoded field.
    async fn presented_token(req: &mut Request) -> poem::Result<Option<String>> {
        if let Some(v) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
            return Ok(Some(v.to_string()));
        }
        if let Some(q) = req.uri().query()
            && let Some((_, v)) =
                form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == CSRF_FIELD)
        {
            return Ok(Some(v.into_owned()));
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Ok(None);
        }
        let bytes = req.take_body().into_bytes_limit(MAX_FORM_BODY).await?;
        let token = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.into_owned());
        req.set_body(Body::from(bytes));
        Ok(token)
    }

    async fn save(&self, session: &Session) -> anyhow::Result<Option<String>> {
        let now = store::now();
        let idle = chrono::Duration::from_std(self.config.idle)?;
        let absolute = chrono::Duration::from_std(self.config.absolute)?;
        // Take what is needed under the lock, then release it before any await.
        let (destroy, renew, row_id, needed, dirty, created_at, last_seen_at, user_id, data) = {
            let s = session.lock();
            (
                s.destroy,
                s.renew,
                s.row_id,
                s.needed,
                s.dirty,
                s.created_at,
                s.last_seen_at,
                s.user_id,
                serde_json::to_value(&s.data)?,
            )
        };
        if destroy {
            if let Some(id) = row_id {
                session::Entity::delete_by_id(id).exec(&self.db).await?;
            }
            session.lock().row_id = None;
            return Ok(Some(self.cookie("", true)));
        }
        let expires = (now + idle).min(created_at + absolute);
        let row_id = if renew {
            if let Some(id) = row_id {
                session::Entity::delete_by_id(id).exec(&self.db).await?;
            }
            None
        } else {
            row_id
        };
        match row_id {
            None if needed || renew => {
                let id = Uuid::now_v7();
                let token = random_token();
                session::ActiveModel {
                    id: Set(id),
                    token_hash: Set(hash_token(&token)),
                    user_id: Set(user_id),
                    data: Set(data),
                    created_at: Set(created_at),
                    last_seen_at: Set(now),
                    expires_at: Set(expires),
                }
                .insert(&self.db)
                .await?;
                let mut s = session.lock();
                s.row_id = Some(id);
                s.token = token.clone();
                Ok(Some(self.cookie(&token, false)))
            }
            None => Ok(None),
            Some(id) if dirty || now - last_seen_at > TOUCH_EVERY => {
                session::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(id),
                    user_id: Set(user_id),
                    data: Set(data),
                    last_seen_at: Set(now),
                    expires_at: Set(expires),
                    ..Default::default()
                }
                .update(&self.db)
                .await?;
                Ok(None)
            }
            Some(_) => Ok(None),
        }
    }

    fn cookie(&self, token: &str, clear: bool) -> String {
        let mut c = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
        if self.config.secure {
            c.push_str("; Secure");
        }
        if clear {
            c.push_str("; Max-Age=0");
        }
        c
    }
}

impl<E: Endpoint> Endpoint for SessionEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let session = self.load(&req).await;
        let api = req.uri().path().starts_with("/api/");
        if is_unsafe(req.method()) && !api {
            let presented = Self::presented_token(&mut req).await?;
            let expected = session.lock().data.csrf.clone();
            let valid = presented.is_some_and(|p| constant_time_eq(&p, &expected));
            // An anonymous visitor without a stored session cannot hold a valid token.
            if !valid || session.lock().row_id.is_none() {
                return Err(poem::Error::from_status(StatusCode::FORBIDDEN));
            }
        }
        req.extensions_mut().insert(session.clone());
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        match self.save(&session).await {
            Ok(Some(cookie)) => {
                if let Ok(v) = cookie.parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "saving the session failed");
                return Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE));
            }
        }
        Ok(resp)
    }
}
