//! The one error type of the API layer: [`ApiError`], answered as Trove's fault body.
//!
//! Which error to use where:
//! - handlers return `Result<_, ApiError>`; domain errors (`DbError`, `PolicyDenied`,
//!   validation errors, RPC failures) become an `ApiError` through the `From` impls of
//!   [`convert`], the single place where an error class is given its status;
//! - a handler that knows better than the default mapping (an unknown flavor is 404 on
//!   `GET /flavors/{id}` but 400 in instance create) builds the `ApiError` itself with a
//!   constructor ([`ApiError::bad_request`], [`ApiError::not_found`], ...).
//!
//! The body is always `{"<faultKey>": {"code": N, "message": "..."}}` (api.md §1.5). A
//! 5xx is logged once, here, with its whole source chain and the request id; the client
//! only gets a generic message naming the request id. Token failures use
//! keystonemiddleware's `{"error": {...}}` form with a `WWW-Authenticate` header.
//!
//! Not here: turning non-API errors (axum rejections, body-limit 413s) into faults; the
//! middleware does that for any error response that did not come from an `ApiError`.

pub mod convert;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::middleware::current_request_id;

/// Trove's fault kinds: the HTTP status and the key of the fault body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 400 `badRequest`.
    BadRequest,
    /// 401 `unauthorized` (Trove's plain `Forbidden` class, e.g. mgmt calls by non-admins).
    Unauthorized,
    /// 403 `forbidden`.
    Forbidden,
    /// 404 `itemNotFound`.
    NotFound,
    /// 405 `badMethod`.
    BadMethod,
    /// 406 `notAcceptable`.
    NotAcceptable,
    /// 409 `conflict`.
    Conflict,
    /// 413 `overLimit` (quota, rate limit, volume size, body size).
    OverLimit,
    /// 415 `badMediaType`.
    BadMediaType,
    /// 422 `unprocessableEntity`.
    Unprocessable,
    /// 500 `instanceFault`: an unexpected failure.
    InstanceFault,
    /// 500 `serverError`: an expected server-side failure class.
    ServerError,
    /// 501 `notImplemented`.
    NotImplemented,
    /// 503 `serviceUnavailable`.
    ServiceUnavailable,
}

impl Fault {
    /// Every fault kind, for tables and tests.
    pub const ALL: &'static [Fault] = &[
        Fault::BadRequest,
        Fault::Unauthorized,
        Fault::Forbidden,
        Fault::NotFound,
        Fault::BadMethod,
        Fault::NotAcceptable,
        Fault::Conflict,
        Fault::OverLimit,
        Fault::BadMediaType,
        Fault::Unprocessable,
        Fault::InstanceFault,
        Fault::ServerError,
        Fault::NotImplemented,
        Fault::ServiceUnavailable,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Fault::BadRequest => StatusCode::BAD_REQUEST,
            Fault::Unauthorized => StatusCode::UNAUTHORIZED,
            Fault::Forbidden => StatusCode::FORBIDDEN,
            Fault::NotFound => StatusCode::NOT_FOUND,
            Fault::BadMethod => StatusCode::METHOD_NOT_ALLOWED,
            Fault::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Fault::Conflict => StatusCode::CONFLICT,
            Fault::OverLimit => StatusCode::PAYLOAD_TOO_LARGE,
            Fault::BadMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Fault::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Fault::InstanceFault | Fault::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Fault::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The key of the fault body (`itemNotFound`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Fault::BadRequest => "badRequest",
            Fault::Unauthorized => "unauthorized",
            Fault::Forbidden => "forbidden",
            Fault::NotFound => "itemNotFound",
            Fault::BadMethod => "badMethod",
            Fault::NotAcceptable => "notAcceptable",
            Fault::Conflict => "conflict",
            Fault::OverLimit => "overLimit",
            Fault::BadMediaType => "badMediaType",
            Fault::Unprocessable => "unprocessableEntity",
            Fault::InstanceFault => "instanceFault",
            Fault::ServerError => "serverError",
            Fault::NotImplemented => "notImplemented",
            Fault::ServiceUnavailable => "serviceUnavailable",
        }
    }

    /// The fault for an error status that did not come from an [`ApiError`] (500 is
    /// `instanceFault`; unknown 4xx are `badRequest`, unknown 5xx `instanceFault`).
    pub fn from_status(status: StatusCode) -> Fault {
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.status() == status && *f != Fault::ServerError)
            .unwrap_or(if status.is_server_error() {
                Fault::InstanceFault
            } else {
                Fault::BadRequest
            })
    }
}

/// The message of every unexpected 500 (`instanceFault`), naming the request id.
pub fn internal_error_message(request_id: &str) -> String {
    format!(
        "Internal Server Error. Please keep this ID to help us figure out what went wrong: ({request_id})."
    )
}

