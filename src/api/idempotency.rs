//! `Idempotency-Key` on POST: the first response to a key is stored with the request's
//! method, path and body hash and replayed to repeats (status, body, `Content-Type` and
//! `Location`); the same key with another request is a 422; a repeat while the first is
//! still running is a 409. The unique (user, key) index makes concurrent repeats produce
//! one effect. Keys of the public registration (no token) share one namespace, the nil
//! user. Rows older than [`KEEP`] are pruned by the worker's housekeeping.

use entity::idempotency_key;
use poem::{Endpoint, IntoResponse, Request, Response, http::Method, http::StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::operations::Operations;
use super::problem::ApiError;
use super::tokens;
use crate::web::State;

/// How long a key is remembered.
pub const KEEP: chrono::Duration = chrono::Duration::hours(24);

/// Forgets the keys older than [`KEEP`] at `now`; returns how many.
pub async fn prune<C: sea_orm::ConnectionTrait>(
    db: &C,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, sea_orm::DbErr> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(now - KEEP))
        .exec(db)
        .await?
        .rows_affected)
}

/// Whether a key is well formed: 1 to 255 visible ASCII characters.
fn well_formed(key: &str) -> bool {
    !key.is_empty() && key.len() <= 255 && key.chars().all(|c| c.is_ascii_graphic())
}

/// The stored response: what a replay needs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

/// The middleware.
pub struct Idempotency<E> {
    /// The API.
    pub inner: E,
    /// The portal's state.
    pub state: State,
}

fn problem(e: ApiError) -> Response {
    e.into_response()
}

impl<E: Endpoint> Endpoint for Idempotency<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        // Only documented POST operations; anything else answers for itself (405, 404).
        let documented = req.method() == Method::POST
            && Operations::get().is_documented(&Method::POST, req.uri().path());
        let key = req
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or("\u{0}").to_string());
        let Some(key) = key.filter(|_| documented) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let public = req.uri().path().ends_with("/v1/companies");
        let secret = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let db = &self.state.db;
        let user = match secret {
            Some(s) => tokens::authenticate(db, &s)
                .await
                .map_err(crate::web::internal)?,
            None => None,
        };
        let user_id = match user {
            Some(u) => u.id,
            None if public => Uuid::nil(),
            // Without a valid token the operation refuses (401) before doing anything.
            None => return self.inner.call(req).await.map(IntoResponse::into_response),
        };
        if !well_formed(&key) {
            return Ok(problem(ApiError::bad_request(
                "Idempotency-Key must have 1 to 255 visible ASCII characters",
            )));
        }
        let body = req.take_body().into_bytes().await?;
        req.set_body(body.clone());
        let body_hash = hex::encode(Sha256::digest(&body));
        let request = format!("POST {}", req.uri().path());
        let row = idempotency_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            key: Set(key.clone()),
            request: Set(request.chars().take(300).collect()),
            body_hash: Set(body_hash.clone()),
            response_status: Set(None),
            response_body: Set(None),
            created_at: Set(crate::store::now()),
        };
        let id = match row.insert(db).await {
            Ok(r) => r.id,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                let first = idempotency_key::Entity::find()
                    .filter(idempotency_key::Column::UserId.eq(user_id))
                    .filter(idempotency_key::Column::Key.eq(key.as_str()))
                    .one(db)
                    .await
                    .map_err(crate::web::internal)?;
                let Some(first) = first else {
                    return Ok(problem(ApiError::conflict(
                        "a request with this Idempotency-Key is in progress; repeat it later",
                    )));
                };
                if first.request != request || first.body_hash != body_hash {
                    return Ok(problem(ApiError::invalid(
                        "Idempotency-Key",
                        "this key was used for a different request",
                    )));
                }
                return Ok(match (first.response_status, first.response_body) {
                    (Some(status), Some(body)) => replay(status, body),
                    _ => problem(ApiError::conflict(
                        "a request with this Idempotency-Key is in progress; repeat it later",
                    )),
                });
            }
            Err(e) => return Err(crate::web::internal(e)),
        };
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await?;
        let header = |name: poem::http::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let stored = Stored {
            content_type: header(poem::http::header::CONTENT_TYPE),
            location: header(poem::http::header::LOCATION),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        if status.is_server_error() {
            // Nothing was done for good: let the client try again with the same key.
            idempotency_key::Entity::delete_by_id(id)
                .exec(db)
                .await
                .map_err(crate::web::internal)?;
        } else {
            idempotency_key::ActiveModel {
                id: Set(id),
                response_status: Set(Some(i32::from(status.as_u16()))),
                response_body: Set(Some(
                    serde_json::to_string(&stored).map_err(crate::web::internal)?,
                )),
                ..Default::default()
            }
            .update(db)
            .await
            .map_err(crate::web::internal)?;
        }
        Ok(Response::from_parts(parts, bytes.into()))
    }
}

fn replay(status: i32, stored: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let stored: Stored = serde_json::from_str(&stored).unwrap_or(Stored {
        content_type: None,
        location: None,
        body: stored,
    });
    let mut resp = Response::builder()
        .status(status)
        .content_type(
            stored
                .content_type
                .as_deref()
                .unwrap_or(if status.is_success() {
                    "application/json; charset=utf-8"
                } else {
                    "application/problem+json"
                }),
        )
        .header("idempotent-replayed", "true");
    if let Some(l) = stored.location {
        resp = resp.header(poem::http::header::LOCATION, l);
    }
    resp.body(stored.body)
}
