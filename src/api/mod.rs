//! The JSON API for integrators (`/api/v1`, OpenAPI at `/api/openapi.json`, Swagger UI at
//! `/api/docs`), authenticated by personal API tokens (`Authorization: Bearer zg_…`).
//!
//! Every operation goes through the same store, engine and authorization as the web
//! pages (`store::execute`, `store::can_view`, `store::create_draft`,
//! `store::update_section`, the inbox's query): this module only translates. Session
//! cookies are not read here, so no CSRF token is needed. Errors are RFC 9457 problems.

pub mod docs;
pub mod idempotency;
pub mod problem;
pub mod rate;
pub mod tokens;
mod v1;

use poem::{Endpoint, EndpointExt, Route, get, handler};
use poem_openapi::OpenApiService;

use crate::web::State;
use problem::Problems;

/// The API's title in its document.
pub const TITLE: &str = "智港 zhigang API";

fn service() -> OpenApiService<v1::Api, ()> {
    OpenApiService::new(v1::Api, TITLE, "1.0.0")
        .description(
            "The enterprise support portal's API: applications and review tasks, with the \
             same rules as the web portal. Authenticate with a personal API token created \
             at /account/tokens, sent as `Authorization: Bearer <token>`. Errors are RFC 9457 \
             `application/problem+json`.",
        )
        .server("/api/v1")
        .extra_request_header::<String, _>(
            poem_openapi::ExtraHeader::new("Idempotency-Key").description(
                "On POST: a repeat with the same key and body replays the first response; \
                 the same key with another body is a 422 (1 to 255 visible ASCII characters).",
            ),
        )
}

/// The OpenAPI document, as JSON.
pub fn spec_json() -> String {
    service().spec()
}

#[handler]
fn spec() -> poem::Response {
    poem::Response::builder()
        .content_type("application/json")
        .header("cache-control", "no-store")
        .body(spec_json())
}

#[handler]
fn not_found() -> poem::http::StatusCode {
    poem::http::StatusCode::NOT_FOUND
}

/// Everything under `/api`: the versioned API, its document and its documentation.
/// `max_body` bounds every request body (the largest upload plus its form overhead);
/// `per_minute` is each token's request budget per minute on this instance.
pub fn endpoint(
    state: State,
    max_body: usize,
    per_minute: u32,
) -> impl Endpoint<Output = poem::Response> + 'static {
    let route = Route::new()
        .nest("/v1", service())
        .at("/openapi.json", get(spec))
        .nest("/docs", docs::endpoint(&service()))
        .at("/*", not_found);
    Problems(rate::RateLimit {
        inner: BodyLimit {
            inner: idempotency::Idempotency {
                inner: route.data(state.clone()),
                state,
            },
            max: max_body,
        },
        limiter: rate::Limiter::default(),
        per_minute,
    })
}

/// Reads a request body up to `max` bytes (413 beyond), whether or not it declares its
/// length, before the operation sees it.
struct BodyLimit<E> {
    inner: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimit<E> {
    type Output = poem::Response;

    async fn call(&self, mut req: poem::Request) -> poem::Result<poem::Response> {
        use poem::IntoResponse;
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max) {
            return Err(poem::Error::from_status(
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
        let body = req.take_body();
        match body.into_bytes_limit(self.max).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return Err(poem::Error::from_status(
                    poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                ));
            }
            Err(e) => {
                return Err(poem::Error::from_string(
                    e.to_string(),
                    poem::http::StatusCode::BAD_REQUEST,
                ));
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
