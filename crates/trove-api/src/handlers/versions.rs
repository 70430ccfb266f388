//! `GET /` (the version document) and `GET /healthcheck`; no authentication.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use crate::app::AppState;
use crate::views;

/// Lists the API versions, with links on the public endpoint or the request's host.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = match &state.config().default.public_endpoint {
        Some(p) if !p.is_empty() => p.clone(),
        _ => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    Json(views::versions::versions(&base))
}

/// Liveness probe: plain text `OK`.
pub async fn healthcheck() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], "OK")
}
