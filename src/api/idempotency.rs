//! `Idempotency-Key` on POST: the first response to a key is stored with the request's
//! method, path and body hash and replayed to repeats; the same key with another request is
//! a 422; a repeat while the first is still running is a 409. The unique (user, key) index
//! makes concurrent repeats produce one effect.

use entity::idempotency_key;
use poem::{Endpoint, IntoResponse, Request, Response, http::Method, http::StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::problem::ApiError;
use super::tokens;
use crate::web::State;

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
        let key = req
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_string));
        let Some(key) = key.filter(|_| req.method() == Method::POST) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let Ok(key) = key else {
            return Ok(problem(ApiError::bad_request(
                "Idempotency-Key must be visible ASCII",
            )));
        };
        if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Ok(problem(ApiError::bad_request(
                "Idempotency-Key must have 1 to 255 visible ASCII characters",
            )));
        }
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
        let Some(user) = user else {
            // Public or unauthenticated: no key store (the operation answers itself).
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let body = req.take_body().into_bytes().await?;
        req.set_body(body.clone());
        let body_hash = hex::encode(Sha256::digest(&body));
        let request = format!("POST {}", req.uri().path());
        let row = idempotency_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.id),
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
                    .filter(idempotency_key::Column::UserId.eq(user.id))
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
                response_body: Set(Some(String::from_utf8_lossy(&bytes).into_owned())),
                ..Default::default()
            }
            .update(db)
            .await
            .map_err(crate::web::internal)?;
        }
        Ok(Response::from_parts(parts, bytes.into()))
    }
}

fn replay(status: i32, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let ct = if status.is_success() {
        "application/json; charset=utf-8"
    } else {
        "application/problem+json"
    };
    Response::builder()
        .status(status)
        .content_type(ct)
        .header("idempotent-replayed", "true")
        .body(body)
}
