//! `GET /flavors` and `GET /flavors/{id}` (api.md §12), from the API's flavor catalog
//! ([`crate::flavors::FlavorSource`]).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::views;

/// Whether flavor views carry `local_storage` (volume support off, device path set).
pub fn shows_local_storage(state: &AppState) -> bool {
    let d = &state.config().default;
    !d.trove_volume_support && !d.device_path.is_empty()
}

/// Lists every flavor (not paginated).
pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "flavor:index", ctx.project_id())?;
    let local = shows_local_storage(&state);
    let flavors = state.flavors().list().await?;
    let items: Vec<Value> = flavors
        .iter()
        .map(|f| views::flavors::flavor(&ctx, f, local))
        .collect();
    Ok(Json(json!({ "flavors": items })))
}

/// Shows one flavor by id; unknown ids (and names) are 404.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "flavor:show", ctx.project_id())?;
    let flavor = state
        .flavors()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::resource_not_found(&id))?;
    let local = shows_local_storage(&state);
    Ok(Json(
        json!({ "flavor": views::flavors::flavor(&ctx, &flavor, local) }),
    ))
}
