//! RFC 9457 problem details (`application/problem+json`) with a stable `type` per kind of
//! error, and the strict string type of request bodies.

use std::borrow::Cow;

use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    payload::Json,
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use crate::store::StoreError;
use crate::workflow::engine::Refusal;

/// Base of the problem type URIs.
pub const TYPE_BASE: &str = "https://zhigang.example/problems/";

/// One field's problem.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FieldProblem {
    /// The field (a JSON pointer-like path, e.g. `name` or `form.revenue`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// An RFC 9457 problem.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A stable URI naming the kind of error.
    #[oai(rename = "type")]
    pub ty: String,
    /// A short summary of the kind of error.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened here.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Field-level problems (validation only).
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldProblem>>,
}

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request could not be parsed (malformed JSON, wrong types, unknown fields).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// The caller may see the object but not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such object, or not one the caller may know about.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The object changed, or is not in a state that allows this.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request body is larger than the portal accepts.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The request body is not JSON.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Well-formed but invalid input.
    #[oai(status = 422, content_type = "application/problem+json")]
    Validation(Json<Problem>),
    /// Too many requests with this token.
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(Json<Problem>, #[oai(header = "Retry-After")] Option<u64>),
    /// An unexpected failure (logged with an id).
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// The database cannot be reached for the moment: retry after the given seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] Option<u64>),
}

fn problem(kind: &str, title: &str, status: u16, detail: Option<String>) -> Json<Problem> {
    Json(Problem {
        ty: format!("{TYPE_BASE}{kind}"),
        title: title.into(),
        status,
        detail,
        errors: None,
    })
}

impl ApiError {
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(problem(
            "bad-request",
            "Bad request",
            400,
            Some(detail.into()),
        ))
    }
    /// 401.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(
            problem(
                "unauthorized",
                "Unauthorized",
                401,
                Some("send a valid API token as \"Authorization: Bearer <token>\"".into()),
            ),
            Some("Bearer".into()),
        )
    }
    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(problem("forbidden", "Forbidden", 403, Some(detail.into())))
    }
    /// 404.
    pub fn not_found() -> Self {
        Self::NotFound(problem("not-found", "Not found", 404, None))
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(problem("conflict", "Conflict", 409, Some(detail.into())))
    }
    /// 415.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::UnsupportedMediaType(problem(
            "unsupported-media-type",
            "Unsupported media type",
            415,
            Some(detail.into()),
        ))
    }
    /// 422 with per-field details.
    pub fn validation(errors: Vec<FieldProblem>) -> Self {
        let mut p = problem("validation", "Invalid input", 422, None);
        p.0.errors = Some(errors);
        Self::Validation(p)
    }
    /// 422 for one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldProblem {
            field: field.into(),
            message: message.into(),
        }])
    }
    /// 429.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::RateLimited(
            problem("rate-limited", "Too many requests", 429, None),
            Some(retry_after),
        )
    }
    /// 500: logged with an id, never shown.
    pub fn internal(e: impl std::fmt::Display + 'static) -> poem::Error {
        crate::web::internal(e)
    }
}

/// Maps a refusal of the engine: not allowed at all → 403; a mistake in the input → 422;
/// the state does not allow it → 409.
pub fn refusal(r: Refusal) -> ApiError {
    let text = r.to_string();
    match r {
        Refusal::NotPermitted | Refusal::NotAColleague | Refusal::SameUser => {
            ApiError::forbidden(text)
        }
        Refusal::OpinionRequired
        | Refusal::ReasonRequired
        | Refusal::ItemsRequired
        | Refusal::TextRequired => ApiError::invalid("comment", text),
        Refusal::UnknownItem(_) => ApiError::invalid("items", text),
        Refusal::FormIncomplete(fields) => ApiError::validation(
            fields
                .into_iter()
                .map(|f| FieldProblem {
                    field: format!("form.{f}"),
                    message: "required".into(),
                })
                .collect(),
        ),
        Refusal::MaterialsMissing(materials) => ApiError::validation(
            materials
                .into_iter()
                .map(|m| FieldProblem {
                    field: format!("materials.{m}"),
                    message: "required".into(),
                })
                .collect(),
        ),
        Refusal::UnknownTask => ApiError::not_found(),
        _ => ApiError::conflict(text),
    }
}

/// An operation's result: its own success responses or one of [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// Maps the store's errors.
pub fn store_error(e: StoreError) -> poem::Result<ApiError> {
    match e {
        StoreError::NotFound => Ok(ApiError::not_found()),
        StoreError::Refused(r) => Ok(refusal(r)),
        StoreError::Conflict => Ok(ApiError::conflict(
            "the application was changed by someone else; fetch it and try again",
        )),
        StoreError::Invalid(m) => Ok(ApiError::invalid("form", m)),
        e => Err(ApiError::internal(e)),
    }
}

/// Turns every error that leaves the API without a problem body (the framework's own
/// parse errors, a missing token, an unknown path, a wrong method) into one.
pub struct Problems<E>(pub E);

impl<E: Endpoint> Endpoint for Problems<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allow = super::operations::Operations::get().allow(req.uri().path());
        let resp = match self.0.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status();
        let is_problem = resp
            .headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        if !(status.is_client_error() || status.is_server_error()) || is_problem {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let detail = resp.into_body().into_string().await.unwrap_or_default();
        let detail = (!detail.is_empty()).then_some(detail);
        let err = match status.as_u16() {
            400 => ApiError::BadRequest(problem("bad-request", "Bad request", 400, detail)),
            401 => ApiError::unauthorized(),
            403 => ApiError::Forbidden(problem("forbidden", "Forbidden", 403, detail)),
            404 => ApiError::not_found(),
            405 => ApiError::BadRequest(problem(
                "method-not-allowed",
                "Method not allowed",
                405,
                detail,
            )),
            409 => ApiError::Conflict(problem("conflict", "Conflict", 409, detail)),
            413 => ApiError::TooLarge(problem("too-large", "Payload too large", 413, detail)),
            415 => ApiError::unsupported(detail.unwrap_or_default()),
            422 => ApiError::Validation(problem("validation", "Invalid input", 422, detail)),
            429 => ApiError::rate_limited(1),
            s if s >= 500 => ApiError::Internal(problem("internal", "Internal error", s, None)),
            s => ApiError::BadRequest(problem("bad-request", "Bad request", s, detail)),
        };
        let mut out = err.into_response();
        out.set_status(status);
        for (k, v) in &headers {
            if k != poem::http::header::CONTENT_TYPE && k != poem::http::header::CONTENT_LENGTH {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            // The path's own methods, from the document (the router's list is not exposed).
            if let Some(v) = allow.and_then(|a| poem::http::HeaderValue::from_str(&a).ok()) {
                out.headers_mut().insert("allow", v);
            }
        }
        Ok(out)
    }
}

/// A string that must be a JSON string: `false` or `1` where text is expected is refused
/// (the framework's own `String` would accept them as `"false"` and `"1"`), and so are
/// control characters other than tab and line breaks (see [`TEXT_PATTERN`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

/// What text may contain: no control characters but tab, line feed and carriage return
/// (a NUL cannot even be stored in PostgreSQL's text).
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F]*$";

/// Whether `s` satisfies [`TEXT_PATTERN`].
pub fn is_clean_text(s: &str) -> bool {
    !s.chars()
        .any(|c| matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\x7f'))
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(TEXT_PATTERN.to_string()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) if is_clean_text(&s) => Ok(Text(s)),
            Some(Value::String(_)) => Err(ParseError::custom(
                "control characters (other than tab and line breaks) are not allowed",
            )),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}
