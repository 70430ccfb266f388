//! HTTP plumbing around every request, outermost first:
//!
//! 1. a request id `req-<uuid>` (kept in a task-local, see [`current_request_id`]), a
//!    tracing span `request` with `request_id` and (once known) `project_id` and
//!    `instance_id`, and one
//!    log event per request with status and duration;
//! 2. panics in handlers are caught and answered as a 500 `instanceFault` naming the
//!    request id: a panic never escapes to the connection;
//! 3. the content-type rules of api.md §1.3: a non-empty body with a non-JSON
//!    `Content-Type` is a 415 before any handler runs (parsing and "Malformed request
//!    body" are the [`crate::extract::JsonBody`] extractor's job);
//! 4. on the way out: every error response that is not already a Trove fault (axum
//!    rejections, the body-limit 413) is rewritten into one, every response gets
//!    `Content-Type: application/json` unless it set a type (also empty ones), and
//!    `x-openstack-request-id` / `x-compute-request-id` headers.
//!
//! Not here: authentication and the project check ([`crate::context`]), rate limiting.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tracing::Instrument;

use crate::error::{ApiError, Fault, FaultBody};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// The request id of a request, as stored in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a `Content-Type` names a body we parse as JSON (JSON, `+json` vendor types,
/// and XML, which Trove accepts and we answer as malformed).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "application/xml"
        || essence == "text/xml"
}

fn has_body(headers: &HeaderMap) -> bool {
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("handler panicked: {0}")]
struct HandlerPanic(String);

/// The outermost middleware; see the module doc.
pub async fn outer(mut req: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        project_id = tracing::field::Empty,
        instance_id = tracing::field::Empty,
        http.method = %method,
        http.path = %path,
    );
    let started = Instant::now();
    let id = request_id.clone();
    let fut = async move {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_string());
        let resp = match content_type {
            Some(ct) if has_body(req.headers()) && !is_json_content_type(&ct) => {
                ApiError::new(Fault::BadMediaType, "Unsupported Content-Type").into_response()
            }
            _ => match AssertUnwindSafe(next.run(req)).catch_unwind().await {
                Ok(resp) => resp,
                Err(panic) => {
                    ApiError::internal(HandlerPanic(panic_message(&*panic))).into_response()
                }
            },
        };
        let mut resp = normalize_fault(resp).await;
        finish_headers(resp.headers_mut(), &id);
        let status = resp.status().as_u16();
        let duration_ms = started.elapsed().as_millis() as u64;
        if status >= 500 {
            tracing::warn!(http.status = status, duration_ms, "request finished");
        } else {
            tracing::info!(http.status = status, duration_ms, "request finished");
        }
        resp
    };
    REQUEST_ID.scope(request_id, fut.instrument(span)).await
}

fn finish_headers(headers: &mut HeaderMap, request_id: &str) {
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-openstack-request-id", v.clone());
        headers.insert("x-compute-request-id", v);
    }
}

/// Rewrites an error response that is not already a Trove fault into one.
async fn normalize_fault(resp: Response) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 || resp.extensions().get::<FaultBody>().is_some() {
        return resp;
    }
    let fault = Fault::from_status(status);
    let message = match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            "The resource could not be found.".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => "Request is too large.".to_string(),
        _ => {
            let (_, body) = resp.into_parts();
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let text = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("Request failed")
                    .to_string()
            } else {
                text
            };
            if status.is_server_error() {
                return ApiError::internal(HandlerPanic(text)).into_response();
            }
            return ApiError::new(fault, text).into_response();
        }
    };
    // Wrong methods answer 404, as Trove's router does (api.md §1.5).
    let fault = if status == StatusCode::METHOD_NOT_ALLOWED {
        Fault::NotFound
    } else {
        fault
    };
    ApiError::new(fault, message).into_response()
}

/// The fallback of unknown routes: 404 `itemNotFound`.
pub async fn not_found() -> ApiError {
    ApiError::route_not_found()
}

/// An empty body with the given status (202/204 answers).
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=UTF-8"));
        assert!(is_json_content_type("application/vnd.openstack.trove+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
    }
}
