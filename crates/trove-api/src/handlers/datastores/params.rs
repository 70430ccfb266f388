//! Configuration parameters of a datastore version (api.md §10.8): by datastore and
//! version name/id, or by version id alone. Show answers the bare parameter object.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{load_datastore, load_version_by_id};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::views;

async fn version_of(state: &AppState, ds: &str, version: &str) -> ApiResult<String> {
    let ds = load_datastore(state, ds).await?;
    Ok(state
        .db()
        .datastore_version_find(&ds.id, version, None)
        .await?
        .id)
}

async fn list_of(state: &AppState, version_id: &str) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = state
        .db()
        .config_params_list(version_id)
        .await?
        .iter()
        .map(views::params::param)
        .collect();
    Ok(Json(json!({ "configuration-parameters": items })))
}

/// `GET /datastores/{ds}/versions/{version}/parameters`.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, ds, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "configuration-parameter:index", ctx.project_id())?;
    let vid = version_of(&state, &ds, &version).await?;
    list_of(&state, &vid).await
}

/// `GET /datastores/{ds}/versions/{version}/parameters/{name}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, ds, version, name)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "configuration-parameter:show", ctx.project_id())?;
    let vid = version_of(&state, &ds, &version).await?;
    let p = state.db().config_param_get(&vid, &name).await?;
    Ok(Json(views::params::param(&p)))
}

/// `GET /datastores/versions/{version_id}/parameters`.
pub async fn list_by_version(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        &state,
        "configuration-parameter:index_by_version",
        ctx.project_id(),
    )?;
    let v = load_version_by_id(&state, &version).await?;
    list_of(&state, &v.id).await
}

/// `GET /datastores/versions/{version_id}/parameters/{name}`.
pub async fn show_by_version(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        &state,
        "configuration-parameter:show_by_version",
        ctx.project_id(),
    )?;
    let v = load_version_by_id(&state, &version).await?;
    let p = state.db().config_param_get(&v.id, &name).await?;
    Ok(Json(views::params::param(&p)))
}
