//! Datastore version lists and shows (api.md §11.3, §11.4).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{load_datastore, load_version_by_id, load_version_of};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::views;

/// `GET /datastores/{ds}/versions`: active versions (all for admins).
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, ds)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "datastore:version_index", ctx.project_id())?;
    let admin = ctx.is_admin();
    let ds = load_datastore(&state, &ds).await?;
    let versions = state.db().datastore_version_list(&ds.id, !admin).await?;
    let items: Vec<Value> = versions
        .iter()
        .map(|v| views::datastores::version(&ctx, v, true, admin))
        .collect();
    Ok(Json(json!({ "versions": items })))
}

/// `GET /datastores/{ds}/versions/{id_or_name}` (inactive versions are shown).
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, ds, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "datastore:version_show", ctx.project_id())?;
    let ds = load_datastore(&state, &ds).await?;
    let v = load_version_of(&state, &ds, &version).await?;
    Ok(Json(json!({
        "version": views::datastores::version(&ctx, &v, true, ctx.is_admin())
    })))
}

/// `GET /datastores/versions/{uuid}` (unknown: 400).
pub async fn show_by_uuid(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "datastore:version_show_by_uuid", ctx.project_id())?;
    let v = load_version_by_id(&state, &version).await?;
    Ok(Json(json!({
        "version": views::datastores::version(&ctx, &v, true, ctx.is_admin())
    })))
}
