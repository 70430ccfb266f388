//! Request body extractors: read the body (within the size limit) and parse it as JSON,
//! with Trove's answers: 413 over the limit, 400 "Malformed request body" for bad JSON,
//! 400 "Invalid request body." when a handler needs a body and got none.
//!
//! Bodies are parsed whatever their `Content-Type` says once the middleware let them
//! through (JSON types, or none at all, which Trove would answer with a 500). Validation of
//! the parsed value is [`crate::validation`]'s job.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body that must be present.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

/// A JSON body that may be empty (`None`).
#[derive(Debug, Clone)]
pub struct OptionalJsonBody(pub Option<Value>);

fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Reads and parses a body; `None` when it is empty.
pub async fn read_json(body: Body) -> Result<Option<Value>, ApiError> {
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return Err(if is_length_limit(&e) {
                ApiError::over_limit("Request is too large.")
            } else {
                ApiError::bad_request("Malformed request body")
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| ApiError::bad_request("Malformed request body"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match read_json(req.into_body()).await? {
            Some(v) => Ok(JsonBody(v)),
            None => Err(ApiError::bad_request("Invalid request body.")),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(OptionalJsonBody(read_json(req.into_body()).await?))
    }
}
