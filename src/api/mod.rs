//! The JSON API for integrators (`/api/v1`, OpenAPI at `/api/openapi.json`, Swagger UI at
//! `/api/docs`), authenticated by personal API tokens (`Authorization: Bearer zg_…`).
//!
//! Every operation goes through the same store, engine and authorization as the web
//! pages (`store::execute`, `store::can_view`, `store::create_draft`,
//! `store::update_section`, the inbox's query): this module only translates. Session
//! cookies are not read here, so no CSRF token is needed. Errors are RFC 9457 problems.

pub mod docs;
pub mod idempotency;
pub mod operations;
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
}

/// The OpenAPI document, as JSON. The request bodies' objects refuse unknown fields
/// (`deny_unknown_fields`); the document says so with `additionalProperties: false`, which
/// the framework leaves out.
pub fn spec_json() -> String {
    let raw = service().spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&raw) else {
        return raw;
    };
    // The schemas reachable from a request body.
    let mut pending: Vec<String> = Vec::new();
    let collect = |v: &serde_json::Value, pending: &mut Vec<String>| {
        let mut stack = vec![v.clone()];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        pending.push(r.trim_start_matches("#/components/schemas/").to_string());
                    }
                    stack.extend(m.into_iter().map(|(_, v)| v));
                }
                serde_json::Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
    };
    if let Some(paths) = doc["paths"].as_object_mut() {
        for ops in paths.values_mut().filter_map(|o| o.as_object_mut()) {
            for op in ops.values_mut() {
                collect(&op["requestBody"], &mut pending);
                // Inline bodies (the multipart upload) are strict too.
                // (`get_mut`, not indexing: an index inserts the missing key as null.)
                let content = op
                    .get_mut("requestBody")
                    .and_then(|b| b.get_mut("content"))
                    .and_then(serde_json::Value::as_object_mut);
                if let Some(content) = content {
                    for media in content.values_mut() {
                        if let Some(s) = media
                            .get_mut("schema")
                            .and_then(serde_json::Value::as_object_mut)
                            && s.contains_key("properties")
                        {
                            s.entry("additionalProperties")
                                .or_insert(serde_json::Value::Bool(false));
                        }
                    }
                }
            }
        }
    }
    let mut strict = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if strict.insert(name.clone()) {
            let schema = doc["components"]["schemas"][&name].clone();
            collect(&schema, &mut pending);
        }
    }
    for name in strict {
        if let Some(s) = doc
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(serde_json::Value::as_object_mut)
            && s.contains_key("properties")
            && !s.contains_key("additionalProperties")
        {
            s.insert(
                "additionalProperties".into(),
                serde_json::Value::Bool(false),
            );
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or(raw)
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
