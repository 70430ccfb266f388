//! `GET /instances/{id}` (api.md §4.3).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{load_visible, states, view_of};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::views::instances::{instance, Detail};

/// Shows one instance (404 for unknown, deleted, or other projects' ids).
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let inst = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(
        &state,
        "instance:show",
        inst.tenant_id.as_deref().unwrap_or_default(),
    )?;
    let st = states(&state, &inst).await?;
    let view = view_of(&state, &inst, &st).await?;
    Ok(Json(
        json!({ "instance": instance(&ctx, &view, Detail::Show, ctx.is_admin()) }),
    ))
}
