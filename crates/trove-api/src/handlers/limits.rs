//! `GET /limits` (api.md §13): absolute (quota) limits, then this project's rate limits.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::{quota, views};

/// Shows the caller's limits.
pub async fn index(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "limits:index", ctx.project_id())?;
    let absolute = quota::limits(state.db(), state.config(), ctx.project_id()).await?;
    let rates = state.limiter().states(ctx.project_id());
    Ok(Json(views::limits::limits(&absolute, &rates)))
}
