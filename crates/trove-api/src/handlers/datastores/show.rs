//! `GET /datastores` and `GET /datastores/{id_or_name}` (api.md §11.1, §11.2).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::load_datastore;
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::views;

/// Lists datastores: for non-admins those with an active version, with their active
/// versions; for admins everything, with the admin keys.
pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "datastore:index", ctx.project_id())?;
    let admin = ctx.is_admin();
    let datastores = state.db().datastore_list().await?;
    let all_versions = state.db().datastore_version_list_all().await?;
    let mut items = Vec::new();
    for ds in &datastores {
        let versions: Vec<_> = all_versions
            .iter()
            .filter(|v| v.datastore_id == ds.id && (admin || v.active))
            .cloned()
            .collect();
        if !admin && versions.is_empty() {
            continue;
        }
        items.push(views::datastores::datastore(&ctx, ds, &versions, admin));
    }
    Ok(Json(json!({ "datastores": items })))
}

/// Shows one datastore (by id, then name) with its active versions.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "datastore:show", ctx.project_id())?;
    let ds = load_datastore(&state, &id).await?;
    let versions = state.db().datastore_version_list(&ds.id, true).await?;
    Ok(Json(json!({
        "datastore": views::datastores::datastore(&ctx, &ds, &versions, ctx.is_admin())
    })))
}
