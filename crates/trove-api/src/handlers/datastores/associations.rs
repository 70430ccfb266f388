//! Flavors and volume types allowed for a datastore version (api.md §11.5, §11.6).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use trove_db::METADATA_FLAVOR;

use super::load_version_by_id;
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::handlers::flavors::shows_local_storage;
use crate::views;

/// `GET /datastores/{ds}/versions/{version_id}/flavors`: every flavor, or only those
/// bound to the version. The `{ds}` segment is not checked, as in Trove.
pub async fn flavors(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, _ds, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        &state,
        "datastore:list_associated_flavors",
        ctx.project_id(),
    )?;
    let v = load_version_by_id(&state, &version).await?;
    let bound = state
        .db()
        .datastore_version_metadata_list(&v.id, METADATA_FLAVOR)
        .await?;
    let local = shows_local_storage(&state);
    let items: Vec<Value> = state
        .flavors()
        .list()
        .await?
        .iter()
        .filter(|f| bound.is_empty() || bound.contains(&f.id))
        .map(|f| views::flavors::flavor(&ctx, f, local))
        .collect();
    Ok(Json(json!({ "flavors": items })))
}

/// `GET /datastores/{ds}/versions/{version_id}/volume-types`: no policy check. The local
/// compute driver has no volume types, so the list is empty.
pub async fn volume_types(
    State(state): State<AppState>,
    Path((_project, _ds, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    load_version_by_id(&state, &version).await?;
    Ok(Json(json!({ "volume_types": [] })))
}