/// The fault body `{"<key>": {"code": N, "message": "..."}}`.
pub fn fault_body(fault: Fault, message: &str) -> serde_json::Value {
    json!({ fault.key(): { "code": fault.status().as_u16(), "message": message } })
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error answered with Trove's fault body; see the module doc.
#[derive(Debug)]
pub struct ApiError {
    fault: Fault,
    message: String,
    /// Extra keys of the fault object (rate limiting's `details`, `retryAfter`).
    extra: Vec<(&'static str, serde_json::Value)>,
    /// `Retry-After` header (rate limiting).
    retry_after: Option<u64>,
    /// keystonemiddleware's 401 form with this `WWW-Authenticate` value.
    www_authenticate: Option<String>,
    /// What went wrong underneath; logged for 5xx, never sent.
    source: Option<Source>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.fault.key(),
            self.fault.status().as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl ApiError {
    /// An error of kind `fault` with the message the client sees.
    pub fn new(fault: Fault, message: impl Into<String>) -> Self {
        Self {
            fault,
            message: message.into(),
            extra: Vec::new(),
            retry_after: None,
            www_authenticate: None,
            source: None,
        }
    }

    /// 400 `badRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Fault::BadRequest, message)
    }

    /// 401 `unauthorized` with Trove's "User does not have admin privileges.".
    pub fn not_admin() -> Self {
        Self::new(Fault::Unauthorized, "User does not have admin privileges.")
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Fault::Forbidden, message)
    }

    /// 404 `itemNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Fault::NotFound, message)
    }

    /// 404 `itemNotFound` with Trove's model-layer message "Resource <id> cannot be found.".
    pub fn resource_not_found(id: &str) -> Self {
        Self::not_found(format!("Resource {id} cannot be found."))
    }

    /// 404 for an unknown route: "The resource could not be found.".
    pub fn route_not_found() -> Self {
        Self::not_found("The resource could not be found.")
    }

    /// 413 `overLimit`.
    pub fn over_limit(message: impl Into<String>) -> Self {
        Self::new(Fault::OverLimit, message)
    }

    /// 422 `unprocessableEntity`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(Fault::Unprocessable, message)
    }

    /// 501 `notImplemented`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(Fault::NotImplemented, message)
    }

    /// 503 `serviceUnavailable` (database or broker unreachable); `source` is logged.
    pub fn unavailable(source: impl Into<Source>) -> Self {
        Self::new(
            Fault::ServiceUnavailable,
            "The service is temporarily unavailable. Please try again later.",
        )
        .with_source(source)
    }

    /// 500 `instanceFault` for an unexpected failure; `source` is logged, the client gets
    /// the generic message with the request id.
    pub fn internal(source: impl Into<Source>) -> Self {
        Self::new(Fault::InstanceFault, "").with_source(source)
    }

    /// 401 for a missing or invalid token, in keystonemiddleware's `{"error": ...}` form
    /// with `WWW-Authenticate: Keystone uri="<uri>"`.
    pub fn unauthenticated(message: impl Into<String>, www_authenticate: Option<String>) -> Self {
        let mut e = Self::new(Fault::Unauthorized, message);
        e.www_authenticate = Some(www_authenticate.unwrap_or_default());
        e
    }

    /// The 413 of the rate limiter (api.md §1.5), with `details`, `retryAfter` and the
    /// `Retry-After` header.
    pub fn rate_limited(details: String, retry_after: u64) -> Self {
        let mut e = Self::over_limit("This request was rate-limited.");
        e.extra.push(("details", details.into()));
        e.extra.push(("retryAfter", retry_after.to_string().into()));
        e.retry_after = Some(retry_after);
        e
    }

    /// Attaches the underlying error (logged for 5xx, never sent).
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The fault kind.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.fault.status()
    }

    /// The message sent to the client (for 5xx, see [`internal_error_message`]).
    pub fn message(&self) -> &str {
        &self.message
    }

    fn log_chain(&self, request_id: &str) {
        let mut chain = String::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            if !chain.is_empty() {
                chain.push_str(": ");
            }
            chain.push_str(&e.to_string());
            cur = e.source();
        }
        tracing::error!(
            request_id,
            fault = self.fault.key(),
            status = self.fault.status().as_u16(),
            error.message = %self.message,
            error.chain = %chain,
            "request failed with a server error"
        );
    }
}

/// Marks responses whose body is already a fault, so the middleware leaves them alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultBody;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.fault.status();
        let (text, www) = if let Some(www) = &self.www_authenticate {
            let body =
                json!({"error": {"code": 401, "title": "Unauthorized", "message": self.message}});
            (body.to_string(), Some(www.clone()))
        } else {
            let message = if status.is_server_error() {
                let request_id = current_request_id().unwrap_or_default();
                self.log_chain(&request_id);
                if self.fault == Fault::InstanceFault || self.message.is_empty() {
                    internal_error_message(&request_id)
                } else {
                    self.message.clone()
                }
            } else {
                self.message.clone()
            };
            let mut inner = serde_json::Map::new();
            inner.insert("code".into(), status.as_u16().into());
            inner.insert("message".into(), message.into());
            for (k, v) in &self.extra {
                inner.insert((*k).into(), v.clone());
            }
            (json!({ self.fault.key(): inner }).to_string(), None)
        };
        let mut resp = (status, text).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(www) = www.filter(|w| !w.is_empty()) {
            if let Ok(v) = HeaderValue::from_str(&www) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.extensions_mut().insert(FaultBody);
        resp
    }
}

/// Result alias of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
